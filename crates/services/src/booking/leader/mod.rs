//! One instance leads a busy schedule's bookings; the others forward their holds to it.
//!
//! The schedule row lock serializes batch transactions, so two instances each batching their
//! own requests make two half-size batches that run one after the other: fewer seats per
//! commit than one instance alone. Here one instance takes a Redis lease on a busy schedule
//! (`{s:ID}:book:lease`) and the others push their requests onto the schedule's inbox (a
//! Redis list); the leader pops them into its own batcher, so its batches hold everyone's
//! requests, and pushes each outcome onto the forwarding instance's reply list.
//!
//! What the lease is not: a guard. Every batch still takes the schedule row lock and decides
//! under it, so two instances that both believe they lead (a lease that expired under a
//! stalled leader) only make two smaller batches, as without this module.
//!
//! When it is used: only with Redis, and only on a schedule that receives at least
//! `BOOKING_FORWARD_MIN_PER_SECOND` holds per second on this instance. A quiet schedule's
//! batches have one request anyway, and a round trip through Redis would only add latency.
//! Any Redis failure or slowness (calls on the request path get `REDIS_BUDGET`) makes the
//! instance batch alone for `LOCAL_AFTER_FAILURE`: bookings never wait for Redis.
//!
//! Honest answers (I9) across instances:
//! - Every forwarded request carries an idempotency key: the client's, or one generated
//!   here (`~fwd:` and a UUID). The key is what makes asking again safe: a second attempt
//!   of a request that a vanished leader committed replays that reservation instead of
//!   holding again, and one that it never ran is decided afresh.
//! - A request is the leader's once popped from the inbox. Until then its follower can take
//!   it back (`LREM`, atomic with the pop): that is how a follower that stops waiting
//!   withdraws it, and answers "nothing was held" truthfully.
//! - A popped request gets its real outcome from the leader. If the leader loses its lease
//!   (died, stalled, cut from Redis) before answering, the follower asks again with the
//!   same key in its own batch and waits for that outcome, without withdrawing. It does the
//!   same when no outcome has come a reply timeout after its answer timeout although the
//!   leader still leads: a blocking pop (BLPOP) whose reader gave up on its connection, an
//!   instance frozen or starved past the response timeout, took the request or its reply
//!   off the list and dropped it, and nothing else would ever answer.
//!
//! Generated keys are stored in `reservations.idempotency_key` like a client's; the API
//! never shows a reservation's key, and a key is scoped to its user, so no client meets one.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{AsyncCommands as _, Script};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use super::{
    HoldRequest,
    batcher::{self, Batcher, Wait},
    store::ReservationRow,
};
use crate::{
    error::{AppError, AppResult, ErrorCode},
    kv::{Kv, KvConn},
};

mod lead;
mod wire;

use lead::lead;
use wire::*;

/// A leader that stops renewing loses the schedule this long after its last renewal.
const LEASE: Duration = Duration::from_millis(2_000);
/// How often a leader renews its lease.
const RENEW: Duration = Duration::from_millis(500);
/// How long a follower trusts what it last read of the lease.
const ROLE_FRESH: Duration = Duration::from_millis(500);
/// How often a follower waiting for an outcome checks that its leader still leads.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// The longest a Redis call on a booking's path may take before the booking goes local.
const REDIS_BUDGET: Duration = Duration::from_millis(250);
/// After a Redis failure, schedules are batched locally this long before Redis is tried
/// again.
const LOCAL_AFTER_FAILURE: Duration = Duration::from_secs(2);
/// A leader with no request (its own or forwarded) for this long releases the schedule.
const LEAD_IDLE: Duration = Duration::from_secs(10);
/// A reply listener with nothing to wait for this long exits.
const LISTEN_IDLE: Duration = Duration::from_secs(30);
/// Seconds a leader blocks on an empty inbox between lease renewals.
const INBOX_BLOCK_S: f64 = 0.25;
/// Entries taken from a list at once after the first one.
const DRAIN: usize = 255;
/// A reply list of an instance that stopped reading it vanishes after this long.
const REPLY_TTL_S: i64 = 60;
/// The prefix of generated idempotency keys.
pub const GENERATED_KEY_PREFIX: &str = "~fwd:";

