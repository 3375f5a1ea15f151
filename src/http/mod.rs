//! HTTP: the router and its layers, and what every route shares (the client's address).
//!
//! One job per file below: `graphql_http` (GraphQL over HTTP), `websocket` (subscriptions),
//! `health` (liveness, readiness, metrics), `cors` (browsers on other origins). The pages
//! (web app and playground) are `crate::web`.

mod cors;
mod graphql_http;
mod health;
mod websocket;

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::HeaderMap,
    middleware::{self, Next},
    response::Response,
    routing::get,
};
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{graphql::AppSchema, state::AppState};

/// The client's address, as request data for rate limits.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<IpAddr>);

#[derive(Clone)]
struct Http {
    state: AppState,
    schema: AppSchema,
    /// Flips to true when the server starts shutting down; open WebSockets then close.
    shutdown: watch::Receiver<bool>,
}

const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A quiet WebSocket gets a ping this often.
const KEEPALIVE: Duration = Duration::from_secs(20);

pub fn router(state: AppState, schema: AppSchema, shutdown: watch::Receiver<bool>) -> Router {
    // Install the recorder before the first request records anything.
    let metrics = crate::telemetry::metrics();
    let cors = cors::layer(&state.config.cors_allowed_origins);
    let http = Http {
        state,
        schema,
        shutdown,
    };
    Router::new()
        .route(
            "/graphql",
            get(graphql_http::graphql_get).post(graphql_http::graphql_post),
        )
        .merge(crate::web::router(http.state.config.playground))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(move || async move { metrics.render() }))
        .layer(middleware::from_fn(track_metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("http", request.id = %id, http.method = %req.method(), http.path = %req.uri().path())
                }))
                // Answers preflights itself, before any route (they are OPTIONS).
                .layer(cors),
        )
        .with_state(http)
}

fn client_ip(state: &AppState, headers: &HeaderMap, addr: SocketAddr) -> IpAddr {
    if state.config.trust_forwarded_for
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            // The last entry is the one our own proxy appended: the address it saw.
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    addr.ip()
}

async fn track_metrics(path: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = path.map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "path" => path.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "path" => path)
        .record(started.elapsed().as_secs_f64());
    resp
}
