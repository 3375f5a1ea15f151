//! Events out: the relay's and webhook deliveries' settings (`WEBHOOK_*`, `RELAY_*`,
//! `OUTBOX_*`, `EVENTS_*`).

use std::time::Duration;

use super::{ConfigError, err, parse};

/// Events out (see `crate::events` and `boxoffice_outbox`): the relay and webhook deliveries.
#[derive(Clone, Debug)]
pub struct EventsConfig {
    /// Let webhooks call private, loopback and link-local addresses (`WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// One delivery attempt at most (`WEBHOOK_TIMEOUT_MS`).
    pub webhook_timeout: Duration,
    /// The wait before a failed delivery's first retry (`WEBHOOK_RETRY_FIRST_MS`); each next
    /// one is four times longer, up to four hours, the last a day after the event.
    pub retry_first: Duration,
    /// How long relayed events and their delivery log are kept (`OUTBOX_RETENTION_HOURS`).
    pub retention: Duration,
    /// The relay's lease (`RELAY_LEASE_MS`): how soon another instance takes over.
    pub relay_lease: Duration,
    /// The relay's wait when it found nothing to do (`RELAY_POLL_MS`).
    pub relay_poll: Duration,
    /// Webhook deliveries in flight at once (`RELAY_CONCURRENCY`).
    pub relay_concurrency: usize,
    /// The CloudEvents `source` of every event (`EVENTS_SOURCE`).
    pub source: String,
    /// Entries the Redis stream `events` keeps, about (`EVENTS_STREAM_MAX_LEN`).
    pub stream_max_len: usize,
}

impl EventsConfig {
    pub(super) fn from_lookup(get: &impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let config = Self {
            allow_private: parse(get, "WEBHOOK_ALLOW_PRIVATE", Some(false))?,
            webhook_timeout: Duration::from_millis(parse(get, "WEBHOOK_TIMEOUT_MS", Some(15_000))?),
            retry_first: Duration::from_millis(parse(get, "WEBHOOK_RETRY_FIRST_MS", Some(5_000))?),
            retention: Duration::from_secs(3600 * parse::<u64>(get, "OUTBOX_RETENTION_HOURS", Some(168))?),
            relay_lease: Duration::from_millis(parse(get, "RELAY_LEASE_MS", Some(10_000))?),
            relay_poll: Duration::from_millis(parse(get, "RELAY_POLL_MS", Some(250))?),
            relay_concurrency: parse(get, "RELAY_CONCURRENCY", Some(16))?,
            source: get("EVENTS_SOURCE").unwrap_or_else(|| "/boxoffice".to_owned()),
            stream_max_len: parse(get, "EVENTS_STREAM_MAX_LEN", Some(100_000))?,
        };
        if config.webhook_timeout.is_zero() || config.webhook_timeout > Duration::from_secs(60) {
            return Err(err("WEBHOOK_TIMEOUT_MS", "must be between 1 and 60000"));
        }
        if config.retry_first.is_zero() {
            return Err(err("WEBHOOK_RETRY_FIRST_MS", "must be at least 1"));
        }
        // Pruning must never take an event whose deliveries may still be retried (a day).
        if config.retention < Duration::from_secs(25 * 3600) {
            return Err(err(
                "OUTBOX_RETENTION_HOURS",
                "must be at least 25 (deliveries are retried for a day)",
            ));
        }
        if config.relay_poll.is_zero() || config.relay_lease < config.relay_poll * 3 {
            return Err(err(
                "RELAY_LEASE_MS",
                "must be at least three times RELAY_POLL_MS (the holder renews it every round)",
            ));
        }
        if !(1..=256).contains(&config.relay_concurrency) {
            return Err(err("RELAY_CONCURRENCY", "must be between 1 and 256"));
        }
        if config.source.trim().is_empty() || config.source.len() > 200 {
            return Err(err(
                "EVENTS_SOURCE",
                "must be a URI reference of 1 to 200 characters",
            ));
        }
        if config.stream_max_len == 0 {
            return Err(err("EVENTS_STREAM_MAX_LEN", "must be at least 1"));
        }
        Ok(config)
    }
}
