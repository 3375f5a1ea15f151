//! Holds, payment, cancellation, expiry and the invariants under contention (C9, I1-I7).

use std::sync::Arc;

use boxoffice::{
    booking::{
        self, HoldRequest,
        negative_control::{hold_alone, hold_alone_without_lock},
    },
    error::{AppError, ErrorCode},
};
use serde_json::{Value, json};

use crate::common::{Session, Show, TestApp, code, layout};

const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id status totalPrice seatCount expiresAt seats { id grade price } } }";
const PAY: &str = "mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id status paidAt } }";
const CANCEL: &str = "mutation($r: ID!) { cancelReservation(reservationId: $r) { id status cancelledAt } }";
const CHARGE: &str =
    "mutation($a: Int!, $k: String!) { chargePoints(amount: $a, idempotencyKey: $k) { balanceAfter } }";
const ME: &str = "{ me { points } }";

async fn reserve(app: &TestApp, who: &Session, show: &Show, seats: &[usize], key: Option<&str>) -> Value {
    let ids: Vec<&str> = seats.iter().map(|i| show.seats[*i].as_str()).collect();
    app.gql(
        Some(&who.access),
        RESERVE,
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": ids, "idempotencyKey": key } }),
    )
    .await
}

/// Holds seats and returns the reservation id (set-up: the hold must succeed).
async fn hold_id(app: &TestApp, who: &Session, show: &Show, seats: &[usize]) -> String {
    let body = reserve(app, who, show, seats, None).await;
    body["data"]["reserveSeats"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

async fn charge(app: &TestApp, who: &Session, amount: i64) {
    let key = uuid::Uuid::new_v4().to_string();
    app.ok(Some(&who.access), CHARGE, json!({ "a": amount, "k": key }))
        .await;
}

async fn points(app: &TestApp, who: &Session) -> i64 {
    app.ok(Some(&who.access), ME, json!({})).await["me"]["points"]
        .as_i64()
        .unwrap()
}

fn seat_id(show: &Show, i: usize) -> i64 {
    show.seats[i].parse().unwrap()
}

fn sched(show: &Show) -> i64 {
    show.schedule_id.parse().unwrap()
}

#[tokio::test]
async fn hold_pay_and_cancel_with_refund() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(4, 5), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    charge(&app, &fan, 1_000).await;

    // Row 0 is VIP (150), row 1 is R (100).
    let held = reserve(&app, &fan, &show, &[0, 5], None).await;
    let r = &held["data"]["reserveSeats"];
    assert_eq!(r["status"], "HELD", "{held}");
    assert_eq!(r["totalPrice"], 250);
    assert_eq!(r["seatCount"], 2);
    let grades: Vec<&str> = r["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["grade"].as_str().unwrap())
        .collect();
    assert_eq!(grades, vec!["VIP", "R"]);
    let expires = chrono::DateTime::parse_from_rfc3339(r["expiresAt"].as_str().unwrap()).unwrap();
    let left = expires.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!(
        (290..=300).contains(&left),
        "default hold is 5 minutes, {left} s left"
    );
    let id = r["id"].as_str().unwrap().to_owned();

    let sched = app
        .ok(
            None,
            "query($s: ID!) { schedule(id: $s) { bookedCount seats(status: HELD) { id } } }",
            json!({ "s": show.schedule_id }),
        )
        .await;
    assert_eq!(sched["schedule"]["bookedCount"], 2);

    let paid = app
        .ok(Some(&fan.access), PAY, json!({ "r": id, "k": "pay-1" }))
        .await;
    assert_eq!(paid["payReservation"]["status"], "CONFIRMED");
    assert_eq!(points(&app, &fan).await, 750);
    let sold = app
        .ok(
            None,
            "query($s: ID!) { schedule(id: $s) { seats(status: SOLD) { id } } }",
            json!({ "s": show.schedule_id }),
        )
        .await;
    assert_eq!(sold["schedule"]["seats"].as_array().unwrap().len(), 2);

    let cancelled = app.ok(Some(&fan.access), CANCEL, json!({ "r": id })).await;
    assert_eq!(cancelled["cancelReservation"]["status"], "CANCELLED");
    assert_eq!(points(&app, &fan).await, 1_000, "refunded");
    let history = app
        .ok(
            Some(&fan.access),
            "{ pointHistory { edges { node { kind amount balanceAfter } } } }",
            json!({}),
        )
        .await;
    let kinds: Vec<(String, i64, i64)> = history["pointHistory"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = &e["node"];
            (
                n["kind"].as_str().unwrap().to_owned(),
                n["amount"].as_i64().unwrap(),
                n["balanceAfter"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("REFUND".into(), 250, 1000),
            ("PAYMENT".into(), -250, 750),
            // chargePoints on this dev server: a sandbox top-up.
            ("TOP_UP".into(), 1000, 1000)
        ]
    );
    // The seats are free again.
    let again = reserve(&app, &fan, &show, &[0, 5], None).await;
    assert_eq!(again["data"]["reserveSeats"]["status"], "HELD");
    app.assert_invariants().await;
}

#[tokio::test]
async fn holds_are_refused_with_the_right_code() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 3), 2).await;
    let other = app.show(layout(1, 1), 2).await;
    let a = app.sign_up("a@example.com").await;
    let b = app.sign_up("b@example.com").await;

    assert_eq!(
        reserve(&app, &a, &show, &[0], None).await["data"]["reserveSeats"]["status"],
        "HELD"
    );
    assert_eq!(
        code(&reserve(&app, &b, &show, &[0], None).await),
        "SEAT_UNAVAILABLE"
    );
    assert_eq!(
        code(&reserve(&app, &a, &show, &[1, 2], None).await),
        "LIMIT_EXCEEDED"
    );

    // A seat of another schedule, a bad id, duplicates, too many, none.
    let foreign = app
        .gql(
            Some(&a.access),
            RESERVE,
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [other.seats[0]] } }),
        )
        .await;
    assert_eq!(code(&foreign), "BAD_USER_INPUT");
    assert_eq!(foreign["errors"][0]["extensions"]["field"], "input.seatIds");
    for ids in [
        json!(["x"]),
        json!([show.seats[1], show.seats[1]]),
        json!((1..=11).map(|i| i.to_string()).collect::<Vec<_>>()),
        json!([]),
    ] {
        let body = app
            .gql(
                Some(&a.access),
                RESERVE,
                json!({ "i": { "scheduleId": show.schedule_id, "seatIds": ids } }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{ids}");
    }
    let missing = app
        .gql(
            Some(&a.access),
            RESERVE,
            json!({ "i": { "scheduleId": "999999", "seatIds": ["1"] } }),
        )
        .await;
    assert_eq!(code(&missing), "NOT_FOUND");
    assert_eq!(
        code(
            &app.gql(
                None,
                RESERVE,
                json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[1]] } })
            )
            .await
        ),
        "UNAUTHENTICATED"
    );

    // Everything held: SOLD_OUT.
    assert_eq!(
        reserve(&app, &b, &show, &[1, 2], None).await["data"]["reserveSeats"]["status"],
        "HELD"
    );
    let c = app.sign_up("c@example.com").await;
    assert_eq!(code(&reserve(&app, &c, &show, &[2], None).await), "SOLD_OUT");

    // Sales not open yet.
    app.set_schedule(&other.schedule_id, "sales_open_at = now() + interval '1 hour'")
        .await;
    let early = reserve(&app, &a, &other, &[0], None).await;
    assert_eq!(code(&early), "CONFLICT");
    assert!(
        early["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not opened")
    );
    app.assert_invariants().await;
}

