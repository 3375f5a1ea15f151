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
use tokio::sync::watch;

use crate::{config::EventsConfig, kv::Kv, state::Services};

/// The relay's own connections: it never takes one a booking needs (and a receiver that
/// hangs holds none, since a delivery holds no connection while it waits).
const RELAY_POOL_SIZE: u32 = 2;

/// The Redis stream the relay publishes every event to (under the deployment's key
/// prefix): consumers inside the deployment read it with XREAD or a consumer group.
pub const STREAM: &str = "events";

/// The Redis stream [`STREAM`], capped to its newest entries.
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

/// Starts this instance's relay loop (it works only while it holds the lease).
pub async fn spawn_relay(state: &Services, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let config = &state.config.events;
    let pool = crate::db::connect_pool(
        state.config.database_url(),
        crate::db::PoolSettings {
            size: RELAY_POOL_SIZE,
            timeouts: &state.config.database_timeouts,
        },
    )
    .await?;
    let stream: Option<Arc<dyn EventStream>> = state.redis.as_ref().map(|kv| {
        Arc::new(RedisEvents {
            kv: kv.clone(),
            key: kv.key(STREAM),
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
    Relay::new(pool, stream, client, relay).spawn(stop);
    Ok(())
}
