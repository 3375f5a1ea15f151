//! A transaction whose BEGIN travels with its first statements.
//!
//! diesel-async's `transaction` sends BEGIN and waits for its answer before the body's first
//! statement: a round trip that does nothing. On a machine whose cores serve a sale, every
//! round trip waits for the database's process and then ours to be scheduled: the hold
//! batch's BEGIN took 1.6-3 ms of a 6-10 ms batch (docs/performance.md, "BEGIN with the
//! load"). Here the caller [`open`]s the transaction, sends [`begin`] first in its first
//! pipeline (PostgreSQL runs a connection's statements in the order they were sent), and
//! [`close`]s it with COMMIT or ROLLBACK as diesel-async would.
//!
//! Only for a body whose first step is a pipeline (`futures_util::join!` of statements on
//! `&AsyncPgConnection`, [`begin`] first): a body that forgot [`begin`] would run its
//! statements outside any transaction.

use diesel::{
    QueryResult,
    connection::{TransactionDepthChange, TransactionManagerStatus},
    result::Error,
};
use diesel_async::{
    AnsiTransactionManager, AsyncPgConnection, SimpleAsyncConnection as _, TransactionManager,
};

/// Marks `conn` as in a transaction before anything is sent, as diesel-async's own
/// `transaction` does once its BEGIN is answered. Told first, so that a caller dropped
/// midway (a reply timeout) leaves the connection marked as in a transaction, which the pool
/// then discards, as after any transaction dropped midway.
pub fn open(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    match AnsiTransactionManager::transaction_manager_status_mut(conn) {
        TransactionManagerStatus::Valid(status) if status.transaction_depth().is_none() => {
            status.change_transaction_depth(TransactionDepthChange::IncreaseDepth)
        }
        TransactionManagerStatus::Valid(_) => Err(Error::AlreadyInTransaction),
        TransactionManagerStatus::InError => Err(Error::BrokenTransactionManager),
    }
}

/// The BEGIN of a transaction [`open`]ed on this connection: the first future of the body's
/// first pipeline. A simple query, put on the connection at its first poll, so it goes out
/// before every statement polled after it, even one that must be prepared first.
pub async fn begin(mut conn: &AsyncPgConnection) -> QueryResult<()> {
    conn.batch_execute("BEGIN").await
}

/// Ends a transaction [`open`]ed on `conn`: COMMIT if `body` succeeded, else ROLLBACK, with
/// diesel-async's `transaction`'s answers (a ROLLBACK that failed says why, unless the
/// connection's transaction state was already broken; then the body's error does).
pub async fn close<R, E: From<Error>>(conn: &mut AsyncPgConnection, body: Result<R, E>) -> Result<R, E> {
    match body {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(conn).await?;
            Ok(value)
        }
        Err(e) => match AnsiTransactionManager::rollback_transaction(conn).await {
            Ok(()) | Err(Error::BrokenTransactionManager) => Err(e),
            Err(rollback) => Err(rollback.into()),
        },
    }
}
