//! Faults (issue 11): a frozen peer, killed database connections, a batch poisoned in a
//! way the decision step cannot see. Real PostgreSQL; the frozen peer is a session of its
//! own holding the schedule lock and going quiet, as a paused instance would.

use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use crate::common::{TestApp, code, layout};

const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }";

async fn hold(app: &TestApp, token: &str, schedule: &str, seat: &str) -> Value {
    app.gql(
        Some(token),
        RESERVE,
        json!({ "i": { "scheduleId": schedule, "seatIds": [seat] } }),
    )
    .await
}

/// A peer instance gone quiet mid-batch: a session with the server's own settings, in a
/// transaction holding the schedule lock.
async fn frozen_peer(app: &TestApp, schedule_id: &str) -> AsyncPgConnection {
    frozen_peer_locking(app, "schedules", schedule_id).await
}

/// A session holding one row of `table` locked in an open transaction.
pub(crate) async fn frozen_peer_locking(app: &TestApp, table: &str, id: &str) -> AsyncPgConnection {
    let url = boxoffice::db::session_url(&app.db.url, &app.state.config.database_timeouts).unwrap();
    let mut peer = AsyncPgConnection::establish(&url).await.unwrap();
    diesel::sql_query("BEGIN").execute(&mut peer).await.unwrap();
    diesel::sql_query(format!("SELECT id FROM {table} WHERE id = {id} FOR UPDATE"))
        .execute(&mut peer)
        .await
        .unwrap();
    peer
}

/// A peer instance frozen while its batch holds the schedule lock: with the lock timeout
/// the others answer UNAVAILABLE (retryable) within about a second instead of waiting, and
/// with the idle-in-transaction timeout PostgreSQL ends the frozen session, so holds go on
/// within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_peer_holding_the_schedule_lock_stalls_nobody_for_long() {
    let settings = [
        ("DATABASE_LOCK_TIMEOUT_MS", "800"),
        ("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS", "2000"),
    ];
    let app = TestApp::spawn_with(&settings).await;
    let show = app.show(layout(1, 10), 4).await;
    let fans = app.bulk_users(2).await;

    // The frozen peer, holding the lock.
    let peer = frozen_peer(&app, &show.schedule_id).await;

    let started = Instant::now();
    let blocked = hold(&app, &fans[0].access, &show.schedule_id, &show.seats[0]).await;
    let waited = started.elapsed();
    assert_eq!(code(&blocked), "UNAVAILABLE", "{blocked}");
    assert_eq!(blocked["errors"][0]["extensions"]["retryAfter"], 1);
    assert!(waited < Duration::from_millis(2500), "answered after {waited:?}");
    // Nothing was held by the refused request.
    assert_eq!(app.count("SELECT count(*) AS n FROM reservations").await, 0);

    // The frozen session is ended by PostgreSQL; holds succeed again within seconds.
    let mut held = None;
    while started.elapsed() < Duration::from_secs(8) {
        let body = hold(&app, &fans[1].access, &show.schedule_id, &show.seats[1]).await;
        if body["errors"].is_null() {
            held = Some(started.elapsed());
            break;
        }
        assert_eq!(code(&body), "UNAVAILABLE", "{body}");
    }
    let held = held.expect("holds resumed after the frozen session was ended");
    assert!(held < Duration::from_secs(5), "holds resumed after {held:?}");
    app.assert_invariants().await;
    drop(peer);
}

