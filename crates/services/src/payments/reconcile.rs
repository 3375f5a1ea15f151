//! The reconciliation job: top-ups the provider left unanswered (a confirm that timed
//! out, a fan who paid and closed the tab before the browser confirmed, a refund without
//! an answer) are looked up at the provider every `PAYMENT_RECONCILE_INTERVAL_SECONDS` and
//! settled by what it says. Settling is idempotent and holds the top-up's row, so every
//! instance may run the job: the worst case is two look-ups of one payment.

use std::time::Duration;

use tokio::sync::watch;

use super::{Payments, service, store};
use crate::{error::AppResult, in_doubt::Writes, state::Services};

/// Top-ups per round: the rest wait for the next one.
const BATCH: i64 = 100;

/// One round: settles what can be settled among the top-ups untouched for `min_age`.
/// Returns how many were looked at.
pub async fn run_once(writes: Writes<'_>, payments: &Payments, min_age: Duration) -> AppResult<usize> {
    if payments.provider().is_err() {
        return Ok(0);
    }
    let rows = {
        let mut conn = writes.db.get().await?;
        store::unsettled(
            &mut conn,
            i64::try_from(min_age.as_secs()).unwrap_or(i64::MAX),
            BATCH,
        )
        .await?
    };
    let n = rows.len();
    for row in rows {
        let id = row.id;
        if let Err(e) = service::reconcile_one(writes, payments, row).await {
            tracing::warn!(top_up.id = id, error = %e, "reconciling a top-up failed");
        }
    }
    Ok(n)
}

pub fn spawn(state: Services, mut stop: watch::Receiver<bool>) {
    let interval = state.payments.config.reconcile_interval;
    // A confirm in flight is left to finish: only top-ups quiet for a provider timeout
    // (and at least a second) are looked up.
    let min_age = state.payments.config.timeout.max(Duration::from_secs(1));
    if state.payments.provider().is_err() || state.payments.is_sandbox() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            if let Err(e) = run_once(state.writes(), &state.payments, min_age).await {
                tracing::warn!(error = %e, "payment reconciliation round failed");
            }
        }
    });
}
