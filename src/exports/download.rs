//! `GET /exports/{schedule}/{kind}.csv?u=&exp=&sig=`: checks the signed link and streams
//! the file (`boxoffice_services::exports` signs links and writes the CSV).

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    body::Body,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::Utc;
use tokio::sync::Semaphore;

use super::{ExportKind, csv_stream, signing, still_manages};
use crate::state::AppState;

struct Exports {
    state: AppState,
    /// One permit per download streaming on this instance.
    running: Arc<Semaphore>,
}

/// `GET /exports/{schedule}/{kind}.csv`.
pub fn router<S: Clone + Send + Sync + 'static>(state: AppState) -> Router<S> {
    let running = Arc::new(Semaphore::new(state.config.exports.concurrency));
    Router::new()
        .route("/exports/{schedule}/{file}", get(download))
        .with_state(Arc::new(Exports { state, running }))
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        message,
    )
        .into_response()
}

async fn download(
    State(ex): State<Arc<Exports>>,
    Path((schedule, file)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let (Some(schedule_id), Some(kind)) = (schedule.parse::<i64>().ok(), ExportKind::from_file(&file)) else {
        return refuse(StatusCode::NOT_FOUND, "no such export");
    };
    let (Some(user_id), Some(expires), Some(sig)) = (num("u"), num("exp"), q.get("sig")) else {
        return refuse(StatusCode::FORBIDDEN, "this export link is not signed");
    };
    let grant = signing::Grant {
        schedule_id,
        kind,
        expires,
        user_id,
    };
    if !signing::verify(&ex.state.config.exports.url_secret, &grant, sig) {
        return refuse(StatusCode::FORBIDDEN, "this export link is not valid");
    }
    if Utc::now().timestamp() > expires {
        return refuse(
            StatusCode::GONE,
            "this export link has expired; ask for a new one",
        );
    }
    // The link is as good as its account: a host whose role or account went since it was
    // made gets nothing.
    match still_manages(&ex.state, user_id, schedule_id).await {
        Ok(true) => {}
        Ok(false) => return refuse(StatusCode::FORBIDDEN, "this export link is no longer valid"),
        Err(e) => {
            tracing::warn!(error = %e, "export: checking the account failed");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again shortly");
        }
    }
    let Ok(permit) = ex.running.clone().try_acquire_owned() else {
        let mut r = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many exports running; retry shortly",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return r;
    };
    let body = csv_stream(ex.state.db.clone(), schedule_id, kind);
    // The permit lives as long as the body is being sent.
    let body = futures_util::StreamExt::map(body, move |chunk| {
        let _held = &permit;
        chunk
    });
    let disposition = format!(
        "attachment; filename=\"schedule-{schedule_id}-{}.csv\"",
        kind.file()
    );
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}
