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
    pub top_up_id: Option<i64>,
}

pub struct Entry<'a> {
    pub user_id: i64,
    /// payment, refund, adjustment, top_up, top_up_refund, top_up_cancel (and charge, the
    /// free top-ups before payments were real: history only).
    pub kind: &'a str,
    /// Signed: negative takes points away.
    pub amount: i64,
    pub reservation_id: Option<i64>,
    pub idempotency_key: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub actor_id: Option<i64>,
    pub top_up_id: Option<i64>,
}

/// Moves points and appends the ledger entry. `None` when the balance would go negative
/// (nothing written). A repeated (user, kind, key) fails with a unique violation.
///
/// Points that come in while the account owes a debt (a provider cancelled a payment
/// whose points were spent) pay the debt first, as a `debt_repayment` entry right after
/// this one: so every credit, a refund from `booking` included, settles it.
pub async fn apply(conn: &mut AsyncPgConnection, e: &Entry<'_>) -> QueryResult<Option<LedgerRow>> {
    let row: Option<LedgerRow> = diesel::sql_query(
        "WITH u AS (
             UPDATE users SET points = points + $2, updated_at = now()
             WHERE id = $1 AND points + $2 >= 0
             RETURNING points
         )
         INSERT INTO point_ledger (user_id, kind, amount, balance_after, reservation_id, idempotency_key, reason, actor_id, top_up_id)
         SELECT $1, $3, $2, u.points, $4, $5, $6, $7, $8 FROM u
         RETURNING *",
    )
    .bind::<BigInt, _>(e.user_id)
    .bind::<BigInt, _>(e.amount)
    .bind::<Text, _>(e.kind)
    .bind::<Nullable<BigInt>, _>(e.reservation_id)
    .bind::<Nullable<Text>, _>(e.idempotency_key)
    .bind::<Nullable<Text>, _>(e.reason)
    .bind::<Nullable<BigInt>, _>(e.actor_id)
    .bind::<Nullable<BigInt>, _>(e.top_up_id)
    .get_result(conn)
    .await
    .optional()?;
    if e.amount > 0 && row.is_some() {
        repay_debt(conn, e.user_id).await?;
    }
    Ok(row)
}

/// Pays what the account owes from its balance, as far as the balance goes. The user row
/// is already locked by this transaction (the credit just updated it).
async fn repay_debt(conn: &mut AsyncPgConnection, user_id: i64) -> QueryResult<()> {
    diesel::sql_query(
        "WITH d AS (
             SELECT least(points_debt, points) AS repaid FROM users WHERE id = $1 AND points_debt > 0
         ),
         u AS (
             UPDATE users SET points = points - d.repaid, points_debt = points_debt - d.repaid
             FROM d WHERE users.id = $1 AND d.repaid > 0
             RETURNING users.points, d.repaid
         )
         INSERT INTO point_ledger (user_id, kind, amount, balance_after, reason)
         SELECT $1, 'debt_repayment', -u.repaid, u.points, 'owed after a cancelled payment' FROM u",
    )
    .bind::<BigInt, _>(user_id)
    .execute(conn)
    .await
    .map(drop)
}

/// A balance, what the account owes, and the points its paid tickets would bring back if
/// refunded: the three numbers the credit bound and the wallet read.
#[derive(QueryableByName, Clone, Copy, Debug)]
pub struct Wallet {
    #[diesel(sql_type = BigInt)]
    pub points: i64,
    #[diesel(sql_type = BigInt)]
    pub debt: i64,
    #[diesel(sql_type = BigInt)]
    pub in_tickets: i64,
}

pub async fn wallet(conn: &mut AsyncPgConnection, user_id: i64) -> QueryResult<Option<Wallet>> {
    diesel::sql_query(
        "SELECT u.points, u.points_debt AS debt,
                (SELECT coalesce(sum(r.total_price), 0) FROM reservations r
                 WHERE r.user_id = u.id AND r.status = 'confirmed')::bigint AS in_tickets
         FROM users u WHERE u.id = $1",
    )
    .bind::<BigInt, _>(user_id)
    .get_result(conn)
    .await
    .optional()
}

/// Takes back up to `amount` (a payment the provider cancelled after it was credited):
/// what the balance cannot cover becomes debt. Returns the entry (if any points were
/// taken) and the debt created. The caller holds the user row.
pub async fn take_back(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    amount: i64,
    top_up_id: i64,
) -> QueryResult<(Option<LedgerRow>, i64)> {
    let Some(w) = wallet(conn, user_id).await? else {
        return Ok((None, amount));
    };
    let taken = w.points.min(amount);
    let owed = amount - taken;
    if owed > 0 {
        diesel::sql_query(
            "UPDATE users SET points_debt = points_debt + $2, updated_at = now() WHERE id = $1",
        )
        .bind::<BigInt, _>(user_id)
        .bind::<BigInt, _>(owed)
        .execute(conn)
        .await?;
    }
    if taken == 0 {
        return Ok((None, owed));
    }
    let entry = Entry {
        user_id,
        kind: "top_up_cancel",
        amount: -taken,
        reservation_id: None,
        idempotency_key: None,
        reason: Some("the payment was cancelled by the provider"),
        actor_id: None,
        top_up_id: Some(top_up_id),
    };
    Ok((apply(conn, &entry).await?, owed))
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

/// The entry that credited a top-up, if it was credited.
pub async fn credit_of(conn: &mut AsyncPgConnection, top_up_id: i64) -> QueryResult<Option<LedgerRow>> {
    point_ledger::table
        .filter(point_ledger::top_up_id.eq(top_up_id))
        .filter(point_ledger::kind.eq("top_up"))
        .select(LedgerRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// What the account owes (0 for an account that does not exist: the hold refuses it).
pub async fn debt(conn: &mut AsyncPgConnection, user_id: i64) -> QueryResult<i64> {
    use crate::schema::users;
    Ok(users::table
        .find(user_id)
        .select(users::points_debt)
        .first::<i64>(conn)
        .await
        .optional()?
        .unwrap_or(0))
}
