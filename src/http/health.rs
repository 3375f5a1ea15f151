//! Health: readiness (PostgreSQL and Redis answer). Liveness and metrics are one-liners in
//! the router.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};

use super::Http;

/// Ready when PostgreSQL and Redis both answer within a second.
pub(super) async fn readyz(State(http): State<Http>) -> Response {
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
    let redis = match &http.state.redis {
        None => None,
        Some(kv) => Some(
            tokio::time::timeout(limit, kv.ping())
                .await
                .is_ok_and(|r| r.is_ok()),
        ),
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
        Json(serde_json::json!({ "postgres": word(postgres), "redis": redis })),
    )
        .into_response()
}