#[tokio::test]
async fn the_same_idempotency_key_holds_once() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 10), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let first = reserve(&app, &fan, &show, &[0, 1], Some("k-1")).await;
    let again = reserve(&app, &fan, &show, &[0, 1], Some("k-1")).await;
    assert_eq!(
        first["data"]["reserveSeats"]["id"],
        again["data"]["reserveSeats"]["id"]
    );
    // Concurrent double-clicks with a new key: one reservation.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let http = app.http.clone();
            let url = app.url("/graphql");
            let token = fan.access.clone();
            let ids = vec![show.seats[5].clone()];
            let sched = show.schedule_id.clone();
            tokio::spawn(async move {
                let body: Value = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({ "query": RESERVE, "variables": { "i": { "scheduleId": sched, "seatIds": ids, "idempotencyKey": "k-2" } } }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["data"]["reserveSeats"]["id"].as_str().map(str::to_owned)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(
            t.await
                .unwrap()
                .expect("every double-click answers the reservation"),
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(app.count("SELECT count(*) AS n FROM reservations").await, 2);
    app.assert_invariants().await;
}

#[tokio::test]
async fn payment_is_refused_with_the_right_code() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let thief = app.sign_up("thief@example.com").await;
    charge(&app, &fan, 100).await;
    let held = reserve(&app, &fan, &show, &[0], None).await; // VIP: 150
    let id = held["data"]["reserveSeats"]["id"].as_str().unwrap().to_owned();

    assert_eq!(
        code(
            &app.gql(Some(&fan.access), PAY, json!({ "r": id, "k": "p1" }))
                .await
        ),
        "INSUFFICIENT_POINTS"
    );
    assert_eq!(points(&app, &fan).await, 100, "nothing deducted");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM seats WHERE status = 'sold'")
            .await,
        0
    );
    assert_eq!(
        code(
            &app.gql(Some(&thief.access), PAY, json!({ "r": id, "k": "p1" }))
                .await
        ),
        "NOT_FOUND"
    );
    assert_eq!(
        code(&app.gql(Some(&thief.access), CANCEL, json!({ "r": id })).await),
        "NOT_FOUND"
    );
    assert_eq!(
        code(
            &app.gql(
                Some(&thief.access),
                "query($r: ID!) { reservation(id: $r) { id } }",
                json!({ "r": id })
            )
            .await
        ),
        "NOT_FOUND"
    );

    charge(&app, &fan, 100).await;
    let paid = app
        .ok(Some(&fan.access), PAY, json!({ "r": id, "k": "p1" }))
        .await;
    assert_eq!(paid["payReservation"]["status"], "CONFIRMED");
    // Paying again (a retry) charges nothing more.
    app.ok(Some(&fan.access), PAY, json!({ "r": id, "k": "p1" }))
        .await;
    app.ok(Some(&fan.access), PAY, json!({ "r": id, "k": "p2" }))
        .await;
    assert_eq!(points(&app, &fan).await, 50);

    // The key is spent: using it for another reservation is a conflict.
    let other = reserve(&app, &fan, &show, &[6], None).await;
    let other_id = other["data"]["reserveSeats"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        code(
            &app.gql(Some(&fan.access), PAY, json!({ "r": other_id, "k": "p1" }))
                .await
        ),
        "CONFLICT"
    );

    // An expired hold cannot be paid.
    app.count(&format!("WITH u AS (UPDATE reservations SET expires_at = now() - interval '1 second' WHERE id = {other_id} RETURNING 1) SELECT count(*) AS n FROM u")).await;
    assert_eq!(
        code(
            &app.gql(Some(&fan.access), PAY, json!({ "r": other_id, "k": "p9" }))
                .await
        ),
        "HOLD_EXPIRED"
    );
    app.assert_invariants().await;
}

#[tokio::test]
async fn paid_reservations_cannot_be_cancelled_once_the_show_started() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 5), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    charge(&app, &fan, 1000).await;
    let id = hold_id(&app, &fan, &show, &[0]).await;
    app.ok(Some(&fan.access), PAY, json!({ "r": id, "k": "p" })).await;
    app.set_schedule(
        &show.schedule_id,
        "sales_open_at = now() - interval '3 hours', sales_close_at = now() - interval '2 hours',
         starts_at = now() - interval '1 hour'",
    )
    .await;
    assert_eq!(
        code(&app.gql(Some(&fan.access), CANCEL, json!({ "r": id })).await),
        "CONFLICT"
    );
    assert_eq!(points(&app, &fan).await, 850);
}

