//! A write whose COMMIT went unanswered (I9 through a failover): did it commit?
//!
//! A write whose connection drops at COMMIT (a failover, a killed backend, a partition
//! that outlasts the reply deadline) may have committed or not. Answering UNAVAILABLE
//! ("nothing happened") could be false, so the writer finds out first, on new
//! connections, from the transaction's id and a row only that transaction wrote (its
//! witness).
//!
//! - Every write but booking's runs through [`write`]: its transaction under the reply
//!   deadline, ending with a row of `write_marks` (the transaction's id and `now()`) as its
//!   witness. One insert per write, pruned by later writes: top-ups, points adjustments,
//!   the door, a host's and an admin's edits.
//! - Booking's writes have witnesses of their own and write no mark (the hold batch is the
//!   hot path): the hold batch records its id and a reservation's `created_at` as it goes
//!   (`booking::reserve`); a payment, a cancellation or a refund ends its transaction with
//!   [`mark`] (the reservation's `paid_at` or `cancelled_at`) and answers through
//!   [`answer`].

use std::{
    future::Future,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use diesel::{
    QueryResult, QueryableByName,
    sql_types::{BigInt, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use crate::{
    db::Pool,
    error::{AppError, AppResult},
};

/// How long a write in doubt keeps asking before it gives up: longer than a failover
/// (Patroni's ttl plus the pool's connect timeout, docs/operations.md).
const SETTLE_FOR: Duration = Duration::from_secs(30);

/// A row that only one transaction can have written: a row whose column was set to that
/// transaction's `now()` and is never set again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Witness {
    /// `created_at` of a reservation a hold batch wrote.
    Held(i64),
    /// `paid_at` of a reservation a payment confirmed.
    Paid(i64),
    /// `cancelled_at` of a reservation a cancellation or refund released.
    Cancelled(i64),
    /// The `write_marks` row of the transaction with this id ([`write`]).
    Marked(i64),
}

impl Witness {
    /// Whether the witness row is there: its id, and the column its transaction's `now()`
    /// was written to.
    fn query(self) -> (&'static str, i64) {
        match self {
            Self::Held(id) => (
                "SELECT EXISTS (SELECT 1 FROM reservations WHERE id = $1 AND created_at = $2) AS found",
                id,
            ),
            Self::Paid(id) => (
                "SELECT EXISTS (SELECT 1 FROM reservations WHERE id = $1 AND paid_at = $2) AS found",
                id,
            ),
            Self::Cancelled(id) => (
                "SELECT EXISTS (SELECT 1 FROM reservations WHERE id = $1 AND cancelled_at = $2) AS found",
                id,
            ),
            Self::Marked(txid) => (
                "SELECT EXISTS (SELECT 1 FROM write_marks WHERE txid = $1 AND at = $2) AS found",
                txid,
            ),
        }
    }
}

/// Where a write settles if its COMMIT goes unanswered, and how long it waits for the
/// database's reply (`BOOKING_REPLY_TIMEOUT_MS`, or `BULK_WRITE_REPLY_TIMEOUT_MS` for a
/// host's operation over a whole show: `state::Services::writes`).
#[derive(Clone, Copy)]
pub struct Writes<'a> {
    /// The pool the write's connections come from, and its settling's.
    pub db: &'a Pool,
    pub reply: Option<Duration>,
    /// Whether an unanswered COMMIT is settled (off only [`Writes::by_hand`]).
    pub settle: bool,
}

impl<'a> Writes<'a> {
    /// For a command an operator runs by hand (the demo's seed, on a pool of one
    /// connection): no deadline and no settling. Its operator sees an error and runs it
    /// again; what it writes is written once however often it runs.
    pub fn by_hand(db: &'a Pool) -> Writes<'a> {
        Writes {
            db,
            reply: None,
            settle: false,
        }
    }
}

/// What settling a write needs if its COMMIT goes unanswered: its transaction's id and
/// its witness with the transaction's `now()`.
pub(crate) struct Mark {
    txid: i64,
    witness: Option<(Witness, DateTime<Utc>)>,
}

/// Ends a write's transaction body (the last statement before COMMIT): reads the
/// transaction's id and `now()`, one round trip that only a write that changed something
/// pays (refusals and replays return before it and need no settling: nothing was written).
pub(crate) async fn mark(conn: &mut AsyncPgConnection, witness: Witness) -> QueryResult<Mark> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        txid: i64,
        #[diesel(sql_type = Timestamptz)]
        at: DateTime<Utc>,
    }
    let row: Row = diesel::sql_query("SELECT txid_current() AS txid, now() AS at")
        .get_result(conn)
        .await?;
    Ok(Mark {
        txid: row.txid,
        witness: Some((witness, row.at)),
    })
}

