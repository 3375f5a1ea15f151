//! Notices: what boxoffice tells a user when no request of theirs is waiting for the answer
//! (a webhook given up on). Written by whoever decides it, in that transaction (the relay
//! writes its own in `boxoffice_outbox::relay::disable_webhook`); read and marked read here,
//! always by the user's id, so nobody reads another's.

use chrono::{DateTime, Utc};
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Bool, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(QueryableByName, Clone, Debug, PartialEq)]
pub struct NoticeRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub subject: String,
    #[diesel(sql_type = Text)]
    pub message: String,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub read_at: Option<DateTime<Utc>>,
}

/// The user's notices, newest first, before the cursor id; unread ones only if asked. At
/// most `limit + 1` rows (the extra one says there is a next page).
pub async fn list(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    unread_only: bool,
    before: Option<i64>,
    limit: i64,
) -> diesel::QueryResult<Vec<NoticeRow>> {
    diesel::sql_query(
        "SELECT id, kind, subject, message, created_at, read_at FROM notices
         WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2) AND (NOT $3 OR read_at IS NULL)
         ORDER BY id DESC LIMIT $4",
    )
    .bind::<BigInt, _>(user_id)
    .bind::<Nullable<BigInt>, _>(before)
    .bind::<Bool, _>(unread_only)
    .bind::<BigInt, _>(limit + 1)
    .load(conn)
    .await
}

/// Marks the user's unread notices up to and including `up_to` read; how many were unread.
/// Marking again changes nothing (the first reading time stays).
pub async fn mark_read(conn: &mut AsyncPgConnection, user_id: i64, up_to: i64) -> diesel::QueryResult<usize> {
    diesel::sql_query(
        "UPDATE notices SET read_at = now() WHERE user_id = $1 AND id <= $2 AND read_at IS NULL",
    )
    .bind::<BigInt, _>(user_id)
    .bind::<BigInt, _>(up_to)
    .execute(conn)
    .await
}

/// How many unread notices the user has.
pub async fn unread_count(conn: &mut AsyncPgConnection, user_id: i64) -> diesel::QueryResult<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let n: N = diesel::sql_query("SELECT count(*) AS n FROM notices WHERE user_id = $1 AND read_at IS NULL")
        .bind::<BigInt, _>(user_id)
        .get_result(conn)
        .await?;
    Ok(n.n)
}
