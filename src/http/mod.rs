//! HTTP: the router and its layers, and what every route shares (the client's address).
//!
//! One job per file below: `serve` (the accept loop and its connection limits),
//! `graphql_http` (GraphQL over HTTP), `websocket` (subscriptions), `rate` (the anonymous
//! rate limit), `health` (liveness, readiness, metrics), `cors` (browsers on other origins),
//! `seat_map` (the seat map as a cacheable HTTP resource).
//! The pages (web app and playground) are `crate::web`.

mod cors;
mod graphql_http;
mod health;
mod rate;
mod seat_map;
pub mod serve;
mod sockets_per_user;
mod websocket;

// The client address is request data that auth reads (rate limits); auth defines it, so
// that auth needs nothing from this layer.
pub use crate::auth::{ClientAddr, REVOKED_TOPIC, group};

use std::{
    net::{IpAddr, SocketAddr},
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
    sockets_per_user: Arc<sockets_per_user::SocketsPerUser>,
    /// Parsed documents of accepted requests, by text.
    documents: Arc<crate::graphql::documents::Documents>,
}

const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A quiet WebSocket gets a ping this often.
const KEEPALIVE: Duration = Duration::from_secs(20);

pub fn router(state: AppState, schema: AppSchema, shutdown: watch::Receiver<bool>) -> Router {
    let edge = &state.config.edge;
    let cors = cors::layer(&state.config.cors_allowed_origins);
    // Counted from the start, not from the first scrape: the recorder must exist before the
    // first request is counted.
    crate::telemetry::metrics();
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
        .route("/schedules/{id}/seat-map", get(seat_map::seat_map))
        .merge(crate::web::router(http.state.config.playground))
        .merge(crate::payments::webhook::router(http.state.clone()))
        .merge(crate::exports::download::router(http.state.clone()))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(middleware::from_fn(track_metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            ServiceBuilder::new()
                .map_response(nosniff)
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

/// Every answer (API, health, 404, preflight) tells browsers not to guess its type: a JSON
/// error echoing a client's text must never be sniffed into HTML or script.
fn nosniff<B>(mut resp: axum::http::Response<B>) -> axum::http::Response<B> {
    resp.headers_mut()
        .entry(axum::http::header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    resp
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

/// The client's address: the peer's, or with TRUST_FORWARDED_FOR the one our outermost
/// proxy saw. Each proxy appends the address it saw to `X-Forwarded-For`; entries further
/// left were written by the client and prove nothing. So with FORWARDED_FOR_HOPS proxies
/// of ours (a load balancer; a CDN and a load balancer), the client is that many entries
/// from the right: counting the CDN's edge as the client would put every fan it serves
/// behind one address.
fn client_ip(state: &AppState, headers: &HeaderMap, addr: SocketAddr) -> IpAddr {
    if state.config.trust_forwarded_for
        && let Some(ip) = forwarded_client(headers, state.config.forwarded_for_hops)
    {
        return ip;
    }
    addr.ip()
}

fn forwarded_client(headers: &HeaderMap, hops: usize) -> Option<IpAddr> {
    // Several headers count as one list, in order (RFC 9110 5.3).
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    // Fewer entries than proxies: the request came past one of them; the leftmost is the
    // best there is.
    let entry = entries
        .len()
        .checked_sub(hops.max(1))
        .map_or(entries.first(), |i| entries.get(i))?;
    entry.parse().ok()
}

async fn track_metrics(path: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // Labels come from a closed set: every new label value is a new time series kept for
    // the life of the process, so a client choosing them (10,000 made-up 4 KB methods, or
    // as many paths) would grow memory and every scrape without bound.
    // The route as the router declares it (`/schedules/{id}`), never the path sent.
    let path = path.map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "path" => path.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "path" => path)
        .record(started.elapsed().as_secs_f64());
    resp
}

/// The methods of RFC 9110 (and PATCH) by name; anything else is `OTHER`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_as_many_entries_from_the_right_as_we_have_proxies() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.9.9.9, 198.51.100.7, 203.0.113.1"),
        );
        assert_eq!(forwarded_client(&h, 1), "203.0.113.1".parse().ok());
        assert_eq!(forwarded_client(&h, 2), "198.51.100.7".parse().ok());
        assert_eq!(forwarded_client(&h, 5), "10.9.9.9".parse().ok());
        h.append("x-forwarded-for", HeaderValue::from_static("192.0.2.4"));
        assert_eq!(forwarded_client(&h, 1), "192.0.2.4".parse().ok());
        assert_eq!(forwarded_client(&HeaderMap::new(), 1), None);
    }

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
