//! Each schedule's queue settings and its concert's status, as booking and the queue read
//! them on every call: cached for a second, held by the application state.

use std::time::Duration;

use crate::{
    auth::Actor,
    concerts::{ConcertStatus, store::ScheduleRow},
    db::Pool,
    error::AppResult,
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
    pub concert_status: ConcertStatus,
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
    pub async fn settings(&self, db: &Pool, schedule_id: i64) -> AppResult<Option<Settings>> {
        if let Some(s) = self.0.get(&schedule_id) {
            return Ok(Some(s));
        }
        let mut conn = db.get().await?;
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
