//! What the fault runs do besides holds: `placeOrder` on a schedule of its own and
//! `enterQueue` on a queued one, both kept in Redis, and afterwards the check that nothing
//! they accepted was lost: every order answered with a job reaches a final state, and
//! everyone answered with a place in the queue still has it (issue 26).

use super::*;

const PLACE: &str = "mutation($i: ReserveSeatsInput!) { placeOrder(input: $i) { jobId } }";
const ORDER: &str = "query($j: String!) { order(jobId: $j) { status errorCode } }";
const ENTER: &str = "mutation($s: ID!) { enterQueue(scheduleId: $s) { state } }";
const STATUS: &str = "query($s: ID!) { queueStatus(scheduleId: $s) { state } }";
/// Orders a second over all order clients, and queue entries a second over all queue
/// clients: enough to see a stall, little next to the holds.
const ORDER_RATE: f64 = 10.0;
const ENTER_RATE: f64 = 1.0;
/// A waiting user shows a sign of life this often (the server drops waiters silent for
/// `QUEUE_ABANDON_SECONDS`, 30 by default).
const POLL_EVERY: Duration = Duration::from_secs(10);
/// How long the accepted orders are given to reach a final state after the sale.
pub(super) const SETTLE: Duration = Duration::from_secs(90);

/// The side load's schedules and users.
#[derive(Clone)]
pub(super) struct Side {
    pub(super) gql: client::Gql,
    pub(super) endpoints: Vec<String>,
    pub(super) order_schedule: i64,
    pub(super) order_seats: Vec<i64>,
    pub(super) order_users: Vec<setup::User>,
    pub(super) queue_schedule: i64,
    pub(super) queue_users: Vec<setup::User>,
}

/// An order answered with a job.
pub(super) struct Accepted {
    job: String,
    token: String,
}

/// A user answered with a place in the queue, and what their polls saw.
pub(super) struct Queued {
    token: String,
    endpoint: usize,
    /// The last answer that showed them in the queue (a sign of life), since the sale's start.
    last_seen: Duration,
    /// When a poll first answered NOT_IN_QUEUE.
    gone_at: Option<Duration>,
}

pub(super) struct SideResult {
    pub(super) attempts: Vec<Attempt>,
    pub(super) accepted: Vec<Accepted>,
    pub(super) queued: Vec<Queued>,
}

pub(super) async fn run(side: Side, t0: Instant, stop: Arc<AtomicBool>) -> SideResult {
    let side = Arc::new(side);
    let n = side.endpoints.len();
    let mut orders = Vec::new();
    let mut queues = Vec::new();
    let seats = Arc::new(Mutex::new(side.order_seats.clone()));
    let next_order_user = Arc::new(AtomicUsize::new(0));
    let next_queue_user = Arc::new(AtomicUsize::new(0));
    for c in 0..n {
        orders.push(tokio::spawn(order_client(
            side.clone(),
            c,
            t0,
            stop.clone(),
            seats.clone(),
            next_order_user.clone(),
        )));
        queues.push(tokio::spawn(queue_client(
            side.clone(),
            c,
            t0,
            stop.clone(),
            next_queue_user.clone(),
        )));
    }
    let mut out = SideResult {
        attempts: Vec::new(),
        accepted: Vec::new(),
        queued: Vec::new(),
    };
    for t in orders {
        if let Ok((attempts, accepted)) = t.await {
            out.attempts.extend(attempts);
            out.accepted.extend(accepted);
        }
    }
    for t in queues {
        if let Ok((attempts, queued)) = t.await {
            out.attempts.extend(attempts);
            out.queued.extend(queued);
        }
    }
    out
}

async fn order_client(
    side: Arc<Side>,
    c: usize,
    t0: Instant,
    stop: Arc<AtomicBool>,
    seats: Arc<Mutex<Vec<i64>>>,
    next_user: Arc<AtomicUsize>,
) -> (Vec<Attempt>, Vec<Accepted>) {
    let every = Duration::from_secs_f64(side.endpoints.len() as f64 / ORDER_RATE);
    let url = &side.endpoints[c];
    let schedule = side.order_schedule.to_string();
    let (mut attempts, mut accepted) = (Vec::new(), Vec::new());
    let mut n = 0u64;
    tokio::time::sleep(every.mul_f64(c as f64 / side.endpoints.len() as f64)).await;
    while !AtomicBool::load(&stop, Ordering::Relaxed) {
        let tick = Instant::now();
        let Some(seat) = seats.lock().unwrap_or_else(PoisonError::into_inner).pop() else {
            break;
        };
        let Some(user) = side.order_users.get(next_user.fetch_add(1, Ordering::Relaxed)) else {
            break;
        };
        n += 1;
        let key = format!("o{c}-{n}");
        let body = client::body(
            PLACE,
            json!({ "i": { "scheduleId": schedule, "seatIds": [seat.to_string()], "idempotencyKey": key } }),
        );
        let started = t0.elapsed();
        let (answer, _) = side.gql.post(url, Some(&user.token), body).await;
        let error = match answer {
            Answer::Data(d) => match d["placeOrder"]["jobId"].as_str() {
                Some(job) => {
                    accepted.push(Accepted {
                        job: job.to_owned(),
                        token: user.token.clone(),
                    });
                    None
                }
                None => Some("BENCH_NO_JOB".to_owned()),
            },
            Answer::Error(code) => Some(code),
        };
        if error.is_some() {
            seats
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(0, seat);
        }
        attempts.push(Attempt {
            kind: Kind::Order,
            started,
            ended: t0.elapsed(),
            endpoint: c,
            user_id: user.id,
            key,
            reference: None,
            error,
        });
        tokio::time::sleep(every.saturating_sub(tick.elapsed())).await;
    }
    (attempts, accepted)
}

