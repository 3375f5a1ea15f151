//! The abuse catalogue, part 2: connections. HTTP connections that stall or idle, the
//! anonymous rate limit, and WebSockets held against the protocol (issue 12, findings 4
//! and 5; issue 13, item 7). Each test failed before the fix.

use std::time::Duration;

use serde_json::json;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::{
    common::TestApp,
    websocket::{connect, init, recv, send},
};

/// Reads until the server closes the connection (or `within` passes); returns what it read
/// and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return (String::from_utf8_lossy(&buf).into(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&buf).into(), true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

// ---------------------------------------------------------------------------------------
// 4. HTTP connections

#[tokio::test]
async fn finding_4_unfinished_headers_are_cut_off() {
    let app = TestApp::spawn_with(&[("HTTP_HEADER_TIMEOUT_SECONDS", "1")]).await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "a connection that never finishes its headers is closed");
}

#[tokio::test]
async fn finding_4_a_stalled_body_is_cut_off() {
    let app = TestApp::spawn_with(&[("HTTP_BODY_TIMEOUT_SECONDS", "1")]).await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\":",
    )
    .await
    .unwrap();
    let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(closed);
}

#[tokio::test]
async fn finding_4_idle_keep_alive_connections_are_closed() {
    let app = TestApp::spawn_with(&[("HTTP_HEADER_TIMEOUT_SECONDS", "1")]).await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "the idle connection is closed after the timeout");
}

