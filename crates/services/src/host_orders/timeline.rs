//! Sales over time for the host's chart: seats sold and points taken per performance and
//! grade, in buckets from the concert's first sale to now. The bucket is chosen so a series
//! never has more than [`MAX_BUCKETS`] points, whatever the span (bounded cost).

use chrono::{DateTime, Utc};

use super::store::{self, SalesBucket};
use crate::{
    auth::{Actor, Role},
    error::{AppError, AppResult},
    state::Services,
};

/// Points per series at most.
pub const MAX_BUCKETS: i64 = 200;

/// Bucket sizes offered, in seconds: a minute up to a week.
const SIZES: [i64; 9] = [
    60,
    300,
    900,
    3600,
    3 * 3600,
    6 * 3600,
    86_400,
    2 * 86_400,
    7 * 86_400,
];

/// The smallest offered bucket at least `wanted` seconds long that cuts `span_seconds` into
/// at most [`MAX_BUCKETS`] buckets (a week when nothing smaller does).
pub fn bucket_seconds(wanted: Option<i64>, span_seconds: i64) -> i64 {
    let at_least = wanted
        .unwrap_or(0)
        .max((span_seconds + MAX_BUCKETS - 1) / MAX_BUCKETS);
    SIZES
        .iter()
        .copied()
        .find(|s| *s >= at_least)
        .unwrap_or(SIZES[SIZES.len() - 1])
}

/// One schedule's sales by grade, each grade's buckets in time order.
pub struct ScheduleSeries {
    pub schedule_id: i64,
    pub starts_at: DateTime<Utc>,
    pub grades: Vec<(String, Vec<SalesBucket>)>,
}

pub struct Timeline {
    /// The first sale of a reservation that stands (none yet: no series).
    pub from: Option<DateTime<Utc>>,
    pub bucket_seconds: i64,
    pub schedules: Vec<ScheduleSeries>,
}

/// The concert's sales over time for its host or an admin (another host: NOT_FOUND).
pub async fn timeline(
    state: &Services,
    actor: Actor,
    concert_id: i64,
    wanted_bucket: Option<i64>,
) -> AppResult<Timeline> {
    if let Some(w) = wanted_bucket
        && !(60..=7 * 86_400).contains(&w)
    {
        return Err(AppError::bad_input(
            "bucketSeconds",
            "must be between 60 and 604800",
        ));
    }
    let mut conn = state.db.get().await?;
    let concert = crate::concerts::store::concert(&mut conn, concert_id)
        .await?
        .filter(|c| actor.role == Role::Admin || (actor.role == Role::Host && c.host_id == actor.id))
        .ok_or(AppError::NotFound("concert"))?;
    let schedules = crate::concerts::store::schedules_of_concerts(&mut conn, &[concert.id]).await?;
    let from = store::first_sale(&mut conn, concert.id).await?;
    let now = crate::booking::sale::db_now(&mut conn).await?;
    let span = from.map_or(0, |f| (now - f).num_seconds().max(0));
    let bucket = bucket_seconds(wanted_bucket, span);
    let rows = match from {
        Some(from) => store::sales_buckets(&mut conn, concert.id, from, bucket).await?,
        None => Vec::new(),
    };
    Ok(Timeline {
        from,
        bucket_seconds: bucket,
        schedules: schedules
            .into_iter()
            .map(|s| ScheduleSeries {
                schedule_id: s.id,
                starts_at: s.starts_at,
                grades: by_grade(rows.iter().filter(|r| r.schedule_id == s.id)),
            })
            .collect(),
    })
}

/// Rows of one schedule (sorted by grade, then bucket) grouped by grade.
fn by_grade<'a>(rows: impl Iterator<Item = &'a SalesBucket>) -> Vec<(String, Vec<SalesBucket>)> {
    let mut out: Vec<(String, Vec<SalesBucket>)> = Vec::new();
    for r in rows {
        match out.last_mut() {
            Some((g, points)) if *g == r.grade => points.push(r.clone()),
            _ => out.push((r.grade.clone(), vec![r.clone()])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_series_short() {
        assert_eq!(bucket_seconds(None, 0), 60);
        assert_eq!(bucket_seconds(None, 3600), 60);
        assert_eq!(bucket_seconds(None, 200 * 60 + 1), 300);
        assert_eq!(bucket_seconds(Some(3600), 60), 3600);
        assert_eq!(bucket_seconds(Some(61), 60), 300);
        assert_eq!(bucket_seconds(None, 10 * 365 * 86_400), 7 * 86_400);
        for span in [0, 59, 3600, 86_400, 30 * 86_400, 200 * 86_400] {
            assert!(span / bucket_seconds(None, span) <= MAX_BUCKETS, "{span}");
        }
    }
}
