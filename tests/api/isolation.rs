//! Isolation in a batch (I8): storms of well-formed holds with poison requests mixed in.
//! Every well-formed request must succeed or fail for its own reason only, and I1-I7 must
//! hold after every storm.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::common::{Session, Show, TestApp, code, layout};

const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id status seatCount } }";

/// Fans per storm, each on a seat of its own.
const FANS: usize = 40;
const ROUNDS: usize = 6;

async fn hold(app: &TestApp, token: &str, schedule: &str, seats: &[&str], key: Option<&str>) -> Value {
    app.gql(
        Some(token),
        RESERVE,
        json!({ "i": { "scheduleId": schedule, "seatIds": seats, "idempotencyKey": key } }),
    )
    .await
}

async fn assert_all_invariants(app: &TestApp) {
    let mut v = app.invariant_violations().await;
    // I5 and I7 (I6 shows as a deadlock, which would answer INTERNAL and fail the storm's
    // own checks).
    v.extend(app.violations_of(boxoffice::invariants::MORE).await);
    assert!(v.is_empty(), "invariants violated: {v:?}");
}

/// What one request of a storm is, and so what it may be answered.
#[derive(Clone, Debug)]
enum Kind {
    /// A fan on a seat nobody else wants: must be held.
    Fan,
    /// One user's key sent to two schedules at once (the other half is `SameKeyB`).
    SameKeyA,
    SameKeyB,
    /// A validly signed token of a user that does not exist.
    Ghost,
    /// A seat of the other schedule.
    ForeignSeat,
    /// A key already used for other seats of the same schedule.
    ReusedKey,
}

/// (what it is, token, schedule id, seat ids, idempotency key)
type Request = (Kind, String, String, Vec<String>, Option<String>);

