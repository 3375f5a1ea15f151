//! HTTP: the router and its layers, and what every route shares (the client's address).
//!
//! One job per file below: `serve` (the accept loop and its connection limits),
//! `graphql_http` (GraphQL over HTTP), `websocket` (subscriptions), `rate` (the anonymous
//! rate limit), `health` (liveness, readiness, metrics), `cors` (browsers on other origins).
//! The pages (web app and playground) are `crate::web`.

mod cors;
mod graphql_http;
mod health;
mod rate;
pub mod serve;
mod websocket;

pub use websocket::REVOKED_TOPIC;

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderMap, HeaderValue},
    middleware::{self, Next},
    response::Response,
    routing::get,
};
use tokio::sync::{Semaphore, watch};
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{graphql::AppSchema, state::AppState};

/// The client's address, as request data for rate limits.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The address as rate limits count it: IPv4 as is, IPv6 by its /64 (one customer's
    /// network; counting by /128 would give each attacker 2^64 addresses).
    pub fn group(&self) -> Option<IpAddr> {
        self.0.map(group)
    }
}

/// See [`ClientAddr::group`].
pub fn group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// What every handler shares, behind one `Arc`: axum clones the state for each request,
/// and cloning this struct field by field (a dozen `Arc`s) showed in the profile.
struct Http {
    state: AppState,
    schema: AppSchema,
    /// Flips to true when the server starts shutting down; open WebSockets then close.
    shutdown: watch::Receiver<bool>,
    /// Requests without a valid token, per client address.
    anonymous: Arc<rate::AnonymousLimiter>,
    /// One permit per open WebSocket (`WS_MAX_SOCKETS`).
    sockets: Arc<Semaphore>,
    /// Open WebSockets per account (`WS_MAX_SOCKETS_PER_USER`).
    sockets_per_user: Arc<websocket::SocketsPerUser>,
    /// Parsed documents of accepted requests, by text.
    documents: Arc<crate::graphql::documents::Documents>,
}

const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A quiet WebSocket gets a ping this often.
const KEEPALIVE: Duration = Duration::from_secs(20);

pub fn router(state: AppState, schema: AppSchema, shutdown: watch::Receiver<bool>) -> Router {
    let edge = &state.config.edge;
    let cors = cors::layer(&state.config.cors_allowed_origins);
    let http = Http {
        anonymous: Arc::new(rate::AnonymousLimiter::new(
            edge.anonymous_rate_per_second,
            edge.anonymous_rate_burst,
        )),
        sockets: Arc::new(Semaphore::new(edge.ws_max_sockets)),
        sockets_per_user: Arc::default(),
        documents: Arc::default(),
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
        .merge(crate::payments::webhook::router(http.state.clone()))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(middleware::from_fn(track_metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            ServiceBuilder::new()
                .map_request(set_aside_client_request_id)
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_owned()
                    };
                    tracing::info_span!(
                        "http",
                        request.id = %header("x-request-id"),
                        request.client_id = %header(CLIENT_REQUEST_ID),
                        http.method = %req.method(),
                        http.path = %req.uri().path()
                    )
                }))
                // Answers preflights itself, before any route (they are OPTIONS).
                .layer(cors),
        )
        .with_state(Arc::new(http))
}

/// Where a client's own request id goes: kept for correlation, never used as ours.
const CLIENT_REQUEST_ID: &str = "x-client-request-id";

/// Request ids are the server's: a client's `X-Request-Id` is moved to
/// `X-Client-Request-Id`, reduced to at most 64 characters of `[A-Za-z0-9._-]` (so it cannot
/// forge log lines or collide with ours), and `SetRequestIdLayer` then makes a fresh id.
fn set_aside_client_request_id(mut req: Request) -> Request {
    let headers = req.headers_mut();
    headers.remove(CLIENT_REQUEST_ID);
    if let Some(theirs) = headers.remove("x-request-id") {
        let clean: String = String::from_utf8_lossy(theirs.as_bytes())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(64)
            .collect();
        if let Ok(v) = HeaderValue::from_str(&clean)
            && !clean.is_empty()
        {
            headers.insert(CLIENT_REQUEST_ID, v);
        }
    }
    req
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_grouped_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(group(a), group(b));
        assert_ne!(group(a), group(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(group(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