#[tokio::test]
async fn the_sweeper_releases_expired_holds() {
    let app = TestApp::spawn_with(&[("HOLD_SWEEP_INTERVAL_MS", "100")]).await;
    let show = app.show(layout(1, 5), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    reserve(&app, &fan, &show, &[0, 1], None).await;
    let keep = reserve(&app, &fan, &show, &[2], None).await;
    assert!(keep["errors"].is_null());
    app.count("WITH u AS (UPDATE reservations SET expires_at = now() - interval '1 second' WHERE seat_count = 2 RETURNING 1) SELECT count(*) AS n FROM u").await;
    let mut released = false;
    for _ in 0..50 {
        if app
            .count("SELECT count(*) AS n FROM reservations WHERE status = 'expired'")
            .await
            == 1
        {
            released = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(released, "the background sweeper expired the hold");
    let sched = app
        .ok(
            None,
            "query($s: ID!) { schedule(id: $s) { bookedCount } }",
            json!({ "s": show.schedule_id }),
        )
        .await;
    assert_eq!(sched["schedule"]["bookedCount"], 1);
    // The freed seats can be held again.
    let other = app.sign_up("other@example.com").await;
    assert!(reserve(&app, &other, &show, &[0, 1], None).await["errors"].is_null());
    app.assert_invariants().await;
}

/// Ids of `n` users made in bulk (tokens are not needed: these tests call the core).
async fn users(app: &TestApp, n: usize) -> Vec<i64> {
    app.bulk_users(n).await.into_iter().map(|u| u.id).collect()
}

/// Outcome counts of a storm; panics on anything but the expected refusals.
#[derive(Debug, Default)]
struct Tally {
    held: usize,
    refused: usize,
    internal: Vec<String>,
}

impl Tally {
    fn add(&mut self, r: &Result<boxoffice::booking::ReservationRow, AppError>) {
        match r {
            Ok(_) => self.held += 1,
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::SeatUnavailable | ErrorCode::SoldOut | ErrorCode::LimitExceeded
                ) =>
            {
                self.refused += 1;
            }
            Err(e) => self.internal.push(format!("{:?}", e)),
        }
    }
}

/// 200 tasks each holding 1 to 4 random seats out of 60, one transaction each, all at once.
async fn storm(app: &TestApp, show: &Show, locked: bool) -> Tally {
    let users = users(app, 200).await;
    let schedule = sched(show);
    let barrier = Arc::new(tokio::sync::Barrier::new(users.len()));
    let tasks: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(i, user_id)| {
            let pool = app.state.db.clone();
            let barrier = barrier.clone();
            let n = 1 + i % 4;
            let mut seats: Vec<i64> = (0..n).map(|k| seat_id(show, (i * 7 + k * 13) % 60)).collect();
            seats.sort_unstable();
            seats.dedup();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut conn = pool.get().await.unwrap();
                let request = HoldRequest::seats(user_id, seats, None);
                if locked {
                    hold_alone(&mut conn, schedule, request).await
                } else {
                    hold_alone_without_lock(&mut conn, schedule, request).await
                }
            })
        })
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => tally.add(&r),
            Err(e) => tally.internal.push(format!("{e:?}")),
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_overlapping_holds_keeps_every_invariant() {
    let app = TestApp::spawn_with(&[("DATABASE_POOL_SIZE", "32")]).await;
    let show = app.show(layout(6, 10), 4).await;
    let tally = storm(&app, &show, true).await;
    assert!(
        tally.internal.is_empty(),
        "no deadlock or other failure: {:?}",
        tally.internal
    );
    assert!(tally.held > 0 && tally.refused > 0, "{tally:?}");
    app.assert_invariants().await;
    let booked = app
        .count(&format!(
            "SELECT booked_count::bigint AS n FROM schedules WHERE id = {}",
            show.schedule_id
        ))
        .await;
    let held = app
        .count("SELECT coalesce(sum(seat_count), 0)::bigint AS n FROM reservations WHERE status = 'held'")
        .await;
    assert_eq!(booked, held);
}

