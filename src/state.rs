//! The composition root: the server's state, built once at start from the configuration.
//! It holds the services' [`Services`] (handed down to every service call) and what only
//! the API needs: persisted queries and the grouped subscriptions.

use std::{ops::Deref, sync::Arc};

use boxoffice_services::state::Services;

use crate::{auth::tokens::JwtKeys, booking::batcher::Batcher, config::Config, kv::Kv, live};

/// Cloned into every request and background task. Resolvers read the services through it
/// (`Deref`), so `state.db` or `booking::hold(&state, …)` read as they did before the
/// services moved into their own crate; the services themselves never see this type.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    /// Automatic persisted queries by hash: the schema runs them, and the HTTP layer reads
    /// them to refuse a mutation sent by GET as a hash.
    pub persisted_queries: crate::graphql::apq::PersistedQueries,
    /// Identical subscriptions of this instance executed once per event (`live::groups`).
    pub subscriptions: live::Subscriptions,
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
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
    if config.redis_aof_required() {
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
                .with_aof_required(config.redis_aof_required())
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
            config.booking_reply_timeout,
            live.clone(),
        ));
        let leadership: Arc<crate::booking::leader::Leadership> = Arc::default();
        let holds = crate::booking::leader::Holds {
            leadership: leadership.clone(),
            batcher: batcher.clone(),
            redis: redis.clone(),
            forward_min_per_second: config.booking_forward_min_per_second,
        };
        let db_for_roles = db.clone();
        let locked = Arc::new(crate::auth::locked::LockedAccounts::load(&db, config.access_token_ttl).await);
        let webhook_policy = boxoffice_outbox::webhooks::UrlPolicy {
            allow_private: config.events.allow_private,
        };
        Ok(Self {
            services: Services {
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
                payments,
                tickets,
                webhook_policy,
                locked,
                roles: Arc::new(crate::auth::roles::CurrentRoles::start(db_for_roles)),
            },
            persisted_queries: Default::default(),
            subscriptions: Default::default(),
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
