//! Group commit: one in-process queue and worker per schedule, and groups of schedules.
//!
//! Requests for a schedule wait in its queue; the worker takes everything waiting (up to
//! `MAX_BATCH`) as the schedule's next batch. While one batch is in the database the next
//! one fills up, so the busier a schedule, the bigger its batches and the fewer commits per
//! booking. An idle worker exits.
//!
//! Batches of different schedules then meet: a few group committers (`COMMITTERS`) each
//! take every batch waiting for them (up to `MAX_GROUP` requests) and apply them in one
//! transaction (`reserve::reserve_group`). One big sale makes one batch at a time, as before;
//! twenty small sales at once, each with a batch of three requests, no longer pay twenty
//! transactions for sixty requests (issue 28: a transaction's fixed cost is most of a small
//! batch's). A group that fails for a reason other than the database runs again batch by
//! batch, so one schedule's failure stays its own. A committer keeps its connection from one
//! transaction to the next while work keeps coming (`transaction`): the pool's check at each
//! checkout was a round trip in every batch of a sale.
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
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex, OnceLock, Weak,
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

mod transaction;

use crate::{
    db::Pool,
    error::{AppError, AppResult},
    live::Live,
};
use transaction::{KEEP_FOR, Kept, apply};

/// Requests in one transaction at most: bounds the time the schedule lock is held.
pub const MAX_BATCH: usize = 128;
/// Requests in one group transaction at most (of several schedules' batches).
const MAX_GROUP: usize = 256;
/// Group transactions in flight at once: batches of different schedules still run in
/// parallel, each transaction with as many of them as were waiting. Two, measured against
/// four (docs/performance.md): larger groups cost PostgreSQL less per seat (200-217 µs
/// against 243-284 in a sale of 20 schedules) and gave more holds/s.
const COMMITTERS: usize = 2;
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

/// A schedule's batch on its way to a group, and how its worker learns it was answered.
struct Batch {
    schedule_id: i64,
    jobs: Vec<Job>,
    done: oneshot::Sender<()>,
}

impl Batch {
    /// The (user, key) pairs of its requests: one pair in two batches of a group would be
    /// decided twice from one snapshot (see `reserve::reserve_group`).
    fn keys(&self) -> impl Iterator<Item = (i64, &str)> {
        self.jobs.iter().filter_map(|j| {
            j.request
                .idempotency_key
                .as_deref()
                .map(|k| (j.request.user_id, k))
        })
    }
}

/// The batcher holds what its batches need, handed to it by the composition root
/// (`state::Services::connect`): the pool, the answer timeout, and the live feeds where
/// committed seat changes are announced. It knows nothing above booking.
pub struct Batcher {
    /// Per schedule: the queue of its worker, and that worker's number.
    queues: Mutex<HashMap<i64, (u64, mpsc::Sender<Job>)>>,
    next_worker: AtomicU64,
    /// Where workers hand their batches to the group committers, started with the first.
    groups: OnceLock<mpsc::UnboundedSender<Batch>>,
    stats: Stats,
    /// Layouts the best-available picks of this instance's batches read and left.
    layouts: reserve::Layouts,
    db: Pool,
    /// How long a caller waits for its batch to start before withdrawing its request.
    answer_timeout: Duration,
    /// How long a batch's transaction waits for the database's replies (`reserve_group`).
    reply_timeout: Duration,
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
    /// Transactions that applied the batches of several schedules, and the most batches
    /// one of them held.
    pub groups: AtomicU64,
    pub largest_group: AtomicU64,
    /// Such transactions that failed for a reason other than the database being down,
    /// whose batches then ran one by one.
    pub group_failures: AtomicU64,
    /// Requests accepted and not yet in a transaction: queued for their schedule's worker,
    /// or in a batch waiting for a committer. Rising while sales run means the committers
    /// (or the database behind them) are the bottleneck.
    pub waiting: AtomicU64,
    /// Transactions run on a committer's kept connection (see `Kept`), and those of them
    /// that found it lost and ran again on a checked one.
    pub on_kept: AtomicU64,
    pub kept_lost: AtomicU64,
}

impl Stats {
    fn enter(&self) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("booking_requests_waiting").increment(1.0);
    }

    /// `n` waiting requests started (or were withdrawn).
    fn leave(&self, n: usize) {
        self.waiting.fetch_sub(n as u64, Ordering::Relaxed);
        metrics::gauge!("booking_requests_waiting").decrement(n as f64);
    }
}

