//! What real clients need beyond the spec's letter: normalised caches (Apollo
//! InMemoryCache, urql graphcache) keyed by typename and id, subscriptions that only send
//! news. The npm clients themselves are exercised in e2e/clients/.

use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::{
    common::{TestApp, code, layout},
    websocket::{Ws, connect, init, recv, send},
};

async fn subscribe(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Ws {
    let mut ws = connect(app, "graphql-transport-ws").await;
    assert_eq!(init(&mut ws, token).await["type"], "connection_ack");
    send(
        &mut ws,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } }),
    )
    .await;
    ws
}

async fn next(ws: &mut Ws, field: &str) -> Value {
    let msg = recv(ws).await;
    assert_eq!(msg["type"], "next", "{msg}");
    msg["payload"]["data"][field].clone()
}

/// Nothing but pings for `quiet`: the subscription sent no event.
async fn silent_for(ws: &mut Ws, quiet: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + quiet;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Ok(()),
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] != "ping" && v["type"] != "pong" {
                    return Err(t.to_string());
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => return Err(format!("{other:?}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seat_changes_carry_the_seat_maps_own_seats() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let map = app
        .ok(
            None,
            "query($s: ID!) { schedule(id: $s) { seats { __typename id status section row number grade price } } }",
            json!({ "s": show.schedule_id }),
        )
        .await;
    let before = map["schedule"]["seats"][1].clone();
    assert_eq!(before["__typename"], "Seat");

    let mut ws = subscribe(
        &app,
        None,
        "subscription($s: ID!) { seatChanges(scheduleId: $s) { version seats { __typename id status section row number grade price } } }",
        json!({ "s": show.schedule_id }),
    )
    .await;
    next(&mut ws, "seatChanges").await;
    let fan = app.sign_up("fan@example.com").await;
    app.ok(
        Some(&fan.access),
        "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }",
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[1]] } }),
    )
    .await;
    let event = next(&mut ws, "seatChanges").await;
    let mut expected = before;
    expected["status"] = json!("HELD");
    assert_eq!(
        event["seats"],
        json!([expected]),
        "the event's seat is the map's seat (same typename, id and fields), with its new status"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_queue_place_has_one_id_wherever_it_comes_from() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 10), 4).await;
    app.set_schedule(
        &show.schedule_id,
        "queue_enabled = true, admit_per_second = 1, max_active = 1,
         sales_open_at = now() + interval '1 hour'",
    )
    .await;
    let fan = app.sign_up("fan@example.com").await;
    let other = app.sign_up("other@example.com").await;
    let vars = json!({ "s": show.schedule_id });
    let entered = app
        .ok(
            Some(&fan.access),
            "mutation($s: ID!) { enterQueue(scheduleId: $s) { __typename id state } }",
            vars.clone(),
        )
        .await["enterQueue"]
        .clone();
    assert_eq!(entered["state"], "EARLY");
    let polled = app
        .ok(
            Some(&fan.access),
            "query($s: ID!) { queueStatus(scheduleId: $s) { __typename id } }",
            vars.clone(),
        )
        .await["queueStatus"]
        .clone();
    assert!(entered["id"].is_string(), "{entered}");
    assert_eq!(polled["id"], entered["id"]);
    let others = app
        .ok(
            Some(&other.access),
            "mutation($s: ID!) { enterQueue(scheduleId: $s) { id } }",
            vars.clone(),
        )
        .await["enterQueue"]
        .clone();
    assert_ne!(others["id"], entered["id"], "each user's place is its own object");

    // The subscription: the same id, then nothing while nothing changes (before opening
    // only the countdown moves, and that is no news).
    let mut ws = subscribe(
        &app,
        Some(&fan.access),
        "subscription($s: ID!) { queueStatus(scheduleId: $s) { id state position etaSeconds } }",
        vars,
    )
    .await;
    let first = next(&mut ws, "queueStatus").await;
    assert_eq!(first["id"], entered["id"]);
    assert_eq!(first["state"], "EARLY");
    silent_for(&mut ws, Duration::from_millis(3500))
        .await
        .expect("no repeated EARLY events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_order_has_one_id_from_the_mutation_the_query_and_the_subscription() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 10), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let placed = app
        .ok(
            Some(&fan.access),
            "mutation($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId order { __typename id jobId status } } }",
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } }),
        )
        .await["placeOrder"]
        .clone();
    let job = placed["jobId"].as_str().unwrap().to_owned();
    assert_eq!(placed["order"]["__typename"], "OrderResult");
    assert_eq!(placed["order"]["id"], job.as_str());
    assert_eq!(placed["order"]["jobId"], job.as_str());
    let mut ws = subscribe(
        &app,
        Some(&fan.access),
        "subscription($j: String!) { orderResult(jobId: $j) { __typename id status } }",
        json!({ "j": job }),
    )
    .await;
    loop {
        let r = next(&mut ws, "orderResult").await;
        assert_eq!((&r["__typename"], &r["id"]), (&json!("OrderResult"), &json!(job)));
        if r["status"] == "DONE" || r["status"] == "FAILED" {
            break;
        }
    }
    let polled = app
        .ok(
            Some(&fan.access),
            "query($j: String!) { order(jobId: $j) { id status } }",
            json!({ "j": job }),
        )
        .await["order"]
        .clone();
    assert_eq!(polled["id"], job.as_str());
    assert_eq!(polled["status"], "DONE");
}

