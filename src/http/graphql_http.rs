//! GraphQL over HTTP: media-type negotiation, GET and POST, and executing the request.
//!
//! It follows the GraphQL-over-HTTP spec where async-graphql-axum's stock handler does not:
//! the response media type follows `Accept`; with `application/graphql-response+json` a
//! request that fails before execution (parse or validation error) gets 400 and no `data`;
//! GET only runs queries (a mutation by GET is 405, because GET must be safe).

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Instant};

use async_graphql::{
    ServerError, Value,
    parser::types::{DocumentOperations, OperationType},
};
use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::{ClientAddr, Http, MAX_BODY_BYTES, client_ip, websocket};
use crate::{auth::Viewer, error::ErrorCode, graphql::refusal::Refusal, limits::HeavyTurn};

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

/// A request refused before it became a GraphQL request (bad body, media type, method):
/// coded BAD_REQUEST like every other refusal.
fn error_response(status: StatusCode, media: Media, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": Refusal::BadRequest.code() } }]
    });
    (
        status,
        [(header::CONTENT_TYPE, media.content_type())],
        body.to_string(),
    )
        .into_response()
}

pub(super) async fn graphql_post(
    State(http): State<Arc<Http>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    // The whole body within HTTP_BODY_TIMEOUT_SECONDS: a client trickling a byte now and
    // then must not hold a connection and a buffer for ever.
    let deadline = http.state.config.edge.body_timeout;
    let body = match tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                Media::Json,
                &format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            );
        }
        Err(_) => {
            metrics::counter!("http_body_timeouts_total").increment(1);
            let mut resp = error_response(
                StatusCode::REQUEST_TIMEOUT,
                Media::Json,
                &format!("the body did not arrive within {} s", deadline.as_secs()),
            );
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
    };
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
        Some("application/json") => match serde_json::from_slice::<PostBody>(&body)
            .map_err(|e| e.to_string())
            .and_then(PostBody::into_request)
        {
            Ok(request) => request,
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

/// A GraphQL-over-HTTP JSON body. Unlike `async_graphql::Request`, `query` is required
/// (a body without one is not a GraphQL request: 400, not an empty document) unless a
/// persisted query's hash stands for it, and `variables` must be an object (or null).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostBody {
    #[serde(default)]
    query: Option<String>,
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    extensions: Option<async_graphql::Extensions>,
}

impl PostBody {
    fn into_request(self) -> Result<async_graphql::Request, String> {
        let extensions = self.extensions.unwrap_or_default();
        let query = match self.query {
            Some(query) => query,
            // The persisted-queries extension turns the hash into its query.
            None if extensions.contains_key("persistedQuery") => String::new(),
            None => return Err("missing field `query`".into()),
        };
        let mut request = async_graphql::Request::new(query);
        request.extensions = extensions;
        if let Some(name) = self.operation_name {
            request = request.operation_name(name);
        }
        if let Some(vars) = self.variables {
            request = request.variables(async_graphql::Variables::from_json(vars.into()));
        }
        Ok(request)
    }
}

/// A GET parameter that must hold a JSON object (`variables`, `extensions`).
fn json_object(raw: Option<&str>) -> Result<serde_json::Map<String, serde_json::Value>, ()> {
    match raw.map(serde_json::from_str::<serde_json::Value>) {
        None | Some(Ok(serde_json::Value::Null)) => Ok(Default::default()),
        Some(Ok(serde_json::Value::Object(map))) => Ok(map),
        Some(_) => Err(()),
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

pub(super) async fn graphql_get(
    State(http): State<Arc<Http>>,
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
        return websocket::websocket(http, &mut parts, addr).await;
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
    let (Ok(variables), Ok(extensions)) = (
        json_object(params.variables.as_deref()),
        json_object(params.extensions.as_deref()),
    ) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            negotiate(&parts.headers).unwrap_or(Media::Json),
            "`variables` and `extensions` must be JSON objects",
        );
    };
    let extensions: async_graphql::Extensions =
        serde_json::from_value(serde_json::Value::Object(extensions)).unwrap_or_default();
    // A persisted query by hash alone: what it stands for decides whether GET may run it.
    let persisted = match &params.query {
        None => http.state.persisted_queries.lookup(&extensions),
        Some(_) => None,
    };
    if params.query.is_none() && !extensions.contains_key("persistedQuery") {
        if wants_html && http.state.config.playground {
            return crate::web::playground_redirect();
        }
        return error_response(
            StatusCode::BAD_REQUEST,
            Media::Json,
            "missing the `query` parameter",
        );
    }
    let Some(media) = negotiate(&parts.headers) else {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            Media::Json,
            "accept application/graphql-response+json or application/json",
        );
    };
    // GET must be safe: only queries run. Unparseable documents go on to execution, which
    // reports the syntax error the usual way; so does a hash this instance does not know.
    let text = params.query.as_deref().or(persisted.as_deref());
    if let Some(Ok(doc)) = text.map(async_graphql::parser::parse_query) {
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
    let mut request = async_graphql::Request::new(params.query.unwrap_or_default())
        .variables(async_graphql::Variables::from_json(variables.into()));
    request.extensions = extensions;
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    execute(&http, &parts.headers, addr, request, media).await
}

