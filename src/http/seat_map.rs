//! `GET /schedules/{id}/seat-map`: the compact seat map as a plain HTTP resource, so a CDN
//! (or the browser's cache) absorbs snapshot reads during a sale.
//!
//! - Without `version`: the latest map. `ETag: "seatmap-{id}-{version}"`, `Cache-Control:
//!   public, max-age=1, s-maxage=1` (a cache may answer for a second, then revalidates),
//!   and `Content-Location` naming the same map by version.
//! - With `?version=N`: that version, `Cache-Control: public, max-age=31536000, immutable`,
//!   as long as the server still has it (the map it holds is version N, or N is the
//!   schedule's latest). Older versions are not kept: **410 Gone**, with the latest version
//!   in the error's `extensions.latest`, so the client reads the latest map instead. A
//!   version the server has not seen yet is **404** (not cached).
//! - `If-None-Match` naming the version the server knows (its settings cache, refreshed
//!   every second, or the map it holds) is answered 304 from memory: no database read.
//!   For `?version=N` a matching tag is always 304: that representation never changes.
//!
//! Visibility is the GraphQL API's (`concerts::service::visible_to`): published and
//! cancelled concerts' maps are public; a draft's exists only for its host and admins
//! (bearer token), and is then `private, no-cache`; to anyone else it is 404, exactly
//! as an id that does not exist. Errors are never cached (`no-store`).
//!
//! Readers then follow `seatChanges(scheduleId:, sinceVersion:)` from the map's version.

use std::sync::Arc;

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::Http;
use crate::{
    auth::{Actor, Viewer},
    error::{AppError, ErrorCode},
    seats::map::SeatMap,
};

const LATEST: &str = "public, max-age=1, s-maxage=1";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A draft's map, for its host: the browser may keep it but must revalidate.
const PRIVATE: &str = "private, no-cache";

pub(super) async fn seat_map(
    State(http): State<Arc<Http>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(schedule_id) = id.parse::<i64>().ok().filter(|n| *n > 0) else {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            "the schedule id is not a valid id",
            None,
        );
    };
    let version = match wanted_version(query.as_deref()) {
        Ok(v) => v,
        Err(message) => return error(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, message, None),
    };
    match answer(&http, schedule_id, version, &headers).await {
        Ok(resp) => resp,
        Err(e) => {
            let code = e.code();
            let status = match code {
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(error = %e, schedule.id = schedule_id, "seat map over HTTP");
            }
            error(status, code, &e.to_string(), None)
        }
    }
}

/// `version=N` from the query string; nothing else is read (other parameters are ignored
/// as cache busters are).
fn wanted_version(query: Option<&str>) -> Result<Option<i64>, &'static str> {
    let Some(query) = query else { return Ok(None) };
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("version=") {
            return v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Some)
                .ok_or("version must be a schedule version (a whole number)");
        }
    }
    Ok(None)
}

