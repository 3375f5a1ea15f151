//! The abuse catalogue, part 1: what one request may cost, and accounts under attack.
//! One test per finding of issue 12, named after it; each failed before the fix.
//! Connections and WebSockets are in `abuse_sockets`.
//!
//! Run it alone: `cargo test --test api abuse`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{PASSWORD, TestApp, code, layout};

/// POSTs without asserting the status (refusals may be 429).
async fn post(
    app: &TestApp,
    token: Option<&str>,
    headers: &[(&str, &str)],
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let mut req = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

// ---------------------------------------------------------------------------------------
// 1-3. The cost of one request

#[tokio::test]
async fn finding_1_nested_schedules_and_concerts_are_too_costly() {
    let app = TestApp::spawn().await;
    let query = "{concerts{nodes{schedules{concert{schedules{concert{schedules{concert{schedules{concert{schedules{id}}}}}}}}}}}}";
    let body = app.gql(None, query, json!({})).await;
    assert_eq!(code(&body), "QUERY_TOO_COSTLY", "{body}");
    assert!(body["errors"][0]["extensions"]["limit"].is_number());
    assert!(body.get("data").is_none_or(Value::is_null));
}

#[tokio::test]
async fn finding_1_aliases_of_a_seat_map_are_too_costly() {
    let app = TestApp::spawn().await;
    let aliases: String = (0..50)
        .map(|i| {
            format!("m{i}: schedule(id: \"1\") {{ seatMap {{ rows {{ section row seats }} statuses }} }} ")
        })
        .collect();
    let body = app.gql(None, &format!("{{ {aliases} }}"), json!({})).await;
    let c = code(&body);
    assert!(c == "QUERY_TOO_COSTLY" || c == "QUERY_TOO_LARGE", "{body}");
}

#[tokio::test]
async fn finding_1_a_seat_map_is_charged_by_its_capacity() {
    let setup = TestApp::spawn().await;
    let show = setup.show(layout(10, 10), 4).await;
    let app = setup.second_instance(&[("GRAPHQL_MAX_SEATS_READ", "150")]).await;
    let q = "query($s: ID!) { a: schedule(id: $s) { seatMap { statuses } } b: schedule(id: $s) { seatMap { statuses } } }";
    let body = app.gql(None, q, json!({ "s": show.schedule_id })).await;
    assert_eq!(code(&body), "QUERY_TOO_COSTLY", "two maps of 100 seats: {body}");
    let one = "query($s: ID!) { schedule(id: $s) { seatMap { statuses } } }";
    assert!(app.gql(None, one, json!({ "s": show.schedule_id })).await["errors"].is_null());
}

#[tokio::test]
async fn finding_2_a_doubling_fragment_document_is_refused_cheaply() {
    let app = TestApp::spawn().await;
    let depth = 22;
    let mut doc = format!("query {{ ...F{depth} }}\nfragment F0 on Query {{ me {{ id }} }}\n");
    for i in 1..=depth {
        doc.push_str(&format!(
            "fragment F{i} on Query {{ ...F{p} ...F{p} }}\n",
            p = i - 1
        ));
    }
    let started = Instant::now();
    let body = app.gql(None, &doc, json!({})).await;
    assert_eq!(code(&body), "QUERY_TOO_LARGE", "{body}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn finding_3_aliases_cannot_multiply_database_work() {
    let app = TestApp::spawn().await;
    let aliases: String = (0..1_600)
        .map(|i| format!("s{i}: concerts(filter: {{ text: \"x{i}\" }}) {{ nodes {{ id }} }} "))
        .collect();
    let body = app.gql(None, &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(code(&body), "QUERY_TOO_LARGE", "{body}");
    let eleven: String = (0..11).map(|i| format!("m{i}: me {{ id }} ")).collect();
    let body = app.gql(None, &format!("{{ {eleven} }}"), json!({})).await;
    assert_eq!(code(&body), "QUERY_TOO_LARGE", "eleven root fields: {body}");
}

#[tokio::test]
async fn finding_3_long_documents_are_refused() {
    let app = TestApp::spawn().await;
    let padding = " ".repeat(20_000);
    let body = app
        .gql(None, &format!("{{ me {{ id }} {padding} }}"), json!({}))
        .await;
    assert_eq!(code(&body), "QUERY_TOO_LARGE", "{body}");
}

#[tokio::test]
async fn finding_3_queries_have_a_deadline_and_answers_a_size_cap() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(40, 50), 4).await;
    let q = "query($s: ID!) { schedule(id: $s) { seats { id section row number grade price status } } }";
    // Other instances of the same deployment, with tight limits.
    let capped = app
        .second_instance(&[("GRAPHQL_MAX_RESPONSE_BYTES", "4000")])
        .await;
    let body = capped.gql(None, q, json!({ "s": show.schedule_id })).await;
    assert_eq!(code(&body), "RESPONSE_TOO_LARGE", "{body}");
    let hurried = app.second_instance(&[("GRAPHQL_QUERY_TIMEOUT_MS", "1")]).await;
    let body = hurried.gql(None, q, json!({ "s": show.schedule_id })).await;
    assert_eq!(code(&body), "TIMEOUT", "{body}");
}

// ---------------------------------------------------------------------------------------
// 6. Accounts

const LOG_IN: &str = "mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken } }";

#[tokio::test]
async fn finding_6_concurrent_wrong_passwords_are_counted_before_the_check() {
    let app = TestApp::spawn_with(&[("LOGIN_MAX_FAILURES", "5")]).await;
    app.sign_up("owner@example.com").await;
    let attempts = (0..40).map(|i| {
        let app = &app;
        async move {
            app.gql(
                None,
                LOG_IN,
                json!({ "e": "owner@example.com", "p": format!("wrong password {i}") }),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let verified = answers.iter().filter(|b| code(b) == "UNAUTHENTICATED").count();
    let limited = answers.iter().filter(|b| code(b) == "RATE_LIMITED").count();
    assert!(verified <= 5, "{verified} passwords were checked, limit 5");
    assert_eq!(verified + limited, 40);
}

#[tokio::test]
async fn finding_6_an_attacker_elsewhere_cannot_lock_the_owner_out() {
    let app = TestApp::spawn_with(&[("LOGIN_MAX_FAILURES", "5"), ("TRUST_FORWARDED_FOR", "true")]).await;
    app.sign_up("owner@example.com").await;
    let attacker = [("x-forwarded-for", "203.0.113.9")];
    for i in 0..10 {
        post(
            &app,
            None,
            &attacker,
            LOG_IN,
            json!({ "e": "owner@example.com", "p": format!("guess {i} x") }),
        )
        .await;
    }
    let (_, locked) = post(
        &app,
        None,
        &attacker,
        LOG_IN,
        json!({ "e": "owner@example.com", "p": PASSWORD }),
    )
    .await;
    assert_eq!(
        code(&locked),
        "RATE_LIMITED",
        "the attacker's own address is locked"
    );
    let owner = [("x-forwarded-for", "198.51.100.7")];
    let (_, ok) = post(
        &app,
        None,
        &owner,
        LOG_IN,
        json!({ "e": "owner@example.com", "p": PASSWORD }),
    )
    .await;
    assert!(ok["errors"].is_null(), "the owner logs in from home: {ok}");
}

#[tokio::test]
async fn finding_6_ipv6_addresses_count_by_their_64() {
    let app = TestApp::spawn_with(&[
        ("LOGIN_MAX_FAILURES", "100"),
        ("LOGIN_MAX_FAILURES_PER_IP", "4"),
        ("TRUST_FORWARDED_FOR", "true"),
    ])
    .await;
    for i in 0..4 {
        let from = format!("2001:db8:7:7::{:x}", i + 1);
        post(
            &app,
            None,
            &[("x-forwarded-for", &from)],
            LOG_IN,
            json!({ "e": format!("x{i}@example.com"), "p": "wrong password 1" }),
        )
        .await;
    }
    let (_, body) = post(
        &app,
        None,
        &[("x-forwarded-for", "2001:db8:7:7:ffff::1")],
        LOG_IN,
        json!({ "e": "y@example.com", "p": "wrong password 1" }),
    )
    .await;
    assert_eq!(
        code(&body),
        "RATE_LIMITED",
        "a new address in the same /64: {body}"
    );
    let (_, other) = post(
        &app,
        None,
        &[("x-forwarded-for", "2001:db8:7:8::1")],
        LOG_IN,
        json!({ "e": "y@example.com", "p": "wrong password 1" }),
    )
    .await;
    assert_eq!(code(&other), "UNAUTHENTICATED", "another /64 is not affected");
}

const SIGN_UP: &str = "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }";

#[tokio::test]
async fn finding_6_sign_up_is_limited_per_address() {
    let app = TestApp::spawn_with(&[("SIGNUP_MAX_PER_IP", "3")]).await;
    let mut codes = Vec::new();
    for i in 0..5 {
        let body = app
            .gql(None, SIGN_UP, json!({ "i": { "email": format!("bot{i}@example.com"), "password": PASSWORD, "displayName": "bot" } }))
            .await;
        codes.push(
            body["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("ok")
                .to_owned(),
        );
    }
    assert_eq!(codes, ["ok", "ok", "ok", "RATE_LIMITED", "RATE_LIMITED"]);
}

#[tokio::test]
async fn finding_6_one_sign_up_or_log_in_per_request() {
    let app = TestApp::spawn().await;
    let aliases: String = (0..2)
        .map(|i| format!("a{i}: signUp(input: {{ email: \"many{i}@example.com\", password: \"{PASSWORD}\", displayName: \"m\" }}) {{ accessToken }} "))
        .collect();
    let body = app
        .gql(None, &format!("mutation {{ {aliases} }}"), json!({}))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM users").await,
        0,
        "no account was made"
    );
}

// ---------------------------------------------------------------------------------------
// 7. create-admin

#[tokio::test]
async fn finding_7_create_admin_refuses_an_existing_account_unless_told_to_reset() {
    let app = TestApp::spawn().await;
    let squatter = app.sign_up("ops@example.com").await;
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_boxoffice"))
            .args([
                "create-admin",
                "--email",
                "ops@example.com",
                "--password",
                "operator password 7",
            ])
            .args(extra)
            .env("DATABASE_URL", &app.db.url)
            .env("JWT_SECRET", crate::common::JWT_SECRET)
            .env("RUST_LOG", "off")
            .output()
            .unwrap()
    };
    let refused = run(&[]);
    assert!(!refused.status.success());
    let said =
        String::from_utf8_lossy(&refused.stderr).to_string() + &String::from_utf8_lossy(&refused.stdout);
    assert!(said.contains("--reset-password"), "says what to do: {said}");
    let role = app
        .gql(Some(&squatter.access), "{ me { role } }", json!({}))
        .await;
    assert_eq!(role["data"]["me"]["role"], "USER", "the squatter is not admin");

    let reset = run(&["--reset-password"]);
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert!(String::from_utf8_lossy(&reset.stdout).contains("revoked"));
    assert_eq!(
        code(&app.log_in("ops@example.com", PASSWORD).await),
        "UNAUTHENTICATED"
    );
    let refreshed = app
        .gql(
            None,
            "mutation($r: String!) { refreshToken(refreshToken: $r) { accessToken } }",
            json!({ "r": squatter.refresh }),
        )
        .await;
    assert_eq!(
        code(&refreshed),
        "UNAUTHENTICATED",
        "the squatter's session is gone"
    );
    assert!(app.log_in("ops@example.com", "operator password 7").await["errors"].is_null());
}

// ---------------------------------------------------------------------------------------
// 8. The development secret

#[test]
fn finding_8_the_development_secret_never_listens_beyond_loopback() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .env_clear()
        .env("HOST", "0.0.0.0")
        .env("PORT", "0")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET"));
}

// ---------------------------------------------------------------------------------------
// 9. Unbounded or unchecked state

#[tokio::test]
async fn finding_9_unknown_schedules_are_not_cached() {
    let app = TestApp::spawn().await;
    let fan = app.sign_up("fan@example.com").await;
    for id in 1_000..1_200 {
        app.gql(
            Some(&fan.access),
            "query($s: ID!) { queueStatus(scheduleId: $s) { position } }",
            json!({ "s": id.to_string() }),
        )
        .await;
    }
    assert_eq!(app.state.queue_flags.cached(), 0);
}

#[tokio::test]
async fn finding_9_place_order_and_reserve_seats_are_rate_limited_per_user() {
    let app = TestApp::spawn_with(&[("BOOKING_RATE_PER_SECOND", "1"), ("BOOKING_RATE_BURST", "3")]).await;
    let show = app.show(layout(2, 10), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let mut limited = 0;
    for i in 0..8 {
        let body = app
            .gql(
                Some(&fan.access),
                "mutation($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId } }",
                json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[i]] } }),
            )
            .await;
        if body["errors"][0]["extensions"]["code"] == "RATE_LIMITED" {
            limited += 1;
        }
    }
    assert!(limited >= 4, "{limited} of 8 refused");
}

