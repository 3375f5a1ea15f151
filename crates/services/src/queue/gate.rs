//! The gate: admits waiting users at each queued schedule's rate, up to its active limit.
//!
//! Every instance runs this loop; per schedule, only the holder of the Redis lease ticks.
//! The lease lasts a second and is renewed every tick, so when its holder dies another
//! instance takes over within about a second. The token bucket lives in Redis with the
//! queue, so even two gates ticking at once during a hand-over admit as one.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Int4, Timestamptz},
};
use diesel_async::RunQueryDsl;
use tokio::sync::watch;

use super::store::{self, GateSettings};
use crate::{error::AppResult, state::Services};

pub const TICK: Duration = Duration::from_millis(100);
const LEASE_MS: i64 = 1_000;
const REFRESH: Duration = Duration::from_secs(1);

#[derive(QueryableByName, Clone)]
struct Queued {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Int4)]
    admit_per_second: i32,
    #[diesel(sql_type = Int4)]
    max_active: i32,
    #[diesel(sql_type = Int4)]
    admission_seconds: i32,
    #[diesel(sql_type = Timestamptz)]
    sales_open_at: DateTime<Utc>,
}

/// Schedules whose queue runs now or opens within a minute.
async fn queued(state: &Services) -> AppResult<Vec<Queued>> {
    let mut conn = state.db.get().await?;
    Ok(diesel::sql_query(
        "SELECT id, admit_per_second, max_active, admission_seconds, sales_open_at FROM schedules
         WHERE queue_enabled AND status = 'scheduled' AND sales_close_at > now()
           AND sales_open_at < now() + interval '1 minute'",
    )
    .load(&mut conn)
    .await?)
}

pub fn spawn(state: Services, mut stop: watch::Receiver<bool>) {
    if state.redis.is_none() {
        return;
    }
    let instance = uuid::Uuid::new_v4().to_string();
    tokio::spawn(async move {
        let mut schedules: Vec<Queued> = Vec::new();
        let mut refreshed: Option<Instant> = None;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if refreshed.is_none_or(|at| at.elapsed() >= REFRESH) {
                match queued(&state).await {
                    Ok(s) => schedules = s,
                    Err(e) => tracing::warn!(error = %e, "queue gate: listing queued schedules failed"),
                }
                refreshed = Some(Instant::now());
            }
            for s in &schedules {
                if let Err(e) = step(&state, &instance, s).await {
                    tracing::warn!(schedule.id = s.id, error = %e, "queue gate step failed");
                }
            }
        }
    });
}

async fn step(state: &Services, instance: &str, s: &Queued) -> AppResult<()> {
    let kv = state.kv()?;
    if !store::lease(kv, s.id, instance, LEASE_MS).await? {
        return Ok(());
    }
    if Utc::now() < s.sales_open_at {
        return Ok(());
    }
    let placed = store::shuffle_in_early(kv, s.id).await?;
    if placed > 0 {
        tracing::info!(
            schedule.id = s.id,
            queue.placed = placed,
            "sales open: early arrivals shuffled in"
        );
    }
    let settings = GateSettings {
        admit_per_second: s.admit_per_second,
        max_active: s.max_active,
        admission_seconds: s.admission_seconds,
    };
    let abandon_ms = i64::try_from(state.config.queue_abandon.as_millis()).unwrap_or(i64::MAX);
    let admitted = store::tick(kv, s.id, &settings, abandon_ms).await?;
    if admitted > 0 {
        metrics::counter!("queue_admitted_total").increment(admitted as u64);
    }
    Ok(())
}
