//! Group commit: one in-process queue and worker per schedule.
//!
//! Requests for a schedule wait in its queue; the worker takes everything waiting (up to
//! `MAX_BATCH`) and applies it in one transaction (`reserve::reserve_batch`). While one
//! batch is in the database the next one fills up, so the busier a schedule, the bigger
//! its batches and the fewer commits per booking. An idle worker exits.
//!
//! Several instances: the batcher knows nothing of them. `leader` routes each request
//! either here or to the instance leading the schedule's bookings, which runs it here, in
//! its own batches; the batcher only batches what it is handed.
//!
//! Isolation (I8): the decision step refuses every bad request on its own, so a batch
//! transaction should only fail when the database does. If it fails for another reason
//! anyway, the batch is retried in halves, down to single requests, so that only the
//! request that poisons it fails, with its own error. A database that is unavailable
//! answers UNAVAILABLE to the whole batch at once (retrying smaller groups would not help).
//!
//! Honest answers (I9): a caller that stops waiting withdraws its request; a worker never
//! starts a request that was withdrawn, and a caller whose request is already in a running
//! batch waits for that batch's real outcome.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};

use super::{
    HoldRequest,
    reserve::{self, Applied, Lock},
    store::ReservationRow,
};
use crate::{
    db::Pool,
    error::{AppError, AppResult},
    live::Live,
};

/// Requests in one transaction at most: bounds the time the schedule lock is held.
pub const MAX_BATCH: usize = 128;
/// Requests waiting for one schedule at most, beyond which callers get UNAVAILABLE.
const QUEUE_DEPTH: usize = 8192;
/// A worker with nothing to do for this long exits.
const IDLE: Duration = Duration::from_secs(30);

/// Where a queued request stands, decided by whoever moves it first: the worker taking it
/// into a batch, or its caller giving up.
const PENDING: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

struct Job {
    request: HoldRequest,
    reply: oneshot::Sender<AppResult<ReservationRow>>,
    state: Arc<AtomicU8>,
}

/// The batcher holds what its batches need, handed to it by the composition root
/// (`state::Services::connect`): the pool, the answer timeout, and the live feeds where
/// committed seat changes are announced. It knows nothing above booking.
pub struct Batcher {
    /// Per schedule: the queue of its worker, and that worker's number.
    queues: Mutex<HashMap<i64, (u64, mpsc::Sender<Job>)>>,
    next_worker: AtomicU64,
    stats: Stats,
    /// Layouts the best-available picks of this instance's batches read and left.
    layouts: reserve::Layouts,
    db: Pool,
    /// How long a caller waits for its batch to start before withdrawing its request.
    answer_timeout: Duration,
    live: Live,
}

/// Counters for tests and metrics: how much batching happened, and how often a batch
/// failed and was retried in smaller groups.
#[derive(Default)]
pub struct Stats {
    pub batches: AtomicU64,
    pub requests: AtomicU64,
    pub largest: AtomicU64,
    /// Batch transactions that failed for a reason other than the database being down.
    pub failures: AtomicU64,
    /// Smaller groups run again after such a failure.
    pub retries: AtomicU64,
    /// Requests withdrawn by callers that stopped waiting before their batch started.
    pub withdrawn: AtomicU64,
}

impl Batcher {
    pub fn new(db: Pool, answer_timeout: Duration, live: Live) -> Self {
        Self {
            queues: Mutex::default(),
            next_worker: AtomicU64::default(),
            stats: Stats::default(),
            layouts: reserve::Layouts::default(),
            db,
            answer_timeout,
            live,
        }
    }

    pub(super) fn answer_timeout(&self) -> Duration {
        self.answer_timeout
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Batches with a best-available request that read the schedule's layout from the
    /// database, and those that reused the layout the previous batch left.
    pub fn layout_reads(&self) -> (u64, u64) {
        let l = &self.layouts;
        (l.reads.load(Ordering::Relaxed), l.reuses.load(Ordering::Relaxed))
    }

    fn queue(self: &Arc<Self>, schedule_id: i64) -> mpsc::Sender<Job> {
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, tx)) = queues.get(&schedule_id)
            && !tx.is_closed()
        {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let worker = self.next_worker.fetch_add(1, Ordering::Relaxed);
        queues.insert(schedule_id, (worker, tx.clone()));
        tokio::spawn(work(self.clone(), schedule_id, worker, rx));
        tx
    }

    /// Removes a worker's queue, unless another worker has replaced it already.
    fn forget(&self, schedule_id: i64, worker: u64) {
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if queues.get(&schedule_id).is_some_and(|(w, _)| *w == worker) {
            queues.remove(&schedule_id);
        }
    }
}

/// How a caller of [`submit`] waits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Withdraws the request if its batch has not started within the answer timeout.
    Withdraw,
    /// Waits for the outcome however long the queue takes: for a request that may already
    /// have been applied elsewhere (forwarded, then asked again with its idempotency key),
    /// or one that its forwarding instance can no longer withdraw. A withdrawal answering
    /// "nothing was held" could then be false.
    Patient,
}

