//! Redis: one multiplexed connection per instance, and the naming of every key.
//!
//! Redis holds what can be rebuilt or is transient (rate-limit counters here; later the
//! queue, admissions, order stream and pub/sub). Keys that belong to one schedule carry a
//! hash tag (`{s:123}`) so that a Redis Cluster keeps them on one slot.
//!
//! Two deployments: one node (`REDIS_URL`, a [`ConnectionManager`]) or a Redis Cluster
//! (`REDIS_CLUSTER_URLS`, the redis crate's async cluster client, which follows the slot
//! map, MOVED/ASK redirections and failovers). Callers see one connection type, [`KvConn`],
//! either way. On a cluster, every script and every pipeline must name keys of one slot
//! only (the cluster client refuses a pipeline that crosses slots, Redis a script): keys
//! used together share a hash tag.
//!
//! - `shared`: the instance's shared connection, replaced when a reply times out.
//! - `deadline`: writes Redis refuses past their caller's deadline, and settling a lost
//!   reply (I9 through a partition).
//! - `durability`: whether Redis keeps an append-only file, watched while running.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::Context as _;
use redis::{
    Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
    cluster_routing::{MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr},
};

mod deadline;
mod durability;
mod shared;

pub use deadline::{Deadline, LATE, is_late};
use shared::{Conn, Maker, Shared};

/// Short timeouts: a Redis outage must fail requests within about a second, never hang
/// them.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);
/// `REDIS_CLOCK_SKEW_MS`'s default: NTP keeps machines within milliseconds of each other;
/// this leaves room for a clock that is off without anyone having noticed yet.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_millis(250);

#[derive(Clone)]
enum Backend {
    Single { client: redis::Client },
    Cluster { nodes: Vec<String> },
}

#[derive(Clone)]
pub struct Kv {
    backend: Backend,
    /// The connection every ordinary command shares, replaced when a reply times out.
    shared: Arc<Shared>,
    prefix: String,
    replication: Arc<Replication>,
    /// How far Redis's clock may lag behind this instance's (`REDIS_CLOCK_SKEW_MS`): a
    /// write with a deadline is answered "not done" only this long after its deadline.
    clock_skew: Duration,
    /// Settlings of lost replies under way ([`deadline::SETTLINGS`] at most).
    settling: Arc<tokio::sync::Semaphore>,
    /// Whether Redis keeps an append-only file, as last seen.
    durability: Arc<durability::Durability>,
}

/// Writes acknowledged only once a replica has them (`WAIT`), on connections of their own:
/// WAIT blocks the connection it is sent on until replicas answer or it times out, so on
/// the shared one a slow replica would stall every other command of the instance.
struct Replication {
    /// Replicas a write must reach; 0: answer after the master alone.
    replicas: u32,
    timeout: Duration,
    idle: Mutex<Vec<KvConn>>,
    /// Writes waiting at once (so connections open at most).
    permits: tokio::sync::Semaphore,
}

/// Connections of their own for replicated writes: as many writes wait at once.
const REPLICATED_CONNECTIONS: usize = 16;

impl Replication {
    fn new(replicas: u32, timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            replicas,
            timeout,
            idle: Mutex::default(),
            permits: tokio::sync::Semaphore::new(REPLICATED_CONNECTIONS),
        })
    }
}

