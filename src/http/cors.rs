//! Browsers on other origins: CORS for HTTP, the `Origin` check for WebSocket upgrades.
//!
//! Both follow `CORS_ALLOWED_ORIGINS` (default: none). A listed origin gets CORS headers
//! for GET and POST and a preflight answer naming the headers GraphQL clients send; an
//! unlisted origin gets none, so its browser refuses the response. No credentials are
//! allowed: the API takes bearer tokens, never cookies. Browsers do not apply CORS to
//! WebSockets, so the upgrade checks `Origin` itself: the server's own origin and the
//! listed ones pass; a request without `Origin` is not from a browser page and passes too.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::AllowedOrigins;

/// Request headers a GraphQL client may send: a bearer token, the body's type, the
/// response type it wants, and Apollo Client's client-awareness and CSRF-prevention
/// headers; and the validator a seat-map reader sends (`If-None-Match`).
const ALLOWED_HEADERS: [HeaderName; 7] = [
    header::IF_NONE_MATCH,
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("apollographql-client-name"),
    HeaderName::from_static("apollographql-client-version"),
    HeaderName::from_static("apollo-require-preflight"),
];

/// How long a browser may reuse a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

pub fn layer(origins: &AllowedOrigins) -> CorsLayer {
    let allow = match origins {
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::List(list) => {
            AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        }
        AllowedOrigins::None => AllowOrigin::list(std::iter::empty()),
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(ALLOWED_HEADERS)
        // The seat map's version tags, for a script that keeps the map itself.
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::ETAG,
            header::CONTENT_LOCATION,
        ])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Whether a WebSocket upgrade may go on: no `Origin` (not a browser page), the server's
/// own origin (same host and port as the request's `Host`), or a listed one.
pub fn websocket_origin_allowed(origins: &AllowedOrigins, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let same_origin = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .zip(origin.split_once("://").map(|(_, rest)| rest))
        .is_some_and(|(host, origin_host)| origin_host.eq_ignore_ascii_case(host));
    same_origin || origins.allows(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn websocket_origins() {
        let listed = AllowedOrigins::List(vec!["http://localhost:5173".into()]);
        let host = "127.0.0.1:8080";
        assert!(
            websocket_origin_allowed(&listed, &headers(None, host)),
            "not a browser"
        );
        assert!(websocket_origin_allowed(
            &listed,
            &headers(Some("http://127.0.0.1:8080"), host)
        ));
        assert!(websocket_origin_allowed(
            &listed,
            &headers(Some("http://localhost:5173"), host)
        ));
        assert!(!websocket_origin_allowed(
            &listed,
            &headers(Some("https://evil.example.com"), host)
        ));
        assert!(!websocket_origin_allowed(
            &AllowedOrigins::None,
            &headers(Some("http://127.0.0.1:8081"), host)
        ));
        assert!(websocket_origin_allowed(
            &AllowedOrigins::Any,
            &headers(Some("https://anywhere.example.com"), host)
        ));
    }
}
