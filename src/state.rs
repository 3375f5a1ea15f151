//! What every request can reach: configuration, the PostgreSQL pool, Redis, token keys,
//! the live hub and the booking batcher.

use std::sync::Arc;

use crate::{auth::tokens::JwtKeys, booking::batcher::Batcher, config::Config, db::Pool, kv::Kv, live};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Pool,
    pub kv: Kv,
    pub jwt: Arc<JwtKeys>,
    pub live: live::Live,
    pub batcher: Arc<Batcher>,
    pub queue_flags: Arc<crate::queue::QueueFlags>,
}

impl AppState {
    pub async fn connect(config: Config) -> anyhow::Result<Self> {
        let db = crate::db::connect_pool(config.database_url(), config.database_pool_size).await?;
        let kv = Kv::connect(config.redis_url(), &config.redis_prefix).await?;
        let jwt = Arc::new(JwtKeys::new(&config.jwt_secret, config.access_token_ttl));
        let hub = live::Hub::redis(kv.client().clone(), kv.conn(), kv.prefix());
        Ok(Self {
            config: Arc::new(config),
            db,
            kv,
            jwt,
            live: live::Live::new(hub),
            batcher: Arc::default(),
            queue_flags: Arc::default(),
        })
    }
}