/// A connection to Redis, one node or a cluster: cheap to clone, clones share sockets.
#[derive(Clone)]
pub enum KvConn {
    /// The instance's shared connection: each command takes the current one, and a
    /// command that times out has it replaced.
    Shared(Arc<Shared>),
    Multiplexed(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl KvConn {
    /// A command on this connection was given up on (a timeout of the caller's own).
    fn note_timeout(&self) {
        if let Self::Shared(s) = self {
            s.after::<()>(&Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()));
        }
    }
}

impl ConnectionLike for KvConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Shared(s) => Box::pin(async move {
                let r = s.current().req_packed_command(cmd).await;
                s.after(&r);
                r
            }),
            Self::Multiplexed(c) => c.req_packed_command(cmd),
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
            Self::Shared(s) => Box::pin(async move {
                let r = s.current().req_packed_commands(pipeline, offset, count).await;
                s.after(&r);
                r
            }),
            Self::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Shared(s) => s.current().get_db(),
            Self::Multiplexed(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// The nodes of `REDIS_CLUSTER_URLS` (comma-separated URLs).
pub fn cluster_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Kv {
    /// One Redis node.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("REDIS_URL is not a Redis URL")?;
        // Requests wait for a reconnect in progress, so the reconnect's own retries (six
        // with doubling delays by default, about 6 s) are cut to one quick retry; the next
        // request after a failure tries again.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_with_config(client.clone(), config.clone())
            .await
            .context("connecting to Redis")?;
        let shared = Shared::new(
            Conn::Managed(conn),
            Maker::Single {
                client: client.clone(),
                config: Box::new(config),
            },
        );
        Ok(Self::new(Backend::Single { client }, shared, prefix))
    }

    fn new(backend: Backend, shared: Arc<Shared>, prefix: &str) -> Self {
        Self {
            backend,
            shared,
            prefix: prefix.to_owned(),
            replication: Replication::new(0, Duration::ZERO),
            clock_skew: DEFAULT_CLOCK_SKEW,
            settling: Arc::new(tokio::sync::Semaphore::new(deadline::SETTLINGS)),
            durability: Arc::default(),
        }
    }

    /// A Redis Cluster, reached through any of `nodes` (the client learns the rest).
    pub async fn connect_cluster(nodes: &[String], prefix: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(!nodes.is_empty(), "REDIS_CLUSTER_URLS names no node");
        let conn = cluster_client(nodes, RESPONSE_TIMEOUT)?
            .get_async_connection()
            .await
            .context("connecting to the Redis Cluster")?;
        let shared = Shared::new(
            Conn::Cluster(conn),
            Maker::Cluster {
                nodes: nodes.to_vec(),
            },
        );
        Ok(Self::new(
            Backend::Cluster {
                nodes: nodes.to_vec(),
            },
            shared,
            prefix,
        ))
    }

    /// While Redis is seen keeping no append-only file, refuse the writes of
    /// [`Kv::write_replicated`] (prod without `REDIS_ACCEPT_VOLATILE`): see [`durability`].
    #[must_use]
    pub fn with_aof_required(mut self, required: bool) -> Self {
        self.durability = Arc::new(durability::Durability::new(required));
        self
    }

    /// Whether writes that promise durability are refused now (the AOF is required and
    /// was last seen off).
    pub fn refuses_durable_writes(&self) -> bool {
        self.durability.refuses()
    }

    /// Looks at Redis's persistence every `every` until `stop`, so an append-only file
    /// switched off while the server runs is noticed: see [`durability`].
    pub async fn watch_durability(self, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            // Unreachable: /readyz says so, and the writes fail by themselves.
            if let Err(e) = self.aof_enabled().await {
                tracing::debug!(error = %e, "checking Redis's persistence failed");
            }
        }
    }

    /// How far Redis's clock may lag behind this instance's (`REDIS_CLOCK_SKEW_MS`).
    #[must_use]
    pub fn with_clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// Makes [`Kv::write_replicated`] wait for `replicas` replicas, up to `timeout`.
    #[must_use]
    pub fn with_replication(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replication = Replication::new(replicas, timeout.max(Duration::from_millis(1)));
        self
    }

    /// Replicas a replicated write waits for.
    pub fn replicas_awaited(&self) -> u32 {
        self.replication.replicas
    }

