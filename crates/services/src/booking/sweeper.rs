//! Releases expired holds in the background, on every instance.
//!
//! Small batches per schedule (each one transaction under the schedule lock) so bookers
//! never wait long; holds being paid at that moment are skipped and left to the payment.
//! Several instances sweeping at once serialize on the schedule lock and find nothing
//! left to do: harmless.

use std::time::Duration;

use tokio::sync::watch;

use super::lifecycle;
use crate::{error::AppResult, state::Services};

/// Holds released per transaction.
const BATCH: i64 = 500;
/// Schedules looked at per pass.
const SCHEDULES_PER_PASS: i64 = 100;

pub fn spawn(state: Services, interval: Duration, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = sweep(&state).await {
                tracing::warn!(error = %e, error.cause = ?e, "hold sweep failed; retrying next tick");
            }
        }
    });
}

/// One pass: every overdue hold found is released. Returns how many were.
pub async fn sweep(state: &Services) -> AppResult<usize> {
    let mut conn = state.db.get().await?;
    let mut released = 0;
    for schedule_id in lifecycle::schedules_with_due_holds(&mut conn, SCHEDULES_PER_PASS).await? {
        while let Some(freed) = lifecycle::expire_due(&mut conn, schedule_id, BATCH).await? {
            released += freed.released;
            metrics::counter!("holds_expired_seats_total").increment(freed.released as u64);
            let full = freed.released as i64 >= BATCH;
            if let Some(change) = freed.change {
                super::announce(&state.live, change);
            }
            crate::waitlist::publish(&state.live.hub, &freed.offers);
            if !full {
                break;
            }
        }
    }
    Ok(released)
}