/// Counters for tests and metrics.
#[derive(Default)]
pub struct LeaderStats {
    /// Requests this instance forwarded to another instance's batches.
    pub forwarded: AtomicU64,
    /// Forwarded requests this instance ran for other instances.
    pub served: AtomicU64,
    /// Forwarded requests asked again after their leader went away or Redis failed.
    pub resubmitted: AtomicU64,
    /// Forwarded requests taken back before any leader took them (the caller gave up).
    pub withdrawn: AtomicU64,
    /// Times this instance became leader of a schedule, and stopped being one.
    pub gained: AtomicU64,
    pub lost: AtomicU64,
    /// Times Redis failed on the booking path, making this instance batch alone for a while.
    pub redis_failures: AtomicU64,
}

/// What the hold path needs, handed down from the composition root: this instance's
/// leadership and batcher, Redis (if any) and the forwarding threshold. Never the whole
/// `Services`: routing reads nothing else.
#[derive(Clone)]
pub struct Holds {
    pub leadership: Arc<Leadership>,
    pub batcher: Arc<Batcher>,
    pub redis: Option<Kv>,
    /// `BOOKING_FORWARD_MIN_PER_SECOND`.
    pub forward_min_per_second: u64,
}

/// This instance's part in each schedule's bookings. One per instance (in `Holds`).
pub struct Leadership {
    /// Names this instance in leases and reply addresses.
    instance: String,
    schedules: Mutex<HashMap<i64, Arc<Schedule>>>,
    /// Forwarded requests waiting for their outcome, by forwarding id.
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    listening: AtomicBool,
    /// Shut down: lead nothing, forward nothing.
    stopped: AtomicBool,
    /// Tests only: behave as a process that died (no lease release, no replies).
    crashed: AtomicBool,
    /// Tests only: lead on, but send no replies (as if each were lost on the way).
    losing_replies: AtomicBool,
    stats: LeaderStats,
}

impl Default for Leadership {
    fn default() -> Self {
        Self {
            instance: uuid::Uuid::new_v4().simple().to_string(),
            schedules: Mutex::default(),
            waiting: Mutex::default(),
            listening: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
            losing_replies: AtomicBool::new(false),
            stats: LeaderStats::default(),
        }
    }
}

#[derive(Default)]
struct Schedule {
    role: Mutex<Role>,
    rate: Mutex<Rate>,
}

#[derive(Default)]
enum Role {
    #[default]
    Unknown,
    /// This instance leads; the flag turns false when its lead task ends.
    Leading(Arc<AtomicBool>),
    Following {
        leader: String,
        checked: Instant,
    },
    /// Redis failed: batch alone until then.
    Local {
        until: Instant,
    },
}

/// Requests per second on one schedule, over whole seconds.
#[derive(Default)]
struct Rate {
    window: Option<Instant>,
    this: u64,
    last: u64,
    last_hit: Option<Instant>,
}

impl Rate {
    /// Counts a request; returns the rate: the busier of this second and the last.
    fn hit(&mut self, now: Instant) -> u64 {
        let start = *self.window.get_or_insert(now);
        let elapsed = now.duration_since(start);
        if elapsed >= Duration::from_secs(1) {
            self.last = if elapsed < Duration::from_secs(2) {
                self.this
            } else {
                0
            };
            self.this = 0;
            self.window = Some(now);
        }
        self.this += 1;
        self.last_hit = Some(now);
        self.this.max(self.last)
    }

    fn idle_for(&self, now: Instant) -> Duration {
        self.last_hit.map_or(Duration::MAX, |t| now.duration_since(t))
    }
}

enum Route {
    Local,
    Forward(String),
}

impl Leadership {
    pub fn stats(&self) -> &LeaderStats {
        &self.stats
    }

    /// Whether this instance leads the schedule's bookings now.
    pub fn leads(&self, schedule_id: i64) -> bool {
        let s = self.schedule(schedule_id);
        let role = s.role.lock().unwrap_or_else(PoisonError::into_inner);
        matches!(&*role, Role::Leading(alive) if alive.load(Ordering::Acquire))
    }

    /// Stops leading and forwarding (shutdown): leases are released.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// Tests only: from now on behave like a process that died: stop renewing leases
    /// without releasing them, and send no more replies (batches already running still
    /// commit, as they would in PostgreSQL after a crash of their instance).
    #[cfg(feature = "negative-control")]
    pub fn simulate_crash(&self) {
        self.crashed.store(true, Ordering::Release);
        self.stopped.store(true, Ordering::Release);
    }

    /// Tests only: go on leading and running forwarded requests, but let every outcome go
    /// astray, as when a blocking pop that took it (or the request) timed out on its
    /// reader's side and dropped it.
    #[cfg(feature = "negative-control")]
    pub fn lose_replies(&self) {
        self.losing_replies.store(true, Ordering::Release);
    }

