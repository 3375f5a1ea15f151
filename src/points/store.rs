//! Ledger rows and the one statement that moves points.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Nullable, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::point_ledger;

#[derive(Queryable, Selectable, QueryableByName, Clone, Debug)]
#[diesel(table_name = point_ledger)]
pub struct LedgerRow {
    pub id: i64,
    pub user_id: i64,
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub reservation_id: Option<i64>,
    pub idempotency_key: Option<String>,
    pub reason: Option<String>,
    pub actor_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

pub struct Entry<'a> {
    pub user_id: i64,
    /// charge, payment, refund or adjustment.
    pub kind: &'a str,
    /// Signed: negative takes points away.
    pub amount: i64,
    pub reservation_id: Option<i64>,
    pub idempotency_key: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub actor_id: Option<i64>,
}

/// Moves points and appends the ledger entry. `None` when the balance would go negative
/// (nothing written). A repeated (user, kind, key) fails with a unique violation.
pub async fn apply(conn: &mut AsyncPgConnection, e: &Entry<'_>) -> QueryResult<Option<LedgerRow>> {
    diesel::sql_query(
        "WITH u AS (
             UPDATE users SET points = points + $2, updated_at = now()
             WHERE id = $1 AND points + $2 >= 0
             RETURNING points
         )
         INSERT INTO point_ledger (user_id, kind, amount, balance_after, reservation_id, idempotency_key, reason, actor_id)
         SELECT $1, $3, $2, u.points, $4, $5, $6, $7 FROM u
         RETURNING *",
    )
    .bind::<BigInt, _>(e.user_id)
    .bind::<BigInt, _>(e.amount)
    .bind::<Text, _>(e.kind)
    .bind::<Nullable<BigInt>, _>(e.reservation_id)
    .bind::<Nullable<Text>, _>(e.idempotency_key)
    .bind::<Nullable<Text>, _>(e.reason)
    .bind::<Nullable<BigInt>, _>(e.actor_id)
    .get_result(conn)
    .await
    .optional()
}

pub async fn entry_with_key(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    kind: &str,
    key: &str,
) -> QueryResult<Option<LedgerRow>> {
    point_ledger::table
        .filter(point_ledger::user_id.eq(user_id))
        .filter(point_ledger::kind.eq(kind))
        .filter(point_ledger::idempotency_key.eq(key))
        .select(LedgerRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The reservation a payment with this key paid, if the key was used: `Some(id)`.
pub async fn payment_with_key(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    key: &str,
) -> QueryResult<Option<Option<i64>>> {
    Ok(entry_with_key(conn, user_id, "payment", key)
        .await?
        .map(|e| e.reservation_id))
}

/// A user's entries, newest first, after the cursor id.
pub async fn history(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<LedgerRow>> {
    let mut q = point_ledger::table
        .filter(point_ledger::user_id.eq(user_id))
        .select(LedgerRow::as_select())
        .order(point_ledger::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(point_ledger::id.lt(after));
    }
    q.load(conn).await
}