async fn queue_client(
    side: Arc<Side>,
    c: usize,
    t0: Instant,
    stop: Arc<AtomicBool>,
    next_user: Arc<AtomicUsize>,
) -> (Vec<Attempt>, Vec<Queued>) {
    let every = Duration::from_secs_f64(side.endpoints.len() as f64 / ENTER_RATE);
    let url = &side.endpoints[c];
    let schedule = side.queue_schedule.to_string();
    let (mut attempts, mut queued) = (Vec::new(), Vec::<Queued>::new());
    tokio::time::sleep(every.mul_f64(c as f64 / side.endpoints.len() as f64)).await;
    while !AtomicBool::load(&stop, Ordering::Relaxed) {
        let tick = Instant::now();
        if let Some(user) = side.queue_users.get(next_user.fetch_add(1, Ordering::Relaxed)) {
            let started = t0.elapsed();
            let (answer, _) = side
                .gql
                .post(
                    url,
                    Some(&user.token),
                    client::body(ENTER, json!({ "s": schedule })),
                )
                .await;
            let error = match answer {
                Answer::Data(d) => match d["enterQueue"]["state"].as_str() {
                    Some("WAITING" | "ADMITTED" | "EARLY") => {
                        queued.push(Queued {
                            token: user.token.clone(),
                            endpoint: c,
                            last_seen: t0.elapsed(),
                            gone_at: None,
                        });
                        None
                    }
                    other => Some(format!("BENCH_STATE_{}", other.unwrap_or("NONE"))),
                },
                Answer::Error(code) => Some(code),
            };
            attempts.push(Attempt {
                kind: Kind::Enter,
                started,
                ended: t0.elapsed(),
                endpoint: c,
                user_id: user.id,
                key: String::new(),
                reference: None,
                error,
            });
        }
        // The waiting users' signs of life, as their pages would poll.
        for q in queued.iter_mut().filter(|q| q.gone_at.is_none()) {
            if AtomicBool::load(&stop, Ordering::Relaxed) {
                break;
            }
            if t0.elapsed() < q.last_seen + POLL_EVERY {
                continue;
            }
            poll(&side, q, t0).await;
        }
        tokio::time::sleep(every.saturating_sub(tick.elapsed())).await;
    }
    (attempts, queued)
}

/// One `queueStatus` of a queued user; true when it answered.
async fn poll(side: &Side, q: &mut Queued, t0: Instant) -> bool {
    let body = client::body(STATUS, json!({ "s": side.queue_schedule.to_string() }));
    let (answer, _) = side
        .gql
        .post(&side.endpoints[q.endpoint], Some(&q.token), body)
        .await;
    match answer {
        Answer::Data(d) => {
            match d["queueStatus"]["state"].as_str() {
                Some("NOT_IN_QUEUE") | None => {
                    q.gone_at.get_or_insert(t0.elapsed());
                }
                Some(_) => q.last_seen = t0.elapsed(),
            }
            true
        }
        Answer::Error(_) => false,
    }
}

/// What became of the accepted orders and the queue places.
pub(super) struct Outcome {
    pub(super) done: usize,
    pub(super) failed: BTreeMap<String, usize>,
    /// Accepted orders without a final state after `SETTLE` (their job ids).
    pub(super) unsettled: Vec<String>,
    /// Accepted orders whose job is gone (NOT_FOUND).
    pub(super) vanished: Vec<String>,
    /// Places gone although their user kept polling (a poll within the abandon time).
    pub(super) places_lost: usize,
    /// Places gone after their user was silent longer than the server waits.
    pub(super) places_abandoned: usize,
    pub(super) places_kept: usize,
}

pub(super) async fn settle(
    side: &Side,
    accepted: &[Accepted],
    queued: &mut [Queued],
    t0: Instant,
) -> Outcome {
    let mut out = Outcome {
        done: 0,
        failed: BTreeMap::new(),
        unsettled: Vec::new(),
        vanished: Vec::new(),
        places_lost: 0,
        places_abandoned: 0,
        places_kept: 0,
    };
    // The queue first: its places must be read before anyone's silence runs out.
    for q in queued.iter_mut() {
        if q.gone_at.is_some() {
            continue;
        }
        for _ in 0..20 {
            if poll(side, q, t0).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let abandon = Duration::from_secs(30);
    for q in queued.iter() {
        match q.gone_at {
            None => out.places_kept += 1,
            Some(at) if at.saturating_sub(q.last_seen) > abandon => out.places_abandoned += 1,
            Some(_) => out.places_lost += 1,
        }
    }
    let deadline = Instant::now() + SETTLE;
    let mut pending: Vec<&Accepted> = accepted.iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for a in pending {
            let body = client::body(ORDER, json!({ "j": a.job }));
            match side.gql.post(&side.endpoints[0], Some(&a.token), body).await.0 {
                Answer::Data(d) => match d["order"]["status"].as_str() {
                    Some("DONE") => out.done += 1,
                    Some("FAILED") => {
                        let code = d["order"]["errorCode"].as_str().unwrap_or("NO_CODE").to_owned();
                        *out.failed.entry(code).or_default() += 1;
                    }
                    _ => still.push(a),
                },
                Answer::Error(code) if code == "NOT_FOUND" => out.vanished.push(a.job.clone()),
                Answer::Error(_) => still.push(a),
            }
        }
        pending = still;
        if pending.is_empty() || Instant::now() > deadline {
            out.unsettled = pending.iter().map(|a| a.job.clone()).collect();
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    out
}