    fn schedule(&self, schedule_id: i64) -> Arc<Schedule> {
        self.schedules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(schedule_id)
            .or_default()
            .clone()
    }

    fn set_role(&self, schedule_id: i64, role: Role) {
        let s = self.schedule(schedule_id);
        *s.role.lock().unwrap_or_else(PoisonError::into_inner) = role;
    }

    fn redis_failed(&self, schedule_id: i64, e: &AppError) {
        self.stats.redis_failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("booking_leader_redis_failures_total").increment(1);
        tracing::warn!(schedule.id = schedule_id, error = %e, "booking leadership: Redis failed; batching locally for a while");
        self.set_role(
            schedule_id,
            Role::Local {
                until: Instant::now() + LOCAL_AFTER_FAILURE,
            },
        );
    }

    /// Where this instance sends a request for the schedule now.
    async fn route(&self, state: &Holds, kv: &Kv, schedule_id: i64) -> Route {
        let s = self.schedule(schedule_id);
        {
            let role = s.role.lock().unwrap_or_else(PoisonError::into_inner);
            match &*role {
                Role::Leading(alive) if alive.load(Ordering::Acquire) => return Route::Local,
                Role::Following { leader, checked } if checked.elapsed() < ROLE_FRESH => {
                    return Route::Forward(leader.clone());
                }
                Role::Local { until } if Instant::now() < *until => return Route::Local,
                _ => {}
            }
        }
        match acquire(kv, schedule_id, &self.instance).await {
            Ok(holder) if holder == self.instance => {
                let mut role = s.role.lock().unwrap_or_else(PoisonError::into_inner);
                if !matches!(&*role, Role::Leading(alive) if alive.load(Ordering::Acquire)) {
                    let alive = Arc::new(AtomicBool::new(true));
                    *role = Role::Leading(alive.clone());
                    self.stats.gained.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("booking_leadership_changes_total", "change" => "gained").increment(1);
                    tracing::info!(schedule.id = schedule_id, "leading this schedule's bookings");
                    tokio::spawn(lead(state.clone(), schedule_id, s.clone(), alive));
                }
                Route::Local
            }
            Ok(holder) => {
                *s.role.lock().unwrap_or_else(PoisonError::into_inner) = Role::Following {
                    leader: holder.clone(),
                    checked: Instant::now(),
                };
                Route::Forward(holder)
            }
            Err(e) => {
                self.redis_failed(schedule_id, &e);
                Route::Local
            }
        }
    }

    fn ensure_listener(&self, state: &Holds) {
        if !self.listening.swap(true, Ordering::AcqRel) {
            tokio::spawn(listen(state.clone()));
        }
    }

    fn deliver(&self, raw: &str) {
        let reply: Reply = match serde_json::from_str(raw) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "booking leadership: unreadable reply");
                return;
            }
        };
        let waiter = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&reply.id);
        // None: its caller gave up already (and took the request back or asked again).
        if let Some(tx) = waiter {
            let _ = tx.send(reply.outcome);
        }
    }
}

/// A forwarded request's place among the waiting, removed however its wait ends.
struct Waiting<'a>(&'a Leadership, String);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.1);
    }
}

/// Books a hold: in this instance's batch, or forwarded to the schedule's leader.
pub(super) async fn submit(
    state: &Holds,
    schedule_id: i64,
    request: HoldRequest,
) -> AppResult<ReservationRow> {
    let l = &state.leadership;
    let Some(kv) = state.redis.as_ref() else {
        return batcher::submit(&state.batcher, schedule_id, request, Wait::Withdraw).await;
    };
    let rate = l
        .schedule(schedule_id)
        .rate
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .hit(Instant::now());
    if l.stopped.load(Ordering::Acquire) || rate < state.forward_min_per_second {
        return batcher::submit(&state.batcher, schedule_id, request, Wait::Withdraw).await;
    }
    match l.route(state, kv, schedule_id).await {
        Route::Local => batcher::submit(&state.batcher, schedule_id, request, Wait::Withdraw).await,
        Route::Forward(leader) => forward(state, kv, schedule_id, leader, request).await,
    }
}