#[tokio::test]
async fn finding_9_nul_bytes_are_bad_user_input_everywhere() {
    let app = TestApp::spawn().await;
    let fan = app.sign_up("fan@example.com").await;
    let cases = [
        (LOG_IN, json!({ "e": "a\u{0}@example.com", "p": "x" })),
        (
            SIGN_UP,
            json!({ "i": { "email": "b@example.com", "password": PASSWORD, "displayName": "n\u{0}" } }),
        ),
        (
            "query($t: String) { concerts(filter: { text: $t }) { nodes { id } } }",
            json!({ "t": "a\u{0}" }),
        ),
        (
            "mutation($k: String!) { chargePoints(amount: 10, idempotencyKey: $k) { id } }",
            json!({ "k": "k\u{0}" }),
        ),
        (
            "mutation($r: String!) { logOut(refreshToken: $r) }",
            json!({ "r": "r\u{0}" }),
        ),
        (
            "{ concerts(filter: { text: \"a\\u0000\" }) { nodes { id } } }",
            json!({}),
        ),
    ];
    for (query, vars) in cases {
        let body = app.gql(Some(&fan.access), query, vars).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{query}: {body}");
    }
}

const CREATE: &str = "mutation($i: ConcertInput!) { createConcert(input: $i) { posterUrl } }";

