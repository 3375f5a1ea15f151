//! The relay's lease: one row per lease name in PostgreSQL, held by one instance until it
//! runs out. The holder renews it every round; an instance that dies or freezes stops
//! renewing, and another takes it over once it has run out. Time is the database's, so
//! instances with skewed clocks still agree on who holds it.
//!
//! The lease makes one relay the rule; it is not what keeps two relays from sending the
//! same delivery. A frozen holder can wake after its lease was taken over, so every claim is
//! also guarded by `FOR UPDATE SKIP LOCKED` and a per-delivery claim time (see `relay`).

use std::time::Duration;

use diesel::{
    QueryResult, QueryableByName,
    sql_types::{BigInt, Bool, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

#[derive(QueryableByName)]
struct Held {
    #[diesel(sql_type = Bool)]
    held: bool,
}

/// Takes the lease `name` for `holder`, or renews it if `holder` has it, for `ttl`. True if
/// `holder` holds it now.
pub async fn acquire(
    conn: &mut AsyncPgConnection,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> QueryResult<bool> {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let rows: Vec<Held> = diesel::sql_query(
        "INSERT INTO relay_leases AS l (name, holder, expires_at)
         VALUES ($1, $2, now() + $3 * interval '1 millisecond')
         ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
         WHERE l.holder = EXCLUDED.holder OR l.expires_at < now()
         RETURNING true AS held",
    )
    .bind::<Text, _>(name)
    .bind::<Text, _>(holder)
    .bind::<BigInt, _>(ttl_ms)
    .load(conn)
    .await?;
    Ok(rows.iter().any(|r| r.held))
}

/// Gives the lease up (a clean shutdown), so another instance need not wait for it to run
/// out.
pub async fn release(conn: &mut AsyncPgConnection, name: &str, holder: &str) -> QueryResult<()> {
    diesel::sql_query("DELETE FROM relay_leases WHERE name = $1 AND holder = $2")
        .bind::<Text, _>(name)
        .bind::<Text, _>(holder)
        .execute(conn)
        .await?;
    Ok(())
}
