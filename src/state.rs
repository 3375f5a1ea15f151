//! What every request can reach: configuration, the PostgreSQL pool, Redis, token keys,
//! the live hub and the booking batcher.

use std::sync::Arc;

use crate::{auth::tokens::JwtKeys, booking::batcher::Batcher, config::Config, db::Pool, kv::Kv, live};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Pool,
    /// `None` when REDIS_URL is unset (single instance, in-process broker).
    pub redis: Option<Kv>,
    /// Login limits when there is no Redis.
    pub local_limits: Arc<crate::auth::rate_limit::LocalLimits>,
    pub jwt: Arc<JwtKeys>,
    pub live: live::Live,
    pub batcher: Arc<Batcher>,
    pub queue_flags: Arc<crate::queue::QueueFlags>,
    pub seat_maps: Arc<crate::seats::map::SeatMaps>,
    /// Automatic persisted queries by hash: the schema runs them, and the HTTP layer reads
    /// them to refuse a mutation sent by GET as a hash.
    pub persisted_queries: crate::graphql::apq::PersistedQueries,
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
        let db = crate::db::connect_pool(config.database_url(), config.database_pool_size).await?;
        let redis = match config.redis_url() {
            Some(url) => Some(Kv::connect(url, &config.redis_prefix).await?),
            None => None,
        };
        let jwt = Arc::new(JwtKeys::new(&config.jwt_secret, config.access_token_ttl));
        let hub = match &redis {
            Some(kv) => live::Hub::redis(kv.client().clone(), kv.conn(), kv.prefix()),
            None => {
                tracing::warn!(
                    "REDIS_URL is not set: running as a single instance with an in-process broker; \
                     the waiting queue and placeOrder are unavailable"
                );
                live::Hub::local()
            }
        };
        Ok(Self {
            config: Arc::new(config),
            db,
            redis,
            local_limits: Arc::default(),
            jwt,
            live: live::Live::new(hub),
            batcher: Arc::default(),
            queue_flags: Arc::default(),
            seat_maps: Arc::default(),
            persisted_queries: Default::default(),
        })
    }
}
