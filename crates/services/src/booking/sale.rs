//! The sale rules, in one place: whether a schedule can be booked right now. Decided on the
//! database clock (the clock the hold batch checks under its lock), so that `Schedule.onSale`,
//! the waiting queue, `seatChanges` and `reserveSeats` never disagree about the moment sales
//! open or close.

use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::{QueryableByName, sql_types::Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::{
    concerts::{ConcertStatus, ScheduleStatus, store::ScheduleRow},
    db::Pool,
    error::AppResult,
};

pub use boxoffice_core::sale::Sale;
use boxoffice_core::sale::SaleFacts;

/// The sale rules (`boxoffice_core::sale::rules`) for a schedule row and its concert's
/// status, at `now` (the database clock).
pub fn rules(schedule: &ScheduleRow, concert: ConcertStatus, now: DateTime<Utc>) -> Sale {
    boxoffice_core::sale::rules(
        SaleFacts {
            schedule_cancelled: schedule.status == ScheduleStatus::Cancelled,
            concert_cancelled: concert == ConcertStatus::Cancelled,
            concert_published: concert == ConcertStatus::Published,
            sales_open_at: schedule.sales_open_at,
            sales_close_at: schedule.sales_close_at,
        },
        now,
    )
}

#[derive(QueryableByName)]
struct Now {
    #[diesel(sql_type = Timestamptz)]
    now: DateTime<Utc>,
}

/// The database's `now()`.
pub async fn db_now(conn: &mut AsyncPgConnection) -> AppResult<DateTime<Utc>> {
    Ok(diesel::sql_query("SELECT now() AS now")
        .get_result::<Now>(conn)
        .await?
        .now)
}

/// The database clock without a query per question: the offset between the database's
/// clock and this machine's, measured again when older than `REFRESH`. Reads (onSale, the
/// queue) use it; the hold batch reads `now()` itself under the lock.
#[derive(Default)]
pub struct DbClock {
    /// (offset database − local, when it was measured)
    offset: Mutex<Option<(TimeDelta, DateTime<Utc>)>>,
}

const REFRESH: TimeDelta = TimeDelta::seconds(10);

impl DbClock {
    pub async fn now(&self, db: &Pool) -> AppResult<DateTime<Utc>> {
        let local = Utc::now();
        let known = *self
            .offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((offset, at)) = known
            && local - at < REFRESH
        {
            return Ok(local + offset);
        }
        let mut conn = db.get().await?;
        let before = Utc::now();
        let db_now = db_now(&mut conn).await?;
        let after = Utc::now();
        // The database read its clock somewhere between `before` and `after`.
        let offset = db_now - (before + (after - before) / 2);
        *self
            .offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((offset, after));
        Ok(after + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(status: ScheduleStatus, open: DateTime<Utc>, close: DateTime<Utc>) -> ScheduleRow {
        ScheduleRow {
            id: 1,
            concert_id: 1,
            starts_at: close,
            sales_open_at: open,
            sales_close_at: close,
            per_user_limit: 4,
            hold_seconds: 300,
            queue_enabled: false,
            admit_per_second: 1,
            max_active: 1,
            admission_seconds: 60,
            status,
            capacity: 10,
            booked_count: 0,
            version: 0,
            created_at: open,
        }
    }

    #[test]
    fn every_rule_in_its_place() {
        let now = Utc::now();
        let hour = TimeDelta::hours(1);
        let open = schedule(ScheduleStatus::Scheduled, now - hour, now + hour);
        assert_eq!(rules(&open, ConcertStatus::Published, now), Sale::Open);
        assert_eq!(rules(&open, ConcertStatus::Draft, now), Sale::Unpublished);
        assert_eq!(rules(&open, ConcertStatus::Cancelled, now), Sale::Cancelled);
        assert_eq!(
            rules(&open, ConcertStatus::Published, now - hour * 2),
            Sale::NotYetOpen
        );
        // The window is [open, close).
        assert_eq!(rules(&open, ConcertStatus::Published, now - hour), Sale::Open);
        assert_eq!(rules(&open, ConcertStatus::Published, now + hour), Sale::Closed);
        let cancelled = schedule(ScheduleStatus::Cancelled, now - hour, now + hour);
        assert_eq!(rules(&cancelled, ConcertStatus::Published, now), Sale::Cancelled);
        assert!(Sale::Open.refusal().is_none() && Sale::Closed.refusal().is_some());
    }
}
