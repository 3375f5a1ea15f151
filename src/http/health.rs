//! Health: readiness (PostgreSQL and Redis answer) and Prometheus metrics. Liveness is a
//! one-liner in the router.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};

use super::Http;
use crate::config::Environment;

/// Ready when PostgreSQL and Redis both answer within a second.
pub(super) async fn readyz(State(http): State<Arc<Http>>) -> Response {
    let limit = Duration::from_secs(1);
    let postgres = tokio::time::timeout(limit, async {
        use diesel_async::RunQueryDsl;
        let mut conn = http.state.db.get().await.ok()?;
        diesel::sql_query("SELECT 1").execute(&mut *conn).await.ok()
    })
    .await
    .ok()
    .flatten()
    .is_some();
    // Redis answers, and whether it persists accepted orders (the durability contract).
    let (redis, aof) = match &http.state.redis {
        None => (None, None),
        Some(kv) => match tokio::time::timeout(limit, kv.aof_enabled()).await {
            Ok(Ok(aof)) => (Some(true), Some(aof)),
            _ => (Some(false), None),
        },
    };
    let status = if postgres && redis != Some(false) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    let redis = redis.map_or("disabled", word);
    (
        status,
        Json(serde_json::json!({ "postgres": word(postgres), "redis": redis, "redisAof": aof })),
    )
        .into_response()
}

/// Prometheus metrics. With METRICS_TOKEN set they need `Authorization: Bearer <token>`;
/// without it they are open in dev and absent (404) in prod, where they would tell anyone
/// the traffic and error rates.
pub(super) async fn metrics(State(http): State<Arc<Http>>, headers: HeaderMap) -> Response {
    let edge = &http.state.config.edge;
    match &edge.metrics_token {
        Some(token) => {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            // Compare digests so the time taken says nothing about the token.
            let same =
                Sha256::digest(presented.as_bytes()) == Sha256::digest(token.expose_secret().as_bytes());
            if !same {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    "metrics need the METRICS_TOKEN",
                )
                    .into_response();
            }
        }
        None if http.state.config.environment == Environment::Prod => {
            return StatusCode::NOT_FOUND.into_response();
        }
        None => {}
    }
    crate::telemetry::metrics().render().into_response()
}