impl Batcher {
    pub fn new(db: Pool, answer_timeout: Duration, reply_timeout: Duration, live: Live) -> Self {
        Self {
            queues: Mutex::default(),
            next_worker: AtomicU64::default(),
            groups: OnceLock::new(),
            stats: Stats::default(),
            layouts: reserve::Layouts::default(),
            db,
            answer_timeout,
            reply_timeout,
            live,
        }
    }

    /// How long a booking transaction waits for the database's reply
    /// (`BOOKING_REPLY_TIMEOUT_MS`).
    pub(super) fn reply_timeout(&self) -> Duration {
        self.reply_timeout
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

    /// The group committers' queue, starting them on first use. They hold the batcher
    /// weakly: once it is dropped, its queue closes and they end.
    fn groups(self: &Arc<Self>) -> &mpsc::UnboundedSender<Batch> {
        self.groups.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            for _ in 0..COMMITTERS {
                tokio::spawn(commit_groups(Arc::downgrade(self), rx.clone()));
            }
            tx
        })
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
                batcher.stats.enter();
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
                    batcher.stats.leave(1);
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
                    commit(&batcher, schedule_id, chunk).await;
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
            commit(&batcher, schedule_id, jobs).await;
        }
    }
}

/// Hands a schedule's batch to the group committers and waits until it is answered, so a
/// schedule has one batch in the database at a time and the next one fills up meanwhile.
async fn commit(batcher: &Arc<Batcher>, schedule_id: i64, jobs: Vec<Job>) {
    let (done, answered) = oneshot::channel();
    let batch = Batch {
        schedule_id,
        jobs,
        done,
    };
    if let Err(mpsc::error::SendError(batch)) = batcher.groups().send(batch) {
        // Only once every committer is gone (their runtime shutting down): run it here.
        batcher.stats.leave(batch.jobs.len());
        run(batcher, batch.schedule_id, batch.jobs, &mut Kept::default()).await;
        return;
    }
    let _ = answered.await;
}

/// A group committer: takes the batches waiting (those a previous group had to leave
/// first), as many as fit in one group, and applies them in one transaction.
async fn commit_groups(batcher: Weak<Batcher>, rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Batch>>>) {
    let mut left: VecDeque<Batch> = VecDeque::new();
    let mut kept = Kept::default();
    loop {
        let mut group = Group::default();
        let mut later = VecDeque::new();
        for batch in left.drain(..) {
            group.add_or_leave(batch, &mut later);
        }
        // A group begun with batches left over must not wait for the queue: another
        // committer may be holding it while it waits for work, and those batches would
        // wait with it for traffic that may never come.
        if group.batches.is_empty() {
            let first = async {
                let mut rx = rx.lock().await;
                let first = rx.recv().await;
                (first, rx)
            };
            tokio::pin!(first);
            // Waiting for work: the kept connection goes back to the pool if none comes soon.
            let (first, mut rx) = match tokio::time::timeout(KEEP_FOR, &mut first).await {
                Ok(got) => got,
                Err(_) => {
                    kept = Kept::default();
                    first.await
                }
            };
            match first {
                Some(batch) => group.add_or_leave(batch, &mut later),
                None => return,
            }
            fill(&mut group, &mut rx, &mut later);
        } else if let Ok(mut rx) = rx.try_lock() {
            fill(&mut group, &mut rx, &mut later);
        }
        left = later;
        let Some(batcher) = batcher.upgrade() else {
            return;
        };
        run_group(&batcher, group.batches, &mut kept).await;
    }
}

/// Adds the batches waiting in the queue to `group`, as many as fit.
fn fill(group: &mut Group, rx: &mut mpsc::UnboundedReceiver<Batch>, later: &mut VecDeque<Batch>) {
    while group.requests < MAX_GROUP {
        match rx.try_recv() {
            Ok(batch) => group.add_or_leave(batch, later),
            Err(_) => break,
        }
    }
}

/// A group being formed.
#[derive(Default)]
struct Group {
    batches: Vec<Batch>,
    requests: usize,
    keys: HashSet<(i64, String)>,
}