/// A batch that fails for a reason the decision step cannot see (here a trigger refusing
/// one user's reservation) is retried in halves: only that user's request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_poisoned_past_the_decision_fails_only_the_poisoned_request() {
    let app = TestApp::spawn_with(&[("DATABASE_POOL_SIZE", "16")]).await;
    let show = app.show(layout(2, 20), 4).await;
    let fans = app.bulk_users(30).await;
    let poisoned = fans[7].id;
    let mut conn = app.state.db.get().await.unwrap();
    diesel::sql_query(format!(
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.user_id = {poisoned} THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$"
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    diesel::sql_query(
        "CREATE TRIGGER poison BEFORE INSERT ON reservations FOR EACH ROW EXECUTE FUNCTION poison()",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(fans.len()));
    let tasks: Vec<_> = fans
        .iter()
        .enumerate()
        .map(|(i, fan)| {
            let state = app.state.clone();
            let barrier = barrier.clone();
            let request =
                boxoffice::booking::HoldRequest::seats(fan.id, vec![show.seats[i].parse().unwrap()], None);
            let schedule: i64 = show.schedule_id.parse().unwrap();
            tokio::spawn(async move {
                barrier.wait().await;
                (
                    request.user_id,
                    boxoffice::booking::hold_order(&state, schedule, request).await,
                )
            })
        })
        .collect();
    for t in tasks {
        let (user, outcome) = t.await.unwrap();
        if user == poisoned {
            assert_eq!(outcome.unwrap_err().code(), boxoffice::error::ErrorCode::Internal);
        } else {
            assert!(outcome.is_ok(), "user {user}: {outcome:?}");
        }
    }
    let stats = app.state.batcher.stats();
    assert!(std::sync::atomic::AtomicU64::load(&stats.failures, std::sync::atomic::Ordering::Relaxed) >= 1);
    app.assert_invariants().await;
}

async fn consumer_names(app: &TestApp) -> Vec<String> {
    let mut r = app.redis().await;
    let stream = boxoffice::orders::jobs::stream_key(app.state.kv().unwrap());
    let reply: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&stream)
        .arg("workers")
        .query_async(&mut r)
        .await
        .unwrap();
    reply.consumers.into_iter().map(|c| c.name).collect()
}