/// The negative control: without the booking-count lock the same storm must break an
/// invariant. If it did not, the storm test above could not catch a race.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_lock_the_storm_breaks_an_invariant() {
    let mut caught = Vec::new();
    for _ in 0..5 {
        let app = TestApp::spawn_with(&[("DATABASE_POOL_SIZE", "32")]).await;
        let show = app.show(layout(6, 10), 4).await;
        let tally = storm(&app, &show, false).await;
        let violations = app.invariant_violations().await;
        if !violations.is_empty() {
            caught.extend(violations);
            break;
        }
        // A claim the pre-check believed free but another transaction took is also a
        // double sale caught (by the last line of defence in the write).
        if !tally.internal.is_empty() {
            caught.push("a double claim refused by the conditional seat update");
            break;
        }
    }
    println!("negative control caught: {caught:?}");
    assert!(
        !caught.is_empty(),
        "the storm did not catch the missing lock in five runs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_users_fight_for_the_last_seat_and_one_wins() {
    let app = TestApp::spawn_with(&[("DATABASE_POOL_SIZE", "32")]).await;
    let show = app.show(layout(1, 1), 4).await;
    let users = users(&app, 100).await;
    let schedule = sched(&show);
    let seat = seat_id(&show, 0);
    let tasks: Vec<_> = users
        .into_iter()
        .map(|user_id| {
            let state = app.state.clone();
            tokio::spawn(async move {
                booking::hold_order(&state, schedule, HoldRequest::seats(user_id, vec![seat], None)).await
            })
        })
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        tally.add(&t.await.unwrap());
    }
    assert_eq!(tally.held, 1, "{tally:?}");
    assert_eq!(tally.refused, 99);
    assert!(tally.internal.is_empty());
    app.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_holds_are_batched_and_keep_every_invariant() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(10, 20), 4).await;
    let users = users(&app, 300).await;
    let schedule = sched(&show);
    let tasks: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(i, user_id)| {
            let state = app.state.clone();
            let mut seats: Vec<i64> = (0..1 + i % 3)
                .map(|k| seat_id(&show, (i * 11 + k * 17) % 200))
                .collect();
            seats.sort_unstable();
            seats.dedup();
            tokio::spawn(async move {
                booking::hold_order(&state, schedule, HoldRequest::seats(user_id, seats, None)).await
            })
        })
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        tally.add(&t.await.unwrap());
    }
    assert!(tally.internal.is_empty(), "{:?}", tally.internal);
    let stats = app.state.batcher.stats();
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    let requests = stats.requests.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(requests, 300);
    assert!(
        batches < requests,
        "requests shared transactions: {batches} batches for {requests} requests"
    );
    assert!(stats.largest.load(std::sync::atomic::Ordering::Relaxed) > 1);
    app.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pay_and_expiry_race_and_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(4, 10), 1).await;
    let mut paid = 0;
    let mut expired = 0;
    for i in 0..40 {
        let fan = app.sign_up(&format!("racer{i}@example.com")).await;
        charge(&app, &fan, 500).await;
        let id = hold_id(&app, &fan, &show, &[i]).await;
        // Due a moment from now, so that the payment and the sweeper meet at the edge.
        app.count(&format!(
            "WITH u AS (UPDATE reservations SET expires_at = now() + interval '15 milliseconds' WHERE id = {id} RETURNING 1) SELECT count(*) AS n FROM u"
        ))
        .await;
        tokio::time::sleep(std::time::Duration::from_millis((i as u64 * 3) % 25)).await;
        let state = app.state.clone();
        let sweep = tokio::spawn(async move { booking::expire_due_holds(&state).await.unwrap() });
        let pay = app
            .gql(Some(&fan.access), PAY, json!({ "r": id, "k": "k" }))
            .await;
        sweep.await.unwrap();
        let status = app
            .ok(
                Some(&fan.access),
                "query($r: ID!) { reservation(id: $r) { status } }",
                json!({ "r": id }),
            )
            .await["reservation"]["status"]
            .as_str()
            .unwrap()
            .to_owned();
        if pay["errors"].is_null() {
            assert_eq!(
                status, "CONFIRMED",
                "the payment won, the sweeper must not release it"
            );
            assert_eq!(points(&app, &fan).await, 500 - [150, 100, 70, 50][i / 10]);
            paid += 1;
        } else {
            assert_eq!(code(&pay), "HOLD_EXPIRED", "{pay}");
            assert_ne!(status, "CONFIRMED");
            assert_eq!(points(&app, &fan).await, 500, "nothing charged");
            expired += 1;
        }
    }
    // A final sweep; then every hold is decided one way or the other.
    booking::expire_due_holds(&app.state).await.unwrap();
    assert_eq!(
        app.count("SELECT count(*) AS n FROM reservations WHERE status = 'held'")
            .await,
        0
    );
    println!("pay vs expiry: {paid} paid, {expired} expired");
    app.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_and_pay_race_consistently() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(4, 10), 1).await;
    for i in 0..20 {
        let fan = app.sign_up(&format!("c{i}@example.com")).await;
        charge(&app, &fan, 500).await;
        let id = hold_id(&app, &fan, &show, &[i]).await;
        let (pay, cancel) = tokio::join!(
            app.gql(Some(&fan.access), PAY, json!({ "r": id, "k": "k" })),
            app.gql(Some(&fan.access), CANCEL, json!({ "r": id })),
        );
        assert!(cancel["errors"].is_null(), "cancel always succeeds: {cancel}");
        if !pay["errors"].is_null() {
            assert_eq!(code(&pay), "CONFLICT", "cancelled first: {pay}");
        }
        // Either way the user ends with every point and the seat is free.
        assert_eq!(points(&app, &fan).await, 500);
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM seats WHERE status <> 'available'")
            .await,
        0
    );
    app.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn double_clicking_pay_charges_once() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 5), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    charge(&app, &fan, 1000).await;
    let id = hold_id(&app, &fan, &show, &[0]).await;
    let clicks: Vec<_> = (0..10)
        .map(|_| app.gql(Some(&fan.access), PAY, json!({ "r": id, "k": "same" })))
        .collect();
    for body in futures_util::future::join_all(clicks).await {
        assert_eq!(body["data"]["payReservation"]["status"], "CONFIRMED", "{body}");
    }
    assert_eq!(points(&app, &fan).await, 850);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM point_ledger WHERE kind = 'payment'")
            .await,
        1
    );
    app.assert_invariants().await;
}

