//! Top-up rows and their queries. Row locks are taken through `crate::locks`.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::top_ups;

crate::text_enum! {
    // Stored in `top_ups.status`.
    /// Where a top-up stands.
    pub enum TopUpStatus {
        /// Started; the provider has not confirmed the payment (yet). Nothing credited.
        Pending => "pending",
        /// Paid and credited, once.
        Confirmed => "confirmed",
        /// The provider refused or the payment expired. Nothing credited.
        Failed => "failed",
        /// Cancelled by the provider (before or after credit; after, the points came back out).
        Cancelled => "cancelled",
        /// Being refunded to the card: the points are already out of the balance.
        Refunding => "refunding",
        /// Refunded to the card.
        Refunded => "refunded",
    }
}

#[derive(Queryable, Selectable, QueryableByName, Clone, Debug)]
#[diesel(table_name = top_ups)]
pub struct TopUpRow {
    pub id: i64,
    pub user_id: i64,
    pub order_id: String,
    pub amount: i64,
    pub provider: String,
    pub status: TopUpStatus,
    pub idempotency_key: String,
    pub payment_key: Option<String>,
    pub failure: Option<String>,
    pub debt_created: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
}

#[derive(Insertable)]
#[diesel(table_name = top_ups)]
pub struct NewTopUp<'a> {
    pub user_id: i64,
    pub order_id: &'a str,
    pub amount: i64,
    pub provider: &'a str,
    pub status: TopUpStatus,
    pub idempotency_key: &'a str,
}

pub async fn insert(conn: &mut AsyncPgConnection, t: &NewTopUp<'_>) -> QueryResult<TopUpRow> {
    diesel::insert_into(top_ups::table)
        .values(t)
        .returning(TopUpRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn by_id(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<TopUpRow>> {
    top_ups::table
        .find(id)
        .select(TopUpRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn by_order(conn: &mut AsyncPgConnection, order_id: &str) -> QueryResult<Option<TopUpRow>> {
    top_ups::table
        .filter(top_ups::order_id.eq(order_id))
        .select(TopUpRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn by_key(conn: &mut AsyncPgConnection, user_id: i64, key: &str) -> QueryResult<Option<TopUpRow>> {
    top_ups::table
        .filter(top_ups::user_id.eq(user_id))
        .filter(top_ups::idempotency_key.eq(key))
        .select(TopUpRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A user's top-ups, newest first, after the cursor id.
pub async fn of_user(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<TopUpRow>> {
    let mut q = top_ups::table
        .filter(top_ups::user_id.eq(user_id))
        .select(TopUpRow::as_select())
        .order(top_ups::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(top_ups::id.lt(after));
    }
    q.load(conn).await
}

/// Sets the status (and what goes with it). The caller holds the row.
pub async fn set_status(
    conn: &mut AsyncPgConnection,
    id: i64,
    status: TopUpStatus,
    failure: Option<&str>,
) -> QueryResult<TopUpRow> {
    diesel::sql_query(
        "UPDATE top_ups SET status = $2, failure = coalesce($3, failure), updated_at = now(),
                confirmed_at = CASE WHEN $2 = 'confirmed' THEN coalesce(confirmed_at, now()) ELSE confirmed_at END
         WHERE id = $1 RETURNING *",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(status.as_db())
    .bind::<diesel::sql_types::Nullable<Text>, _>(failure)
    .get_result(conn)
    .await
}

/// Records the provider's payment key, unless another one is already recorded. `None`:
/// the top-up has another key.
pub async fn set_payment_key(
    conn: &mut AsyncPgConnection,
    id: i64,
    key: &str,
) -> QueryResult<Option<TopUpRow>> {
    diesel::sql_query(
        "UPDATE top_ups SET payment_key = $2, updated_at = now()
         WHERE id = $1 AND (payment_key IS NULL OR payment_key = $2) RETURNING *",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(key)
    .get_result(conn)
    .await
    .optional()
}

pub async fn add_debt_created(conn: &mut AsyncPgConnection, id: i64, debt: i64) -> QueryResult<()> {
    diesel::sql_query("UPDATE top_ups SET debt_created = debt_created + $2 WHERE id = $1")
        .bind::<BigInt, _>(id)
        .bind::<BigInt, _>(debt)
        .execute(conn)
        .await
        .map(drop)
}

#[derive(QueryableByName)]
struct Sum {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Points of top-ups started but not settled: they count against the balance bound
/// until they fail, so confirming them can never push a balance over it.
pub async fn pending_sum(conn: &mut AsyncPgConnection, user_id: i64) -> QueryResult<i64> {
    diesel::sql_query(
        "SELECT coalesce(sum(amount), 0)::bigint AS n FROM top_ups WHERE user_id = $1 AND status = 'pending'",
    )
    .bind::<BigInt, _>(user_id)
    .get_result::<Sum>(conn)
    .await
    .map(|s| s.n)
}

/// Sandbox points given to the user in the last 24 hours (refunded ones too: the cap is
/// on what was handed out).
pub async fn sandbox_sum_last_day(conn: &mut AsyncPgConnection, user_id: i64) -> QueryResult<i64> {
    diesel::sql_query(
        "SELECT coalesce(sum(amount), 0)::bigint AS n FROM top_ups
         WHERE user_id = $1 AND provider = 'sandbox' AND status <> 'failed'
           AND created_at > now() - interval '24 hours'",
    )
    .bind::<BigInt, _>(user_id)
    .get_result::<Sum>(conn)
    .await
    .map(|s| s.n)
}

/// Top-ups waiting on the provider (PENDING, or a refund not yet answered) last touched
/// before `older_than_s` seconds ago: the reconciliation job's work.
pub async fn unsettled(
    conn: &mut AsyncPgConnection,
    older_than_s: i64,
    limit: i64,
) -> QueryResult<Vec<TopUpRow>> {
    diesel::sql_query(
        "SELECT * FROM top_ups WHERE status IN ('pending', 'refunding') AND provider <> 'sandbox'
           AND updated_at < now() - make_interval(secs => $1::double precision)
         ORDER BY updated_at LIMIT $2",
    )
    .bind::<BigInt, _>(older_than_s)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// Touches the row so the reconciliation job comes back to it one interval later.
pub async fn touch(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<()> {
    diesel::sql_query("UPDATE top_ups SET updated_at = now() WHERE id = $1")
        .bind::<BigInt, _>(id)
        .execute(conn)
        .await
        .map(drop)
}
