//! The instance's shared Redis connection, replaced when a reply times out.
//!
//! Neither the redis crate's `ConnectionManager` nor its cluster client gives up on a
//! connection whose replies time out: for both a timeout means "try again on the same
//! connection" (`RetryMethod::RetryImmediately`), only a dropped connection means
//! "reconnect". After a partition that left the old socket open and silent, every command
//! waited out its timeout on it until the kernel gave up on the socket (20 and 65 s in
//! issue 26's runs). Here a command that times out has its connection replaced by a new
//! one; commands already sent on the old one finish or time out there. At most one
//! replacement per [`REPLACE_EVERY`]: a Redis that is slow rather than gone costs a new
//! connection a second, not a storm of them.

use std::{
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    Cmd, Pipeline, RedisFuture, RedisResult, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster_async::ClusterConnection,
};

/// The fewest time between two replacements.
pub(super) const REPLACE_EVERY: Duration = Duration::from_secs(1);

/// What the shared connection is on one node or a cluster.
#[derive(Clone)]
pub(super) enum Conn {
    Managed(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Managed(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Managed(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// How a replacement is made.
pub(super) enum Maker {
    /// A new manager, connecting lazily: on its first command, with its connect timeout.
    Single {
        client: redis::Client,
        config: Box<ConnectionManagerConfig>,
    },
    /// A new cluster connection, made in the background (connecting is async); commands use
    /// the old one until it is ready.
    Cluster { nodes: Vec<String> },
}

/// Opaque outside `kv`: reached through [`super::KvConn`].
pub struct Shared {
    current: RwLock<Conn>,
    maker: Maker,
    last_replaced: Mutex<Option<Instant>>,
    /// A cluster connection is being made.
    making: AtomicBool,
}

impl Shared {
    pub(super) fn new(conn: Conn, maker: Maker) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(conn),
            maker,
            last_replaced: Mutex::default(),
            making: AtomicBool::new(false),
        })
    }

    /// The connection now (a cheap clone sharing its sockets).
    pub(super) fn current(&self) -> Conn {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Looks at a command's result: a timeout replaces the connection.
    pub(super) fn after<T>(self: &Arc<Self>, result: &RedisResult<T>) {
        if let Err(e) = result
            && e.is_timeout()
        {
            self.replace();
        }
    }

    fn replace(self: &Arc<Self>) {
        {
            let mut last = self.last_replaced.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < REPLACE_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        match &self.maker {
            Maker::Single { client, config } => {
                match ConnectionManager::new_lazy_with_config(client.clone(), (**config).clone()) {
                    Ok(m) => {
                        tracing::warn!("a Redis reply timed out: the shared connection is replaced");
                        self.set(Conn::Managed(m));
                    }
                    Err(e) => tracing::warn!(error = %e, "replacing the Redis connection failed"),
                }
            }
            Maker::Cluster { nodes } => {
                if self.making.swap(true, Ordering::AcqRel) {
                    return;
                }
                let nodes = nodes.clone();
                let me = self.clone();
                tokio::spawn(async move {
                    let made = match super::cluster_client(&nodes, super::RESPONSE_TIMEOUT) {
                        Ok(c) => c.get_async_connection().await,
                        Err(e) => Err(e),
                    };
                    match made {
                        Ok(c) => {
                            tracing::warn!(
                                "a Redis Cluster reply timed out: the shared cluster connection is replaced"
                            );
                            me.set(Conn::Cluster(c));
                        }
                        // The next timeout, a second on at the earliest, tries again.
                        Err(e) => tracing::warn!(error = %e, "replacing the Redis Cluster connection failed"),
                    }
                    me.making.store(false, Ordering::Release);
                });
            }
        }
    }

    fn set(&self, conn: Conn) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = conn;
    }
}
