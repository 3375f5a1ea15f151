//! The waiting queue of a schedule on sale (C7), in Redis.
//!
//! Keys, all with the schedule's hash tag so a Redis Cluster keeps them on one slot:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{s:ID}:waiting` | sorted set | user → arrival number (FIFO order) |
//! | `{s:ID}:seq` | counter | the last arrival number |
//! | `{s:ID}:early` | set | users who came before sales opened (shuffled in at opening) |
//! | `{s:ID}:seen` | sorted set | user → last sign of life (ms); silent waiters drop out |
//! | `{s:ID}:active` | sorted set | admitted user → admission expiry (ms) |
//! | `{s:ID}:bucket` | hash | the gate's token bucket (admissions per second) |
//! | `{s:ID}:lease` | string | which instance runs the gate |
//!
//! Every change is one Lua script, so concurrent callers and even two gates at once cannot
//! admit more than the bucket allows.
//!
//! - `store`: the scripts and reads.
//! - `gate`: the admission loop, run by whichever instance holds the lease.
//! - `graphql`: `enterQueue`, `queueStatus` (query and subscription).

pub mod gate;
pub mod graphql;
pub mod store;

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{
    error::{AppError, AppResult, ErrorCode},
    state::AppState,
};

/// Whether schedules use the queue, remembered for a moment: the check sits on the
/// booking path and the flag rarely changes.
#[derive(Default)]
pub struct QueueFlags(Mutex<HashMap<i64, (bool, Instant)>>);

const FLAG_TTL: Duration = Duration::from_secs(2);

impl QueueFlags {
    async fn enabled(&self, state: &AppState, schedule_id: i64) -> AppResult<Option<bool>> {
        if let Some((on, at)) = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&schedule_id)
            && at.elapsed() < FLAG_TTL
        {
            return Ok(Some(*on));
        }
        let mut conn = state.db.get().await?;
        let Some(schedule) = crate::concerts::store::schedule(&mut conn, schedule_id).await? else {
            return Ok(None);
        };
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(schedule_id, (schedule.queue_enabled, Instant::now()));
        Ok(Some(schedule.queue_enabled))
    }
}

/// Refuses with QUEUE_REQUIRED unless the schedule has no queue or the user holds a live
/// admission; NOT_FOUND for an unknown schedule.
pub async fn ensure_admitted(state: &AppState, schedule_id: i64, user_id: i64) -> AppResult<()> {
    match state.queue_flags.enabled(state, schedule_id).await? {
        None => return Err(AppError::NotFound("schedule")),
        Some(false) => return Ok(()),
        Some(true) => {}
    }
    if store::admitted(state, schedule_id, user_id).await?.is_some() {
        Ok(())
    } else {
        Err(AppError::rule(
            ErrorCode::QueueRequired,
            "this performance sells through the waiting queue: enterQueue first and wait for admission",
        ))
    }
}
