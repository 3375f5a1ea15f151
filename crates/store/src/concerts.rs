//! Concert and schedule rows and their queries.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::{concerts, schedules};

crate::text_enum! {
    // Stored in `concerts.status`.
    /// A draft is visible to its host only; published and cancelled concerts are public.
    pub enum ConcertStatus {
        Draft => "draft",
        Published => "published",
        Cancelled => "cancelled",
    }
}

crate::text_enum! {
    // Stored in `schedules.status`.
    /// Whether the performance takes place.
    pub enum ScheduleStatus {
        Scheduled => "scheduled",
        Cancelled => "cancelled",
    }
}

#[derive(Queryable, Selectable, QueryableByName, Clone, Debug)]
#[diesel(table_name = concerts)]
pub struct ConcertRow {
    pub id: i64,
    pub host_id: i64,
    pub title: String,
    pub artist: String,
    pub description: String,
    pub venue: String,
    pub category: String,
    pub poster_url: Option<String>,
    pub status: ConcertStatus,
    pub cancel_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Insertable, AsChangeset, Default)]
#[diesel(table_name = concerts)]
pub struct ConcertChanges {
    pub title: Option<String>,
    pub artist: Option<String>,
    pub description: Option<String>,
    pub venue: Option<String>,
    pub category: Option<String>,
    pub poster_url: Option<Option<String>>,
}

/// The columns of [`ScheduleRow`] as `<table>.<column>, …`, for raw statements that read a
/// schedule by name: a statement kept prepared ([`crate::db::Prepared`]) must not say `s.*`.
/// Kept equal to the struct by a test in `db::prepared`.
#[macro_export]
macro_rules! schedule_columns {
    ($t:literal) => {
        $crate::columns!($t: id, concert_id, starts_at, sales_open_at, sales_close_at,
            per_user_limit, hold_seconds, queue_enabled, admit_per_second, max_active,
            admission_seconds, status, capacity, booked_count, version, created_at)
    };
}

#[derive(Queryable, Selectable, QueryableByName, Clone, Debug)]
#[diesel(table_name = schedules)]
pub struct ScheduleRow {
    pub id: i64,
    pub concert_id: i64,
    pub starts_at: DateTime<Utc>,
    pub sales_open_at: DateTime<Utc>,
    pub sales_close_at: DateTime<Utc>,
    pub per_user_limit: i32,
    pub hold_seconds: i32,
    pub queue_enabled: bool,
    pub admit_per_second: i32,
    pub max_active: i32,
    pub admission_seconds: i32,
    pub status: ScheduleStatus,
    pub capacity: i32,
    pub booked_count: i32,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = schedules)]
pub struct NewSchedule {
    pub concert_id: i64,
    pub starts_at: DateTime<Utc>,
    pub sales_open_at: DateTime<Utc>,
    pub sales_close_at: DateTime<Utc>,
    pub per_user_limit: i32,
    pub hold_seconds: i32,
    pub queue_enabled: bool,
    pub admit_per_second: i32,
    pub max_active: i32,
    pub admission_seconds: i32,
}

pub async fn insert_concert(
    conn: &mut AsyncPgConnection,
    host_id: i64,
    c: &ConcertChanges,
) -> QueryResult<ConcertRow> {
    diesel::insert_into(concerts::table)
        .values((concerts::host_id.eq(host_id), c))
        .returning(ConcertRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn concert(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<ConcertRow>> {
    concerts::table
        .find(id)
        .select(ConcertRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn concerts_by_ids(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<ConcertRow>> {
    concerts::table
        .filter(concerts::id.eq_any(ids))
        .select(ConcertRow::as_select())
        .load(conn)
        .await
}

pub async fn update_concert(
    conn: &mut AsyncPgConnection,
    id: i64,
    c: &ConcertChanges,
) -> QueryResult<ConcertRow> {
    diesel::update(concerts::table.find(id))
        .set((c, concerts::updated_at.eq(diesel::dsl::now)))
        .returning(ConcertRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn set_concert_status(
    conn: &mut AsyncPgConnection,
    id: i64,
    status: ConcertStatus,
    reason: Option<&str>,
) -> QueryResult<ConcertRow> {
    diesel::update(concerts::table.find(id))
        .set((
            concerts::status.eq(status),
            concerts::cancel_reason.eq(reason),
            concerts::updated_at.eq(diesel::dsl::now),
        ))
        .returning(ConcertRow::as_returning())
        .get_result(conn)
        .await
}

/// Concerts of one host, newest first, after the cursor id.
pub async fn concerts_of_host(
    conn: &mut AsyncPgConnection,
    host_id: i64,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<ConcertRow>> {
    let mut q = concerts::table
        .filter(concerts::host_id.eq(host_id))
        .select(ConcertRow::as_select())
        .order(concerts::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(concerts::id.lt(after));
    }
    q.load(conn).await
}

pub async fn insert_schedule(conn: &mut AsyncPgConnection, s: &NewSchedule) -> QueryResult<ScheduleRow> {
    diesel::insert_into(schedules::table)
        .values(s)
        .returning(ScheduleRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn schedule(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<ScheduleRow>> {
    schedules::table
        .find(id)
        .select(ScheduleRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A schedule with its concert, in one read: whoever reads a schedule by id also needs its
/// concert's status and host (the visibility rule), and a GraphQL seat-map read would
/// otherwise take a second pooled connection and round trip for it.
pub async fn schedule_with_concert(
    conn: &mut AsyncPgConnection,
    id: i64,
) -> QueryResult<Option<(ScheduleRow, ConcertRow)>> {
    schedules::table
        .inner_join(concerts::table)
        .filter(schedules::id.eq(id))
        .select((ScheduleRow::as_select(), ConcertRow::as_select()))
        .first(conn)
        .await
        .optional()
}

pub async fn schedules_by_ids(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<ScheduleRow>> {
    schedules::table
        .filter(schedules::id.eq_any(ids))
        .select(ScheduleRow::as_select())
        .load(conn)
        .await
}

pub async fn schedules_of_concerts(
    conn: &mut AsyncPgConnection,
    concert_ids: &[i64],
) -> QueryResult<Vec<ScheduleRow>> {
    schedules::table
        .filter(schedules::concert_id.eq_any(concert_ids))
        .select(ScheduleRow::as_select())
        .order((schedules::starts_at.asc(), schedules::id.asc()))
        .load(conn)
        .await
}

pub async fn schedule_ids_of_concert(conn: &mut AsyncPgConnection, concert_id: i64) -> QueryResult<Vec<i64>> {
    schedules::table
        .filter(schedules::concert_id.eq(concert_id))
        .select(schedules::id)
        .order(schedules::id.asc())
        .load(conn)
        .await
}

pub async fn count_sellable_schedules(conn: &mut AsyncPgConnection, concert_id: i64) -> QueryResult<i64> {
    schedules::table
        .filter(schedules::concert_id.eq(concert_id))
        .filter(schedules::status.eq(ScheduleStatus::Scheduled))
        .filter(schedules::capacity.gt(0))
        .count()
        .get_result(conn)
        .await
}

pub async fn set_schedule_cancelled(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<ScheduleRow> {
    diesel::update(schedules::table.find(id))
        .set((
            schedules::status.eq(ScheduleStatus::Cancelled),
            schedules::version.eq(schedules::version + 1),
            schedules::updated_at.eq(diesel::dsl::now),
        ))
        .returning(ScheduleRow::as_returning())
        .get_result(conn)
        .await
}