#[tokio::test]
async fn finding_4_connections_beyond_the_cap_are_refused() {
    let app = TestApp::spawn_with(&[
        ("HTTP_MAX_CONNECTIONS", "5"),
        ("HTTP_HEADER_TIMEOUT_SECONDS", "30"),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sixth = TcpStream::connect(app.addr).await.unwrap();
    let _ = sixth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (answer, closed) = read_until_closed(&mut sixth, Duration::from_secs(3)).await;
    assert!(closed && answer.is_empty(), "refused at once: {answer:?}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.http.get(app.url("/healthz")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn finding_4_anonymous_requests_are_rate_limited_per_address() {
    let app = TestApp::spawn_with(&[
        ("ANONYMOUS_RATE_PER_SECOND", "1"),
        ("ANONYMOUS_RATE_BURST", "3"),
        ("TRUST_FORWARDED_FOR", "true"),
    ])
    .await;
    let fan = app.sign_up("fan@example.com").await;
    let ask = |from: &'static str, token: Option<String>| {
        let mut req = app
            .http
            .post(app.url("/graphql"))
            .header("x-forwarded-for", from)
            .json(&json!({ "query": "{ concerts { nodes { id } } }" }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(ask("203.0.113.1", None).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let limited = ask("203.0.113.1", None).await.unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(
        ask("203.0.113.2", None).await.unwrap().status(),
        200,
        "another address"
    );
    assert_eq!(
        ask("203.0.113.1", Some(fan.access.clone()))
            .await
            .unwrap()
            .status(),
        200,
        "signed in"
    );
}

// ---------------------------------------------------------------------------------------
// 5. WebSockets (graphql-transport-ws close codes; issue 13 item 7 for the legacy protocol)

#[tokio::test]
async fn finding_5_a_socket_that_never_initialises_is_closed_4408() {
    let app = TestApp::spawn_with(&[("WS_INIT_TIMEOUT_SECONDS", "1")]).await;
    let mut ws = connect(&app, "graphql-transport-ws").await;
    let closed = recv(&mut ws).await;
    assert_eq!(closed["close"], 4408, "{closed}");
}

#[tokio::test]
async fn finding_5_a_reused_id_closes_4409() {
    let app = TestApp::spawn().await;
    let show = app.show(crate::common::layout(1, 5), 4).await;
    let mut ws = connect(&app, "graphql-transport-ws").await;
    init(&mut ws, None).await;
    let sub = json!({ "id": "x", "type": "subscribe", "payload": { "query": "subscription($s: ID!) { seatChanges(scheduleId: $s) { version } }", "variables": { "s": show.schedule_id } } });
    send(&mut ws, sub.clone()).await;
    send(&mut ws, sub).await;
    loop {
        let msg = recv(&mut ws).await;
        if msg.get("close").is_some() {
            assert_eq!(msg["close"], 4409, "{msg}");
            break;
        }
    }
}

#[tokio::test]
async fn finding_5_an_operation_before_the_ack_closes_4401() {
    let app = TestApp::spawn().await;
    let mut ws = connect(&app, "graphql-transport-ws").await;
    send(
        &mut ws,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ __typename }" } }),
    )
    .await;
    assert_eq!(recv(&mut ws).await["close"], 4401);
}

#[tokio::test]
async fn finding_5_a_bad_message_closes_4400() {
    let app = TestApp::spawn().await;
    let mut ws = connect(&app, "graphql-transport-ws").await;
    send(&mut ws, json!({ "type": "no_such_thing" })).await;
    assert_eq!(recv(&mut ws).await["close"], 4400);
}

#[tokio::test]
async fn finding_5_a_refused_token_closes_4403_and_legacy_clients_are_told_why() {
    let app = TestApp::spawn().await;
    let mut ws = connect(&app, "graphql-transport-ws").await;
    let closed = init(&mut ws, Some("not-a-token")).await;
    assert_eq!(closed["close"], 4403, "{closed}");

    let mut ws = connect(&app, "graphql-ws").await;
    let refused = init(&mut ws, Some("not-a-token")).await;
    assert_eq!(refused["type"], "connection_error", "{refused}");
    let closed = recv(&mut ws).await;
    assert_eq!(closed["close"], 4403, "not 1001 'server shutting down': {closed}");
    assert!(closed["reason"].as_str().unwrap().contains("token"));
}

#[tokio::test]
async fn finding_5_subscriptions_per_socket_are_capped() {
    let app = TestApp::spawn_with(&[("WS_MAX_SUBSCRIPTIONS_PER_SOCKET", "3")]).await;
    let show = app.show(crate::common::layout(1, 5), 4).await;
    let mut ws = connect(&app, "graphql-transport-ws").await;
    init(&mut ws, None).await;
    for i in 0..4 {
        send(&mut ws, json!({ "id": i.to_string(), "type": "subscribe", "payload": { "query": "subscription($s: ID!) { seatChanges(scheduleId: $s) { version } }", "variables": { "s": show.schedule_id } } })).await;
    }
    loop {
        let msg = recv(&mut ws).await;
        if msg["type"] == "error" {
            assert_eq!(msg["id"], "3");
            assert_eq!(msg["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS");
            break;
        }
        assert_eq!(msg["type"], "next", "{msg}");
    }
}

#[tokio::test]
async fn finding_5_sockets_per_user_are_capped() {
    let app = TestApp::spawn_with(&[("WS_MAX_SOCKETS_PER_USER", "2")]).await;
    let fan = app.sign_up("fan@example.com").await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut ws = connect(&app, "graphql-transport-ws").await;
        assert_eq!(init(&mut ws, Some(&fan.access)).await["type"], "connection_ack");
        open.push(ws);
    }
    let mut third = connect(&app, "graphql-transport-ws").await;
    assert_eq!(init(&mut third, Some(&fan.access)).await["close"], 4429);
    drop(open);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = connect(&app, "graphql-transport-ws").await;
    assert_eq!(
        init(&mut again, Some(&fan.access)).await["type"],
        "connection_ack"
    );
}

#[tokio::test]
async fn finding_5_a_socket_loses_its_authority_when_its_token_expires() {
    let app = TestApp::spawn_with(&[("ACCESS_TOKEN_TTL_SECONDS", "2")]).await;
    let fan = app.sign_up("fan@example.com").await;
    let mut ws = connect(&app, "graphql-transport-ws").await;
    assert_eq!(init(&mut ws, Some(&fan.access)).await["type"], "connection_ack");
    let closed = recv(&mut ws).await;
    assert_eq!(closed["close"], 4403, "{closed}");
    assert!(closed["reason"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn finding_5_log_out_closes_the_users_sockets_on_every_instance() {
    let app = TestApp::spawn().await;
    let other = app.second_instance(&[]).await;
    let fan = app.sign_up("fan@example.com").await;
    let mut here = connect(&app, "graphql-transport-ws").await;
    assert_eq!(init(&mut here, Some(&fan.access)).await["type"], "connection_ack");
    let mut there = connect(&other, "graphql-transport-ws").await;
    assert_eq!(
        init(&mut there, Some(&fan.access)).await["type"],
        "connection_ack"
    );
    // Give the second instance's Redis subscription a moment to be in place.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = app
        .gql(
            None,
            "mutation($r: String!) { logOut(refreshToken: $r) }",
            json!({ "r": fan.refresh }),
        )
        .await;
    assert!(out["errors"].is_null(), "{out}");
    for ws in [&mut here, &mut there] {
        let closed = recv(ws).await;
        assert_eq!(closed["close"], 4403, "{closed}");
    }
}

#[tokio::test]
async fn finding_5_refresh_token_reuse_closes_the_users_sockets() {
    let app = TestApp::spawn().await;
    let fan = app.sign_up("fan@example.com").await;
    let mut ws = connect(&app, "graphql-transport-ws").await;
    assert_eq!(init(&mut ws, Some(&fan.access)).await["type"], "connection_ack");
    let refresh = "mutation($r: String!) { refreshToken(refreshToken: $r) { accessToken } }";
    app.gql(None, refresh, json!({ "r": fan.refresh })).await;
    // The thief presents the used token again: the family is revoked.
    app.gql(None, refresh, json!({ "r": fan.refresh })).await;
    assert_eq!(recv(&mut ws).await["close"], 4403);
}