async fn answer(
    http: &Http,
    schedule_id: i64,
    version: Option<i64>,
    headers: &HeaderMap,
) -> Result<Response, AppError> {
    let state = &http.state;
    let settings = state
        .queue_flags
        .settings(&state.db, schedule_id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    let public = settings.concert_status != crate::concerts::ConcertStatus::Draft;
    if !public {
        let actor = draft_reader(http, headers).await?;
        if !settings.visible_to(actor) {
            return Err(AppError::NotFound("schedule"));
        }
    }
    let cached = state.seat_maps.cached(schedule_id);
    let cached_version = cached.as_ref().map(|m| m.version);
    let known = settings.schedule.version.max(cached_version.unwrap_or(0));
    let tags = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    let cache_control = |latest: bool| match (public, latest) {
        (false, _) => PRIVATE,
        (true, true) => LATEST,
        (true, false) => IMMUTABLE,
    };
    match version {
        None => {
            if matches(&tags, schedule_id, known) {
                metrics::counter!("seat_map_http_total", "answer" => "not_modified").increment(1);
                return Ok(not_modified(schedule_id, known, cache_control(true)));
            }
            let map = state
                .seat_maps
                .get(&state.db, schedule_id, settings.schedule.version)
                .await?;
            if matches(&tags, schedule_id, map.version) {
                metrics::counter!("seat_map_http_total", "answer" => "not_modified").increment(1);
                return Ok(not_modified(schedule_id, map.version, cache_control(true)));
            }
            Ok(full(&map, cache_control(true)))
        }
        Some(n) => {
            if matches(&tags, schedule_id, n) && n <= known {
                metrics::counter!("seat_map_http_total", "answer" => "not_modified").increment(1);
                return Ok(not_modified(schedule_id, n, cache_control(false)));
            }
            if let Some(map) = cached.filter(|m| m.version == n) {
                return Ok(full(&map, cache_control(false)));
            }
            if n > known {
                return Ok(error(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NotFound,
                    "this version of the seat map does not exist yet; read the latest",
                    Some(known),
                ));
            }
            let map = if n < known {
                None
            } else {
                Some(state.seat_maps.get(&state.db, schedule_id, n).await?)
            };
            match map {
                Some(map) if map.version == n => Ok(full(&map, cache_control(false))),
                other => {
                    metrics::counter!("seat_map_http_total", "answer" => "gone").increment(1);
                    Ok(error(
                        StatusCode::GONE,
                        ErrorCode::NotFound,
                        "this version of the seat map is no longer kept; read the latest",
                        Some(other.map_or(known, |m| m.version)),
                    ))
                }
            }
        }
    }
}

/// The signed-in reader of a draft's map with their current role, if any.
async fn draft_reader(http: &Http, headers: &HeaderMap) -> Result<Option<Actor>, AppError> {
    let viewer = Viewer::from_bearer(
        &http.state.jwt,
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
    );
    let Viewer::User(user) = viewer else {
        return Ok(None);
    };
    let mut conn = http.state.db.get().await?;
    Ok(crate::auth::store::current_role(&mut conn, user.id)
        .await?
        .map(|role| Actor { id: user.id, role }))
}

fn etag(schedule_id: i64, version: i64) -> String {
    format!("\"seatmap-{schedule_id}-{version}\"")
}

/// Whether `If-None-Match` names this map (weak comparison, as RFC 9110 wants for it).
fn matches(tags: &[&str], schedule_id: i64, version: i64) -> bool {
    let ours = etag(schedule_id, version);
    tags.iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == ours)
}

fn validators(resp: &mut Response, schedule_id: i64, version: i64, cache_control: &'static str) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag(schedule_id, version)) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    if let Ok(v) = HeaderValue::from_str(&format!("/schedules/{schedule_id}/seat-map?version={version}")) {
        h.insert(header::CONTENT_LOCATION, v);
    }
}

fn not_modified(schedule_id: i64, version: i64, cache_control: &'static str) -> Response {
    let mut resp = StatusCode::NOT_MODIFIED.into_response();
    validators(&mut resp, schedule_id, version, cache_control);
    resp
}

fn full(map: &SeatMap, cache_control: &'static str) -> Response {
    metrics::counter!("seat_map_http_total", "answer" => "full").increment(1);
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        map.json(),
    )
        .into_response();
    validators(&mut resp, map.schedule_id, map.version, cache_control);
    resp
}

/// An error in the API's shape (`errors[].extensions.code`), never cached; `latest` is the
/// version to read instead, when there is one.
fn error(status: StatusCode, code: ErrorCode, message: &str, latest: Option<i64>) -> Response {
    let mut extensions = serde_json::json!({ "code": code.as_str() });
    if let Some(latest) = latest {
        extensions["latest"] = latest.into();
    }
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": extensions }] });
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_is_compared_weakly_and_as_a_list() {
        assert!(matches(&["\"seatmap-3-7\""], 3, 7));
        assert!(matches(&["W/\"seatmap-3-7\""], 3, 7));
        assert!(matches(&["\"x\", \"seatmap-3-7\""], 3, 7));
        assert!(matches(&["*"], 3, 7));
        assert!(!matches(&["\"seatmap-3-6\""], 3, 7));
        assert!(!matches(&["\"seatmap-4-7\""], 3, 7));
        assert!(!matches(&[], 3, 7));
    }

    #[test]
    fn only_a_whole_version_is_read_from_the_query() {
        assert_eq!(wanted_version(None), Ok(None));
        assert_eq!(wanted_version(Some("t=1")), Ok(None));
        assert_eq!(wanted_version(Some("t=1&version=12")), Ok(Some(12)));
        assert!(wanted_version(Some("version=x")).is_err());
        assert!(wanted_version(Some("version=-1")).is_err());
    }
}
