//! A group committer's transaction: on the connection it kept from its last one, or on one
//! the pool lends and checks.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use super::{Applied, Batcher, Lock, reserve};
use crate::{
    db::PooledConn,
    error::{AppError, AppResult},
};

/// A committer keeps its connection for its next transaction if that comes within this
/// long (see [`Kept`]); a committer waiting longer for work gives it back to the pool, so a
/// small pool lends it elsewhere after at most this wait.
pub(super) const KEEP_FOR: Duration = Duration::from_secs(1);

/// A committer's connection, kept from one transaction to the next while batches keep
/// coming. A checkout asks the server whether it still takes writes (`db::check_writable`),
/// a round trip of its own on every batch of a sale; a connection whose transaction
/// committed moments ago has just answered that. One found closed or read-only is dropped
/// and its transaction runs again on a checked one (see `apply`); any other failure is the
/// batch's own.
#[derive(Default)]
pub(super) struct Kept(Option<(PooledConn<'static>, Instant)>);

impl Kept {
    /// The kept connection if it committed within [`KEEP_FOR`].
    fn take(&mut self) -> Option<PooledConn<'static>> {
        self.0
            .take()
            .and_then(|(conn, at)| (at.elapsed() < KEEP_FOR).then_some(conn))
    }

    fn keep(&mut self, conn: PooledConn<'static>) {
        self.0 = Some((conn, Instant::now()));
    }
}

/// One transaction for `parts` on the committer's kept connection or a pooled one, its
/// outcome settled if its COMMIT went unanswered.
pub(super) async fn apply(
    batcher: &Batcher,
    parts: &[reserve::Part<'_>],
    kept: &mut Kept,
) -> AppResult<reserve::GroupOutcome> {
    let started = Instant::now();
    let outcome = match kept.take() {
        Some(conn) => {
            batcher.stats.on_kept.fetch_add(1, Ordering::Relaxed);
            match transaction(batcher, parts, conn, kept).await {
                // The kept connection was not checked: its server may have gone or stopped
                // taking writes since. Nothing was written (an error, not an outcome in
                // doubt), so the batch runs again on a checked one.
                Err(e) if lost_connection(&e) => {
                    batcher.stats.kept_lost.fetch_add(1, Ordering::Relaxed);
                    checked(batcher, parts, kept).await
                }
                outcome => outcome,
            }
        }
        None => checked(batcher, parts, kept).await,
    };
    metrics::histogram!("booking_batch_seconds").record(started.elapsed().as_secs_f64());
    outcome
}

/// Whether a transaction failed because its connection did (`error::lost_connection`), not
/// a timeout: running again after one would make the callers wait twice.
fn lost_connection(e: &AppError) -> bool {
    matches!(e, AppError::Unavailable(cause)
        if cause.downcast_ref::<diesel::result::Error>().is_some_and(crate::error::lost_connection))
}

/// `transaction` on a connection the pool checked.
async fn checked(
    batcher: &Batcher,
    parts: &[reserve::Part<'_>],
    kept: &mut Kept,
) -> AppResult<reserve::GroupOutcome> {
    match batcher.db.get_owned().await {
        Ok(conn) => transaction(batcher, parts, conn, kept).await,
        Err(e) => Err(AppError::from(e)),
    }
}

/// The group's transaction on `conn`, kept afterwards if it committed.
async fn transaction(
    batcher: &Batcher,
    parts: &[reserve::Part<'_>],
    mut conn: PooledConn<'static>,
    kept: &mut Kept,
) -> AppResult<reserve::GroupOutcome> {
    match reserve::reserve_group(
        &mut conn,
        parts,
        Lock::Take,
        Some(&batcher.layouts),
        Some(batcher.reply_timeout),
    )
    .await
    {
        Ok(Applied::Committed(outcome)) => {
            kept.keep(conn);
            Ok(outcome)
        }
        // Settled, never run again: it may have committed.
        Ok(Applied::InDoubt { outcome, cause }) => {
            drop(conn);
            outcome.settle(&batcher.db, cause).await
        }
        Err(e) => Err(e),
    }
}
