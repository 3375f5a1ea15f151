//! Waiting-list rows and reads (the locking read of a line is in `crate::locks`).

use chrono::{DateTime, Utc};
use diesel::{
    QueryableByName,
    prelude::*,
    sql_types::{Array, BigInt, Int4, Nullable, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::waitlist_entries;

/// A hold made for a waiting entry, as published to its fan.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Offer {
    pub entry_id: i64,
    pub user_id: i64,
    pub schedule_id: i64,
    pub reservation_id: i64,
}

crate::text_enum! {
    // Stored in `waitlist_entries.status`.
    /// Where a waiting-list entry stands.
    pub enum WaitlistStatus {
        /// In line.
        Waiting => "waiting",
        /// A hold was made for it (see `reservation`); the entry is done.
        Offered => "offered",
        /// The fan left the line.
        Left => "left",
    }
}

#[derive(Queryable, Selectable, QueryableByName, Clone, Debug, PartialEq)]
#[diesel(table_name = waitlist_entries)]
pub struct EntryRow {
    pub id: i64,
    pub schedule_id: i64,
    pub user_id: i64,
    pub seat_count: i32,
    pub grade: Option<String>,
    pub status: WaitlistStatus,
    pub reservation_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    user_id: i64,
    count: i32,
    grade: Option<&str>,
) -> QueryResult<EntryRow> {
    diesel::sql_query(
        "INSERT INTO waitlist_entries (schedule_id, user_id, seat_count, grade)
         VALUES ($1, $2, $3, $4) RETURNING *",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<BigInt, _>(user_id)
    .bind::<Int4, _>(count)
    .bind::<Nullable<Text>, _>(grade)
    .get_result(conn)
    .await
}

/// An entry by id.
pub async fn entry(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<EntryRow>> {
    waitlist_entries::table
        .find(id)
        .select(EntryRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The user's waiting entry for a schedule, if any.
pub async fn waiting(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    user_id: i64,
) -> QueryResult<Option<EntryRow>> {
    waitlist_entries::table
        .filter(waitlist_entries::schedule_id.eq(schedule_id))
        .filter(waitlist_entries::user_id.eq(user_id))
        .filter(waitlist_entries::status.eq(WaitlistStatus::Waiting))
        .select(EntryRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Takes the user out of a schedule's line. Returns the entry left, if they were in it.
pub async fn leave(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    user_id: i64,
) -> QueryResult<Option<EntryRow>> {
    diesel::sql_query(
        "UPDATE waitlist_entries SET status = 'left', updated_at = now()
         WHERE schedule_id = $1 AND user_id = $2 AND status = 'waiting' RETURNING *",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<BigInt, _>(user_id)
    .get_result(conn)
    .await
    .optional()
}

/// Marks entries offered with the holds made for them.
pub async fn mark_offered(conn: &mut AsyncPgConnection, offers: &[Offer]) -> QueryResult<()> {
    if offers.is_empty() {
        return Ok(());
    }
    let entries: Vec<i64> = offers.iter().map(|o| o.entry_id).collect();
    let reservations: Vec<i64> = offers.iter().map(|o| o.reservation_id).collect();
    diesel::sql_query(
        "UPDATE waitlist_entries SET status = 'offered', reservation_id = o.reservation_id, updated_at = now()
         FROM unnest($1::bigint[], $2::bigint[]) AS o(entry_id, reservation_id)
         WHERE waitlist_entries.id = o.entry_id",
    )
    .bind::<Array<BigInt>, _>(entries)
    .bind::<Array<BigInt>, _>(reservations)
    .execute(conn)
    .await
    .map(drop)
}

/// The user's entries still waiting or offered, newest first (at most `limit`).
pub async fn entries_of_user(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    limit: i64,
) -> QueryResult<Vec<EntryRow>> {
    waitlist_entries::table
        .filter(waitlist_entries::user_id.eq(user_id))
        .filter(waitlist_entries::status.ne(WaitlistStatus::Left))
        .order(waitlist_entries::id.desc())
        .limit(limit)
        .select(EntryRow::as_select())
        .load(conn)
        .await
}

/// How many entries of the schedule's line are ahead of `entry_id`, plus one.
pub async fn position(conn: &mut AsyncPgConnection, schedule_id: i64, entry_id: i64) -> QueryResult<i64> {
    let row: N = diesel::sql_query(
        "SELECT count(*) + 1 AS n FROM waitlist_entries
         WHERE schedule_id = $1 AND status = 'waiting' AND id < $2",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<BigInt, _>(entry_id)
    .get_result(conn)
    .await?;
    Ok(row.n)
}

/// How many fans wait on a schedule.
pub async fn length(conn: &mut AsyncPgConnection, schedule_id: i64) -> QueryResult<i64> {
    let row: N = diesel::sql_query(
        "SELECT count(*) AS n FROM waitlist_entries WHERE schedule_id = $1 AND status = 'waiting'",
    )
    .bind::<BigInt, _>(schedule_id)
    .get_result(conn)
    .await?;
    Ok(row.n)
}

#[derive(QueryableByName)]
pub struct GradeFree {
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub free: i64,
}

/// Per grade of a schedule: its name and free seats.
pub async fn free_per_grade(conn: &mut AsyncPgConnection, schedule_id: i64) -> QueryResult<Vec<GradeFree>> {
    diesel::sql_query(
        "SELECT g.name, count(s.id) FILTER (WHERE s.status = 'available') AS free
         FROM seat_grades g LEFT JOIN seats s ON s.grade_id = g.id
         WHERE g.schedule_id = $1 GROUP BY g.id ORDER BY g.position",
    )
    .bind::<BigInt, _>(schedule_id)
    .load(conn)
    .await
}

/// Seats the user holds or owns on a schedule.
pub async fn seats_of_user(conn: &mut AsyncPgConnection, schedule_id: i64, user_id: i64) -> QueryResult<i64> {
    let row: N = diesel::sql_query(
        "SELECT coalesce(sum(seat_count), 0)::bigint AS n FROM reservations
         WHERE schedule_id = $1 AND user_id = $2 AND status IN ('held', 'confirmed')",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<BigInt, _>(user_id)
    .get_result(conn)
    .await?;
    Ok(row.n)
}
