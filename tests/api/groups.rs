//! Many sales at once: the waiting batches of several schedules applied in one transaction
//! (`booking::batcher`'s groups, issue 28), with every answer and invariant as if each
//! schedule's batch had run alone.

use std::sync::atomic::{AtomicU64, Ordering};

use boxoffice::{
    booking::{self, HoldRequest},
    error::ErrorCode,
};
use diesel_async::SimpleAsyncConnection as _;

use crate::common::{Show, TestApp, layout};

fn schedule(show: &Show) -> i64 {
    show.schedule_id.parse().unwrap()
}

fn seat(show: &Show, i: usize) -> i64 {
    show.seats[i].parse().unwrap()
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

type Answer = Result<booking::ReservationRow, boxoffice::error::AppError>;

/// Polls `done` until it holds; a condition never met fails the test instead of hanging it.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "waited 30 s for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Keeps both group committers busy: each is given a batch of a schedule whose row this
/// test holds locked, so batches sent meanwhile wait, and the first committer freed takes
/// them all into one group (`release` lets go). Without this, which batches meet in a group
/// depends on timing.
struct Busy<'a> {
    conn: boxoffice::db::PooledConn<'a>,
    holds: Vec<tokio::task::JoinHandle<Answer>>,
}

async fn keep_committers_busy(app: &TestApp) -> Busy<'_> {
    let mut conn = app.state.db.get().await.unwrap();
    let mut holds = Vec::new();
    let fans = app.bulk_users(2).await;
    let mut locked = Vec::new();
    for fan in &fans {
        let show = app.show(layout(1, 2), 4).await;
        locked.push((fan.id, schedule(&show), seat(&show, 0)));
    }
    let ids: Vec<String> = locked.iter().map(|l| l.1.to_string()).collect();
    conn.batch_execute(&format!(
        "BEGIN; SELECT 1 FROM schedules WHERE id IN ({}) FOR UPDATE",
        ids.join(",")
    ))
    .await
    .unwrap();
    for (n, (user, schedule, seat)) in (1..).zip(locked) {
        let state = app.state.clone();
        holds.push(tokio::spawn(async move {
            booking::hold_order(&state, schedule, HoldRequest::seats(user, vec![seat], None)).await
        }));
        // One batch per committer: the first waits on its lock before the second is sent,
        // or both would go to the first committer as one group.
        until("a committer to wait on its locked schedule", || async {
            app.lock_waiters().await >= n
        })
        .await;
    }
    Busy { conn, holds }
}

impl Busy<'_> {
    async fn release(mut self) {
        self.conn.batch_execute("COMMIT").await.unwrap();
        for hold in self.holds {
            assert!(hold.await.unwrap().is_ok());
        }
    }
}

/// Sends every request at once while both committers are busy, and lets them go once every
/// request waits in the batcher: each schedule's first batch then waits for a committer
/// (the rest of its requests queue behind it), and the first committer freed takes all
/// those batches into one group. Returns the answers in order.
async fn grouped(app: &TestApp, requests: Vec<(i64, HoldRequest)>) -> Vec<Answer> {
    let busy = keep_committers_busy(app).await;
    let waiting = |app: &TestApp| app.state.batcher.stats().waiting.load(Ordering::Relaxed);
    assert_eq!(waiting(app), 0);
    let sent = requests.len() as u64;
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(schedule, request)| {
            let state = app.state.clone();
            tokio::spawn(async move { booking::hold_order(&state, schedule, request).await })
        })
        .collect();
    until("every request to wait in the batcher", || async {
        waiting(app) == sent
    })
    .await;
    busy.release().await;
    // A batch left for a later group once waited for traffic that never came: a hang is
    // a failure here, not a stuck suite.
    let answers = async {
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        answers
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), answers)
        .await
        .expect("every hold answered")
}

/// `n` shows of one row of `seats` seats each, four seats per user.
async fn sales(app: &TestApp, n: usize, seats: i32) -> Vec<Show> {
    let mut shows = Vec::new();
    for _ in 0..n {
        shows.push(app.show(layout(1, seats), 4).await);
    }
    shows
}

/// Twelve sales at once, each with a few buyers: their batches share transactions, every
/// buyer gets the seat asked for, of the schedule asked for, and every invariant holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_sales_at_once_share_transactions_and_keep_every_invariant() {
    let app = TestApp::spawn().await;
    let shows = sales(&app, 12, 10).await;
    let fans = app.bulk_users(120).await;
    let requests: Vec<(i64, HoldRequest)> = fans
        .iter()
        .enumerate()
        .map(|(i, fan)| {
            let show = &shows[i % shows.len()];
            (
                schedule(show),
                HoldRequest::seats(fan.id, vec![seat(show, i / shows.len())], None),
            )
        })
        .collect();
    let asked = requests.clone();
    let answers = grouped(&app, requests).await;
    for ((schedule, request), answer) in asked.iter().zip(&answers) {
        let row = answer
            .as_ref()
            .unwrap_or_else(|e| panic!("user {}: {e:?}", request.user_id));
        assert_eq!((row.schedule_id, row.user_id), (*schedule, request.user_id));
    }
    let stats = app.state.batcher.stats();
    assert_eq!(load(&stats.requests), 122);
    assert!(
        load(&stats.groups) >= 1,
        "no transaction held two schedules' batches"
    );
    assert_eq!(load(&stats.largest_group), 12, "every first batch in one group");
    assert_eq!(load(&stats.group_failures), 0);
    app.assert_invariants().await;
}