impl Group {
    /// Adds `batch` unless the group is full, or holds one of its keys or a batch of its
    /// schedule already (a worker that went idle may still have one on its way while its
    /// successor sends the next); then it waits in `later` for the next group.
    fn add_or_leave(&mut self, batch: Batch, later: &mut VecDeque<Batch>) {
        let fits = self.batches.is_empty()
            || (self.requests + batch.jobs.len() <= MAX_GROUP
                && self.batches.iter().all(|b| b.schedule_id != batch.schedule_id)
                && !batch.keys().any(|(u, k)| self.keys.contains(&(u, k.to_owned()))));
        if !fits {
            later.push_back(batch);
            return;
        }
        self.keys.extend(batch.keys().map(|(u, k)| (u, k.to_owned())));
        self.requests += batch.jobs.len();
        self.batches.push(batch);
    }
}

/// Applies a group's batches in one transaction and answers them; a group of one is a
/// batch (`run`). If the transaction fails for a reason other than an unavailable
/// database, each batch runs again on its own.
async fn run_group(batcher: &Batcher, mut batches: Vec<Batch>, kept: &mut Kept) {
    batcher.stats.leave(batches.iter().map(|b| b.jobs.len()).sum());
    if batches.len() == 1
        && let Some(Batch {
            schedule_id,
            jobs,
            done,
        }) = batches.pop()
    {
        run(batcher, schedule_id, jobs, kept).await;
        let _ = done.send(());
        return;
    }
    let stats = &batcher.stats;
    stats.groups.fetch_add(1, Ordering::Relaxed);
    stats
        .largest_group
        .fetch_max(batches.len() as u64, Ordering::Relaxed);
    metrics::histogram!("booking_group_batches").record(batches.len() as f64);
    for b in &batches {
        record_batch(stats, b.jobs.len());
    }
    let requests: Vec<Vec<HoldRequest>> = batches
        .iter()
        .map(|b| b.jobs.iter().map(|j| j.request.clone()).collect())
        .collect();
    let parts: Vec<reserve::Part<'_>> = batches
        .iter()
        .zip(&requests)
        .map(|(b, r)| (b.schedule_id, r.as_slice()))
        .collect();
    match apply(batcher, &parts, kept).await {
        Ok(outcome) => {
            for (batch, outcome) in batches.into_iter().zip(outcome.batches) {
                answer(batcher, batch.jobs, outcome);
                let _ = batch.done.send(());
            }
        }
        Err(e @ AppError::Unavailable(_)) => {
            tracing::warn!(group.batches = batches.len(), error.cause = ?e, "booking group: database unavailable");
            for batch in batches {
                for job in batch.jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
                let _ = batch.done.send(());
            }
        }
        Err(e) => {
            stats.group_failures.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("booking_group_failures_total").increment(1);
            tracing::warn!(group.batches = batches.len(), error.cause = ?e, "booking group failed; running its batches one by one");
            for batch in batches {
                run_batch(batcher, batch.schedule_id, batch.jobs, kept).await;
                let _ = batch.done.send(());
            }
        }
    }
}

fn record_batch(stats: &Stats, size: usize) {
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.requests.fetch_add(size as u64, Ordering::Relaxed);
    stats.largest.fetch_max(size as u64, Ordering::Relaxed);
    metrics::histogram!("booking_batch_size").record(size as f64);
}

/// Announces a committed batch's change and answers its callers.
fn answer(batcher: &Batcher, jobs: Vec<Job>, outcome: reserve::BatchOutcome) {
    if let Some(change) = outcome.change {
        super::announce(&batcher.live, change);
    }
    for (job, result) in jobs.into_iter().zip(outcome.results) {
        let _ = job.reply.send(result);
    }
}

/// Runs a batch; if its transaction fails for a reason other than an unavailable
/// database, runs it again in halves, down to single requests.
async fn run(batcher: &Batcher, schedule_id: i64, jobs: Vec<Job>, kept: &mut Kept) {
    record_batch(&batcher.stats, jobs.len());
    run_batch(batcher, schedule_id, jobs, kept).await;
}

/// `run` without counting the batch again (a group's batch, run alone after its group failed).
async fn run_batch(batcher: &Batcher, schedule_id: i64, jobs: Vec<Job>, kept: &mut Kept) {
    let stats = &batcher.stats;
    // Groups still to run, last first.
    let mut groups = vec![jobs];
    while let Some(jobs) = groups.pop() {
        let requests: Vec<HoldRequest> = jobs.iter().map(|j| j.request.clone()).collect();
        let outcome = apply(batcher, &[(schedule_id, requests.as_slice())], kept).await;
        match outcome.and_then(|mut o| {
            o.batches
                .pop()
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("a batch left no outcome")))
        }) {
            Ok(outcome) => answer(batcher, jobs, outcome),
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
