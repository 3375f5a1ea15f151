//! Redis: one multiplexed connection per instance, and the naming of every key.
//!
//! Redis holds what can be rebuilt or is transient (rate-limit counters here; later the
//! queue, admissions, order stream and pub/sub). Keys that belong to one schedule carry a
//! hash tag (`{s:123}`) so that a Redis Cluster keeps them on one slot.

use std::time::Duration;

use anyhow::Context as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

#[derive(Clone)]
pub struct Kv {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
}

impl Kv {
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("REDIS_URL is not a Redis URL")?;
        // Short timeouts and a short reconnect: a Redis outage must fail requests within
        // about a second, never hang them. Requests wait for a reconnect in progress, so the
        // reconnect's own retries (six with doubling delays by default, about 6 s) are cut to
        // one quick retry; the next request after a failure tries again.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(1000)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .context("connecting to Redis")?;
        Ok(Self {
            client,
            conn,
            prefix: prefix.to_owned(),
        })
    }

    /// A connection handle; cheap to clone, all clones share one socket.
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The client, for connections of their own (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full name of a key.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Whether Redis keeps an append-only file (`INFO persistence`: works where `CONFIG` is
    /// disabled, as on managed Redis).
    pub async fn aof_enabled(&self) -> redis::RedisResult<bool> {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut self.conn())
            .await?;
        Ok(info.lines().any(|l| l.trim() == "aof_enabled:1"))
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn())
            .await
            .map(drop)
    }
}
