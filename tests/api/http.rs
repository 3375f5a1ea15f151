//! GraphQL over HTTP: media types, status codes, GET safety, and the operational routes.

use serde_json::{Value, json};

use crate::common::{TestApp, code};

const GR_JSON: &str = "application/graphql-response+json";

async fn post(app: &TestApp, accept: Option<&str>, body: &str) -> (u16, String, Value) {
    let mut req = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, ct, body)
}

#[tokio::test]
async fn response_media_type_follows_accept() {
    let app = TestApp::spawn().await;
    let q = r#"{"query":"{ __typename }"}"#;
    let (s, ct, body) = post(&app, Some("application/json"), q).await;
    assert_eq!((s, ct.starts_with("application/json")), (200, true));
    assert_eq!(body["data"]["__typename"], "Query");
    let (s, ct, _) = post(&app, Some(GR_JSON), q).await;
    assert_eq!((s, ct.starts_with(GR_JSON)), (200, true));
    let (s, ct, _) = post(&app, None, q).await;
    assert_eq!((s, ct.starts_with("application/json")), (200, true));
    let (s, _, _) = post(&app, Some("text/html"), q).await;
    assert_eq!(s, 406);
}

#[tokio::test]
async fn request_errors_are_400_only_with_graphql_response_json() {
    let app = TestApp::spawn().await;
    for bad in [r#"{"query":"{ me { id "}"#, r#"{"query":"{ noSuchField }"}"#] {
        let (s, _, body) = post(&app, Some(GR_JSON), bad).await;
        assert_eq!(s, 400, "{bad}");
        assert!(body.get("data").is_none(), "no data on a request error: {body}");
        assert!(body["errors"][0]["message"].is_string());
        let (s, _, body) = post(&app, Some("application/json"), bad).await;
        assert_eq!(s, 200, "{bad}");
        assert!(body["errors"].is_array());
    }
    // A field error is still a 200 with data, whatever the media type.
    let (s, _, body) = post(&app, Some(GR_JSON), r#"{"query":"{ me { id } }"}"#).await;
    assert_eq!(s, 200);
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert!(body.get("data").is_some());
}

#[tokio::test]
async fn malformed_bodies_and_content_types() {
    let app = TestApp::spawn().await;
    let (s, _, _) = post(&app, None, "{not json").await;
    assert_eq!(s, 400);
    let (s, _, _) = post(&app, None, r#"{"variables":{}}"#).await;
    assert_eq!(s, 400, "a body without a query is not a GraphQL request");
    let resp = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "text/plain")
        .body("{ __typename }")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let resp = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/graphql")
        .body("{ __typename }")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn get_runs_queries_but_never_mutations() {
    let app = TestApp::spawn().await;
    let resp = app
        .http
        .get(app.url("/graphql"))
        .query(&[
            ("query", "query Q($n: String!) { __type(name: $n) { name } }"),
            ("variables", r#"{"n":"Query"}"#),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["__type"]["name"], "Query");

    let resp = app
        .http
        .get(app.url("/graphql"))
        .query(&[("query", r#"mutation { logOut(refreshToken: "x") }"#)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(resp.headers()["allow"].to_str().unwrap().contains("POST"));

    // With several operations, the named one decides.
    let doc = r#"query A { __typename } mutation B { logOut(refreshToken: "x") }"#;
    let resp = app
        .http
        .get(app.url("/graphql"))
        .query(&[("query", doc), ("operationName", "B")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let resp = app
        .http
        .get(app.url("/graphql"))
        .query(&[("query", doc), ("operationName", "A")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let resp = app
        .http
        .get(app.url("/graphql"))
        .query(&[("query", "{ __typename }"), ("variables", "not json")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn playground_health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    let html = app
        .http
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    assert!(html.text().await.unwrap().to_lowercase().contains("graphiql"));
    let index = app
        .http
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(index.contains("/playground"));
    let pg = app.http.get(app.url("/playground")).send().await.unwrap();
    assert_eq!(pg.status(), 200);

    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["postgres"], "ok");
    assert_eq!(ready["redis"], "ok");
    // Whether Redis persists accepted orders (the shared test Redis may or may not).
    assert!(ready["redisAof"].is_boolean(), "{ready}");
    // Replicas: none on the test node, one per master on the test cluster, which orders
    // wait for (issue 26).
    let cluster = app.state.kv().unwrap().is_cluster();
    assert_eq!(ready["redisReplicas"], if cluster { 1 } else { 0 }, "{ready}");
    assert_eq!(
        ready["redisReplicasAwaited"],
        if cluster { 1 } else { 0 },
        "{ready}"
    );

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
}

#[tokio::test]
async fn playground_can_be_switched_off() {
    let app = TestApp::spawn_with(&[
        ("GRAPHQL_PLAYGROUND", "false"),
        ("GRAPHQL_INTROSPECTION", "false"),
    ])
    .await;
    let pg = app.http.get(app.url("/playground")).send().await.unwrap();
    assert_eq!(pg.status(), 404);
    let body = app.gql(None, "{ __schema { types { name } } }", json!({})).await;
    assert!(body["data"]["__schema"].is_null(), "introspection is off: {body}");
}

#[tokio::test]
async fn readiness_fails_while_redis_is_unreachable() {
    let proxy = crate::common::TcpProxy::start("127.0.0.1:6379").await;
    let db = crate::common::TestDb::new().await;
    let redis_url = format!("redis://{}", proxy.addr);
    let config = crate::common::test_config(&db, &[("REDIS_URL", &redis_url)]);
    let state = boxoffice::state::AppState::connect(config).await.unwrap();
    let app = TestApp::serve(db, state).await;
    assert_eq!(
        app.http.get(app.url("/readyz")).send().await.unwrap().status(),
        200
    );

    proxy.cut();
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(
        ready,
        json!({ "postgres": "ok", "redis": "unreachable", "redisAof": null, "redisReplicas": null, "redisReplicasAwaited": 0, "durableWritesAccepted": true })
    );
    // Liveness is not readiness: the process itself is fine.
    assert_eq!(
        app.http.get(app.url("/healthz")).send().await.unwrap().status(),
        200
    );

    proxy.restore();
    let mut ok = false;
    for _ in 0..50 {
        if app.http.get(app.url("/readyz")).send().await.unwrap().status() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "ready again once Redis is back");
}

#[tokio::test]
async fn complexity_limit_refuses_abusive_queries() {
    let app = TestApp::spawn().await;
    let fields: String = (0..20)
        .map(|i| format!("u{i}: users(first: 100) {{ edges {{ node {{ id email displayName }} }} }} "))
        .collect();
    let body = app.gql(None, &format!("{{ {fields} }}"), json!({})).await;
    assert_eq!(code(&body), "QUERY_TOO_LARGE", "twenty root fields: {body}");
    // A page of 100 concerts, each with its schedules and their per-grade counts.
    let body = app
        .gql(
            None,
            "{ concerts(first: 100) { nodes { schedules { availability { grade total available held sold } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "QUERY_TOO_COSTLY", "{body}");
    assert!(body["errors"][0]["extensions"]["asked"].as_u64().unwrap() > 50_000);
    // Refused before execution: no guard ran, nothing was read.
    assert!(body.get("data").is_none() || body["data"].is_null());
}

/// Over HTTP an accepted document is kept parsed (`graphql::documents`) and skips the
/// selection count the second time. What depends on the variables must still be judged on
/// every request: the same text, accepted once with a small page, is refused with a page
/// whose cost is over the limit, and refused with a control character in a text input.
#[tokio::test]
async fn a_known_document_is_still_judged_by_its_variables() {
    let app = TestApp::spawn().await;
    let q = "query($n: Int, $t: String) { concerts(first: $n, filter: { text: $t }) { nodes { schedules { availability { grade total available held sold } } } } }";
    let small = app.gql(None, q, json!({ "n": 1, "t": "x" })).await;
    assert!(small["errors"].is_null(), "{small}");
    let again = app.gql(None, q, json!({ "n": 1, "t": "y" })).await;
    assert!(again["errors"].is_null(), "{again}");
    let big = app.gql(None, q, json!({ "n": 100, "t": "x" })).await;
    assert_eq!(code(&big), "QUERY_TOO_COSTLY", "{big}");
    assert!(big["data"].is_null(), "refused before execution: {big}");
    let control = app.gql(None, q, json!({ "n": 1, "t": "a\u{0}b" })).await;
    assert_eq!(code(&control), "BAD_USER_INPUT", "{control}");
}

/// Every label of `http_requests_total` in a scrape.
async fn scrape(app: &TestApp) -> String {
    app.http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Issue 21 finding 1: made-up methods and paths do not become metric labels (each would
/// be a time series kept for ever: 10,000 4 KB methods took RSS from 26 to 71 MB).
#[tokio::test]
async fn metrics_labels_come_from_a_closed_set() {
    let app = TestApp::spawn().await;
    let filler = "X".repeat(1024);
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("M{i}{filler}").as_bytes()).unwrap();
        let resp = app
            .http
            .request(method, app.url(&format!("/made-up/{i}-{filler}")))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
        app.http
            .get(app.url(&format!("/no/such/path/{i}")))
            .send()
            .await
            .unwrap();
    }
    let metrics = scrape(&app).await;
    assert!(
        !metrics.contains(&filler),
        "a client's method or path became a label"
    );
    assert!(
        !metrics.contains("/no/such/path"),
        "a client's path became a label"
    );
    assert!(
        metrics.contains("method=\"OTHER\""),
        "unknown methods count as OTHER"
    );
    assert!(metrics.contains("path=\"unmatched\""));
    assert!(metrics.len() < 1_000_000, "{} bytes of metrics", metrics.len());
}

/// Issue 21 finding 1: counting starts with the process. A fresh server (its own process,
/// since this test binary shares one recorder) answers requests before its first scrape,
/// and that scrape counts them.
#[tokio::test]
async fn metrics_count_from_the_start_not_from_the_first_scrape() {
    let db = crate::common::TestDb::new().await;
    let mut server = crate::common::ServerProcess::spawn(&db).await;
    let http = reqwest::Client::new();
    let url = |path: &str| server.url(path);
    for _ in 0..5 {
        http.get(url("/healthz")).send().await.unwrap();
    }
    let metrics = http
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = server.child.kill().await;
    let healthz: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains("path=\"/healthz\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|n| n as u64)
        .sum();
    assert!(
        healthz >= 6,
        "the health checks before the first scrape: {healthz}\n{metrics}"
    );
}

/// Issue 21 finding 8: browsers must not guess the type of any answer.
#[tokio::test]
async fn every_answer_says_nosniff() {
    let app = TestApp::spawn().await;
    let answers = [
        app.http
            .post(app.url("/graphql"))
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .unwrap(),
        app.http
            .post(app.url("/graphql"))
            .body("not json")
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap(),
        app.http
            .get(app.url("/graphql?query=%7B__typename%7D"))
            .send()
            .await
            .unwrap(),
        app.http.get(app.url("/healthz")).send().await.unwrap(),
        app.http.get(app.url("/readyz")).send().await.unwrap(),
        app.http.get(app.url("/metrics")).send().await.unwrap(),
        app.http.get(app.url("/no-such-page")).send().await.unwrap(),
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .send()
            .await
            .unwrap(),
    ];
    for resp in answers {
        assert_eq!(
            resp.headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{} {}",
            resp.url(),
            resp.status()
        );
    }
}

/// Issue 21 finding 8: with introspection off, an unknown field gets no "Did you mean":
/// the suggestions would spell out the schema field by field.
#[tokio::test]
async fn no_suggestions_when_introspection_is_off() {
    let closed = TestApp::spawn_with(&[("GRAPHQL_INTROSPECTION", "false")]).await;
    let body = closed.gql(None, "{ concert(id: 1) { titl } }", json!({})).await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("Did you mean"), "{message}");
    assert!(!message.contains("title"), "{message}");
    // With introspection on (dev) the help stays.
    let open = TestApp::spawn().await;
    let body = open.gql(None, "{ concert(id: 1) { titl } }", json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Did you mean"),
        "{body}"
    );
}

/// Issue 21 finding 8: /readyz tells anyone ready or not; how (Redis's append-only file,
/// which dependency failed) only a caller on this machine, the operators' token or an admin.
#[tokio::test]
async fn readiness_details_are_for_operators() {
    let app = TestApp::spawn_with(&[("TRUST_FORWARDED_FOR", "true"), ("METRICS_TOKEN", "ops-secret")]).await;
    let ready = |token: Option<String>, from: &'static str| {
        let app = &app;
        async move {
            let mut req = app.http.get(app.url("/readyz")).header("x-forwarded-for", from);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, outside) = ready(None, "203.0.113.9").await;
    assert_eq!(status, 200);
    assert_eq!(outside, json!({ "status": "ready" }));
    let fan = app.sign_up("fan@example.com").await;
    assert_eq!(
        ready(Some(fan.access), "203.0.113.9").await.1,
        json!({ "status": "ready" })
    );
    let admin = app.user_with_role("admin@example.com", "admin").await;
    for token in [Some(admin.access), Some("ops-secret".to_owned())] {
        let (_, details) = ready(token, "203.0.113.9").await;
        assert!(details["redisAof"].is_boolean(), "{details}");
        assert_eq!(details["postgres"], "ok");
    }
    let (_, local) = ready(None, "127.0.0.1").await;
    assert!(local["redisAof"].is_boolean(), "{local}");
}

/// Issue 21 finding 7: a persisted query is kept only once its request was accepted; one
/// that does not parse or that a limit refuses leaves its hash unknown.
#[tokio::test]
async fn persisted_queries_keep_only_accepted_documents() {
    use sha2::{Digest, Sha256};
    let app = TestApp::spawn().await;
    let send = |query: Option<&str>, hash: &str| {
        let mut body = json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } });
        if let Some(q) = query {
            body["query"] = json!(q);
        }
        let app = &app;
        async move {
            let resp = app
                .http
                .post(app.url("/graphql"))
                .json(&body)
                .send()
                .await
                .unwrap();
            resp.json::<Value>().await.unwrap()
        }
    };
    let deep = format!("{{ {} }}", "__typename ".repeat(3000));
    for (bad, refused) in [
        ("{ me { id ", "GRAPHQL_PARSE_FAILED"),
        ("{ noSuchField }", "GRAPHQL_VALIDATION_FAILED"),
        (deep.as_str(), "QUERY_TOO_LARGE"),
    ] {
        let hash = hex::encode(Sha256::digest(bad.as_bytes()));
        assert_eq!(code(&send(Some(bad), &hash).await), refused);
        assert_eq!(
            code(&send(None, &hash).await),
            "PERSISTED_QUERY_NOT_FOUND",
            "{refused}: not kept"
        );
    }
    let good = "{ __typename }";
    let hash = hex::encode(Sha256::digest(good.as_bytes()));
    assert_eq!(send(Some(good), &hash).await["data"]["__typename"], "Query");
    assert_eq!(send(None, &hash).await["data"]["__typename"], "Query");
}

/// Issue 21 finding 14: every rate limit answers one way: HTTP 429, Retry-After, and the
/// error coded RATE_LIMITED with retryAfter. Anonymous requests, bookings and logins alike.
#[tokio::test]
async fn every_rate_limit_answers_429_with_retry_after() {
    let app = TestApp::spawn_with(&[
        ("ANONYMOUS_RATE_PER_SECOND", "1"),
        ("ANONYMOUS_RATE_BURST", "3"),
        ("LOGIN_MAX_FAILURES", "2"),
        ("BOOKING_RATE_PER_SECOND", "1"),
        ("BOOKING_RATE_BURST", "1"),
    ])
    .await;
    let fan = app.sign_up("fan@example.com").await;
    let post = |token: Option<String>, accept: &'static str, query: &'static str, variables: Value| {
        let app = &app;
        async move {
            let mut req = app
                .http
                .post(app.url("/graphql"))
                .header("accept", accept)
                .json(&json!({ "query": query, "variables": variables }));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let retry = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            (status, retry, resp.json::<Value>().await.unwrap())
        }
    };
    let check = |what: &str, (status, retry, body): (u16, Option<u64>, Value)| {
        assert_eq!(status, 429, "{what}: {body}");
        assert_eq!(code(&body), "RATE_LIMITED", "{what}");
        let after = body["errors"][0]["extensions"]["retryAfter"].as_u64();
        assert!(
            retry.is_some_and(|r| r >= 1) && retry == after,
            "{what}: {retry:?} {body}"
        );
    };
    // Logins: the third try of a wrong password (with a token, so the anonymous limit is
    // not the one that refuses).
    let log_in = "mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken } }";
    let mut last = None;
    for _ in 0..3 {
        last = Some(
            post(
                Some(fan.access.clone()),
                "application/json",
                log_in,
                json!({ "e": "fan@example.com", "p": "wrong password 1" }),
            )
            .await,
        );
    }
    check("login", last.unwrap());
    // Bookings: the second within a second, by either media type.
    let reserve = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }";
    let input = json!({ "i": { "scheduleId": "999999", "seatIds": ["1"], "idempotencyKey": "k-1" } });
    post(
        Some(fan.access.clone()),
        "application/json",
        reserve,
        input.clone(),
    )
    .await;
    for accept in ["application/json", GR_JSON] {
        check(
            "booking",
            post(Some(fan.access.clone()), accept, reserve, input.clone()).await,
        );
    }
    // Anonymous reads past the burst.
    let mut last = None;
    for _ in 0..5 {
        last = Some(post(None, "application/json", "{ __typename }", json!({})).await);
    }
    check("anonymous", last.unwrap());
}

/// Issue 21 finding 15: with the default limits, sign-ups from one shared address (a
/// mobile carrier's NAT, a campus) are not refused at 20: at least 60 a minute pass.
#[tokio::test]
async fn default_limits_fit_a_shared_address() {
    let db = crate::common::TestDb::new().await;
    // The suite's own relaxed limits removed: the defaults, as shipped.
    let mut config = crate::common::test_config(&db, &[]);
    let defaults = boxoffice::config::Config::from_lookup(|_| None).unwrap();
    config.edge.signup_max_per_ip = defaults.edge.signup_max_per_ip;
    config.edge.signup_window = defaults.edge.signup_window;
    config.edge.anonymous_rate_per_second = defaults.edge.anonymous_rate_per_second;
    config.edge.anonymous_rate_burst = defaults.edge.anonymous_rate_burst;
    assert!(
        u64::from(defaults.edge.signup_max_per_ip) * 60 >= 60 * defaults.edge.signup_window.as_secs(),
        "at least 60 sign-ups a minute"
    );
    let state = boxoffice::state::AppState::connect(config).await.unwrap();
    let app = TestApp::serve(db, state).await;
    let sign_up = "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }";
    let attempts = (0..60).map(|i| {
        let app = &app;
        async move {
            app.gql(None, sign_up, json!({ "i": { "email": format!("fan{i}@example.com"), "password": crate::common::PASSWORD, "displayName": "fan" } }))
                .await
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let refused: Vec<&Value> = answers.iter().filter(|b| !b["errors"].is_null()).collect();
    assert!(
        refused.is_empty(),
        "{} of 60 refused: {:?}",
        refused.len(),
        refused.first()
    );
    // Anonymous reads: a burst of a shared address's page loads passes too.
    let reads = (0..150).map(|_| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/graphql"))
                .json(&json!({ "query": "{ __typename }" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(reads).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}