/// One user's key sent to two schedules at the same time, while other sales run: one of
/// the two holds, the other is told the key was used, and no group fails over it (a group
/// never carries one key twice: both parts would claim it from one snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_sent_to_two_schedules_at_once_holds_once() {
    let app = TestApp::spawn().await;
    let shows = sales(&app, 6, 20).await;
    let fans = app.bulk_users(40).await;
    let (a, b) = (&shows[0], &shows[1]);
    let mut requests = Vec::new();
    for (i, fan) in fans.iter().enumerate().take(20) {
        let key = Some(format!("both-{i}"));
        requests.push((
            schedule(a),
            HoldRequest::seats(fan.id, vec![seat(a, i)], key.clone()),
        ));
        requests.push((schedule(b), HoldRequest::seats(fan.id, vec![seat(b, i)], key)));
    }
    // Other sales, so that groups form around the two.
    for (i, fan) in fans.iter().enumerate().skip(20) {
        let show = &shows[2 + i % 4];
        requests.push((
            schedule(show),
            HoldRequest::seats(fan.id, vec![seat(show, i - 20)], None),
        ));
    }
    let answers = grouped(&app, requests).await;
    for i in 0..20 {
        let (first, second) = (&answers[2 * i], &answers[2 * i + 1]);
        let held = usize::from(first.is_ok()) + usize::from(second.is_ok());
        assert_eq!(held, 1, "user {i}: {first:?} / {second:?}");
        let refused = if first.is_err() { first } else { second };
        let e = refused.as_ref().unwrap_err();
        assert_eq!(e.code(), ErrorCode::Conflict, "user {i}: {e:?}");
    }
    assert!(answers[40..].iter().all(Result::is_ok));
    assert_eq!(load(&app.state.batcher.stats().group_failures), 0);
    app.assert_invariants().await;
}

/// A group that fails past the decisions (here a trigger refusing one user's reservation)
/// runs again batch by batch: only the poisoned request fails, and the other schedules of
/// its group hold their seats. One request per schedule, so each is its schedule's first
/// batch and all meet in the first group (a batch run again in halves is
/// `faults::a_batch_poisoned_past_the_decision_fails_only_the_poisoned_request`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poisoned_group_runs_again_batch_by_batch() {
    let app = TestApp::spawn().await;
    let shows = sales(&app, 8, 4).await;
    let fans = app.bulk_users(8).await;
    let poisoned = fans[5].id;
    let mut conn = app.state.db.get().await.unwrap();
    conn.batch_execute(&format!(
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.user_id = {poisoned} THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER poison BEFORE INSERT ON reservations FOR EACH ROW EXECUTE FUNCTION poison()"
    ))
    .await
    .unwrap();
    drop(conn);
    let requests: Vec<(i64, HoldRequest)> = fans
        .iter()
        .enumerate()
        .map(|(i, fan)| {
            let show = &shows[i];
            (
                schedule(show),
                HoldRequest::seats(fan.id, vec![seat(show, 0), seat(show, 3)], None),
            )
        })
        .collect();
    let users: Vec<i64> = requests.iter().map(|r| r.1.user_id).collect();
    let answers = grouped(&app, requests).await;
    for (user, answer) in users.iter().zip(&answers) {
        if *user == poisoned {
            assert_eq!(answer.as_ref().unwrap_err().code(), ErrorCode::Internal);
        } else {
            assert!(answer.is_ok(), "user {user}: {answer:?}");
        }
    }
    let stats = app.state.batcher.stats();
    assert_eq!(load(&stats.group_failures), 1);
    assert_eq!(load(&stats.largest_group), 8);
    app.assert_invariants().await;
}

/// A committer keeps its connection from one transaction to the next while holds keep
/// coming (the pool's check at each checkout is a round trip per batch). A kept connection
/// whose session the server closed meanwhile, as a primary shutting down does, is not the
/// next batch's failure: the batch runs again on a connection the pool checked, and holds.
#[tokio::test]
async fn a_kept_connection_closed_between_batches_costs_the_next_batch_nothing() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 10), 4).await;
    let fans = app.bulk_users(6).await;
    let stats = app.state.batcher.stats();
    let hold = |i: usize| {
        booking::hold_order(
            &app.state,
            schedule(&show),
            HoldRequest::seats(fans[i].id, vec![seat(&show, i)], None),
        )
    };
    // A connection is kept for a second after its commit: a try on a slow machine may miss
    // that window, so up to three tries. Either committer may meet its closed connection
    // first (they take batches in turn): every hold after the first must hold.
    for i in [0, 2, 4] {
        hold(i).await.expect("a hold after a kept connection was closed");
        let closed = app.close_other_sessions().await;
        assert!(closed >= 1, "the committer's connection was not found");
        hold(i + 1)
            .await
            .expect("a hold after a kept connection was closed");
        if load(&stats.kept_lost) > 0 {
            break;
        }
    }
    assert!(
        load(&stats.kept_lost) > 0,
        "no batch met a closed kept connection (kept and used: {})",
        load(&stats.on_kept)
    );
    app.assert_invariants().await;
}
