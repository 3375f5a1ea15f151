//! Two instances on one schedule: one leads its bookings, the other forwards to it
//! (`booking::leader`); the leader going away or Redis going away loses nothing and applies
//! nothing twice.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::common::{Show, TcpProxy, TestApp, code, layout};

const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id seatCount } }";
/// Every schedule busy enough to be led, from the first request.
const ALWAYS: [(&str, &str); 1] = [("BOOKING_FORWARD_MIN_PER_SECOND", "0")];

async fn hold(app: &TestApp, token: &str, show: &Show, seat: usize) -> Value {
    app.gql(
        Some(token),
        RESERVE,
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[seat]] } }),
    )
    .await
}

fn schedule_id(show: &Show) -> i64 {
    show.schedule_id.parse().unwrap()
}

fn forwarded(app: &TestApp) -> u64 {
    app.state.leadership.stats().forwarded.load(Ordering::Relaxed)
}

fn served(app: &TestApp) -> u64 {
    app.state.leadership.stats().served.load(Ordering::Relaxed)
}

fn batched(app: &TestApp) -> u64 {
    app.state.batcher.stats().requests.load(Ordering::Relaxed)
}

/// Requests sent to the follower are run in the leader's batches, and their answers,
/// reservations and refusals alike, come back as the leader gave them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_followers_holds_run_in_the_leaders_batches() {
    let leader = TestApp::spawn_with(&ALWAYS).await;
    let follower = leader.second_instance(&ALWAYS).await;
    let show = leader.show(layout(2, 10), 4).await;
    let fans = leader.bulk_users(11).await;

    let first = hold(&leader, &fans[0].access, &show, 0).await;
    assert!(first["errors"].is_null(), "{first}");
    assert!(leader.state.leadership.leads(schedule_id(&show)));

    let answers =
        futures_util::future::join_all((1..=10).map(|i| hold(&follower, &fans[i].access, &show, i))).await;
    for a in &answers {
        assert!(a["errors"].is_null(), "{a}");
    }
    assert_eq!(forwarded(&follower), 10);
    assert_eq!(served(&leader), 10);
    assert_eq!(batched(&follower), 0, "the follower ran a batch of its own");
    assert_eq!(batched(&leader), 11);

    // A refusal keeps its code and message across instances.
    let taken = hold(&follower, &fans[1].access, &show, 0).await;
    assert_eq!(code(&taken), "SEAT_UNAVAILABLE", "{taken}");
    assert_eq!(
        taken["errors"][0]["message"],
        "some of these seats are no longer available"
    );
    // Key-less forwarded requests were given a key the API never shows.
    let generated = leader
        .count("SELECT count(*) AS n FROM reservations WHERE idempotency_key LIKE '~fwd:%'")
        .await;
    assert_eq!(generated, 10);
    leader.assert_invariants().await;
}

