//! Health: readiness (PostgreSQL and Redis answer) and Prometheus metrics. Liveness is a
//! one-liner in the router.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};

use super::{Http, client_ip};
use crate::{auth::Viewer, config::Environment};

/// Ready when PostgreSQL and Redis both answer within a second. The status code is for
/// anyone (a load balancer); the details (which dependency failed, whether Redis keeps an
/// append-only file now, and whether placeOrder and enterQueue are accepted) only for a caller on this machine, one presenting METRICS_TOKEN, or an
/// admin's access token: they tell an attacker how the deployment is run.
pub(super) async fn readyz(
    State(http): State<Arc<Http>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
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
    // Redis answers, and whether it persists accepted orders (the durability contract):
    // an append-only file, and replicas for the writes that wait for them.
    let (redis, aof, replicas) = match &http.state.redis {
        None => (None, None, None),
        Some(kv) => {
            match tokio::time::timeout(limit, async { tokio::join!(kv.aof_enabled(), kv.min_replicas()) })
                .await
            {
                Ok((Ok(aof), replicas)) => (Some(true), Some(aof), replicas.ok()),
                _ => (Some(false), None, None),
            }
        }
    };
    let awaited = http.state.redis.as_ref().map(crate::kv::Kv::replicas_awaited);
    // Refused while the AOF is required and off (seen just now, or by the periodic check);
    // the instance stays ready for everything else (kv::durability says why).
    let accepted = http.state.redis.as_ref().map(|kv| !kv.refuses_durable_writes());
    let status = if postgres && redis != Some(false) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    if !may_see_details(&http, &headers, addr).await {
        let ready = if status == StatusCode::OK {
            "ready"
        } else {
            "not ready"
        };
        return (status, Json(serde_json::json!({ "status": ready }))).into_response();
    }
    let redis = redis.map_or("disabled", word);
    (
        status,
        Json(serde_json::json!({
            "postgres": word(postgres),
            "redis": redis,
            "redisAof": aof,
            // The fewest replicas a master has, and how many an order waits for: fewer
            // than awaited, and placeOrder and enterQueue answer UNAVAILABLE.
            "redisReplicas": replicas,
            "redisReplicasAwaited": awaited,
            // Whether placeOrder and enterQueue are accepted: not while Redis keeps no
            // append-only file in prod (unless REDIS_ACCEPT_VOLATILE).
            "durableWritesAccepted": accepted,
        })),
    )
        .into_response()
}

/// A caller on this machine (by the address rate limits use, so a local proxy does not make
/// everyone local), the operators' METRICS_TOKEN, or an admin's access token.
async fn may_see_details(http: &Http, headers: &HeaderMap, addr: SocketAddr) -> bool {
    if client_ip(&http.state, headers, addr).is_loopback() {
        return true;
    }
    let presented = bearer(headers);
    if let Some(token) = &http.state.config.edge.metrics_token
        && same_secret(presented, token.expose_secret())
    {
        return true;
    }
    let Viewer::User(user) = Viewer::from_bearer(
        &http.state.jwt,
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let Ok(mut conn) = http.state.db.get().await else {
        return false;
    };
    matches!(
        crate::auth::store::current_role(&mut conn, user.id).await,
        Ok(Some(crate::auth::Role::Admin))
    )
}

fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
}

/// Compares digests, so the time taken says nothing about the secret.
fn same_secret(presented: &str, secret: &str) -> bool {
    Sha256::digest(presented.as_bytes()) == Sha256::digest(secret.as_bytes())
}

/// Prometheus metrics. With METRICS_TOKEN set they need `Authorization: Bearer <token>`;
/// without it they are open in dev and absent (404) in prod, where they would tell anyone
/// the traffic and error rates.
pub(super) async fn metrics(State(http): State<Arc<Http>>, headers: HeaderMap) -> Response {
    let edge = &http.state.config.edge;
    match &edge.metrics_token {
        Some(token) if !same_secret(bearer(&headers), token.expose_secret()) => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics need the METRICS_TOKEN",
            )
                .into_response();
        }
        Some(_) => {}
        None if http.state.config.environment == Environment::Prod => {
            return StatusCode::NOT_FOUND.into_response();
        }
        None => {}
    }
    crate::telemetry::metrics().render().into_response()
}
