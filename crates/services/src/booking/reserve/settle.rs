//! A hold batch whose COMMIT went unanswered (I9 through a failover): did it commit?

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::{
    QueryResult, QueryableByName,
    sql_types::{BigInt, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::{
    db::Pool,
    error::{AppError, AppResult},
};

/// How long a batch in doubt keeps asking before it gives up: longer than a failover
/// (Patroni's ttl plus the pool's connect timeout, docs/operations.md).
const SETTLE_FOR: Duration = Duration::from_secs(30);

/// Finds out, on new connections, whether a batch whose COMMIT got no answer committed:
/// if so its answers stand; if not nothing was written and everyone may retry. Only when
/// the database stays out of reach for `SETTLE_FOR` is the answer UNAVAILABLE without
/// knowing (the client's retry with its idempotency key then finds the hold if it exists).
///
/// The transaction id alone does not say it: a standby promoted without the batch's WAL
/// hands the same id to a transaction of its own, whose commit `txid_status` then reports
/// (the failover test's "acknowledged hold was lost"). So a committed id counts only when
/// the batch's witness, a reservation it wrote with its transaction's `now()`, is there.
pub(in crate::booking) async fn settle(
    db: &Pool,
    txid: Option<i64>,
    witness: Option<(i64, DateTime<Utc>)>,
    cause: AppError,
) -> AppResult<()> {
    let Some(txid) = txid else {
        return Err(cause);
    };
    let deadline = Instant::now() + SETTLE_FOR;
    loop {
        let status = match db.get().await {
            Ok(mut conn) => lookup(&mut conn, txid, witness).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match status {
            Ok(InDoubt::Committed) => {
                tracing::warn!(txid, "booking batch: COMMIT went unanswered but took effect");
                return Ok(());
            }
            Ok(InDoubt::InProgress) => {}
            Ok(InDoubt::Reused) => {
                tracing::warn!(
                    txid,
                    "booking batch: its transaction id was reused after a failover; it never committed"
                );
                return Err(cause);
            }
            // Aborted, or unknown to the server (after a failover, an id past the new
            // primary's history: the commit never reached it).
            Ok(InDoubt::NotCommitted) => return Err(cause),
            Err(e) if e.contains("in the future") => return Err(cause),
            Err(e) => tracing::warn!(txid, error.cause = e, "booking batch in doubt: lookup failed"),
        }
        if Instant::now() >= deadline {
            tracing::error!(txid, "booking batch: outcome unknown");
            return Err(cause);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the database says of a batch in doubt.
#[derive(Debug, PartialEq, Eq)]
enum InDoubt {
    Committed,
    InProgress,
    NotCommitted,
    /// Its id committed, but as another transaction: the batch's never reached this server.
    Reused,
}

async fn lookup(
    conn: &mut AsyncPgConnection,
    txid: i64,
    witness: Option<(i64, DateTime<Utc>)>,
) -> QueryResult<InDoubt> {
    match txid_status(conn, txid).await?.as_deref() {
        Some("committed") => {}
        Some("in progress") => return Ok(InDoubt::InProgress),
        _ => return Ok(InDoubt::NotCommitted),
    }
    let Some((id, created_at)) = witness else {
        // It wrote no reservation: its answers (refusals, replays) are true either way.
        return Ok(InDoubt::Committed);
    };
    // A statement of its own, after the status: its snapshot sees a commit the status saw.
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let found: Found = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM reservations WHERE id = $1 AND created_at = $2) AS found",
    )
    .bind::<BigInt, _>(id)
    .bind::<Timestamptz, _>(created_at)
    .get_result(conn)
    .await?;
    Ok(if found.found {
        InDoubt::Committed
    } else {
        InDoubt::Reused
    })
}

async fn txid_status(conn: &mut AsyncPgConnection, txid: i64) -> QueryResult<Option<String>> {
    #[derive(QueryableByName)]
    struct Status {
        #[diesel(sql_type = Nullable<Text>)]
        status: Option<String>,
    }
    let row: Status = diesel::sql_query("SELECT txid_status($1) AS status")
        .bind::<BigInt, _>(txid)
        .get_result(conn)
        .await?;
    Ok(row.status)
}
