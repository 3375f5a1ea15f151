//! What every request can reach: configuration, the PostgreSQL pool, Redis, token keys,
//! the live hub and the booking batcher.

use std::sync::Arc;

use crate::{
    auth::tokens::JwtKeys,
    booking::{batcher::Batcher, sale::DbClock},
    config::Config,
    db::Pool,
    kv::Kv,
    live,
};

/// Cloned into every request and background task: each field is an `Arc` or a handle that
/// is cheap to clone and shared by the whole instance.
#[derive(Clone)]
pub struct AppState {
    /// Read once at start; limits, timeouts and feature switches come from here.
    pub config: Arc<Config>,
    /// PostgreSQL, the truth for seats, reservations and points.
    pub db: Pool,
    /// Queue, order jobs, rate limits and cross-instance events. `None` when REDIS_URL is
    /// unset (single instance, in-process broker).
    pub redis: Option<Kv>,
    /// Login limits when there is no Redis: without it the counters cannot be shared, so
    /// they live in this instance only.
    pub local_limits: Arc<crate::auth::local_limits::LocalLimits>,
    /// Signing and verifying access tokens; built once because the key setup is not free.
    pub jwt: Arc<JwtKeys>,
    /// Subscriptions: the pub/sub hub and the coalesced seat feeds, shared so one Redis
    /// subscription per topic serves every socket of this instance.
    pub live: live::Live,
    /// Group commit for seat holds: requests for the same schedule wait for one locked
    /// transaction, so it must be one per instance.
    pub batcher: Arc<Batcher>,
    /// Which schedules this instance leads, follows or batches alone: routes each hold to
    /// this instance's batcher or to the leading instance's (`booking::leader`).
    pub leadership: Arc<crate::booking::leader::Leadership>,
    /// The hold path's handles (the two above, Redis, the forwarding threshold).
    pub holds: crate::booking::leader::Holds,
    /// The database clock, for the sale rules asked outside a booking transaction.
    pub db_clock: Arc<DbClock>,
    /// Schedules' queue settings remembered for a moment, read on every booking and queue
    /// call.
    pub queue_flags: Arc<crate::queue::flags::QueueFlags>,
    /// Built seat maps by schedule and version, so thousands of readers of a 20,000-seat map
    /// do not rebuild it each time.
    pub seat_maps: Arc<crate::seats::map::SeatMaps>,
    /// Automatic persisted queries by hash: the schema runs them, and the HTTP layer reads
    /// them to refuse a mutation sent by GET as a hash.
    pub persisted_queries: crate::graphql::apq::PersistedQueries,
    /// The payment provider (built once: it holds an HTTP client) and the bounds on amounts.
    pub payments: crate::payments::Payments,
    /// The ticket signing key, the ring of keys that verify codes, and the door times.
    pub tickets: crate::tickets::Tickets,
    /// Which URLs webhooks may call (`WEBHOOK_ALLOW_PRIVATE`): checked when one is created;
    /// the relay's client checks again at every connection.
    pub webhook_policy: boxoffice_outbox::webhooks::UrlPolicy,
    /// Locked accounts, screened out of every request (`auth::lock`): kept in memory so
    /// that refusing a locked account's tokens costs no query per request.
    pub locked: Arc<crate::auth::locked::LockedAccounts>,
}

/// The durability contract: accepted orders and queue admissions live only in Redis, so in
/// prod Redis must keep an append-only file, unless volatile orders are accepted explicitly.
fn check_durability(config: &Config, aof: bool) -> anyhow::Result<()> {
    if aof {
        tracing::info!(
            redis.aof = true,
            "Redis persists accepted orders (append-only file)"
        );
        return Ok(());
    }
    if config.environment == crate::config::Environment::Prod && !config.redis_accept_volatile {
        anyhow::bail!(
            "Redis has no append-only file: accepted orders and queue admissions would be lost \
             on a Redis restart. Turn on appendonly (appendfsync everysec), or set \
             REDIS_ACCEPT_VOLATILE=true to accept that"
        );
    }
    tracing::warn!(
        redis.aof = false,
        "Redis keeps no append-only file: a Redis restart loses accepted orders and queue admissions"
    );
    Ok(())
}

