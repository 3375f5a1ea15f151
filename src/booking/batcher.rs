//! Group commit: one in-process queue and worker per schedule.
//!
//! Requests for a schedule wait in its queue; the worker takes everything waiting (up to
//! `MAX_BATCH`) and applies it in one transaction (`reserve::reserve_batch`). While one
//! batch is in the database the next one fills up, so the busier a schedule, the bigger
//! its batches and the fewer commits per booking. Several instances each batch their own
//! requests; the schedule row lock serializes their batches. An idle worker exits.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};

use super::{
    reserve::{self, LockMode, ReserveRequest},
    store::ReservationRow,
};
use crate::{
    error::{AppError, AppResult},
    state::AppState,
};

/// Requests in one transaction at most: bounds the time the schedule lock is held.
pub const MAX_BATCH: usize = 128;
/// Requests waiting for one schedule at most, beyond which callers get UNAVAILABLE.
const QUEUE_DEPTH: usize = 8192;
/// A worker with nothing to do for this long exits.
const IDLE: Duration = Duration::from_secs(30);
/// A caller gives up waiting for its outcome after this long.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

struct Job {
    request: ReserveRequest,
    reply: oneshot::Sender<AppResult<ReservationRow>>,
}

#[derive(Default)]
pub struct Batcher {
    /// Per schedule: the queue of its worker, and that worker's number.
    queues: Mutex<HashMap<i64, (u64, mpsc::Sender<Job>)>>,
    next_worker: AtomicU64,
    stats: Stats,
}

/// Counters for tests and metrics: how much batching happened.
#[derive(Default)]
pub struct Stats {
    pub batches: AtomicU64,
    pub requests: AtomicU64,
    pub largest: AtomicU64,
}

impl Batcher {
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn queue(&self, state: &AppState, schedule_id: i64) -> mpsc::Sender<Job> {
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
        tokio::spawn(work(state.clone(), schedule_id, worker, rx));
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

/// Hands a request to its schedule's batch and waits for its own outcome.
pub async fn submit(
    state: &AppState,
    schedule_id: i64,
    request: ReserveRequest,
) -> AppResult<ReservationRow> {
    let (reply, answer) = oneshot::channel();
    let mut job = Job { request, reply };
    // A worker may be exiting as we send: then its queue is closed and we start another.
    for _ in 0..3 {
        let tx = state.batcher.queue(state, schedule_id);
        match tx.try_send(job) {
            Ok(()) => {
                return match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(_)) => Err(AppError::internal(anyhow::anyhow!(
                        "booking worker dropped a request"
                    ))),
                    Err(_) => Err(AppError::unavailable(anyhow::anyhow!("booking timed out"))),
                };
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

async fn work(state: AppState, schedule_id: i64, worker: u64, mut rx: mpsc::Receiver<Job>) {
    loop {
        let first = match tokio::time::timeout(IDLE, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_) => {
                // Idle: stop taking work, then finish whatever slipped in meanwhile.
                state.batcher.forget(schedule_id, worker);
                rx.close();
                let mut rest = Vec::new();
                while let Ok(job) = rx.try_recv() {
                    rest.push(job);
                }
                while !rest.is_empty() {
                    let chunk: Vec<Job> = rest.drain(..rest.len().min(MAX_BATCH)).collect();
                    run(&state, schedule_id, chunk).await;
                }
                return;
            }
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        run(&state, schedule_id, jobs).await;
    }
}

async fn run(state: &AppState, schedule_id: i64, jobs: Vec<Job>) {
    let requests: Vec<ReserveRequest> = jobs.iter().map(|j| j.request.clone()).collect();
    let stats = &state.batcher.stats;
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.requests.fetch_add(jobs.len() as u64, Ordering::Relaxed);
    stats.largest.fetch_max(jobs.len() as u64, Ordering::Relaxed);
    metrics::histogram!("booking_batch_size").record(jobs.len() as f64);
    let started = std::time::Instant::now();
    let outcome = match state.db.get().await {
        Ok(mut conn) => reserve::reserve_batch(&mut conn, schedule_id, &requests, LockMode::Locked).await,
        Err(e) => Err(AppError::from(e)),
    };
    metrics::histogram!("booking_batch_seconds").record(started.elapsed().as_secs_f64());
    match outcome {
        Ok(outcome) => {
            if let Some(change) = outcome.change {
                super::announce(state, change);
            }
            for (job, result) in jobs.into_iter().zip(outcome.results) {
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            // The whole transaction failed: nothing was written for anyone.
            let unavailable = matches!(e, AppError::Unavailable(_));
            tracing::error!(schedule.id = schedule_id, batch.size = jobs.len(), error = %e, error.cause = ?e, "booking batch failed");
            for job in jobs {
                let err = if unavailable {
                    AppError::unavailable(anyhow::anyhow!("database unavailable"))
                } else {
                    AppError::internal(anyhow::anyhow!("booking batch failed (logged above)"))
                };
                let _ = job.reply.send(Err(err));
            }
        }
    }
}