/// 429 with a coded GraphQL error and `Retry-After`: nothing was executed.
fn rate_limited(media: Media, retry_after_s: u64) -> Response {
    let body = serde_json::json!({ "errors": [{
        "message": format!("too many requests without a token from this address; retry in {retry_after_s} s"),
        "extensions": { "code": ErrorCode::RateLimited.as_str(), "retryAfter": retry_after_s },
    }] });
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::CONTENT_TYPE, media.content_type().to_owned()),
            (header::RETRY_AFTER, retry_after_s.to_string()),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn execute(
    http: &Http,
    headers: &HeaderMap,
    addr: SocketAddr,
    request: async_graphql::Request,
    media: Media,
) -> Response {
    let started = Instant::now();
    let viewer = http.state.locked.screen(Viewer::from_bearer(
        &http.state.jwt,
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
    ));
    let client = ClientAddr(Some(client_ip(&http.state, headers, addr)));
    if !matches!(viewer, Viewer::User(_))
        && let Some(group) = client.group()
        && let Err(retry_after_s) = http.anonymous.check(group)
    {
        metrics::counter!("http_anonymous_rate_limited_total").increment(1);
        return rate_limited(media, retry_after_s);
    }
    let (request, known) = http.documents.lookup(request);
    let text = (!known && !request.query.is_empty()).then(|| request.query.clone());
    // A heavy query's turn lasts until its answer is written and freed (`limits::HeavyTurn`).
    let turn = Arc::new(HeavyTurn::default());
    let request =
        crate::graphql::with_loaders(request.data(viewer).data(client).data(turn.clone()), &http.state);
    let response = http.schema.execute(request).await;
    // A request error (syntax, validation, unknown operation, bad variables) fails before
    // execution: there is no data and no error has a path.
    let request_error = response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    if let Some(text) = text
        && !request_error
    {
        http.documents.remember(text);
    }
    metrics::histogram!("graphql_request_duration_seconds").record(started.elapsed().as_secs_f64());
    if !response.errors.is_empty() {
        metrics::counter!("graphql_errors_total").increment(response.errors.len() as u64);
    }
    let body = match serde_json::to_vec(&Body::of(&response, request_error)) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "serializing a GraphQL response");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, media, "internal error");
        }
    };
    let retry_after = rate_limited_for(&response);
    let status = if retry_after.is_some() {
        StatusCode::TOO_MANY_REQUESTS
    } else if request_error && media == Media::GraphqlResponse {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut resp = (status, [(header::CONTENT_TYPE, media.content_type())], body).into_response();
    for (name, value) in response.http_headers.iter() {
        resp.headers_mut().insert(name, value.clone());
    }
    if let Some(seconds) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    drop(response);
    drop(turn);
    resp
}

/// One rule for every rate limit, whichever refused (the anonymous limit above, the booking
/// rate in `limits`, login and sign-up limits in `auth`): HTTP 429, `Retry-After`, and the
/// GraphQL error coded RATE_LIMITED with `retryAfter` in the body. The longest wait wins
/// when several refused.
fn rate_limited_for(response: &async_graphql::Response) -> Option<u64> {
    response
        .errors
        .iter()
        .filter_map(|e| e.extensions.as_ref())
        .filter(
            |ext| matches!(ext.get("code"), Some(Value::String(c)) if c == ErrorCode::RateLimited.as_str()),
        )
        .map(|ext| match ext.get("retryAfter") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(1).max(1),
            _ => 1,
        })
        .max()
}

/// A response as its JSON body: as async-graphql serializes a `Response`, but without `data`
/// after a request error (nothing ran). Written straight from the answer's values, which
/// keep their fields in order: no copy of the answer on the way.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "<[ServerError]>::is_empty")]
    errors: &'a [ServerError],
}

impl<'a> Body<'a> {
    fn of(response: &'a async_graphql::Response, request_error: bool) -> Self {
        Self {
            data: (!request_error).then_some(&response.data),
            extensions: &response.extensions,
            errors: &response.errors,
        }
    }
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

    /// The body as it was written before (a `serde_json::Value` of the whole response,
    /// `data` removed after a request error).
    fn through_value(response: &async_graphql::Response, request_error: bool) -> String {
        let mut body = serde_json::to_value(response).unwrap();
        if request_error {
            body.as_object_mut().unwrap().remove("data");
        }
        body.to_string()
    }

    #[test]
    fn bodies_are_the_json_of_the_response() {
        let data = Value::from_json(serde_json::json!({
            "zeta": { "b": 1, "a": [1.5, null, "x"] },
            "alpha": true,
        }))
        .unwrap();
        let mut coded = ServerError::new("refused", Some(async_graphql::Pos { line: 1, column: 3 }));
        coded.path = vec![async_graphql::PathSegment::Field("zeta".into())];
        let mut ext = async_graphql::ErrorExtensionValues::default();
        ext.set("code", "TOO_LATE");
        ext.set("asked", 3);
        coded.extensions = Some(ext);
        let cases = [
            async_graphql::Response::new(data.clone()),
            async_graphql::Response::new(data).extension("cost", Value::from(7)),
            async_graphql::Response::from_errors(vec![coded.clone()]),
            async_graphql::Response::from_errors(vec![ServerError::new("no such field", None)]),
            async_graphql::Response::default(),
        ];
        for response in &cases {
            for request_error in [false, true] {
                let body = serde_json::to_vec(&Body::of(response, request_error)).unwrap();
                assert_eq!(
                    String::from_utf8(body).unwrap(),
                    through_value(response, request_error)
                );
            }
        }
    }
}
