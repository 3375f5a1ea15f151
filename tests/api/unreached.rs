//! Paths of booking and auth that the coverage report (scripts/coverage, docs/testing.md)
//! showed no test reaching, where a user meets them: repeated cancels, an expired hold,
//! an expired refresh token, an oversized password.

use std::time::Duration;

use serde_json::json;

use crate::common::{Session, Show, TestApp, code, layout};

const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id status } }";
const CANCEL: &str = "mutation($r: ID!) { cancelReservation(reservationId: $r) { id status } }";

async fn hold(app: &TestApp, fan: &Session, show: &Show, seat: usize) -> String {
    let data = app
        .ok(
            Some(&fan.access),
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[seat]] } }),
        )
        .await;
    data["reserveSeats"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_cancelled_reservation_cancelled_again_is_answered_as_it_is_and_an_expired_hold_says_so() {
    let app = TestApp::spawn_with(&[("HOLD_SWEEP_INTERVAL_MS", "100")]).await;
    let show = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let t = Some(fan.access.as_str());

    // A retried cancel (a client that lost the first answer) changes nothing and answers
    // the reservation as it is.
    let first = hold(&app, &fan, &show, 0).await;
    let once = app.ok(t, CANCEL, json!({ "r": first })).await;
    assert_eq!(once["cancelReservation"]["status"], "CANCELLED");
    let twice = app.ok(t, CANCEL, json!({ "r": first })).await;
    assert_eq!(twice["cancelReservation"], once["cancelReservation"]);

    // A hold the sweeper has expired cannot be cancelled: its seats are already free.
    let second = hold(&app, &fan, &show, 1).await;
    app.count(&format!(
        "WITH u AS (UPDATE reservations SET expires_at = now() - interval '1 second' WHERE id = {second} RETURNING 1) SELECT count(*) AS n FROM u"
    ))
    .await;
    let mut expired = false;
    for _ in 0..100 {
        let n = app
            .count(&format!(
                "SELECT count(*) AS n FROM reservations WHERE id = {second} AND status = 'expired'"
            ))
            .await;
        if n == 1 {
            expired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(expired, "the sweeper did not expire the hold");
    let body = app.gql(t, CANCEL, json!({ "r": second })).await;
    assert_eq!(code(&body), "HOLD_EXPIRED", "{body}");
    assert!(body["data"].is_null(), "{body}");
    app.assert_invariants().await;
}

#[tokio::test]
async fn a_cancelled_schedule_cancelled_again_changes_nothing() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    hold(&app, &fan, &show, 0).await;
    let cancel = "mutation($s: ID!) { cancelSchedule(id: $s) { id status } }";
    let host = Some(show.host.access.as_str());
    let once = app.ok(host, cancel, json!({ "s": show.schedule_id })).await;
    assert_eq!(once["cancelSchedule"]["status"], "CANCELLED");
    let twice = app.ok(host, cancel, json!({ "s": show.schedule_id })).await;
    assert_eq!(twice, once);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM reservations WHERE status = 'cancelled'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action = 'cancel_schedule'")
            .await,
        1,
        "a second cancel is not audited as another one"
    );
    app.assert_invariants().await;
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused_without_revoking_the_login() {
    let app = TestApp::spawn().await;
    let fan = app.sign_up("fan@example.com").await;
    app.count(
        "WITH u AS (UPDATE refresh_tokens SET expires_at = now() - interval '1 second' RETURNING 1) SELECT count(*) AS n FROM u",
    )
    .await;
    let refresh = "mutation($r: String!) { refreshToken(refreshToken: $r) { accessToken } }";
    let body = app.gql(None, refresh, json!({ "r": fan.refresh })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    // Expiry is not reuse: the token was never presented before, so nothing is revoked.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM refresh_tokens WHERE revoked_at IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn an_oversized_password_is_refused_as_invalid_credentials() {
    let app = TestApp::spawn().await;
    app.sign_up("fan@example.com").await;
    let log_in = "mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken } }";
    let body = app
        .gql(
            None,
            log_in,
            json!({ "e": "fan@example.com", "p": "x".repeat(4 * 128 + 1) }),
        )
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(body["errors"][0]["message"], "invalid credentials");
    // The right password still logs in: one refused attempt does not lock the account.
    let body = app.log_in("fan@example.com", crate::common::PASSWORD).await;
    assert!(body["errors"].is_null(), "{body}");
}

/// Without Redis the login limits live in the instance's memory: the per-address limit and
/// the reset after a success behave as they do with Redis (auth.rs tests those).
#[tokio::test]
async fn without_redis_the_per_address_login_limit_holds_and_a_success_resets_the_account() {
    let db = crate::common::TestDb::new().await;
    let config = crate::common::test_config(
        &db,
        &[
            ("REDIS_URL", ""),
            ("LOGIN_MAX_FAILURES", "3"),
            ("LOGIN_MAX_FAILURES_PER_IP", "10"),
        ],
    );
    assert!(config.redis_url().is_none());
    let state = boxoffice::state::AppState::connect(config).await.unwrap();
    let app = TestApp::serve(db, state).await;
    let password = crate::common::PASSWORD;
    app.sign_up("mia@example.com").await;

    // Two failures, a success, two failures again: the success reset the account's count.
    for round in 0..2 {
        for _ in 0..2 {
            let body = app.log_in("mia@example.com", "wrong password 1").await;
            assert_eq!(code(&body), "UNAUTHENTICATED", "round {round}: {body}");
        }
        let body = app.log_in("mia@example.com", password).await;
        assert!(body["errors"].is_null(), "round {round}: {body}");
    }

    // Every attempt counts against the address and a success takes its own back, so the
    // four failures above leave six to reach the address's limit of ten, which then
    // refuses even a right password.
    for i in 0..6 {
        let body = app
            .log_in(&format!("guess{i}@example.com"), "wrong password 1")
            .await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    }
    let body = app.log_in("mia@example.com", password).await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
}
