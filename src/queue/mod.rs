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

use std::time::Duration;

use crate::{
    auth::Actor,
    concerts::{ConcertStatus, store::ScheduleRow},
    error::{AppError, AppResult, ErrorCode},
    state::AppState,
};

/// Schedules' queue settings (and their concert's status), remembered for a moment: they
/// are read on every booking and every queue call, and rarely change. A change counts
/// within `SETTINGS_TTL`. Bounded (`SETTINGS_CACHED` schedules, least recently used go
/// first) and only schedules that exist are remembered: asking for a hundred thousand
/// unknown ids costs queries, not memory.
pub struct QueueFlags(moka::sync::Cache<i64, Settings>);

impl Default for QueueFlags {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(SETTINGS_CACHED)
                .time_to_live(SETTINGS_TTL)
                .build(),
        )
    }
}

const SETTINGS_CACHED: u64 = 10_000;

#[derive(Clone, Debug)]
pub struct Settings {
    pub schedule: ScheduleRow,
    pub concert_status: crate::concerts::ConcertStatus,
    pub host_id: i64,
}

impl Settings {
    /// Whether `actor` may see the schedule (`concerts::service::visible_to`).
    pub fn visible_to(&self, actor: Option<Actor>) -> bool {
        crate::concerts::service::visible_to(self.concert_status, self.host_id, actor)
    }
}

const SETTINGS_TTL: Duration = Duration::from_secs(1);

impl QueueFlags {
    /// The schedule and its concert's status; `None` if there is no such schedule.
    pub async fn settings(&self, state: &AppState, schedule_id: i64) -> AppResult<Option<Settings>> {
        if let Some(s) = self.0.get(&schedule_id) {
            return Ok(Some(s));
        }
        let mut conn = state.db.get().await?;
        let settings = match crate::concerts::store::schedule(&mut conn, schedule_id).await? {
            None => None,
            Some(schedule) => crate::concerts::store::concert(&mut conn, schedule.concert_id)
                .await?
                .map(|c| Settings {
                    schedule,
                    concert_status: c.status,
                    host_id: c.host_id,
                }),
        };
        if let Some(s) = &settings {
            self.0.insert(schedule_id, s.clone());
        }
        Ok(settings)
    }

    /// Schedules remembered now (for tests and metrics).
    pub fn cached(&self) -> u64 {
        self.0.run_pending_tasks();
        self.0.entry_count()
    }
}

/// Refuses with QUEUE_REQUIRED unless the schedule has no queue or the user holds a live
/// admission; NOT_FOUND for an unknown schedule. A draft's schedule passes: it is never on
/// sale, and the booking batch answers NOT_FOUND to whoever may not see it (saying
/// QUEUE_REQUIRED here would tell them it exists).
pub async fn ensure_admitted(state: &AppState, schedule_id: i64, user_id: i64) -> AppResult<()> {
    let settings = state
        .queue_flags
        .settings(state, schedule_id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    if !settings.schedule.queue_enabled || settings.concert_status == ConcertStatus::Draft {
        return Ok(());
    }
    admission(state, schedule_id, user_id).await
}

/// What a new waiting-list entry or order needs before it is accepted: a schedule the
/// user may see (NOT_FOUND otherwise, as for an id that does not exist) and, when it runs
/// a queue, a live admission (QUEUE_REQUIRED). The same admission as every other way to a
/// seat: a fan who never queued cannot join the waiting list behind the queue.
pub async fn ensure_may_book(state: &AppState, schedule_id: i64, actor: Actor) -> AppResult<()> {
    let settings = state
        .queue_flags
        .settings(state, schedule_id)
        .await?
        .filter(|s| s.visible_to(Some(actor)))
        .ok_or(AppError::NotFound("schedule"))?;
    if settings.schedule.queue_enabled && settings.concert_status != ConcertStatus::Draft {
        admission(state, schedule_id, actor.id).await?;
    }
    Ok(())
}

/// QUEUE_REQUIRED unless the user holds a live admission to the schedule's queue.
async fn admission(state: &AppState, schedule_id: i64, user_id: i64) -> AppResult<()> {
    if store::admitted(state, schedule_id, user_id).await?.is_some() {
        Ok(())
    } else {
        Err(AppError::rule(
            ErrorCode::QueueRequired,
            "this performance sells through the waiting queue: enterQueue first and wait for admission",
        ))
    }
}