/// A crash mid-transaction (the connection dropped with the transaction open) leaves
/// nothing half-applied, and the locks it held are released.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_lost_mid_transaction_leaves_nothing_behind() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 5), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    {
        let mut conn = AsyncPgConnection::establish(&app.db.url).await.unwrap();
        diesel::sql_query("BEGIN").execute(&mut conn).await.unwrap();
        diesel::sql_query(format!(
            "SELECT id FROM schedules WHERE id = {} FOR UPDATE",
            show.schedule_id
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        diesel::sql_query(format!(
            "INSERT INTO reservations (schedule_id, user_id, status, seat_count, total_price, expires_at)
             VALUES ({}, {}, 'held', 1, 150, now() + interval '5 minutes')",
            show.schedule_id, fan.id
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        diesel::sql_query(format!(
            "UPDATE schedules SET booked_count = 1 WHERE id = {}",
            show.schedule_id
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        // Dropped here: the server process "dies" before COMMIT.
    }
    // Aborting in-flight batches at random points does the same through the real code.
    let users = users(&app, 40).await;
    for (i, user_id) in users.into_iter().enumerate() {
        let pool = app.state.db.clone();
        let schedule = sched(&show);
        let seat = seat_id(&show, i % 5);
        let work = async move {
            let mut conn = pool.get().await.unwrap();
            let r = HoldRequest::seats(user_id, vec![seat], None);
            let _ = hold_alone(&mut conn, schedule, r).await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_micros((i as u64 * 97) % 3000), work).await;
    }
    app.assert_invariants().await;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM reservations WHERE user_id = {}",
            fan.id
        ))
        .await,
        0,
        "the uncommitted reservation is gone"
    );
    // The schedule lock was released: booking goes on.
    let after = reserve(&app, &fan, &show, &[4], None).await;
    assert!(
        after["errors"].is_null() || code(&after) == "SEAT_UNAVAILABLE",
        "{after}"
    );
}

#[tokio::test]
async fn cancelling_a_concert_refunds_everyone() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let a = app.sign_up("a@example.com").await;
    let b = app.sign_up("b@example.com").await;
    charge(&app, &a, 1000).await;
    charge(&app, &b, 1000).await;
    let ra = hold_id(&app, &a, &show, &[0, 1]).await;
    app.ok(Some(&a.access), PAY, json!({ "r": ra, "k": "k" })).await;
    let rb = hold_id(&app, &b, &show, &[5]).await;
    app.ok(Some(&b.access), PAY, json!({ "r": rb, "k": "k" })).await;
    reserve(&app, &b, &show, &[6], None).await; // a hold, unpaid
    assert_eq!(points(&app, &a).await, 700);
    assert_eq!(points(&app, &b).await, 900);

    app.ok(
        Some(&show.host.access),
        "mutation($c: ID!) { cancelConcert(id: $c, reason: \"artist ill\") { status } }",
        json!({ "c": show.concert_id }),
    )
    .await;
    assert_eq!(points(&app, &a).await, 1000);
    assert_eq!(points(&app, &b).await, 1000);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM reservations WHERE status <> 'cancelled'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM seats WHERE status <> 'available'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM point_ledger WHERE kind = 'refund'")
            .await,
        2
    );
    let after = reserve(&app, &a, &show, &[3], None).await;
    assert_eq!(code(&after), "CONFLICT");
    app.assert_invariants().await;
}

