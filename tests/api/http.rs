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
        json!({ "postgres": "ok", "redis": "unreachable", "redisAof": null })
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