/// Dead order consumers with nothing pending are removed; an instance that shuts down takes
/// its own consumer out of the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_order_consumers_leave_the_group() {
    let mut app = TestApp::spawn_with(&[("ORDER_WORKERS", "1"), ("ORDER_CLAIM_IDLE_MS", "100")]).await;
    boxoffice::orders::jobs::ensure_group(app.state.kv().unwrap())
        .await
        .unwrap();
    // A consumer of an instance that died long ago, with nothing pending.
    let mut r = app.redis().await;
    let stream = boxoffice::orders::jobs::stream_key(app.state.kv().unwrap());
    let _: redis::Value = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(&stream)
        .arg("workers")
        .arg("dead-instance")
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(consumer_names(&app).await.contains(&"dead-instance".to_owned()));
    // Dead after ten seconds of silence (ten XREADGROUP blocks of a live worker).
    let deadline = Instant::now() + Duration::from_secs(16);
    while consumer_names(&app).await.contains(&"dead-instance".to_owned()) {
        assert!(Instant::now() < deadline, "the dead consumer was not removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // This instance's own consumer joins with its first order, and leaves when it stops.
    let show = app.show(layout(1, 4), 4).await;
    let fan = app.bulk_users(1).await.remove(0);
    app.ok(
        Some(&fan.access),
        "mutation($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId } }",
        json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while consumer_names(&app).await.is_empty() {
        assert!(Instant::now() < deadline, "the live worker never joined");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Settled and acknowledged: nothing pending (an instance with entries pending stays,
    // so that they are reclaimed rather than dropped).
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.count("SELECT count(*) AS n FROM reservations").await == 0 {
        assert!(Instant::now() < deadline, "the order was not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !consumer_names(&app).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the stopped instance stayed in the group"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Honest answers (I9): a caller that stops waiting before its batch starts withdraws its
/// request, which is then never committed; a request already in a running batch is answered
/// with that batch's real outcome (here the lock timeout), not earlier.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_that_gave_up_is_never_committed_afterwards() {
    let settings = [
        ("BOOKING_ANSWER_TIMEOUT_MS", "500"),
        ("DATABASE_LOCK_TIMEOUT_MS", "2500"),
        ("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS", "20000"),
    ];
    let app = TestApp::spawn_with(&settings).await;
    let show = app.show(layout(1, 10), 4).await;
    let fans = app.bulk_users(2).await;
    let peer = frozen_peer(&app, &show.schedule_id).await;

    // The first request's batch starts and waits for the lock; the second queues behind it.
    let started = Instant::now();
    let first = {
        let app_url = app.url("/graphql");
        let http = app.http.clone();
        let token = fans[0].access.clone();
        let body = json!({ "query": RESERVE, "variables": { "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[0]] } } });
        tokio::spawn(async move {
            let r: Value = http
                .post(app_url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = hold(&app, &fans[1].access, &show.schedule_id, &show.seats[1]).await;
    assert_eq!(code(&second), "UNAVAILABLE", "{second}");
    let (first, first_after) = first.await.unwrap();
    assert_eq!(code(&first), "UNAVAILABLE", "{first}");
    assert!(
        first_after >= Duration::from_millis(2000),
        "the request in the running batch waited for its real outcome, not {first_after:?}"
    );
    // The peer goes; the withdrawn request must never take effect.
    drop(peer);
    let third = hold(&app, &fans[0].access, &show.schedule_id, &show.seats[2]).await;
    assert!(third["errors"].is_null(), "{third}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM reservations WHERE user_id = {}",
            fans[1].id
        ))
        .await,
        0,
        "the withdrawn request was committed"
    );
    let withdrawn = std::sync::atomic::AtomicU64::load(
        &app.state.batcher.stats().withdrawn,
        std::sync::atomic::Ordering::Relaxed,
    );
    assert_eq!(withdrawn, 1);
    app.assert_invariants().await;
}

/// Redis refusing connections: calls that need it answer UNAVAILABLE within about a second,
/// and service comes back as soon as Redis does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_redis_fails_fast_and_recovers() {
    let proxy = crate::common::TcpProxy::start("127.0.0.1:6379").await;
    let redis_url = format!("redis://{}", proxy.addr);
    let app = TestApp::spawn_with(&[("REDIS_URL", redis_url.as_str())]).await;
    let show = app.show(layout(1, 10), 4).await;
    let fan = app.bulk_users(1).await.remove(0);
    let order = "mutation($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId } }";
    let input = |seat: &str| json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [seat] } });

    proxy.cut();
    for seat in [&show.seats[0], &show.seats[1]] {
        let started = Instant::now();
        let body = app.gql(Some(&fan.access), order, input(seat)).await;
        let took = started.elapsed();
        assert_eq!(code(&body), "UNAVAILABLE", "{body}");
        assert!(took < Duration::from_millis(1800), "answered after {took:?}");
    }
    // Holds on a schedule without a queue do not need Redis.
    let held = hold(&app, &fan.access, &show.schedule_id, &show.seats[2]).await;
    assert!(held["errors"].is_null(), "{held}");

    proxy.restore();
    let back = Instant::now();
    loop {
        let body = app.gql(Some(&fan.access), order, input(&show.seats[3])).await;
        if body["errors"].is_null() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(3),
            "Redis came back but orders did not: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis partitioned (connections accepted, nothing answered): nothing fails by itself, so
/// only the call bounds stand between a request and a hang. Calls that need Redis answer
/// UNAVAILABLE within about a second, `placeOrder` and `enterQueue` within two (their reply
/// wait, an attempt to settle the outcome on a fresh connection and the clock skew margin:
/// an UNAVAILABLE they give must mean "not done", see partition.rs), holds on a schedule
/// without a queue go on, and service comes back once the partition heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_redis_fails_fast_and_recovers() {
    let proxy = crate::common::TcpProxy::start("127.0.0.1:6379").await;
    let redis_url = format!("redis://{}", proxy.addr);
    let app = TestApp::spawn_with(&[("REDIS_URL", redis_url.as_str())]).await;
    let show = app.show(layout(1, 10), 4).await;
    let queued = app.show(layout(1, 4), 4).await;
    app.set_schedule(&queued.schedule_id, "queue_enabled = true")
        .await;
    let fans = app.bulk_users(3).await;
    let order = "mutation($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId } }";
    let enter = "mutation($s: ID!) { enterQueue(scheduleId: $s) { state } }";
    let input = |seat: &str| json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [seat] } });
    // Warm: the connection is up and the schedules' queue settings are known.
    app.ok(Some(&fans[0].access), order, input(&show.seats[0])).await;
    app.ok(Some(&fans[1].access), enter, json!({ "s": queued.schedule_id }))
        .await;

    proxy.partition();
    for round in 0..3 {
        let started = Instant::now();
        let body = app.gql(Some(&fans[1].access), order, input(&show.seats[1])).await;
        let took = started.elapsed();
        assert_eq!(code(&body), "UNAVAILABLE", "placeOrder, round {round}: {body}");
        assert!(
            took < Duration::from_millis(2000),
            "placeOrder answered after {took:?}"
        );

        let started = Instant::now();
        let body = app
            .gql(Some(&fans[2].access), enter, json!({ "s": queued.schedule_id }))
            .await;
        let took = started.elapsed();
        assert_eq!(code(&body), "UNAVAILABLE", "enterQueue, round {round}: {body}");
        assert!(
            took < Duration::from_millis(2000),
            "enterQueue answered after {took:?}"
        );
    }
    // Holds on a schedule without a queue do not need Redis, and do not wait for it.
    for (fan, seat) in [(&fans[1], &show.seats[2]), (&fans[2], &show.seats[3])] {
        let started = Instant::now();
        let held = hold(&app, &fan.access, &show.schedule_id, seat).await;
        let took = started.elapsed();
        assert!(held["errors"].is_null(), "{held}");
        assert!(took < Duration::from_millis(1800), "a hold took {took:?}");
    }

    proxy.restore();
    let back = Instant::now();
    loop {
        let body = app.gql(Some(&fans[1].access), order, input(&show.seats[4])).await;
        let entered = app
            .gql(Some(&fans[2].access), enter, json!({ "s": queued.schedule_id }))
            .await;
        if body["errors"].is_null() && entered["errors"].is_null() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(3),
            "the partition healed but Redis calls did not: {body} {entered}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.assert_invariants().await;
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let resp = app.http.get(app.url("/readyz")).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// /readyz follows Redis both ways within about a second: it says 503 soon after Redis goes
/// away, and 200 soon after it is back, however long it was away (a load balancer polling
/// it meanwhile must not push a reconnect backoff past the outage).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_follows_redis_within_a_second() {
    let proxy = crate::common::TcpProxy::start("127.0.0.1:6379").await;
    let redis_url = format!("redis://{}", proxy.addr);
    let app = TestApp::spawn_with(&[("REDIS_URL", redis_url.as_str())]).await;
    assert_eq!(ready(&app).await.0, 200);

    for fault in ["cut", "partition"] {
        match fault {
            "cut" => proxy.cut(),
            _ => proxy.partition(),
        }
        let down = Instant::now();
        loop {
            let (status, body) = ready(&app).await;
            if status == 503 {
                assert_eq!(body["redis"], "unreachable", "{body}");
                break;
            }
            assert!(
                down.elapsed() < Duration::from_millis(1500),
                "{fault}: still ready"
            );
        }
        // Polled as a load balancer would, for longer than any reconnect backoff.
        while down.elapsed() < Duration::from_secs(6) {
            let (status, _) = ready(&app).await;
            assert_eq!(status, 503, "{fault}: ready while Redis is away");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        proxy.restore();
        let back = Instant::now();
        loop {
            let (status, body) = ready(&app).await;
            if status == 200 {
                assert_eq!(body["redis"], "ok", "{body}");
                break;
            }
            assert!(
                back.elapsed() < Duration::from_millis(1200),
                "{fault}: Redis back for {:?}, /readyz still {status}: {body}",
                back.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

const ORDER: &str = "mutation($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId } }";
const ORDER_STATUS: &str = "query($j: String!) { order(jobId: $j) { status errorCode reservation { id } } }";

async fn order_settled(app: &TestApp, token: &str, job: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = app.ok(Some(token), ORDER_STATUS, json!({ "j": job })).await["order"].clone();
        if o["status"] == "DONE" || o["status"] == "FAILED" {
            return o;
        }
        assert!(Instant::now() < deadline, "order {job} never settled: {o}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A job as an older build left it: the client key claimed for it, and the job FAILED.
async fn failed_job(app: &TestApp, user_id: i64, key: &str, error_code: &str) -> String {
    let job = uuid::Uuid::new_v4().to_string();
    let kv = app.state.kv().unwrap();
    let job_key = boxoffice::orders::jobs::job_key(kv, &job);
    let mut r = app.redis().await;
    let () = redis::pipe()
        .cmd("SET")
        .arg(boxoffice::orders::jobs::claim_key(kv, user_id, key))
        .arg(&job)
        .arg("EX")
        .arg(600)
        .ignore()
        .hset_multiple(
            &job_key,
            &[
                ("status", "FAILED"),
                ("user_id", &user_id.to_string()),
                ("error_code", error_code),
                ("error_message", "from an older build"),
            ],
        )
        .ignore()
        .expire(&job_key, 600)
        .ignore()
        .query_async(&mut r)
        .await
        .unwrap();
    job
}

/// A job failed by a transient error (UNAVAILABLE; INTERNAL, as older builds failed a
/// database blip) is placed again with the same key: a new job runs, once, and the key then
/// answers that job. A job failed for a business reason keeps answering its outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_failed_by_a_transient_error_is_placed_again_with_its_key() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 10), 4).await;
    let fan = app.bulk_users(1).await.remove(0);
    let place = |seat: usize, key: &str| {
        let input = json!({ "i": { "scheduleId": show.schedule_id, "seatIds": [show.seats[seat]], "idempotencyKey": key } });
        let token = fan.access.clone();
        let app = &app;
        async move {
            app.ok(Some(&token), ORDER, input).await["placeOrder"]["jobId"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };

    for (seat, code) in [(0, "UNAVAILABLE"), (1, "INTERNAL")] {
        let key = format!("blip-{code}");
        let old = failed_job(&app, fan.id, &key, code).await;
        let new = place(seat, &key).await;
        assert_ne!(
            new, old,
            "a job FAILED:{code} was answered again instead of placed again"
        );
        let done = order_settled(&app, &fan.access, &new).await;
        assert_eq!(done["status"], "DONE", "{done}");
        // The key now answers the new job; the old one is still readable as it was.
        assert_eq!(place(seat, &key).await, new);
        let before = order_settled(&app, &fan.access, &old).await;
        assert_eq!(before["errorCode"], code, "{before}");
    }

    for code in ["SEAT_UNAVAILABLE", "CONFLICT"] {
        let key = format!("lost-{code}");
        let old = failed_job(&app, fan.id, &key, code).await;
        assert_eq!(place(2, &key).await, old, "a job FAILED:{code} is its outcome");
        assert_eq!(order_settled(&app, &fan.access, &old).await["errorCode"], code);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM reservations WHERE user_id = {}",
            fan.id
        ))
        .await,
        2
    );
    app.assert_invariants().await;
}

/// A second instance of `app` reaching PostgreSQL through a proxy that can hold its bytes,
/// with a reply timeout of 2 s (lock timeout 1.5 s).
pub(crate) async fn behind_a_proxy(app: &TestApp) -> (crate::common::TcpProxy, TestApp) {
    let proxy = crate::common::TcpProxy::start("127.0.0.1:5432").await;
    let db = app.db.shared();
    let url = format!("postgres://postgres@{}/{}", proxy.addr, db.name);
    let settings = [
        ("DATABASE_URL", url.as_str()),
        ("DATABASE_LOCK_TIMEOUT_MS", "1500"),
        ("BOOKING_REPLY_TIMEOUT_MS", "2000"),
    ];
    let state = boxoffice::state::AppState::connect(crate::common::test_config(&db, &settings))
        .await
        .unwrap();
    (proxy, TestApp::serve(db, state).await)
}

/// A partition between an instance and PostgreSQL that holds the bytes (the connection
/// stays open, nothing comes back) catches a batch mid-transaction: PostgreSQL's own
/// timeouts never see it and keepalive is answered, so only the instance's reply timeout
/// (`BOOKING_REPLY_TIMEOUT_MS`) stands between the caller and the partition's length. The
/// batch gives up before its COMMIT: UNAVAILABLE while the partition still holds, nothing
/// written, and the same request with its key holds once the network is back (issue 26).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_caught_by_a_database_partition_answers_within_its_reply_timeout() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let fan = &app.bulk_users(1).await[0];
    let schedule: i64 = show.schedule_id.parse().unwrap();
    let seat: i64 = show.seats[0].parse().unwrap();
    let (proxy, far) = behind_a_proxy(&app).await;
    let request =
        || boxoffice::booking::HoldRequest::seats(fan.id, vec![seat], Some("through-the-partition".into()));

    // Its batch waits for the schedule's lock (held here, directly), and then the network
    // goes: the lock timeout's error never reaches the instance.
    let mut peer = frozen_peer(&app, &show.schedule_id).await;
    let started = Instant::now();
    let caught = {
        let state = far.state.clone();
        let request = request();
        tokio::spawn(async move { boxoffice::booking::hold_order(&state, schedule, request).await })
    };
    let waiting = Instant::now();
    while app.lock_waiters().await == 0 {
        assert!(
            waiting.elapsed() < Duration::from_secs(10),
            "the batch never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.partition();
    let answer = tokio::time::timeout(Duration::from_secs(8), caught)
        .await
        .expect("the batch waited out the partition instead of its reply timeout")
        .unwrap();
    let took = started.elapsed();
    let e = answer.expect_err("a hold through a partition");
    assert_eq!(e.code(), boxoffice::error::ErrorCode::Unavailable, "{e:?}");
    assert!(
        took >= Duration::from_millis(1900),
        "answered after {took:?}, before the reply timeout"
    );
    diesel::sql_query("COMMIT").execute(&mut peer).await.unwrap();

    // Nothing of it was written: once the network is back, the same key holds, once.
    proxy.restore();
    let back = Instant::now();
    let held = loop {
        match boxoffice::booking::hold_order(&far.state, schedule, request()).await {
            Ok(row) => break row,
            Err(e) => {
                assert_eq!(e.code(), boxoffice::error::ErrorCode::Unavailable, "{e:?}");
                assert!(
                    back.elapsed() < Duration::from_secs(10),
                    "no hold after the partition: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(held.user_id, fan.id);
    let fan_id = fan.id;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM reservations WHERE user_id = {fan_id}"
        ))
        .await,
        1
    );
    app.assert_invariants().await;
}

/// The same partition catching a payment (its own transaction, not a batch) while it waits
/// for its reservation's row lock: it answers UNAVAILABLE within the reply timeout instead
/// of the partition's length (a payment waited a whole 25-s partition in the HA runs),
/// nothing is paid, and the same key pays once, after the network is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_caught_by_a_database_partition_answers_within_its_reply_timeout() {
    let app = TestApp::spawn().await;
    let show = app.show(layout(1, 4), 4).await;
    let fan = &app.bulk_users(1).await[0];
    app.ok(
        Some(&fan.access),
        "mutation { chargePoints(amount: 1000, idempotencyKey: \"c1\") { balanceAfter } }",
        json!({}),
    )
    .await;
    let held = hold(&app, &fan.access, &show.schedule_id, &show.seats[0]).await;
    let reservation = held["data"]["reserveSeats"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{held}"))
        .to_owned();
    let id: i64 = reservation.parse().unwrap();
    let (proxy, far) = behind_a_proxy(&app).await;

    let mut peer = frozen_peer_locking(&app, "reservations", &reservation).await;
    let started = Instant::now();
    let caught = {
        let state = far.state.clone();
        let fan_id = fan.id;
        tokio::spawn(
            async move { boxoffice::booking::pay(&state, fan_id, id, "through-the-partition").await },
        )
    };
    let waiting = Instant::now();
    while app.lock_waiters().await == 0 {
        assert!(
            waiting.elapsed() < Duration::from_secs(10),
            "the payment never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.partition();
    let answer = tokio::time::timeout(Duration::from_secs(8), caught)
        .await
        .expect("the payment waited out the partition instead of its reply timeout")
        .unwrap();
    let took = started.elapsed();
    let e = answer.expect_err("a payment through a partition");
    assert_eq!(e.code(), boxoffice::error::ErrorCode::Unavailable, "{e:?}");
    assert!(
        took >= Duration::from_millis(1900),
        "answered after {took:?}, before the reply timeout"
    );
    diesel::sql_query("COMMIT").execute(&mut peer).await.unwrap();
    let paid = async |status: &str| {
        app.count(&format!(
            "SELECT count(*) AS n FROM reservations WHERE id = {id} AND status = '{status}'"
        ))
        .await
    };
    assert_eq!(paid("held").await, 1, "nothing was paid");

    proxy.restore();
    let back = Instant::now();
    loop {
        match boxoffice::booking::pay(&far.state, fan.id, id, "through-the-partition").await {
            Ok(row) => break assert_eq!(row.id, id),
            Err(e) => {
                assert_eq!(e.code(), boxoffice::error::ErrorCode::Unavailable, "{e:?}");
                assert!(
                    back.elapsed() < Duration::from_secs(10),
                    "no payment after the partition: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(paid("confirmed").await, 1);
    let fan_id = fan.id;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM point_ledger WHERE user_id = {fan_id} AND kind = 'payment'"
        ))
        .await,
        1,
        "paid once"
    );
    app.assert_invariants().await;
}
