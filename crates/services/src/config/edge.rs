//! The edge's settings: what one request, connection or client may cost, and which
//! browser origins may call.

use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, err, parse};

/// The edge's limits: per request (`limits`), per connection and per client.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    pub limits: super::Limits,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub anonymous_rate_per_second: u32,
    pub anonymous_rate_burst: u32,
    pub ws_init_timeout: Duration,
    pub ws_max_subscriptions: usize,
    pub ws_max_sockets_per_user: usize,
    pub ws_max_sockets: usize,
    pub metrics_token: Option<SecretString>,
    pub signup_max_per_ip: u32,
    pub signup_window: Duration,
    pub booking_rate_per_second: u32,
    pub booking_rate_burst: u32,
}

impl EdgeConfig {
    pub(super) fn from_lookup(get: &impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = super::Limits::default();
        let limits = super::Limits {
            max_document_bytes: parse(get, "GRAPHQL_MAX_DOCUMENT_BYTES", Some(d.max_document_bytes))?,
            max_selections: parse(get, "GRAPHQL_MAX_SELECTIONS", Some(d.max_selections))?,
            max_root_fields: parse(get, "GRAPHQL_MAX_ROOT_FIELDS", Some(d.max_root_fields))?,
            max_cost: parse(get, "GRAPHQL_MAX_COST", Some(d.max_cost))?,
            max_seats_read: parse(get, "GRAPHQL_MAX_SEATS_READ", Some(d.max_seats_read))?,
            query_timeout: Duration::from_millis(parse(
                get,
                "GRAPHQL_QUERY_TIMEOUT_MS",
                Some(d.query_timeout.as_millis() as u64),
            )?),
            max_response_bytes: parse(get, "GRAPHQL_MAX_RESPONSE_BYTES", Some(d.max_response_bytes))?,
            heavy_cost: parse(get, "GRAPHQL_HEAVY_COST", Some(d.heavy_cost))?,
            heavy_concurrency: parse(get, "GRAPHQL_HEAVY_CONCURRENCY", Some(d.heavy_concurrency))?,
            heavy_share_percent: parse(get, "GRAPHQL_HEAVY_SHARE_PERCENT", Some(d.heavy_share_percent))?,
        };
        let edge = Self {
            limits,
            header_timeout: Duration::from_secs(parse(get, "HTTP_HEADER_TIMEOUT_SECONDS", Some(10))?),
            body_timeout: Duration::from_secs(parse(get, "HTTP_BODY_TIMEOUT_SECONDS", Some(10))?),
            max_connections: parse(get, "HTTP_MAX_CONNECTIONS", Some(10_000))?,
            // Per-address limits are a backstop: one IPv4 address of a mobile carrier or a
            // campus is shared by thousands of fans, the very people of a flash sale. The
            // primary limits are per account and per session.
            anonymous_rate_per_second: parse(get, "ANONYMOUS_RATE_PER_SECOND", Some(100))?,
            anonymous_rate_burst: parse(get, "ANONYMOUS_RATE_BURST", Some(300))?,
            ws_init_timeout: Duration::from_secs(parse(get, "WS_INIT_TIMEOUT_SECONDS", Some(10))?),
            ws_max_subscriptions: parse(get, "WS_MAX_SUBSCRIPTIONS_PER_SOCKET", Some(20))?,
            ws_max_sockets_per_user: parse(get, "WS_MAX_SOCKETS_PER_USER", Some(10))?,
            ws_max_sockets: parse(get, "WS_MAX_SOCKETS", Some(18_000))?,
            metrics_token: get("METRICS_TOKEN").map(SecretString::from),
            signup_max_per_ip: parse(get, "SIGNUP_MAX_PER_IP", Some(120))?,
            signup_window: Duration::from_secs(parse(get, "SIGNUP_WINDOW_SECONDS", Some(60))?),
            booking_rate_per_second: parse(get, "BOOKING_RATE_PER_SECOND", Some(5))?,
            booking_rate_burst: parse(get, "BOOKING_RATE_BURST", Some(20))?,
        };
        for (var, zero) in [
            ("HTTP_HEADER_TIMEOUT_SECONDS", edge.header_timeout.is_zero()),
            ("HTTP_BODY_TIMEOUT_SECONDS", edge.body_timeout.is_zero()),
            ("HTTP_MAX_CONNECTIONS", edge.max_connections == 0),
            ("ANONYMOUS_RATE_PER_SECOND", edge.anonymous_rate_per_second == 0),
            ("ANONYMOUS_RATE_BURST", edge.anonymous_rate_burst == 0),
            ("WS_INIT_TIMEOUT_SECONDS", edge.ws_init_timeout.is_zero()),
            ("WS_MAX_SOCKETS", edge.ws_max_sockets == 0),
            ("SIGNUP_WINDOW_SECONDS", edge.signup_window.is_zero()),
            ("BOOKING_RATE_PER_SECOND", edge.booking_rate_per_second == 0),
            ("BOOKING_RATE_BURST", edge.booking_rate_burst == 0),
            ("GRAPHQL_QUERY_TIMEOUT_MS", edge.limits.query_timeout.is_zero()),
        ] {
            if zero {
                return Err(err(var, "must be positive"));
            }
        }
        if !(1..=100).contains(&edge.limits.heavy_share_percent) {
            return Err(err("GRAPHQL_HEAVY_SHARE_PERCENT", "must be between 1 and 100"));
        }
        Ok(edge)
    }
}

/// Browser origins other than the server's own that may call the API (CORS, and the
/// `Origin` of WebSocket upgrades). The server's own origin is always allowed.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub enum AllowedOrigins {
    /// `*`: any origin. Safe only because the API takes bearer tokens, never cookies.
    Any,
    /// These origins exactly (`scheme://host[:port]`, as browsers send them); empty: none.
    List(Vec<String>),
    /// None (the default).
    #[default]
    None,
}

impl AllowedOrigins {
    pub(super) fn parse(raw: Option<&str>) -> Result<Self, String> {
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return Ok(Self::None);
        };
        if raw == "*" {
            return Ok(Self::Any);
        }
        let mut origins = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let url = url::Url::parse(item).map_err(|e| format!("{item:?} is not an origin: {e}"))?;
            let origin = url.origin().ascii_serialization();
            // A browser sends exactly `scheme://host[:port]`: anything else never matches.
            if !matches!(url.scheme(), "http" | "https") || origin != item.trim_end_matches('/') {
                return Err(format!(
                    "{item:?} is not an origin: write scheme://host[:port], e.g. https://app.example.com"
                ));
            }
            origins.push(origin);
        }
        Ok(Self::List(origins))
    }

    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.iter().any(|o| o == origin),
            Self::None => false,
        }
    }
}
