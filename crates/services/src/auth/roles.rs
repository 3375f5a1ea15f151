//! Accounts' current roles, read for many requests at once.
//!
//! Every guarded mutation reads its account's role (a valid token outlives a deleted or
//! demoted account: `actor` in the server). In a rush, a queue opening say, tens of
//! thousands of first mutations a minute come from as many accounts, so no cache helps:
//! read one by one, each cost a pooled checkout (itself a round trip: the pool checks the
//! server still takes writes) and a query, and entering the queue went from 17,900 to
//! 6,700 a second. Here the accounts asked about while a read is under way are read
//! together by the next one (`id = ANY($1)`), one read at a time on a connection kept while
//! asks keep coming, so the busier it gets the larger the reads, never the more. Each
//! answer is read after its request was made: as fresh as a read of its own.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::{mpsc, oneshot};

use super::{Role, store};
use crate::{
    db::{Pool, PooledConn},
    error::{AppError, AppResult},
};

/// Accounts in one read at most.
const MOST_PER_READ: usize = 512;

type Answer = AppResult<Option<Role>>;
type Ask = (i64, oneshot::Sender<Answer>);

/// This instance's reader of accounts' roles (one per instance: it batches what all its
/// requests ask).
pub struct CurrentRoles {
    asks: mpsc::UnboundedSender<Ask>,
    /// Reads sent to the database so far.
    reads: Arc<AtomicU64>,
}

impl CurrentRoles {
    /// Starts the reader on this runtime; it stops when the last handle is dropped.
    pub fn start(db: Pool) -> Self {
        let (asks, rx) = mpsc::unbounded_channel();
        let reads = Arc::default();
        tokio::spawn(read_in_batches(db, rx, Arc::clone(&reads)));
        Self { asks, reads }
    }

    /// How many reads went to the database so far (each for one or more accounts).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The account's role now, or `None` if it no longer exists.
    pub async fn of(&self, user_id: i64) -> AppResult<Option<Role>> {
        let (tx, rx) = oneshot::channel();
        self.asks
            .send((user_id, tx))
            .map_err(|_| AppError::internal(anyhow::anyhow!("the role reader has stopped")))?;
        rx.await
            .map_err(|_| AppError::internal(anyhow::anyhow!("the role reader dropped a request")))?
    }
}

async fn read_in_batches(db: Pool, mut rx: mpsc::UnboundedReceiver<Ask>, reads_made: Arc<AtomicU64>) {
    while let Some(first) = rx.recv().await {
        // Kept while asks keep coming, so a rush pays one checkout (itself a round trip),
        // not one per read; back to the pool as soon as nobody is waiting.
        let mut conn: Option<PooledConn<'_>> = None;
        let mut asks = vec![first];
        loop {
            // Whatever waits by now goes in this read: while one is under way, asks pile up
            // in the channel for the next.
            while asks.len() < MOST_PER_READ
                && let Ok(ask) = rx.try_recv()
            {
                asks.push(ask);
            }
            reads_made.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = answer(&db, &mut conn, std::mem::take(&mut asks)).await {
                // The connection's state is unknown: the pool checks it before lending it
                // again, and the next read takes whichever it lends.
                tracing::debug!(error = %e, "reading accounts' roles failed");
                conn = None;
            }
            match rx.try_recv() {
                Ok(ask) => asks.push(ask),
                Err(_) => break,
            }
        }
    }
}

/// Answers every ask from one read; the error, if any, is what each of them was told.
async fn answer<'p>(db: &'p Pool, conn: &mut Option<PooledConn<'p>>, asks: Vec<Ask>) -> AppResult<()> {
    let mut ids: Vec<i64> = asks.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    metrics::histogram!("role_read_accounts").record(ids.len() as f64);
    let read = async {
        let conn = match conn {
            Some(c) => c,
            None => conn.insert(db.get().await?),
        };
        store::current_roles(conn, &ids).await
    };
    match read.await {
        Ok(rows) => {
            let roles: HashMap<i64, Role> = rows.into_iter().collect();
            for (id, reply) in asks {
                let _ = reply.send(Ok(roles.get(&id).copied()));
            }
            Ok(())
        }
        Err(e) => {
            for (_, reply) in asks {
                let _ = reply.send(Err(e.clone()));
            }
            Err(e)
        }
    }
}