/// The witness of every write through [`write`]: a `write_marks` row with the
/// transaction's id and `now()`. The same statement deletes a few marks older than anyone
/// settles (`SETTLE_FOR` after a deadline), skipping those another write is deleting, so
/// the table stays the size of a few minutes' writes with no task of its own.
async fn mark_write(conn: &mut AsyncPgConnection) -> QueryResult<Mark> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        txid: i64,
        #[diesel(sql_type = Timestamptz)]
        at: DateTime<Utc>,
    }
    let row: Row = diesel::sql_query(
        "WITH old AS (
           SELECT txid, at FROM write_marks WHERE at < now() - interval '5 minutes'
           ORDER BY at LIMIT 8 FOR UPDATE SKIP LOCKED
         ), gone AS (
           DELETE FROM write_marks m USING old WHERE m.txid = old.txid AND m.at = old.at
         )
         INSERT INTO write_marks (txid, at) VALUES (txid_current(), now()) RETURNING txid, at",
    )
    .get_result(conn)
    .await?;
    Ok(Mark {
        txid: row.txid,
        witness: Some((Witness::Marked(row.txid), row.at)),
    })
}

/// What a [`write`]'s body is: an async closure over the transaction's connection whose
/// future is `Send` (so is the write's). The bound diesel-async's `transaction` puts on its
/// callback, under a name of ours (diesel-async's is private).
pub trait Body<'r, T>: FnOnce(&'r mut AsyncPgConnection) -> <Self as Body<'r, T>>::Fut {
    type Fut: Future<Output = AppResult<T>> + Send;
}

