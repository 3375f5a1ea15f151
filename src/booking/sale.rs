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

/// Where a schedule's sale stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sale {
    Open,
    /// Published and scheduled, before `salesOpenAt`: the waiting queue may already fill.
    NotYetOpen,
    /// After `salesCloseAt`.
    Closed,
    /// The schedule or its concert is cancelled.
    Cancelled,
    /// The concert is a draft: not for sale, not public.
    Unpublished,
}

impl Sale {
    /// Why a hold is refused, or `None` when it may go ahead.
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            Self::Open => None,
            Self::NotYetOpen => Some("sales have not opened yet"),
            Self::Closed => Some("sales are closed"),
            Self::Cancelled => Some("this performance is cancelled"),
            Self::Unpublished => Some("this concert is not on sale"),
        }
    }

    pub fn is_open(self) -> bool {
        self == Self::Open
    }
}

/// The sale rules: on sale means the concert is published, the schedule not cancelled, and
/// `now` (the database clock) within the sales window.
pub fn rules(schedule: &ScheduleRow, concert: ConcertStatus, now: DateTime<Utc>) -> Sale {
    if schedule.status == ScheduleStatus::Cancelled || concert == ConcertStatus::Cancelled {
        Sale::Cancelled
    } else if concert != ConcertStatus::Published {
        Sale::Unpublished
    } else if now < schedule.sales_open_at {
        Sale::NotYetOpen
    } else if now >= schedule.sales_close_at {
        Sale::Closed
    } else {
        Sale::Open
    }
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