#[tokio::test]
async fn finding_9_poster_urls_are_normalized_https_and_public() {
    let app = TestApp::spawn().await;
    let host = app.user_with_role("host@example.com", "host").await;
    let input = |url: &str| json!({ "i": { "title": "T", "artist": "A", "description": "", "venue": "V", "category": "pop", "posterUrl": url } });
    let ok = app
        .gql(
            Some(&host.access),
            CREATE,
            input("https://CDN.Example.com/p.png?a=\"b\""),
        )
        .await;
    assert_eq!(
        ok["data"]["createConcert"]["posterUrl"], "https://cdn.example.com/p.png?a=%22b%22",
        "{ok}"
    );
    for bad in [
        "http://cdn.example.com/p.png",
        "https://me:pw@cdn.example.com/p.png",
        "https://169.254.169.254/latest/meta-data",
        "https://192.168.1.1/p.png",
        "https://[fe80::1]/p.png",
        "https://cdn.example.com/p.png\r\nSet-Cookie: x",
    ] {
        let body = app.gql(Some(&host.access), CREATE, input(bad)).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{bad}: {body}");
    }
}

#[tokio::test]
async fn finding_9_request_ids_are_the_servers() {
    let app = TestApp::spawn().await;
    let resp = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "forged id\" level=admin")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, "forged id\" level=admin");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
}