/// One storm: `FANS` fans on each of two schedules with one of every poison among them,
/// all sent at once. Panics with every wrong answer.
async fn storm(app: &TestApp, a: &Show, b: &Show, fans: &[Session], villain: &Session, round: usize) {
    let ghost = app
        .state
        .jwt
        .issue(9_000_000 + round as i64, boxoffice::auth::Role::User)
        .unwrap()
        .0;
    // The reused key: held once, before the storm, on seat 0 of this round's block.
    let base = round * (FANS + 4);
    let reused = format!("reused-{round}");
    let first = hold(
        app,
        &villain.access,
        &a.schedule_id,
        &[&a.seats[base]],
        Some(&reused),
    )
    .await;
    assert!(first["errors"].is_null(), "{first}");

    let mut requests: Vec<Request> = Vec::new();
    for (i, fan) in fans.iter().enumerate().take(FANS) {
        let (show, seat) = if i % 2 == 0 {
            (a, &a.seats[base + 1 + i])
        } else {
            (b, &b.seats[base + 1 + i])
        };
        requests.push((
            Kind::Fan,
            fan.access.clone(),
            show.schedule_id.clone(),
            vec![seat.clone()],
            Some(format!("fan-{round}-{i}")),
        ));
    }
    let shared = format!("twice-{round}");
    let spare = base + FANS + 1;
    let poison = [
        (
            Kind::SameKeyA,
            villain.access.clone(),
            a.schedule_id.clone(),
            vec![a.seats[spare].clone()],
            Some(shared.clone()),
        ),
        (
            Kind::SameKeyB,
            villain.access.clone(),
            b.schedule_id.clone(),
            vec![b.seats[spare].clone()],
            Some(shared),
        ),
        (
            Kind::Ghost,
            ghost,
            a.schedule_id.clone(),
            vec![a.seats[spare + 1].clone()],
            Some("ghost".into()),
        ),
        (
            Kind::ForeignSeat,
            fans[0].access.clone(),
            a.schedule_id.clone(),
            vec![b.seats[spare + 1].clone()],
            None,
        ),
        (
            Kind::ReusedKey,
            villain.access.clone(),
            a.schedule_id.clone(),
            vec![a.seats[spare + 2].clone()],
            Some(reused),
        ),
    ];
    // Poison spread through the fans, so that it shares batches with them.
    for (k, p) in poison.into_iter().enumerate() {
        requests.insert(k * 8 + 3, p);
    }

    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(kind, token, schedule, seats, key)| {
            let http = app.http.clone();
            let url = app.url("/graphql");
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let body: Value = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({
                        "query": RESERVE,
                        "variables": { "i": { "scheduleId": schedule, "seatIds": seats, "idempotencyKey": key } },
                    }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (kind, body)
            })
        })
        .collect();
    let mut wrong = Vec::new();
    let mut same_key_held = 0;
    let mut same_key_conflict = 0;
    for t in tasks {
        let (kind, body) = t.await.unwrap();
        let held = body["errors"].is_null();
        let err = if held { "" } else { code(&body) };
        let fine = match kind {
            Kind::Fan => held,
            Kind::SameKeyA | Kind::SameKeyB => {
                if held {
                    same_key_held += 1;
                } else if err == "CONFLICT" {
                    same_key_conflict += 1;
                }
                held || err == "CONFLICT"
            }
            Kind::Ghost => err == "UNAUTHENTICATED",
            Kind::ForeignSeat => err == "BAD_USER_INPUT",
            Kind::ReusedKey => err == "CONFLICT",
        };
        if !fine {
            wrong.push(format!("{kind:?}: {body}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "round {round}: {} wrong answers: {wrong:#?}",
        wrong.len()
    );
    assert_eq!(
        (same_key_held, same_key_conflict),
        (1, 1),
        "round {round}: one key sent to two schedules holds once"
    );
    assert_all_invariants(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_requests_fail_alone_in_storms_of_holds() {
    // The villain sends several holds a round: above the per-account booking rate.
    let app = TestApp::spawn_with(&[
        ("DATABASE_POOL_SIZE", "16"),
        ("BOOKING_RATE_PER_SECOND", "1000"),
        ("BOOKING_RATE_BURST", "1000"),
    ])
    .await;
    // Two schedules with room for every round's fans and poison.
    let rows = (ROUNDS * (FANS + 4)).div_ceil(20);
    let a = app.show(layout(rows, 20), 20).await;
    let b = app.show(layout(rows, 20), 20).await;
    let fans = app.bulk_users(FANS).await;
    let villain = app.bulk_users(1).await.remove(0);
    for round in 0..ROUNDS {
        storm(&app, &a, &b, &fans[..], &villain, round).await;
    }
}

/// A token of a user that does not exist is refused alone, before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_of_a_missing_user_is_unauthenticated() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let ghost = app
        .state
        .jwt
        .issue(987_654_321, boxoffice::auth::Role::User)
        .unwrap()
        .0;
    let body = hold(&app, &ghost, &show.schedule_id, &[&show.seats[0]], None).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(app.count("SELECT count(*) AS n FROM reservations").await, 0);
    assert_all_invariants(&app).await;
}

/// A key reused with other seats is a CONFLICT, and the first hold stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_reused_with_other_seats_is_a_conflict() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let fan = app.bulk_users(1).await.remove(0);
    let first = hold(&app, &fan.access, &show.schedule_id, &[&show.seats[0]], Some("k")).await;
    assert!(first["errors"].is_null(), "{first}");
    let again = hold(&app, &fan.access, &show.schedule_id, &[&show.seats[0]], Some("k")).await;
    assert_eq!(
        again["data"]["reserveSeats"]["id"],
        first["data"]["reserveSeats"]["id"]
    );
    let other = hold(&app, &fan.access, &show.schedule_id, &[&show.seats[1]], Some("k")).await;
    assert_eq!(code(&other), "CONFLICT", "{other}");
    assert_eq!(app.count("SELECT count(*) AS n FROM reservations").await, 1);
    assert_all_invariants(&app).await;
}