impl<'r, T, F, Fut> Body<'r, T> for F
where
    F: FnOnce(&'r mut AsyncPgConnection) -> Fut,
    Fut: Future<Output = AppResult<T>> + Send,
{
    type Fut = Fut;
}

/// Runs `body` as one transaction on `conn` under the reply deadline and answers its true
/// outcome: its value if it committed, even when the COMMIT's answer was lost (settled by
/// its mark); its error, or UNAVAILABLE, only when nothing was written. A body that fails
/// rolls back and writes no mark.
pub async fn write<T, F>(conn: &mut AsyncPgConnection, writes: Writes<'_>, body: F) -> AppResult<T>
where
    for<'r> F: AsyncFnOnce(&'r mut AsyncPgConnection) -> AppResult<T> + Body<'r, T> + Send,
    T: Send,
{
    let mut done = None;
    let committed = within(
        writes.reply,
        conn.transaction(async |conn| {
            let value = body(conn).await?;
            let mark = mark_write(conn).await?;
            done = Some((value, Some(mark)));
            Ok(())
        }),
    )
    .await;
    answer(writes, committed, done).await
}

/// Runs a write's transaction with the reply deadline (`BOOKING_REPLY_TIMEOUT_MS`): see
/// `reserve::reserve_group` for why a partition needs one on this side. On expiry the
/// connection is left inside its transaction, so the pool discards it as broken.
pub(crate) async fn within(
    reply: Option<Duration>,
    transaction: impl Future<Output = AppResult<()>>,
) -> AppResult<()> {
    let Some(reply) = reply else {
        return transaction.await;
    };
    tokio::time::timeout(reply, transaction)
        .await
        .unwrap_or_else(|_| {
            metrics::counter!("booking_reply_timeouts_total").increment(1);
            Err(AppError::unavailable(anyhow::anyhow!(
                "the database did not answer the transaction within {reply:?}"
            )))
        })
}

/// The answer of a write whose transaction ran through [`within`]: `done` is what its body
/// left when it reached its end ([`mark`] included). A failure after that is a COMMIT
/// without an answer (lost connection, deadline) and is settled; a failure before it, or a
/// COMMIT the server refused in words, wrote nothing.
pub(crate) async fn answer<T>(
    writes: Writes<'_>,
    committed: AppResult<()>,
    done: Option<(T, Option<Mark>)>,
) -> AppResult<T> {
    match (committed, done) {
        (Ok(()), Some((value, _))) => Ok(value),
        (Err(cause @ AppError::Unavailable(_)), Some((value, Some(mark)))) if writes.settle => {
            settle(writes.db, Some(mark.txid), mark.witness, cause)
                .await
                .map(|()| value)
        }
        (Err(e), _) => Err(e),
        (Ok(()), None) => Err(AppError::internal(anyhow::anyhow!(
            "a transaction committed without its outcome"
        ))),
    }
}

/// Finds out, on new connections, whether a write whose COMMIT got no answer committed:
/// if so its answers stand; if not nothing was written and everyone may retry. Only when
/// the database stays out of reach for `SETTLE_FOR` is the answer UNAVAILABLE without
/// knowing (the client's retry with its idempotency key then finds the write if it exists).
///
/// The transaction id alone does not say it: a standby promoted without the write's WAL
/// hands the same id to a transaction of its own, whose commit `txid_status` then reports
/// (the failover test's "acknowledged hold was lost"). So a committed id counts only when
/// the write's witness is there.
pub(crate) async fn settle(
    db: &Pool,
    txid: Option<i64>,
    witness: Option<(Witness, DateTime<Utc>)>,
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
                tracing::warn!(txid, "write: COMMIT went unanswered but took effect");
                return Ok(());
            }
            Ok(InDoubt::InProgress) => {}
            Ok(InDoubt::Reused) => {
                tracing::warn!(
                    txid,
                    "write: its transaction id was reused after a failover; it never committed"
                );
                return Err(cause);
            }
            // Aborted, or unknown to the server (after a failover, an id past the new
            // primary's history: the commit never reached it).
            Ok(InDoubt::NotCommitted) => return Err(cause),
            Err(e) if e.contains("in the future") => return Err(cause),
            Err(e) => tracing::warn!(txid, error.cause = e, "write in doubt: lookup failed"),
        }
        if Instant::now() >= deadline {
            tracing::error!(txid, "write: outcome unknown");
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
    witness: Option<(Witness, DateTime<Utc>)>,
) -> QueryResult<InDoubt> {
    match txid_status(conn, txid).await?.as_deref() {
        Some("committed") => {}
        Some("in progress") => return Ok(InDoubt::InProgress),
        _ => return Ok(InDoubt::NotCommitted),
    }
    let Some((witness, at)) = witness else {
        // A batch that wrote no reservation: its answers (refusals, replays) are true
        // either way.
        return Ok(InDoubt::Committed);
    };
    // A statement of its own, after the status: its snapshot sees a commit the status saw.
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let (sql, id) = witness.query();
    let found: Found = diesel::sql_query(sql)
        .bind::<BigInt, _>(id)
        .bind::<Timestamptz, _>(at)
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

/// For the test suite: what settling concludes of a write through [`write`] from its
/// transaction id and its mark's time (`commit_lost`'s reused-id case, for marks). Compiled
/// only with the `negative-control` cargo feature, as `booking::negative_control` is.
#[cfg(feature = "negative-control")]
pub mod negative_control {
    use chrono::{DateTime, Utc};

    use crate::db::Pool;

    pub async fn mark_settles_as_committed(db: &Pool, txid: i64, at: DateTime<Utc>) -> bool {
        let cause = crate::error::AppError::unavailable(anyhow::anyhow!("the COMMIT went unanswered"));
        super::settle(db, Some(txid), Some((super::Witness::Marked(txid), at)), cause)
            .await
            .is_ok()
    }
}