/// Sends a request to the schedule's leader and waits for its outcome (see the module
/// comment for what happens when the leader goes away).
async fn forward(
    state: &Holds,
    kv: &Kv,
    schedule_id: i64,
    leader: String,
    mut request: HoldRequest,
) -> AppResult<ReservationRow> {
    let l = &state.leadership;
    if request.idempotency_key.is_none() {
        request.idempotency_key = Some(format!("{GENERATED_KEY_PREFIX}{}", uuid::Uuid::new_v4().simple()));
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let envelope = serde_json::to_string(&Envelope {
        id: id.clone(),
        reply_to: reply_key(kv, &l.instance),
        request: request.clone(),
    })
    .map_err(AppError::internal)?;
    let (tx, mut rx) = oneshot::channel();
    l.waiting
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id.clone(), tx);
    let _waiting = Waiting(l, id);
    // After registering: a listener idle for `LISTEN_IDLE` exits only if it then finds
    // nobody waiting, so one that saw this waiter stays, or this call starts a new one.
    // (Before it, a listener could exit between this call and the registration, and the
    // outcome would lie unread in the reply list.)
    l.ensure_listener(state);
    let inbox = inbox_key(kv, schedule_id);
    let started = Instant::now();
    if let Err(e) = bounded(kv.conn().rpush::<_, _, i64>(&inbox, &envelope)).await {
        // Perhaps pushed all the same: a leader may run it, so ask here with its key and
        // wait for that answer whatever it takes.
        l.redis_failed(schedule_id, &e);
        return resubmit(state, schedule_id, request, "redis").await;
    }
    l.stats.forwarded.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("booking_forwarded_total").increment(1);
    let deadline = started + state.batcher.answer_timeout();
    // Once a leader is known to have popped the request, only its outcome (or a replay)
    // answers; if none has come by this time, the request is asked again (below).
    let mut popped: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let wait = if popped.is_some() {
            CHECK_EVERY
        } else {
            CHECK_EVERY.min(deadline.saturating_duration_since(now))
        };
        match tokio::time::timeout(wait, &mut rx).await {
            Ok(Ok(outcome)) => {
                metrics::histogram!("booking_forward_seconds").record(started.elapsed().as_secs_f64());
                return outcome.into();
            }
            // The sender went without a word (cannot happen while we wait): ask again.
            Ok(Err(_)) => return resubmit(state, schedule_id, request, "lost_reply").await,
            Err(_) => {}
        }
        let now = Instant::now();
        let late = now >= deadline;
        let current = holder(kv, schedule_id).await;
        let leads = matches!(&current, Ok(Some(h)) if *h == leader);
        match popped {
            _ if leads && !late => continue,
            Some(ask_again) if leads && now < ask_again => continue,
            // Popped by a leader that still leads, and no outcome: a blocking pop whose
            // reader gave up on its connection (an instance frozen or starved past the
            // response timeout) took the request or its reply off the list and dropped
            // it, and nothing would ever answer. Asking again with the key is safe.
            Some(_) if leads => {
                tracing::warn!(
                    schedule.id = schedule_id,
                    "a forwarded booking's outcome is overdue although its leader leads; asking again with its key"
                );
                return resubmit(state, schedule_id, request, "no_reply").await;
            }
            _ => {}
        }
        if current.is_err() {
            return resubmit(state, schedule_id, request, "redis").await;
        }
        if popped.is_none() {
            match bounded(kv.conn().lrem::<_, _, i64>(&inbox, 1, &envelope)).await {
                Ok(1) => {
                    // Taken back before any leader saw it: nobody will run it.
                    l.set_role(schedule_id, Role::Unknown);
                    if late {
                        l.stats.withdrawn.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("booking_forward_withdrawn_total").increment(1);
                        return Err(AppError::unavailable(anyhow::anyhow!(
                            "forwarded booking timed out before a batch took it; nothing was held"
                        )));
                    }
                    l.stats.resubmitted.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("booking_forward_resubmitted_total", "reason" => "leader_gone")
                        .increment(1);
                    return Box::pin(submit(state, schedule_id, request)).await;
                }
                // A running batch's database time is bounded by the reply timeout: that
                // long after the pop was seen, the outcome is overdue.
                Ok(_) => popped = Some(now.max(deadline) + state.batcher.reply_timeout()),
                Err(_) => return resubmit(state, schedule_id, request, "redis").await,
            }
            if leads {
                continue;
            }
        }
        // Popped by a leader that no longer leads: it may have committed it or not.
        l.set_role(schedule_id, Role::Unknown);
        return resubmit(state, schedule_id, request, "leader_gone").await;
    }
}

