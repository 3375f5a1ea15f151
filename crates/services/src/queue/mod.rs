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
//! - `flags`: each schedule's queue settings, remembered for a second.
//! - `store`: the scripts and reads.
//! - `gate`: the admission loop, run by whichever instance holds the lease.
//! - `graphql`, in the server (`src/`): `enterQueue`, `queueStatus` (query and subscription).

pub mod flags;
pub mod gate;
pub mod store;

pub use flags::{QueueFlags, Settings};

use crate::{
    auth::Actor,
    concerts::ConcertStatus,
    error::{AppError, AppResult, ErrorCode},
    state::Services,
};

/// Refuses with QUEUE_REQUIRED unless the schedule has no queue or the user holds a live
/// admission; NOT_FOUND for an unknown schedule. A draft's schedule passes: it is never on
/// sale, and the booking batch answers NOT_FOUND to whoever may not see it (saying
/// QUEUE_REQUIRED here would tell them it exists).
pub async fn ensure_admitted(state: &Services, schedule_id: i64, user_id: i64) -> AppResult<()> {
    let settings = state
        .queue_flags
        .settings(&state.db, schedule_id)
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
pub async fn ensure_may_book(state: &Services, schedule_id: i64, actor: Actor) -> AppResult<()> {
    let settings = state
        .queue_flags
        .settings(&state.db, schedule_id)
        .await?
        .filter(|s| s.visible_to(Some(actor)))
        .ok_or(AppError::NotFound("schedule"))?;
    if settings.schedule.queue_enabled && settings.concert_status != ConcertStatus::Draft {
        admission(state, schedule_id, actor.id).await?;
    }
    Ok(())
}

/// QUEUE_REQUIRED unless the user holds a live admission to the schedule's queue.
async fn admission(state: &Services, schedule_id: i64, user_id: i64) -> AppResult<()> {
    if store::admitted(state, schedule_id, user_id).await?.is_some() {
        Ok(())
    } else {
        Err(AppError::rule(
            ErrorCode::QueueRequired,
            "this performance sells through the waiting queue: enterQueue first and wait for admission",
        ))
    }
}
