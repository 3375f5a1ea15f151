//! HTTP: the routes, GraphQL over HTTP, WebSocket subscriptions, health and metrics.
//!
//! GraphQL over HTTP follows the GraphQL-over-HTTP spec where async-graphql-axum's stock
//! handler does not: the response media type follows `Accept`; with
//! `application/graphql-response+json` a request that fails before execution (parse or
//! validation error) gets 400 and no `data`; GET only runs queries (a mutation by GET is
//! 405, because GET must be safe).

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use async_graphql::{
    Data, Value,
    http::ALL_WEBSOCKET_PROTOCOLS,
    parser::types::{DocumentOperations, OperationType},
};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, close_code};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{
        ConnectInfo, DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State, WebSocketUpgrade,
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{auth::Viewer, graphql::AppSchema, state::AppState};

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
    let http = Http {
        state,
        schema,
        shutdown,
    };
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .merge(crate::web::router(http.state.config.playground))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
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
                })),
        )
        .with_state(http)
}

/// Which JSON flavour the client accepts.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Media {
    GraphqlResponse,
    Json,
}

impl Media {
    fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }
}

/// Picks the response media type from `Accept` (highest q wins; a tie goes to
/// application/graphql-response+json). No header means application/json, as legacy
/// clients expect; a header naming neither is `None` (406).
fn negotiate(headers: &HeaderMap) -> Option<Media> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Media::Json);
    };
    let mut best: Option<(f32, Media)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let mime = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let media = match mime.as_str() {
            "application/graphql-response+json" => Media::GraphqlResponse,
            "application/json" | "application/*" | "*/*" => Media::Json,
            _ => continue,
        };
        if q <= 0.0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((bq, bm)) => q > bq || (q == bq && media == Media::GraphqlResponse && bm == Media::Json),
        };
        if better {
            best = Some((q, media));
        }
    }
    best.map(|(_, m)| m)
}

fn error_response(status: StatusCode, media: Media, message: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message }] });
    (
        status,
        [(header::CONTENT_TYPE, media.content_type())],
        body.to_string(),
    )
        .into_response()
}

async fn graphql_post(
    State(http): State<Http>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(media) = negotiate(&headers) else {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            Media::Json,
            "accept application/graphql-response+json or application/json",
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let request = match content_type.as_deref() {
        Some("application/json") => match serde_json::from_slice::<PostBody>(&body) {
            Ok(body) => body.into_request(),
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    media,
                    &format!("the body is not a GraphQL request: {e}"),
                );
            }
        },
        Some("application/graphql") => match std::str::from_utf8(&body) {
            Ok(query) => async_graphql::Request::new(query),
            Err(_) => return error_response(StatusCode::BAD_REQUEST, media, "the body is not UTF-8"),
        },
        _ => {
            return error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                media,
                "send Content-Type: application/json",
            );
        }
    };
    execute(&http, &headers, addr, request, media).await
}

/// A GraphQL-over-HTTP JSON body. Unlike `async_graphql::Request`, `query` is required:
/// a body without one is not a GraphQL request (400), not an empty document.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostBody {
    query: String,
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<serde_json::Value>,
    #[serde(default)]
    extensions: Option<async_graphql::Extensions>,
}

impl PostBody {
    fn into_request(self) -> async_graphql::Request {
        let mut request = async_graphql::Request::new(self.query);
        if let Some(name) = self.operation_name {
            request = request.operation_name(name);
        }
        if let Some(vars) = self.variables {
            request = request.variables(async_graphql::Variables::from_json(vars));
        }
        if let Some(ext) = self.extensions {
            request.extensions = ext;
        }
        request
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

async fn graphql_get(
    State(http): State<Http>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (mut parts, _body) = req.into_parts();
    let wants_upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if wants_upgrade {
        return websocket(http, &mut parts, addr).await;
    }
    let params = match axum::extract::Query::<GetParams>::try_from_uri(&parts.uri) {
        Ok(q) => q.0,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, Media::Json, &e.body_text()),
    };
    let wants_html = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let Some(query) = params.query else {
        if wants_html && http.state.config.playground {
            return crate::web::playground_redirect();
        }
        return error_response(
            StatusCode::BAD_REQUEST,
            Media::Json,
            "missing the `query` parameter",
        );
    };
    let Some(media) = negotiate(&parts.headers) else {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            Media::Json,
            "accept application/graphql-response+json or application/json",
        );
    };
    // GET must be safe: only queries run. Unparseable documents go on to execution, which
    // reports the syntax error the usual way.
    if let Ok(doc) = async_graphql::parser::parse_query(&query) {
        let ty = match &doc.operations {
            DocumentOperations::Single(op) => Some(op.node.ty),
            DocumentOperations::Multiple(ops) => match params.operation_name.as_deref() {
                Some(name) => ops.get(name).map(|op| op.node.ty),
                None if ops.len() == 1 => ops.values().next().map(|op| op.node.ty),
                None => None,
            },
        };
        if matches!(ty, Some(OperationType::Mutation | OperationType::Subscription)) {
            let mut resp = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                media,
                "only queries may be sent by GET; use POST",
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            return resp;
        }
    }
    let mut request = async_graphql::Request::new(query);
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    for (raw, is_vars) in [(params.variables, true), (params.extensions, false)] {
        let Some(raw) = raw else { continue };
        let value = match serde_json::from_str::<serde_json::Value>(&raw) {
            Ok(v) => v,
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    media,
                    "`variables` and `extensions` must be JSON objects",
                );
            }
        };
        if is_vars {
            request = request.variables(async_graphql::Variables::from_json(value));
        } else if let Ok(ext) = serde_json::from_value(value) {
            request.extensions = ext;
        }
    }
    execute(&http, &parts.headers, addr, request, media).await
}

