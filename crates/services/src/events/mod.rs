//! Events out (C20): the server's side of the outbox. The outbox itself (writing events in
//! the change's transaction, webhooks, the relay under its lease) is `boxoffice_outbox`;
//! here the relay is started with this deployment's pool, Redis stream and HTTP client
//! (`spawn_relay`), and the webhook API's service (`service`; the server holds `graphql`).

pub mod service;

use std::{sync::Arc, time::Duration};

use boxoffice_outbox::{
    relay::{EventStream, Relay, RelayConfig},
    webhooks::{CloudEvent, DeliveryClient, DeliveryConfig, RetrySchedule, UrlPolicy},
};
use futures_util::future::BoxFuture;
use tokio::sync::{oneshot, watch};

use crate::{config::EventsConfig, kv::Kv, state::Services};

/// The relay's own connections: it never takes one a booking needs (and a receiver that
/// hangs holds none, since a delivery holds no connection while it waits).
const RELAY_POOL_SIZE: u32 = 2;

/// The Redis stream `events` (under the deployment's key prefix), capped to its newest
/// entries: consumers inside the deployment read it with XREAD or a consumer group.
struct RedisEvents {
    kv: Kv,
    key: String,
    max_len: usize,
}

impl EventStream for RedisEvents {
    fn publish<'a>(&'a self, events: &'a [CloudEvent]) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            for e in events {
                pipe.cmd("XADD")
                    .arg(&self.key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(self.max_len)
                    .arg("*")
                    .arg("id")
                    .arg(&e.id)
                    .arg("type")
                    .arg(e.event_type.as_str())
                    .arg("subject")
                    .arg(&e.subject)
                    .arg("event")
                    .arg(e.to_body())
                    .ignore();
            }
            let mut conn = self.kv.conn();
            pipe.query_async::<()>(&mut conn).await?;
            Ok(())
        })
    }
}

/// The URL rule of webhooks in this deployment.
pub fn url_policy(config: &EventsConfig) -> UrlPolicy {
    UrlPolicy {
        allow_private: config.allow_private,
    }
}

/// Starts this instance's relay loop (it works only while it holds the lease) on a thread
/// of its own, at the lower scheduling priority `RELAY_NICE`: the relay takes the CPU a sale
/// leaves idle and catches up when the sale quiets down. Relaying alongside a flash sale on
/// the benchmark's two cores cost the sale about 7 % of its holds at the same priority
/// (docs/performance.md). Its pool's connections are made on that thread, so their
/// drivers run there too; the Redis stream's connection is the instance's shared one.
pub async fn spawn_relay(state: &Services, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let config = &state.config.events;
    let stream: Option<Arc<dyn EventStream>> = state.redis.as_ref().map(|kv| {
        Arc::new(RedisEvents {
            kv: kv.clone(),
            key: kv.key("events"),
            max_len: config.stream_max_len,
        }) as Arc<dyn EventStream>
    });
    let client = DeliveryClient::new(DeliveryConfig {
        policy: url_policy(config),
        connect_timeout: config.webhook_timeout.min(Duration::from_secs(5)),
        timeout: config.webhook_timeout,
        max_response_bytes: 4096,
    })?;
    let mut relay = RelayConfig::new(uuid::Uuid::new_v4().to_string(), config.source.clone());
    relay.lease = config.relay_lease;
    relay.poll = config.relay_poll;
    relay.concurrency = config.relay_concurrency;
    // A claim outlives the longest attempt, so no other relay takes it over while it runs.
    relay.claim = config.webhook_timeout + Duration::from_secs(10);
    relay.retention = config.retention;
    relay.schedule = RetrySchedule {
        first: config.retry_first,
        ..RetrySchedule::default()
    };
    let url = state.config.database_url().to_owned();
    let timeouts = state.config.database_timeouts;
    let nice = config.relay_nice;
    let (started, start) = oneshot::channel::<anyhow::Result<()>>();
    std::thread::Builder::new()
        .name("outbox-relay".into())
        .spawn(move || {
            if nice > 0
                && let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice)
            {
                tracing::warn!(error = %e, nice, "the relay runs at the server's priority: lowering its own failed");
            }
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    let _ = started.send(Err(e.into()));
                    return;
                }
            };
            runtime.block_on(async move {
                let settings = crate::db::PoolSettings {
                    size: RELAY_POOL_SIZE,
                    timeouts: &timeouts,
                };
                match crate::db::connect_pool(&url, settings).await {
                    Ok(pool) => {
                        let _ = started.send(Ok(()));
                        Relay::new(pool, stream, client, relay).run(stop).await;
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                    }
                }
            });
        })?;
    start
        .await
        .map_err(|_| anyhow::anyhow!("the relay's thread ended before it started"))?
}
