//! What every request can reach: configuration, the PostgreSQL pool, Redis, token keys.

use std::sync::Arc;

use crate::{auth::tokens::JwtKeys, config::Config, db::Pool, kv::Kv};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Pool,
    pub kv: Kv,
    pub jwt: Arc<JwtKeys>,
}

impl AppState {
    pub async fn connect(config: Config) -> anyhow::Result<Self> {
        let db = crate::db::connect_pool(config.database_url(), config.database_pool_size).await?;
        let kv = Kv::connect(config.redis_url(), &config.redis_prefix).await?;
        let jwt = Arc::new(JwtKeys::new(&config.jwt_secret, config.access_token_ttl));
        Ok(Self {
            config: Arc::new(config),
            db,
            kv,
            jwt,
        })
    }
}