/// graphql-js 16 `getIntrospectionQuery()` with every option on: what GraphiQL, codegen
/// and Rover send (each turns on a subset of these).
const INTROSPECTION: &str = include_str!("fixtures/introspection-graphql-js-16-all-options.graphql");

#[tokio::test]
async fn the_standard_introspection_query_is_answered_and_stays_bounded() {
    let app = TestApp::spawn().await;
    let body = app.gql(None, INTROSPECTION, json!({})).await;
    assert!(body["errors"].is_null(), "{}", body["errors"]);
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    let seat = types.iter().find(|t| t["name"] == "Seat").unwrap();
    assert_eq!(seat["kind"], "OBJECT");
    assert!(body["data"]["__schema"]["queryType"]["name"] == "Query");

    // Lists inside lists multiply the schema by itself: refused, with a code.
    let bomb = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
    assert_eq!(code(&app.gql(None, bomb, json!({})).await), "QUERY_TOO_COSTLY");
    // Introspection's depth allowance is for introspection alone, not for data.
    let deep = format!("{{ __typename {DEEP_SELECTION} }}");
    assert_eq!(code(&app.gql(None, &deep, json!({})).await), "QUERY_TOO_DEEP");
}

/// A data selection 13 deep (the limit is 12), cheap enough for the cost model (three
/// unbounded lists), so that depth is what refuses it.
const DEEP_SELECTION: &str = "myReservations(first: 1) { edges { node { schedule { concert { schedules { concert { schedules { concert { schedules { concert { host { id } } } } } } } } } } } }";

#[tokio::test]
async fn introspection_can_be_switched_off() {
    let app = TestApp::spawn_with(&[("GRAPHQL_INTROSPECTION", "false")]).await;
    let body = app.gql(None, INTROSPECTION, json!({})).await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    let body = app
        .gql(None, "{ __type(name: \"Seat\") { name } }", json!({}))
        .await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    assert_eq!(
        app.ok(None, "{ __typename }", json!({})).await,
        json!({ "__typename": "Query" })
    );
}