impl AppState {
    /// Redis, or UNAVAILABLE for the features that cannot run without it.
    pub fn kv(&self) -> crate::error::AppResult<&Kv> {
        self.redis.as_ref().ok_or_else(|| {
            crate::error::AppError::rule(
                crate::error::ErrorCode::Unavailable,
                "this server runs without Redis (REDIS_URL unset): the waiting queue and orders are off",
            )
        })
    }

    pub async fn connect(config: Config) -> anyhow::Result<Self> {
        let db = crate::db::connect_pool(config.database_url(), config.pool_settings()).await?;
        let redis = match (config.redis_url(), config.redis_cluster_urls()) {
            (_, Some(nodes)) => Some(Kv::connect_cluster(&nodes, &config.redis_prefix).await?),
            (Some(url), None) => Some(Kv::connect(url, &config.redis_prefix).await?),
            (None, None) => None,
        };
        let redis = redis.map(|kv| {
            let replicas = config
                .redis_wait_replicas
                .unwrap_or(if kv.is_cluster() { 1 } else { 0 });
            kv.with_replication(replicas, config.redis_wait_timeout)
                .with_clock_skew(config.redis_clock_skew)
        });
        if let Some(kv) = &redis {
            check_durability(&config, kv.aof_enabled().await?)?;
            let replicas = kv.min_replicas().await?;
            if replicas < u64::from(kv.replicas_awaited()) {
                tracing::warn!(
                    redis.replicas = replicas,
                    redis.replicas_awaited = kv.replicas_awaited(),
                    "a Redis master has fewer replicas than orders wait for (REDIS_WAIT_REPLICAS): \
                     placeOrder and enterQueue answer UNAVAILABLE until they connect"
                );
            } else {
                tracing::info!(
                    redis.replicas = replicas,
                    redis.replicas_awaited = kv.replicas_awaited(),
                    "Redis replicas"
                );
            }
        }
        let payments = crate::payments::Payments::from_config(&config.payments)?;
        let tickets = crate::tickets::Tickets::start(&db, &config.tickets).await?;
        let jwt = Arc::new(JwtKeys::new(&config.jwt_secret, config.access_token_ttl));
        let hub = match &redis {
            Some(kv) => live::Hub::redis(kv.clone()),
            None => {
                tracing::warn!(
                    "REDIS_URL is not set: running as a single instance with an in-process broker; \
                     the waiting queue and placeOrder are unavailable"
                );
                live::Hub::local()
            }
        };
        let live = live::Live::new(hub);
        // The composition root: the hold path gets its narrow handles here.
        let batcher = Arc::new(Batcher::new(
            db.clone(),
            config.booking_answer_timeout,
            live.clone(),
        ));
        let leadership: Arc<crate::booking::leader::Leadership> = Arc::default();
        let holds = crate::booking::leader::Holds {
            leadership: leadership.clone(),
            batcher: batcher.clone(),
            redis: redis.clone(),
            forward_min_per_second: config.booking_forward_min_per_second,
        };
        let locked = Arc::new(crate::auth::locked::LockedAccounts::load(&db, config.access_token_ttl).await);
        let webhook_policy = boxoffice_outbox::webhooks::UrlPolicy {
            allow_private: config.events.allow_private,
        };
        Ok(Self {
            config: Arc::new(config),
            db,
            redis,
            local_limits: Arc::default(),
            jwt,
            live,
            batcher,
            leadership,
            holds,
            db_clock: Arc::default(),
            queue_flags: Arc::default(),
            seat_maps: Arc::default(),
            persisted_queries: Default::default(),
            payments,
            tickets,
            webhook_policy,
            locked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(env: &str, accept: &str) -> Config {
        let vars = [
            ("BOXOFFICE_ENV", env),
            ("JWT_SECRET", "a-production-secret-of-at-least-32-bytes"),
            ("REDIS_ACCEPT_VOLATILE", accept),
            (
                "TICKET_SIGNING_KEY",
                "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            ),
        ];
        Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())).unwrap()
    }

    #[test]
    fn prod_refuses_a_volatile_redis_unless_told() {
        assert!(check_durability(&config("prod", "false"), false).is_err());
        assert!(check_durability(&config("prod", "true"), false).is_ok());
        assert!(check_durability(&config("prod", "false"), true).is_ok());
        assert!(check_durability(&config("dev", "false"), false).is_ok());
    }
}