/// Sends `n` key-less holds to `app` from `workers` concurrent clients, request `i` for seat
/// `i % seats` by user `i`; `midway` runs once `at` answers have come back. Returns the
/// answers in request order.
async fn stream(
    app: &TestApp,
    show: &Show,
    fans: &[crate::common::Session],
    n: usize,
    at: usize,
    midway: impl FnOnce() + Send + 'static,
) -> Vec<Value> {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let midway = Arc::new(std::sync::Mutex::new(Some(midway)));
    let answers = Arc::new(std::sync::Mutex::new(vec![Value::Null; n]));
    let seats = show.seats.len();
    let mut workers = Vec::new();
    for _ in 0..6 {
        let (next, done, midway, answers) = (next.clone(), done.clone(), midway.clone(), answers.clone());
        let url = app.url("/graphql");
        let http = app.http.clone();
        let schedule = show.schedule_id.clone();
        let seat_ids = show.seats.clone();
        let tokens: Vec<String> = fans.iter().map(|f| f.access.clone()).collect();
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let body: Value = http
                    .post(&url)
                    .bearer_auth(&tokens[i])
                    .json(&json!({ "query": RESERVE, "variables": { "i": { "scheduleId": schedule, "seatIds": [seat_ids[i % seats]] } } }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                answers.lock().unwrap()[i] = body;
                if done.fetch_add(1, Ordering::Relaxed) + 1 == at
                    && let Some(f) = midway.lock().unwrap().take()
                {
                    f();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    Arc::try_unwrap(answers).unwrap().into_inner().unwrap()
}

/// Every answer is a reservation or a refusal on the merits; each reservation answered
/// exists once, and nothing exists that was not answered.
async fn check_answers(app: &TestApp, show: &Show, answers: &[Value]) {
    let mut held = 0;
    for a in answers {
        if a["errors"].is_null() {
            held += 1;
        } else {
            assert!(
                ["SEAT_UNAVAILABLE", "SOLD_OUT"].contains(&code(a)),
                "not a real outcome: {a}"
            );
        }
    }
    let rows = app
        .count(&format!(
            "SELECT count(*) AS n FROM reservations WHERE schedule_id = {}",
            show.schedule_id
        ))
        .await;
    assert_eq!(rows, held, "reservations made differ from reservations answered");
    // Every seat was asked for twice, and a refusal means it was taken.
    assert_eq!(held as usize, show.seats.len());
    app.assert_invariants().await;
}

async fn takeover(crash: bool) {
    let leader = TestApp::spawn_with(&ALWAYS).await;
    let follower = leader.second_instance(&ALWAYS).await;
    let show = leader.show(layout(3, 10), 4).await;
    let fans = leader.bulk_users(60).await;
    let sid = schedule_id(&show);
    // Leading already: the leader's own users book before the stream.
    let r = hold(&leader, &fans[0].access, &show, 0).await;
    assert!(r["errors"].is_null(), "{r}");

    let leadership = &leader.state.leadership;
    let stopped_at = Arc::new(std::sync::Mutex::new(None));
    let mark = stopped_at.clone();
    let state = leader.state.clone();
    let started = Instant::now();
    let answers = stream(&follower, &show, &fans[1..], 59, 15, move || {
        if crash {
            state.leadership.simulate_crash();
        } else {
            state.leadership.stop();
        }
        *mark.lock().unwrap() = Some(Instant::now());
    })
    .await;
    let stopped_at = stopped_at.lock().unwrap().expect("the stream outlived the stop");
    let took = stopped_at.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "the rest of the stream took {took:?} after the leader stopped ({:?} in all)",
        started.elapsed()
    );
    assert!(forwarded(&follower) > 0, "nothing was forwarded before the stop");
    assert!(
        follower.state.leadership.leads(sid),
        "the follower did not take the lead"
    );
    assert!(!leadership.leads(sid) || crash);
    // The stream asked 59 requests for 30 seats (one was held before): each seat twice.
    let mut all = vec![r];
    all.extend(answers);
    check_answers(&leader, &show, &all[..]).await;
}

/// The leader shut down mid-stream (it releases its lease): the follower takes over at
/// once, and every request gets its real outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_follower_takes_over_when_the_leader_stops() {
    takeover(false).await;
}

/// The leader dies mid-stream (no release, no more replies, its running batches still
/// commit): the follower takes over when the lease expires, asks again with each unanswered
/// request's key, and gets the replay of what the dead leader committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_follower_takes_over_when_the_leader_dies() {
    takeover(true).await;
}

/// Redis unreachable: both instances keep booking, each in its own batches, without waiting
/// for Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_both_instances_book_alone() {
    let proxy = TcpProxy::start("127.0.0.1:6379").await;
    let url = format!("redis://{}", proxy.addr);
    let settings = [ALWAYS[0], ("REDIS_URL", url.as_str())];
    let leader = TestApp::spawn_with(&settings).await;
    let follower = leader.second_instance(&settings).await;
    let show = leader.show(layout(2, 10), 4).await;
    let fans = leader.bulk_users(12).await;
    let r = hold(&leader, &fans[0].access, &show, 0).await;
    assert!(r["errors"].is_null(), "{r}");
    let r = hold(&follower, &fans[1].access, &show, 1).await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(forwarded(&follower), 1);

    proxy.cut();
    for (i, fan) in fans.iter().enumerate().skip(2) {
        let app = if i % 2 == 0 { &leader } else { &follower };
        let started = Instant::now();
        let r = hold(app, &fan.access, &show, i).await;
        assert!(r["errors"].is_null(), "{r}");
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1500), "hold {i} took {took:?}");
    }
    assert_eq!(forwarded(&follower), 1, "forwarded while Redis was down");
    assert!(batched(&follower) >= 5, "the follower did not batch its own");
    leader.assert_invariants().await;
    assert_eq!(
        leader
            .count(&format!(
                "SELECT count(*) AS n FROM reservations WHERE schedule_id = {}",
                show.schedule_id
            ))
            .await,
        12
    );
}

/// A forwarded request's outcome lost although the leader ran it and still leads: a
/// blocking pop whose reader timed out (an instance frozen past its connection's response
/// timeout, as in the fault runs' SIGSTOP) took the reply off its list and dropped it. The
/// follower waited for it until its client gave up, and the hold existed. It now asks again
/// with the request's key once the outcome is overdue, and gets the replay: one hold,
/// answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forwarded_hold_whose_outcome_is_lost_is_asked_again_and_answered() {
    let settings = [ALWAYS[0], ("BOOKING_ANSWER_TIMEOUT_MS", "1000")];
    let leader = TestApp::spawn_with(&settings).await;
    let follower = leader.second_instance(&settings).await;
    let show = leader.show(layout(1, 4), 4).await;
    let fans = leader.bulk_users(2).await;
    let first = hold(&leader, &fans[0].access, &show, 0).await;
    assert!(first["errors"].is_null(), "{first}");
    assert!(leader.state.leadership.leads(schedule_id(&show)));

    leader.state.leadership.lose_replies();
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(25),
        hold(&follower, &fans[1].access, &show, 1),
    )
    .await
    .expect("the follower never answered: it waited for an outcome that was lost");
    let took = started.elapsed();
    assert!(answer["errors"].is_null(), "{answer}");
    assert_eq!(answer["data"]["reserveSeats"]["seatCount"], 1, "{answer}");
    // Overdue after the answer timeout (1 s) plus the reply timeout (5 s by default).
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    assert_eq!(forwarded(&follower), 1);
    assert_eq!(served(&leader), 1, "the leader ran it");
    assert_eq!(
        follower
            .state
            .leadership
            .stats()
            .resubmitted
            .load(Ordering::Relaxed),
        1,
        "the follower asked again"
    );
    let held = leader
        .count(&format!(
            "SELECT count(*) AS n FROM reservations WHERE user_id = {}",
            fans[1].id
        ))
        .await;
    assert_eq!(held, 1, "the request was applied twice, or not at all");
    leader.assert_invariants().await;
}