    /// Runs `write` (commands on keys of `slot_key`'s slot, given the [`Deadline`] past
    /// which its script must refuse to write: see [`deadline`]), then, if writes must reach
    /// replicas, `WAIT`s on the same connection for them. The answer is `write`'s and, if
    /// no replica confirmed it in time (or the wait failed), why: the write may then be on
    /// the master only, and lost if the master dies now.
    ///
    /// When no reply comes, `settle` decides on a fresh connection whether the write was
    /// applied (`Some`, its answer) or never will be (`None`); it must write something
    /// either way (so a `WAIT` after it covers the write it found). Unsettled, the error
    /// comes only once the deadline and the clock skew margin have passed: by then Redis
    /// refuses any copy of the write still on its way, so the error means "not done".
    pub async fn write_replicated<T>(
        &self,
        slot_key: &str,
        write: impl AsyncFnOnce(&mut KvConn, Deadline) -> redis::RedisResult<T>,
        settle: impl AsyncFnOnce(&mut KvConn, Deadline) -> redis::RedisResult<Option<T>>,
    ) -> redis::RedisResult<(T, Option<String>)> {
        if self.durability.refuses() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "Redis keeps no append-only file now: what this write accepts would not survive a Redis restart",
            )));
        }
        let r = &self.replication;
        let _permit = match r.replicas {
            0 => None,
            _ => Some(
                r.permits
                    .acquire()
                    .await
                    .map_err(|_| redis::RedisError::from((redis::ErrorKind::Client, "closed")))?,
            ),
        };
        let mut conn = if r.replicas == 0 {
            self.conn()
        } else {
            let idle = r.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            match idle {
                Some(c) => c,
                None => self.dedicated(RESPONSE_TIMEOUT + r.timeout).await?,
            }
        };
        let deadline = Deadline::after(deadline::WRITE_WAIT);
        // The connection's own timeout comes first; this one bounds a dedicated connection,
        // whose timeout also covers the WAIT after the write.
        let written = tokio::time::timeout(
            deadline::WRITE_WAIT + Duration::from_millis(50),
            write(&mut conn, deadline),
        )
        .await
        .unwrap_or_else(|_| {
            conn.note_timeout();
            Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into())
        });
        // A connection that failed is dropped, not reused (its state is unknown).
        let (value, mut conn) = match written {
            Ok(v) => (v, conn),
            Err(e) if is_late(&e) => {
                deadline::note_refusal(&deadline);
                return Err(e);
            }
            Err(e) if !deadline::outcome_unknown(&e) => return Err(e),
            Err(e) => {
                let mut answer_after = deadline.at() + self.clock_skew;
                match self.settle(settle, &mut answer_after).await {
                    Some(Ok((Some(v), c))) => (v, c),
                    Some(Ok((None, _))) => return Err(deadline::not_applied(&e)),
                    Some(Err(_)) | None => {
                        tokio::time::sleep_until(answer_after.into()).await;
                        return Err(deadline::unanswered(e));
                    }
                }
            }
        };
        if r.replicas == 0 {
            return Ok((value, None));
        }
        let mut wait = redis::cmd("WAIT");
        wait.arg(r.replicas).arg(r.timeout.as_millis() as u64);
        let reached: redis::RedisResult<i64> = match &mut conn {
            // WAIT counts the writes of the connection it is sent on: the node's that took
            // the write, which is the master of the key's slot.
            KvConn::Cluster(c) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                    slot(slot_key.as_bytes()),
                    SlotAddr::Master,
                )));
                match c.route_command(wait, route).await {
                    Ok(v) => redis::from_redis_value(v).map_err(Into::into),
                    Err(e) => Err(e),
                }
            }
            other => wait.query_async(other).await,
        };
        match reached {
            Ok(n) => {
                r.idle.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
                let short = (n < i64::from(r.replicas)).then(|| {
                    format!(
                        "{n} of {} replicas confirmed the write within {:?}",
                        r.replicas, r.timeout
                    )
                });
                Ok((value, short))
            }
            Err(e) => Ok((value, Some(format!("waiting for replicas failed: {e}")))),
        }
    }

    /// Settles a write whose reply was lost, on a connection of its own (the shared one
    /// may be the silent one). `None`: not tried (too many at once), or the attempt did not
    /// answer in time; `answer_after` then also covers the attempt's own write.
    async fn settle<T>(
        &self,
        settle: impl AsyncFnOnce(&mut KvConn, Deadline) -> redis::RedisResult<Option<T>>,
        answer_after: &mut std::time::Instant,
    ) -> Option<redis::RedisResult<(Option<T>, KvConn)>> {
        let _permit = self.settling.try_acquire().ok()?;
        let deadline = Deadline::after(deadline::SETTLE_WAIT);
        *answer_after = (*answer_after).max(deadline.at() + self.clock_skew);
        let attempt = async {
            // Long enough for a WAIT after it.
            let mut conn = self
                .dedicated(RESPONSE_TIMEOUT + self.replication.timeout)
                .await?;
            let settled = settle(&mut conn, deadline).await?;
            Ok((settled, conn))
        };
        let settled = tokio::time::timeout(deadline::SETTLE_WAIT, attempt).await.ok();
        if let Some(Err(e)) = &settled {
            tracing::warn!(error = %e, "settling a Redis write whose reply was lost failed");
        }
        settled
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster { .. })
    }

    /// A connection handle; cheap to clone, all clones share one socket (per node).
    pub fn conn(&self) -> KvConn {
        KvConn::Shared(self.shared.clone())
    }

    /// A connection of its own (its own sockets), for blocking commands (XREADGROUP BLOCK,
    /// BLPOP, WAIT) that would hold up every other command sent on the shared one.
    /// `response_timeout` must outlast the longest block.
    pub async fn dedicated(&self, response_timeout: Duration) -> redis::RedisResult<KvConn> {
        match &self.backend {
            Backend::Single { client, .. } => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(response_timeout));
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(KvConn::Multiplexed)
            }
            Backend::Cluster { nodes, .. } => cluster_client(nodes, response_timeout)?
                .get_async_connection()
                .await
                .map(KvConn::Cluster),
        }
    }

    /// The client of a single node, for its pub/sub connections; `None` on a cluster.
    pub fn client(&self) -> Option<&redis::Client> {
        match &self.backend {
            Backend::Single { client, .. } => Some(client),
            Backend::Cluster { .. } => None,
        }
    }

    /// On a cluster, a connection of its own speaking RESP3 whose pushes (sharded pub/sub
    /// messages, and a `Disconnection` push when a node's connection drops) go to `push`.
    /// The client resubscribes by itself after a reconnect or a failover. `None` on one node.
    pub async fn cluster_pubsub(
        &self,
        push: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Option<redis::RedisResult<ClusterConnection>> {
        let Backend::Cluster { nodes, .. } = &self.backend else {
            return None;
        };
        let client = cluster_builder(nodes, RESPONSE_TIMEOUT)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(push)
            .build();
        Some(match client {
            Ok(c) => c.get_async_connection().await,
            Err(e) => Err(e),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full name of a key.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// `INFO <section>` of every master (one node: of that node).
    async fn info_of_masters(&self, section: &str) -> redis::RedisResult<Vec<String>> {
        let mut cmd = redis::cmd("INFO");
        cmd.arg(section);
        match self.shared.current() {
            Conn::Managed(_) => {
                let info: String = cmd.query_async(&mut self.conn()).await?;
                Ok(vec![info])
            }
            Conn::Cluster(mut c) => {
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let reply = c.route_command(cmd, routing).await;
                self.shared.after(&reply);
                node_replies(reply?)
            }
        }
    }

    /// Whether Redis keeps an append-only file (`INFO persistence`: works where `CONFIG` is
    /// disabled, as on managed Redis). On a cluster: every master does.
    /// Every answer is recorded: while it is "no" where the AOF is required, the writes of
    /// [`Kv::write_replicated`] are refused.
    pub async fn aof_enabled(&self) -> redis::RedisResult<bool> {
        let infos = self.info_of_masters("persistence").await?;
        let on = !infos.is_empty()
            && infos
                .iter()
                .all(|info| info.lines().any(|l| l.trim() == "aof_enabled:1"));
        self.durability.record(on);
        Ok(on)
    }

    /// The fewest replicas connected to a master (`INFO replication`): 0 when any master
    /// has none, which is what a write to that master can count on.
    pub async fn min_replicas(&self) -> redis::RedisResult<u64> {
        let infos = self.info_of_masters("replication").await?;
        Ok(infos
            .iter()
            .map(|info| {
                info.lines()
                    .find_map(|l| l.trim().strip_prefix("connected_slaves:"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            })
            .min()
            .unwrap_or(0))
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        match self.shared.current() {
            Conn::Managed(_) => redis::cmd("PING")
                .query_async::<String>(&mut self.conn())
                .await
                .map(drop),
            // PING goes to every master; the cluster client answers one of them.
            Conn::Cluster(mut c) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
                let r = c.route_command(redis::cmd("PING"), routing).await;
                self.shared.after(&r);
                r.map(drop)
            }
        }
    }
}

fn cluster_builder(nodes: &[String], response_timeout: Duration) -> ClusterClientBuilder {
    // A request's retries (redirections, a master that moved) fit in the response timeout:
    // the same budget as one node's.
    ClusterClientBuilder::new(nodes.to_vec())
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(response_timeout)
        .retries(3)
        .min_retry_wait(50)
        .max_retry_wait(200)
}

fn cluster_client(nodes: &[String], response_timeout: Duration) -> redis::RedisResult<ClusterClient> {
    cluster_builder(nodes, response_timeout).build()
}

/// The per-node answers of a command sent to several nodes (a map of address to reply).
fn node_replies(reply: Value) -> redis::RedisResult<Vec<String>> {
    let values: Vec<Value> = match reply {
        Value::Map(pairs) => pairs.into_iter().map(|(_, v)| v).collect(),
        Value::Array(items) => items,
        other => vec![other],
    };
    values
        .into_iter()
        .map(|v| redis::from_redis_value::<String>(v).map_err(Into::into))
        .collect()
}

/// The cluster slot of a key: CRC16 (XMODEM) of its hash tag (the first `{...}` with
/// something inside), else of the whole key, modulo 16384.
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16384
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn slots_are_redis_cluster_slots() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bo:{orders}:stream"), slot(b"orders"));
        assert_eq!(slot(b"{s:1}:waiting"), slot(b"x{s:1}y"));
        assert_eq!(slot(b"a{}b"), slot(b"a{}b"));
        assert_ne!(slot(b"a{}b"), slot(b""));
    }
}