#[tokio::test]
async fn finding_9_display_names_keep_their_direction_and_show_something() {
    let app = TestApp::spawn().await;
    for (i, name) in ["evil\u{202E}gnp.exe", "\u{200B}\u{200B}", "\u{3164}"]
        .iter()
        .enumerate()
    {
        let body = app
            .gql(None, SIGN_UP, json!({ "i": { "email": format!("n{i}@example.com"), "password": PASSWORD, "displayName": name } }))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{name:?}: {body}");
    }
}

// ---------------------------------------------------------------------------------------
// 10. Production defaults, audit, drafts

#[tokio::test]
async fn finding_10_metrics_need_the_token() {
    let app = TestApp::spawn_with(&[("METRICS_TOKEN", "metrics-secret")]).await;
    let anon = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anon.status(), 401);
    let ok = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("metrics-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let prod = TestApp::spawn_with(&[("BOXOFFICE_ENV", "prod")]).await;
    assert_eq!(
        prod.http.get(prod.url("/metrics")).send().await.unwrap().status(),
        404
    );
}

#[tokio::test]
async fn finding_10_cancel_schedule_is_audited() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 5), 4).await;
    let body = app
        .gql(
            Some(&show.host.access),
            "mutation($s: ID!) { cancelSchedule(id: $s) { id } }",
            json!({ "s": show.schedule_id }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action = 'cancel_schedule'")
            .await,
        1
    );
}

#[tokio::test]
async fn finding_10_another_hosts_draft_is_not_found() {
    let app = TestApp::spawn().await;
    let owner = app.user_with_role("owner@example.com", "host").await;
    let other = app.user_with_role("other@example.com", "host").await;
    let draft = app
        .gql(
            Some(&owner.access),
            "mutation($i: ConcertInput!) { createConcert(input: $i) { id } }",
            json!({ "i": { "title": "Secret", "artist": "A", "description": "", "venue": "V", "category": "pop" } }),
        )
        .await;
    let id = draft["data"]["createConcert"]["id"].as_str().unwrap().to_owned();
    let sales = app
        .gql(
            Some(&other.access),
            "query($c: ID!) { concertSales(concertId: $c) { seatsSold } }",
            json!({ "c": id }),
        )
        .await;
    assert_eq!(code(&sales), "NOT_FOUND", "{sales}");
    let update = app
        .gql(
            Some(&other.access),
            "mutation($c: ID!) { updateConcert(id: $c, input: { title: \"Mine\" }) { id } }",
            json!({ "c": id }),
        )
        .await;
    assert_eq!(code(&update), "NOT_FOUND", "{update}");
}