#[tokio::test]
async fn every_refusal_carries_a_code() {
    let app = TestApp::spawn().await;
    let deep = format!("{{ {DEEP_SELECTION} }}");
    let cases: [(&str, Value, &str); 7] = [
        ("{ me { id ", json!({}), "GRAPHQL_PARSE_FAILED"),
        ("{ noSuchField }", json!({}), "GRAPHQL_VALIDATION_FAILED"),
        // A missing required variable and a wrongly typed one are the same mistake: the
        // user's input, as Apollo Server says (issue 21, finding 14).
        (
            "query($s: ID!) { schedule(id: $s) { id } }",
            json!({}),
            "BAD_USER_INPUT",
        ),
        (
            "query($n: Int) { concerts(first: $n) { edges { cursor } } }",
            json!({ "n": "many" }),
            "BAD_USER_INPUT",
        ),
        (&deep, json!({}), "QUERY_TOO_DEEP"),
        (
            "{ a: concerts(first: 100) { edges { node { schedules { seats { id } } } } } }",
            json!({}),
            "QUERY_TOO_COSTLY",
        ),
        (
            "query A { __typename } query B { __typename }",
            json!({}),
            "GRAPHQL_VALIDATION_FAILED",
        ),
    ];
    for (query, variables, expected) in cases {
        let body = app.gql(None, query, variables).await;
        assert_eq!(code(&body), expected, "{query}: {body}");
        // Refused before anything ran: no data at all (not `data: null`).
        assert!(body.get("data").is_none(), "{query}: {body}");
    }
    // An operation name that names nothing fails after validation in async-graphql.
    let resp = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({ "query": "query A { __typename }", "operationName": "B" }))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");

    // Over WebSocket too.
    let mut ws = subscribe(
        &app,
        None,
        "subscription { seatChanges(scheduleId: \"1\") { version ",
        json!({}),
    )
    .await;
    let msg = recv(&mut ws).await;
    // async-graphql answers a refused subscribe with `next` (data null, errors) where
    // graphql-transport-ws says `error`; clients read the code either way.
    let errors = match msg["type"].as_str() {
        Some("error") => msg["payload"].clone(),
        _ => msg["payload"]["errors"].clone(),
    };
    assert_eq!(errors[0]["extensions"]["code"], "GRAPHQL_PARSE_FAILED", "{msg}");
}

#[tokio::test]
async fn responses_keep_the_requests_field_order() {
    let app = TestApp::spawn().await;
    let text = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({ "query": "{ zeta: __typename concerts(first: 1) { pageInfo { hasNextPage endCursor } edges { cursor } } alpha: __typename }" }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} in {text}"));
    assert!(at("\"zeta\"") < at("\"concerts\""), "{text}");
    assert!(at("\"concerts\"") < at("\"alpha\""), "{text}");
    assert!(at("\"pageInfo\"") < at("\"edges\""), "{text}");
    assert!(at("\"hasNextPage\"") < at("\"endCursor\""), "{text}");
}