#[tokio::test]
async fn my_reservations_pages_newest_first() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 10), 10).await;
    let fan = app.sign_up("fan@example.com").await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(hold_id(&app, &fan, &show, &[i]).await);
    }
    made.reverse();
    let q = "query($a: String) { myReservations(first: 2, after: $a) { edges { node { id schedule { id } } } pageInfo { hasNextPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app.ok(Some(&fan.access), q, json!({ "a": after })).await;
        for e in page["myReservations"]["edges"].as_array().unwrap() {
            assert_eq!(e["node"]["schedule"]["id"], show.schedule_id);
            seen.push(e["node"]["id"].as_str().unwrap().to_owned());
        }
        if !page["myReservations"]["pageInfo"]["hasNextPage"]
            .as_bool()
            .unwrap()
        {
            break;
        }
        after = page["myReservations"]["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
    assert_eq!(seen, made);
}

#[tokio::test]
async fn sales_figures_and_the_audit_trail() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(2, 5), 4).await;
    let admin = app.user_with_role("root@example.com", "admin").await;
    let fan = app.sign_up("fan@example.com").await;
    charge(&app, &fan, 1000).await;
    let id = hold_id(&app, &fan, &show, &[0, 5]).await;
    app.ok(Some(&fan.access), PAY, json!({ "r": id, "k": "k" })).await;
    reserve(&app, &fan, &show, &[6], None).await;
    let q = "query($c: ID!) { concertSales(concertId: $c) { seatsSold revenue schedules { capacity seatsHeld seatsSold revenue refunded } } }";
    let sales = app
        .ok(Some(&show.host.access), q, json!({ "c": show.concert_id }))
        .await;
    assert_eq!(
        sales["concertSales"],
        json!({ "seatsSold": 2, "revenue": 250, "schedules": [{ "capacity": 10, "seatsHeld": 1, "seatsSold": 2, "revenue": 250, "refunded": 0 }] })
    );
    let other_host = app.user_with_role("other@example.com", "host").await;
    assert_eq!(
        code(
            &app.gql(Some(&other_host.access), q, json!({ "c": show.concert_id }))
                .await
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        code(
            &app.gql(Some(&fan.access), q, json!({ "c": show.concert_id }))
                .await
        ),
        "FORBIDDEN"
    );

    // An admin cancels the show: refunded, and the audit log says who did it.
    app.ok(
        Some(&admin.access),
        "mutation($c: ID!) { cancelConcert(id: $c, reason: \"venue flooded\") { status } }",
        json!({ "c": show.concert_id }),
    )
    .await;
    let sales = app
        .ok(Some(&admin.access), q, json!({ "c": show.concert_id }))
        .await;
    assert_eq!(sales["concertSales"]["schedules"][0]["refunded"], 250);
    let log = app
        .ok(
            Some(&admin.access),
            "{ auditLog(first: 10) { edges { node { actorId action targetId details } } } }",
            json!({}),
        )
        .await;
    let entry = &log["auditLog"]["edges"][0]["node"];
    assert_eq!(entry["action"], "cancel_concert");
    assert_eq!(entry["actorId"], admin.id.to_string());
    assert_eq!(entry["targetId"], show.concert_id);
    assert_eq!(entry["details"]["reason"], "venue flooded");
    assert_eq!(
        code(
            &app.gql(
                Some(&fan.access),
                "{ auditLog { edges { node { id } } } }",
                json!({})
            )
            .await
        ),
        "FORBIDDEN"
    );
}

/// Keys starting with `~fwd:` are the ones the server generates for forwarded requests,
/// which take no key lock: a client sending one is refused with the field named, and
/// nothing is held. A key that merely contains the prefix elsewhere is a key like any other.
#[tokio::test]
async fn a_client_key_with_the_forwarding_prefix_is_refused() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let fan = app.sign_up("fan@example.com").await;
    let refused = reserve(&app, &fan, &show, &[0], Some("~fwd:0123456789abcdef")).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    assert_eq!(
        refused["errors"][0]["extensions"]["field"], "input.idempotencyKey",
        "{refused}"
    );
    let order = app
        .gql(
            Some(&fan.access),
            "mutation($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId } }",
            json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[1]], "idempotencyKey": " ~fwd:x" } }),
        )
        .await;
    assert_eq!(code(&order), "BAD_USER_INPUT", "{order}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM reservations").await,
        0,
        "nothing was held"
    );
    let held = reserve(&app, &fan, &show, &[0], Some("k~fwd:1")).await;
    assert!(held["errors"].is_null(), "{held}");
}