async fn execute(
    http: &Http,
    headers: &HeaderMap,
    addr: SocketAddr,
    request: async_graphql::Request,
    media: Media,
) -> Response {
    let started = Instant::now();
    let viewer = Viewer::from_bearer(
        &http.state.jwt,
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
    );
    let client = ClientAddr(Some(client_ip(&http.state, headers, addr)));
    let request = crate::graphql::with_loaders(request.data(viewer).data(client), &http.state);
    let response = http.schema.execute(request).await;
    // A request error (syntax, validation, unknown operation, bad variables) fails before
    // execution: there is no data and no error has a path.
    let request_error = response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    metrics::histogram!("graphql_request_duration_seconds").record(started.elapsed().as_secs_f64());
    if !response.errors.is_empty() {
        metrics::counter!("graphql_errors_total").increment(response.errors.len() as u64);
    }
    let mut body = match serde_json::to_value(&response) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "serializing a GraphQL response");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, media, "internal error");
        }
    };
    if request_error && let Some(obj) = body.as_object_mut() {
        obj.remove("data");
    }
    let status = if request_error && media == Media::GraphqlResponse {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, media.content_type())],
        body.to_string(),
    )
        .into_response();
    for (name, value) in response.http_headers.iter() {
        resp.headers_mut().insert(name, value.clone());
    }
    resp
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

/// WebSocket subscriptions, graphql-transport-ws and graphql-ws. The client authenticates
/// in `connection_init` with `{"Authorization": "Bearer ..."}`; a bad token closes the
/// connection (4403), no token makes an anonymous connection.
async fn websocket(http: Http, parts: &mut axum::http::request::Parts, addr: SocketAddr) -> Response {
    let protocol = match GraphQLProtocol::from_request_parts(parts, &()).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let client = ClientAddr(Some(client_ip(&http.state, &parts.headers, addr)));
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // tungstenite's defaults (128 KiB read and write buffers per socket) would cost
        // over a gigabyte for 5,000 subscribers; our messages are a few KiB at most.
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(256 * 1024)
        .on_upgrade(move |socket| async move {
            let jwt = http.state.jwt.clone();
            let mut shutdown = http.shutdown.clone();
            let mut data = Data::default();
            data.insert(client);
            crate::graphql::loaders(&mut data, &http.state);
            // The socket's writing half is ours, behind a channel, so that the connection
            // can end with a proper close frame when the server shuts down.
            let (mut socket_out, socket_in) = socket.split();
            let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
            let out = futures_util::sink::unfold(out_tx, |tx, msg: Message| async move {
                tx.send(msg).await.map_err(axum::Error::new)?;
                Ok::<_, axum::Error>(tx)
            });
            // At shutdown the input ends, which ends the GraphQL session.
            let input = socket_in.take_until(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            });
            let connection = GraphQLWebSocket::new_with_pair(out, input, http.schema.clone(), protocol)
                .with_data(data)
                .on_connection_init(move |payload| async move {
                    let header = payload
                        .get("Authorization")
                        .or_else(|| payload.get("authorization"))
                        .and_then(|v| v.as_str());
                    let viewer = Viewer::from_bearer(&jwt, header);
                    if matches!(viewer, Viewer::InvalidToken) {
                        return Err(async_graphql::Error::new("invalid or expired access token"));
                    }
                    let mut data = Data::default();
                    data.insert(viewer);
                    Ok(data)
                })
                .serve();
            let forward = async move {
                // Keep-alive: a WebSocket ping when nothing was sent for a while, so that
                // proxies and load balancers do not drop a quiet subscription (browsers
                // answer pings by themselves).
                let mut idle = tokio::time::interval(KEEPALIVE);
                idle.reset();
                loop {
                    let msg = tokio::select! {
                        msg = out_rx.recv() => match msg {
                            Some(msg) => msg,
                            None => break,
                        },
                        _ = idle.tick() => Message::Ping(Default::default()),
                    };
                    if socket_out.send(msg).await.is_err() {
                        return;
                    }
                    idle.reset();
                }
                // The session is over (the client left, or the server is stopping).
                let goodbye = CloseFrame {
                    code: close_code::AWAY,
                    reason: "server shutting down".into(),
                };
                let _ = socket_out.send(Message::Close(Some(goodbye))).await;
            };
            tokio::join!(connection, forward);
        })
}

/// Ready when PostgreSQL and Redis both answer within a second.
async fn readyz(State(http): State<Http>) -> Response {
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

    fn accept(v: &str) -> Option<Media> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        negotiate(&h)
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(Media::Json));
        assert_eq!(accept("application/json"), Some(Media::Json));
        assert_eq!(
            accept("application/graphql-response+json"),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(
            accept("application/graphql-response+json, application/json;q=0.9"),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(
            accept("application/graphql-response+json;q=0.5, application/json"),
            Some(Media::Json)
        );
        assert_eq!(accept("*/*"), Some(Media::Json));
        assert_eq!(accept("text/html"), None);
    }
}
