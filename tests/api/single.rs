//! Without REDIS_URL: one instance, an in-process broker, login limits in memory.

use serde_json::json;

use crate::{
    common::{PASSWORD, TestApp, TestDb, code, layout, test_config},
    websocket::{connect, init, recv, send},
};

async fn without_redis(overrides: &[(&str, &str)]) -> TestApp {
    let db = TestDb::new().await;
    let mut all = vec![("REDIS_URL", "")];
    all.extend_from_slice(overrides);
    let config = test_config(&db, &all);
    assert!(config.redis_url().is_none());
    let state = boxoffice::state::AppState::connect(config).await.unwrap();
    TestApp::serve(db, state).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_updates_flow_through_the_in_process_broker() {
    let app = without_redis(&[]).await;
    let ready: serde_json::Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready,
        json!({ "postgres": "ok", "redis": "disabled", "redisAof": null, "redisReplicas": null, "redisReplicasAwaited": null, "durableWritesAccepted": null })
    );

    let show = app.show(layout(1, 5), 4).await;
    let mut ws = connect(&app, "graphql-transport-ws").await;
    init(&mut ws, None).await;
    let q = "subscription($s: ID!) { seatChanges(scheduleId: $s) { version seats { id status } } }";
    send(&mut ws, json!({ "id": "1", "type": "subscribe", "payload": { "query": q, "variables": { "s": show.schedule_id } } })).await;
    assert_eq!(recv(&mut ws).await["type"], "next");
    let fan = app.sign_up("fan@example.com").await;
    app.ok(
        Some(&fan.access),
        "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }",
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[2]] } }),
    )
    .await;
    let event = recv(&mut ws).await;
    assert_eq!(
        event["payload"]["data"]["seatChanges"]["seats"],
        json!([{ "id": show.seats[2], "status": "HELD" }])
    );
}

#[tokio::test]
async fn login_limits_hold_in_memory_and_redis_features_say_unavailable() {
    let app = without_redis(&[("LOGIN_MAX_FAILURES", "2")]).await;
    app.sign_up("solo@example.com").await;
    for _ in 0..2 {
        assert_eq!(
            code(&app.log_in("solo@example.com", "wrong password 1").await),
            "UNAUTHENTICATED"
        );
    }
    assert_eq!(
        code(&app.log_in("solo@example.com", PASSWORD).await),
        "RATE_LIMITED"
    );

    let show = app.show(layout(1, 2), 2).await;
    let fan = app.sign_up("fan@example.com").await;
    let order = app
        .gql(
            Some(&fan.access),
            "mutation($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId } }",
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } }),
        )
        .await;
    assert_eq!(code(&order), "UNAVAILABLE");
    assert!(
        order["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("REDIS_URL")
    );
}