#[tokio::test]
async fn cors_answers_listed_origins_only() {
    let app = TestApp::spawn_with(&[("CORS_ALLOWED_ORIGINS", "http://localhost:5173")]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,apollographql-client-name,apollo-require-preflight",
            )
            .send()
    };
    let resp = preflight("http://localhost:5173").await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:5173");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "authorization",
        "content-type",
        "apollographql-client-name",
        "apollo-require-preflight",
    ] {
        assert!(allowed.contains(name), "{name} in {allowed}");
    }
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        h.get("access-control-allow-credentials").is_none(),
        "bearer tokens, no cookies"
    );

    let resp = preflight("https://evil.example.com").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    let post = |origin: &'static str| {
        app.http
            .post(app.url("/graphql"))
            .header("origin", origin)
            .json(&json!({ "query": "{ __typename }" }))
            .send()
    };
    let resp = post("http://localhost:5173").await.unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let vary = resp.headers()["vary"].to_str().unwrap().to_ascii_lowercase();
    assert!(vary.contains("origin"), "caches keep answers per origin: {vary}");
    let resp = post("https://evil.example.com").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    // The default lists no origin.
    let closed = TestApp::spawn().await;
    let resp = closed
        .http
        .post(closed.url("/graphql"))
        .header("origin", "http://localhost:5173")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn websocket_upgrades_check_the_origin() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let app = TestApp::spawn_with(&[("CORS_ALLOWED_ORIGINS", "http://localhost:5173")]).await;
    let open = |origin: Option<String>| {
        let mut req = format!("ws://{}/graphql", app.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    assert!(open(None).await.is_ok(), "no Origin: not a browser page");
    assert!(
        open(Some(format!("http://{}", app.addr))).await.is_ok(),
        "same origin"
    );
    assert!(open(Some("http://localhost:5173".into())).await.is_ok(), "listed");
    match open(Some("https://evil.example.com".into())).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("an unlisted origin must be refused, got {:?}", other.map(|_| ())),
    }
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

fn sha256(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn automatic_persisted_queries_by_post_and_get() {
    let app = TestApp::spawn().await;
    let query = "{ concerts(first: 1) { pageInfo { hasNextPage } } }";
    let hash = sha256(query);
    let post = |body: Value| app.http.post(app.url("/graphql")).json(&body).send();

    let miss: Value = post(json!({ "extensions": persisted(&hash) }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(&miss), "PERSISTED_QUERY_NOT_FOUND", "{miss}");
    assert_eq!(miss["errors"][0]["message"], "PersistedQueryNotFound");

    let wrong: Value = post(json!({ "query": query, "extensions": persisted(&sha256("{ me { id } }")) }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(&wrong), "BAD_REQUEST", "{wrong}");

    let first: Value = post(json!({ "query": query, "extensions": persisted(&hash) }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        first["data"]["concerts"]["pageInfo"]["hasNextPage"], false,
        "{first}"
    );
    let again: Value = post(json!({ "extensions": persisted(&hash) }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, first);

    // By GET the URL holds only the hash.
    let get = |ext: Value| {
        app.http
            .get(app.url("/graphql"))
            .query(&[("extensions", ext.to_string())])
            .send()
    };
    let resp = get(persisted(&hash)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), first);

    // A mutation stays POST-only, by hash too.
    let mutation = "mutation { logOut(refreshToken: \"rt_nothing\") }";
    post(json!({ "query": mutation, "extensions": persisted(&sha256(mutation)) }))
        .await
        .unwrap();
    let resp = get(persisted(&sha256(mutation))).await.unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn variables_must_be_an_object() {
    let app = TestApp::spawn().await;
    for bad in [json!("string"), json!(0), json!(false), json!(["array"])] {
        let resp = app
            .http
            .post(app.url("/graphql"))
            .json(&json!({ "query": "{ __typename }", "variables": bad }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "BAD_REQUEST", "{body}");
    }
    let resp = app
        .http
        .get(app.url("/graphql"))
        .query(&[("query", "{ __typename }"), ("variables", "5")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// Issue 21 finding 14: the codes of requests refused before execution are values of the
/// schema's `ErrorCode` too, so a client generated from the schema knows every code it can
/// meet; and the two ways to get a variable wrong answer alike, by either media type.
#[tokio::test]
async fn every_code_is_in_the_schemas_error_code_enum() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(
            None,
            r#"{ __type(name: "ErrorCode") { enumValues { name } } }"#,
            json!({}),
        )
        .await;
    let values: Vec<&str> = body["data"]["__type"]["enumValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    let refusals = boxoffice::graphql::refusal::Refusal::ALL.map(|r| r.code());
    for code in refusals
        .iter()
        .chain(&["RATE_LIMITED", "TOO_MANY_SUBSCRIPTIONS", "BAD_USER_INPUT"])
    {
        assert!(values.contains(code), "{code} is not in ErrorCode: {values:?}");
    }
    for (variables, accept) in [
        (json!({}), "application/graphql-response+json"),
        (json!({ "s": ["1"] }), "application/graphql-response+json"),
        (json!({}), "application/json"),
        (json!({ "s": { "id": 1 } }), "application/json"),
    ] {
        let resp = app
            .http
            .post(app.url("/graphql"))
            .header("accept", accept)
            .json(&json!({ "query": "query($s: ID!) { schedule(id: $s) { id } }", "variables": variables }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "BAD_USER_INPUT", "{variables}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "$s", "{body}");
        assert!(body.get("data").is_none(), "{body}");
        let expected = if accept == "application/json" { 200 } else { 400 };
        assert_eq!(status, expected, "{variables} {accept}");
    }
}