/// Hands a request to this instance's batch for its schedule and waits for its outcome.
pub(super) async fn submit(
    batcher: &Arc<Batcher>,
    schedule_id: i64,
    request: HoldRequest,
    wait: Wait,
) -> AppResult<ReservationRow> {
    let (reply, mut answer) = oneshot::channel();
    let progress = Arc::new(AtomicU8::new(PENDING));
    let mut job = Job {
        request,
        reply,
        state: progress.clone(),
    };
    // A worker may be exiting as we send: then its queue is closed and we start another.
    for _ in 0..3 {
        let tx = batcher.queue(schedule_id);
        match tx.try_send(job) {
            Ok(()) => {
                if wait == Wait::Patient {
                    return answer.await.unwrap_or_else(|_| Err(dropped()));
                }
                if let Ok(outcome) = tokio::time::timeout(batcher.answer_timeout, &mut answer).await {
                    return outcome.unwrap_or_else(|_| Err(dropped()));
                }
                if progress
                    .compare_exchange(PENDING, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    batcher.stats.withdrawn.fetch_add(1, Ordering::Relaxed);
                    return Err(AppError::unavailable(anyhow::anyhow!(
                        "booking timed out before its batch started; nothing was held"
                    )));
                }
                // Already in a running batch: its real outcome comes when the batch ends
                // (the database's lock and statement timeouts bound that wait).
                return answer.await.unwrap_or_else(|_| Err(dropped()));
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(AppError::unavailable(anyhow::anyhow!("booking queue full")));
            }
            Err(mpsc::error::TrySendError::Closed(j)) => job = j,
        }
    }
    Err(AppError::unavailable(anyhow::anyhow!(
        "booking worker unavailable"
    )))
}

fn dropped() -> AppError {
    AppError::internal(anyhow::anyhow!("booking worker dropped a request"))
}

/// Takes a job into a batch unless its caller withdrew it.
fn take(job: Job) -> Option<Job> {
    job.state
        .compare_exchange(PENDING, TAKEN, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
        .then_some(job)
}

async fn work(batcher: Arc<Batcher>, schedule_id: i64, worker: u64, mut rx: mpsc::Receiver<Job>) {
    loop {
        let first = match tokio::time::timeout(IDLE, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_) => {
                // Idle: stop taking work, then finish whatever slipped in meanwhile.
                batcher.forget(schedule_id, worker);
                rx.close();
                let mut rest = Vec::new();
                while let Ok(job) = rx.try_recv() {
                    rest.extend(take(job));
                }
                while !rest.is_empty() {
                    let chunk: Vec<Job> = rest.drain(..rest.len().min(MAX_BATCH)).collect();
                    run(&batcher, schedule_id, chunk).await;
                }
                return;
            }
        };
        let mut jobs: Vec<Job> = take(first).into_iter().collect();
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.extend(take(job)),
                Err(_) => break,
            }
        }
        if !jobs.is_empty() {
            run(&batcher, schedule_id, jobs).await;
        }
    }
}

/// Runs a batch; if its transaction fails for a reason other than an unavailable
/// database, runs it again in halves, down to single requests.
async fn run(batcher: &Batcher, schedule_id: i64, jobs: Vec<Job>) {
    let stats = &batcher.stats;
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.requests.fetch_add(jobs.len() as u64, Ordering::Relaxed);
    stats.largest.fetch_max(jobs.len() as u64, Ordering::Relaxed);
    metrics::histogram!("booking_batch_size").record(jobs.len() as f64);
    // Groups still to run, last first.
    let mut groups = vec![jobs];
    while let Some(jobs) = groups.pop() {
        let requests: Vec<HoldRequest> = jobs.iter().map(|j| j.request.clone()).collect();
        let started = std::time::Instant::now();
        let outcome = match batcher.db.get().await {
            Ok(mut conn) => {
                match reserve::reserve_batch(
                    &mut conn,
                    schedule_id,
                    &requests,
                    Lock::Take,
                    Some(&batcher.layouts),
                )
                .await
                {
                    Ok(Applied::Committed(outcome)) => Ok(outcome),
                    Ok(Applied::InDoubt { outcome, cause }) => {
                        drop(conn);
                        reserve::settle(&batcher.db, outcome, cause).await
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(AppError::from(e)),
        };
        metrics::histogram!("booking_batch_seconds").record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(outcome) => {
                if let Some(change) = outcome.change {
                    super::announce(&batcher.live, change);
                }
                for (job, result) in jobs.into_iter().zip(outcome.results) {
                    let _ = job.reply.send(result);
                }
            }
            // Nothing was written for anyone. The database is down: everyone may retry.
            Err(e @ AppError::Unavailable(_)) => {
                tracing::warn!(schedule.id = schedule_id, batch.size = jobs.len(), error.cause = ?e, "booking batch: database unavailable");
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
            // One request poisons the transaction: this is its own answer.
            Err(e) if jobs.len() == 1 => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("booking_batch_failures_total").increment(1);
                tracing::error!(schedule.id = schedule_id, error.cause = ?e, "booking request failed alone");
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                stats.retries.fetch_add(2, Ordering::Relaxed);
                metrics::counter!("booking_batch_failures_total").increment(1);
                metrics::counter!("booking_batch_retries_total").increment(2);
                tracing::warn!(schedule.id = schedule_id, batch.size = jobs.len(), error.cause = ?e, "booking batch failed; retrying in halves");
                let mut first = jobs;
                let second = first.split_off(first.len() / 2);
                groups.push(second);
                groups.push(first);
            }
        }
    }
}
