//! Idempotency keys (issue 21, finding 4): a key answers only the request it was first sent
//! with (same operation, same arguments, same user); anything else with it is a CONFLICT,
//! on every keyed mutation.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Session, TestApp, code, layout};

const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id seats { id } } }";
const BEST: &str = "mutation($i: BestAvailableInput!) { reserveBestAvailable(input: $i) { id } }";
const ORDER: &str = "mutation($i: ReserveSeatsInput, $b: BestAvailableInput) { placeOrder(input: $i, bestAvailable: $b) { jobId } }";
const ORDER_STATUS: &str = "query($j: String!) { order(jobId: $j) { status errorCode reservation { id } } }";
const PAY: &str =
    "mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id status } }";
const CHARGE: &str =
    "mutation($a: Int!, $k: String!) { chargePoints(amount: $a, idempotencyKey: $k) { id } }";

async fn settled(app: &TestApp, who: &Session, job: &str) -> Value {
    for _ in 0..150 {
        let o = app.ok(Some(&who.access), ORDER_STATUS, json!({ "j": job })).await["order"].clone();
        if o["status"] == "DONE" || o["status"] == "FAILED" {
            return o;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("order {job} never settled");
}

#[tokio::test]
async fn a_key_answers_only_the_request_it_was_sent_with() {
    let app = TestApp::spawn().await;
    // Row R0 is VIP, R1 is R (`layout`): seat 4 is the first R seat.
    let show = app.show(layout(2, 4), 10).await;
    let other_show = app.show(layout(1, 4), 10).await;
    let fan = app.sign_up("fan@example.com").await;
    let t = Some(fan.access.as_str());
    let s = show.schedule_id.as_str();
    let seat = |i: usize| show.seats[i].as_str();

    let first = app
        .ok(
            t,
            RESERVE,
            json!({ "i": { "scheduleId": s, "seatIds": [seat(4)], "idempotencyKey": "K" } }),
        )
        .await;
    let first_id = first["reserveSeats"]["id"].as_str().unwrap().to_owned();

    // The same request again: the same reservation.
    let again = app
        .ok(
            t,
            RESERVE,
            json!({ "i": { "scheduleId": s, "seatIds": [seat(4)], "idempotencyKey": "K" } }),
        )
        .await;
    assert_eq!(again["reserveSeats"]["id"], first_id.as_str());

    // The issue's case: one seat of grade R was held with K, so the older rule (as many
    // seats of the asked grade) replayed it to a best-available ask of one R seat.
    for (what, body) in [
        (
            "best available, the same grade and count",
            app.gql(t, BEST, json!({ "i": { "scheduleId": s, "count": 1, "grade": "R", "idempotencyKey": "K" } }))
                .await,
        ),
        (
            "best available, any grade",
            app.gql(t, BEST, json!({ "i": { "scheduleId": s, "count": 1, "idempotencyKey": "K" } }))
                .await,
        ),
        (
            "other seats",
            app.gql(t, RESERVE, json!({ "i": { "scheduleId": s, "seatIds": [seat(5)], "idempotencyKey": "K" } }))
                .await,
        ),
        (
            "another performance",
            app.gql(
                t,
                RESERVE,
                json!({ "i": { "scheduleId": other_show.schedule_id, "seatIds": [other_show.seats[0]], "idempotencyKey": "K" } }),
            )
            .await,
        ),
    ] {
        assert_eq!(code(&body), "CONFLICT", "{what}: {body}");
        assert!(body["data"].is_null(), "{what}: {body}");
    }

    // placeOrder: the same order again answers the same job; another order with its key
    // is a CONFLICT at once (it used to answer the first job).
    let order = |seats: Value, key: &str| json!({ "i": { "scheduleId": s, "seatIds": seats, "idempotencyKey": key } });
    let o1 = app.ok(t, ORDER, order(json!([seat(6)]), "O")).await["placeOrder"]["jobId"].clone();
    let o1_again = app.ok(t, ORDER, order(json!([seat(6)]), "O")).await["placeOrder"]["jobId"].clone();
    assert_eq!(o1, o1_again);
    let other_seats = app.gql(t, ORDER, order(json!([seat(7)]), "O")).await;
    assert_eq!(code(&other_seats), "CONFLICT", "{other_seats}");
    let best_instead = app
        .gql(
            t,
            ORDER,
            json!({ "b": { "scheduleId": s, "count": 1, "idempotencyKey": "O" } }),
        )
        .await;
    assert_eq!(code(&best_instead), "CONFLICT", "{best_instead}");
    let done = settled(&app, &fan, o1.as_str().unwrap()).await;
    assert_eq!(done["status"], "DONE", "{done}");
    // The order's key held its seat: reserveSeats with it, even for the same seat, is
    // another operation.
    let direct = app
        .gql(
            t,
            RESERVE,
            json!({ "i": { "scheduleId": s, "seatIds": [seat(6)], "idempotencyKey": "O" } }),
        )
        .await;
    assert_eq!(code(&direct), "CONFLICT", "{direct}");
    // And an order with a key reserveSeats used is FAILED with CONFLICT: it holds nothing.
    let late = app.ok(t, ORDER, order(json!([seat(4)]), "K")).await["placeOrder"]["jobId"].clone();
    let late = settled(&app, &fan, late.as_str().unwrap()).await;
    assert_eq!(late["status"], "FAILED", "{late}");
    assert_eq!(late["errorCode"], "CONFLICT", "{late}");

    // payReservation: the key with another reservation is a CONFLICT.
    app.ok(t, CHARGE, json!({ "a": 10_000, "k": "topup" })).await;
    let paid = app.ok(t, PAY, json!({ "r": first_id, "k": "P" })).await;
    assert_eq!(paid["payReservation"]["status"], "CONFIRMED");
    let again = app.ok(t, PAY, json!({ "r": first_id, "k": "P" })).await;
    assert_eq!(again["payReservation"]["id"], first_id.as_str());
    let order_res = done["reservation"]["id"].as_str().unwrap();
    let body = app.gql(t, PAY, json!({ "r": order_res, "k": "P" })).await;
    assert_eq!(code(&body), "CONFLICT", "{body}");

    // Nothing of the refused requests took effect: the fan holds seats 4 and 6 only.
    let held = app
        .count(&format!(
            "SELECT count(*) AS n FROM reservations WHERE user_id = {} AND status IN ('held', 'confirmed')",
            fan.id
        ))
        .await;
    assert_eq!(held, 2);
    app.assert_invariants().await;
}

#[tokio::test]
async fn keys_belong_to_their_user() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let a = app.sign_up("a@example.com").await;
    let b = app.sign_up("b@example.com").await;
    let input = |seat: usize| json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[seat]], "idempotencyKey": "same" } });
    let ra = app.ok(Some(&a.access), RESERVE, input(0)).await;
    // Another user with the same key and the same seat: their own request, not a replay
    // of a's reservation (the seat is taken).
    let body = app.gql(Some(&b.access), RESERVE, input(0)).await;
    assert_eq!(code(&body), "SEAT_UNAVAILABLE", "{body}");
    let rb = app.ok(Some(&b.access), RESERVE, input(1)).await;
    assert_ne!(ra["reserveSeats"]["id"], rb["reserveSeats"]["id"]);
}