/// Asks again in this instance's batch, with the request's key, and waits for the real
/// outcome: a replay of what the other attempt committed, or a fresh decision.
async fn resubmit(
    state: &Holds,
    schedule_id: i64,
    request: HoldRequest,
    reason: &'static str,
) -> AppResult<ReservationRow> {
    let l = &state.leadership;
    l.stats.resubmitted.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("booking_forward_resubmitted_total", "reason" => reason).increment(1);
    batcher::submit(&state.batcher, schedule_id, request, Wait::Patient).await
}

/// Reads this instance's reply list and hands each outcome to its waiting request.
async fn listen(state: Holds) {
    let l = &state.leadership;
    let Some(kv) = state.redis.as_ref() else {
        l.listening.store(false, Ordering::Release);
        return;
    };
    let key = reply_key(kv, &l.instance);
    let mut idle_since = Instant::now();
    loop {
        let mut conn = match blocking_conn(kv).await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        loop {
            if l.waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
            {
                if idle_since.elapsed() > LISTEN_IDLE {
                    l.listening.store(false, Ordering::Release);
                    // A request that registered meanwhile needs a listener.
                    if l.waiting
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_empty()
                        || l.listening.swap(true, Ordering::AcqRel)
                    {
                        return;
                    }
                }
            } else {
                idle_since = Instant::now();
            }
            match pop_all(&mut conn, &key, 1.0).await {
                Ok(replies) => {
                    for raw in replies {
                        l.deliver(&raw);
                    }
                }
                Err(_) => {
                    // Waiting requests notice the failure themselves and ask again.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
        }
    }
}

/// Shuts leadership down when `stop` turns true.
pub(super) fn stop_on(leadership: Arc<Leadership>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let _ = stop.wait_for(|s| *s).await;
        leadership.stop();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(e: AppError) -> async_graphql::Error {
        let wire = serde_json::to_string(&Outcome::from(Err::<ReservationRow, _>(e))).unwrap();
        let back: AppResult<ReservationRow> = serde_json::from_str::<Outcome>(&wire).unwrap().into();
        back.unwrap_err().into()
    }

    fn shown(e: AppError) -> serde_json::Value {
        let e: async_graphql::Error = e.into();
        serde_json::json!({ "message": e.message, "extensions": e.extensions })
    }

    #[test]
    fn errors_cross_instances_as_the_api_shows_them() {
        let errors = [
            AppError::rule(
                ErrorCode::SeatUnavailable,
                "some of these seats are no longer available",
            ),
            AppError::rule(ErrorCode::SoldOut, "this performance is sold out"),
            AppError::bad_input("input.seatIds", "seat 9 is not a seat of this performance"),
            AppError::Conflict("key used".into()),
            AppError::NotFound("schedule"),
            AppError::Unauthenticated("unknown user"),
            AppError::RateLimited { retry_after_s: 7 },
            AppError::unavailable(anyhow::anyhow!("pool timed out")),
            AppError::internal(anyhow::anyhow!("secret SQL")),
        ];
        for e in errors {
            let expected = shown(e.clone());
            let got = round_trip(e);
            let got = serde_json::json!({ "message": got.message, "extensions": got.extensions });
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn requests_cross_whole() {
        use boxoffice_core::request::Want;
        for want in [
            Want::Seats(vec![1, 2]),
            Want::BestAvailable {
                count: 3,
                grade: Some("VIP".into()),
            },
        ] {
            let request = HoldRequest {
                user_id: 3,
                want,
                idempotency_key: Some("k".into()),
                origin: crate::booking::Origin::Order,
            };
            let raw = serde_json::to_string(&Envelope {
                id: "x".into(),
                reply_to: "r".into(),
                request: request.clone(),
            })
            .unwrap();
            let back: Envelope = serde_json::from_str(&raw).unwrap();
            assert_eq!(back.request, request);
        }
    }

    #[test]
    fn the_rate_counts_whole_seconds() {
        let t0 = Instant::now();
        let mut r = Rate::default();
        for _ in 0..9 {
            r.hit(t0);
        }
        assert_eq!(r.hit(t0), 10);
        // The next second starts with the last one's count as the rate.
        assert_eq!(r.hit(t0 + Duration::from_millis(1_100)), 10);
        // After a quiet second, only the current one counts.
        assert_eq!(r.hit(t0 + Duration::from_millis(3_500)), 1);
        assert_eq!(
            r.idle_for(t0 + Duration::from_millis(4_500)),
            Duration::from_secs(1)
        );
    }
}
