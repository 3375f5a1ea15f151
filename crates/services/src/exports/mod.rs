//! CSV exports of a performance (C19): `exportSchedule` hands its host (or an admin) a
//! short-lived signed URL, and `GET /exports/{schedule}/{kind}.csv?u=&exp=&sig=` streams
//! the file from this server.
//!
//! - `signing`: the URL's HMAC (who, what, until when) under `EXPORT_URL_SECRET`.
//! - `csv`: RFC 4180 and spreadsheet-safe cells (no formula injection from names).
//! - `stream`: the body, one keyset page at a time as the client reads (50,000 rows never
//!   sit in memory).
//! - `graphql` and `download`, in the server (`src/`): `exportSchedule` and the route.
//!
//! A URL is refused with 403 when its signature does not match (any part changed) or its
//! account no longer manages the performance, 410 when it expired, 404 for a malformed
//! path; 503 with Retry-After when `EXPORT_CONCURRENCY` downloads already stream here.

pub mod csv;
pub mod signing;
pub mod stream;

use chrono::{DateTime, Utc};

pub use stream::csv_stream;

use crate::{
    auth::Actor,
    error::{AppError, AppResult},
    host_orders::{managed_schedule, store},
    state::Services,
};

/// What an export holds.
#[derive(async_graphql::Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum ExportKind {
    /// One line per paid reservation (standing or refunded): buyer, seats, points, times.
    Sales,
    /// One line per sold seat of a standing reservation: holder, seat, ticket, check-in.
    Attendees,
}

impl ExportKind {
    /// Its name in URLs and file names.
    pub fn file(self) -> &'static str {
        match self {
            Self::Sales => "sales",
            Self::Attendees => "attendees",
        }
    }

    pub fn from_file(file: &str) -> Option<Self> {
        match file {
            "sales.csv" => Some(Self::Sales),
            "attendees.csv" => Some(Self::Attendees),
            _ => None,
        }
    }

    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Self::Sales => &[
                "reservation_id",
                "status",
                "buyer_name",
                "buyer_email",
                "seat_count",
                "seats",
                "grades",
                "total_price",
                "refunded",
                "created_at",
                "paid_at",
                "cancelled_at",
                "complimentary",
            ],
            Self::Attendees => &[
                "ticket_id",
                "section",
                "row",
                "number",
                "grade",
                "price",
                "holder_name",
                "holder_email",
                "reservation_id",
                "ticket_status",
                "checked_in_at",
                "gate",
            ],
        }
    }
}

/// A signed download link and when it stops working.
pub struct Export {
    pub path: String,
    pub expires_at: DateTime<Utc>,
}

/// Signs an export link for the performance's host or an admin (another host: NOT_FOUND)
/// and audits the request (the files hold buyers' names and emails).
pub async fn create(state: &Services, actor: Actor, schedule_id: i64, kind: ExportKind) -> AppResult<Export> {
    let mut conn = state.db.get().await?;
    managed_schedule(&mut conn, actor, schedule_id).await?;
    let ttl = chrono::Duration::from_std(state.config.exports.url_ttl).map_err(AppError::internal)?;
    let expires_at = Utc::now() + ttl;
    let grant = signing::Grant {
        schedule_id,
        kind,
        expires: expires_at.timestamp(),
        user_id: actor.id,
    };
    let sig = signing::sign(&state.config.exports.url_secret, &grant);
    crate::admin::audit::record(
        &mut conn,
        actor.id,
        "export_schedule",
        "schedule",
        Some(schedule_id),
        serde_json::json!({ "kind": kind.file() }),
    )
    .await?;
    Ok(Export {
        path: format!(
            "/exports/{schedule_id}/{}.csv?u={}&exp={}&sig={sig}",
            kind.file(),
            actor.id,
            grant.expires
        ),
        expires_at,
    })
}

/// Whether the link's account still manages the performance: a link is as good as its
/// account.
pub async fn still_manages(state: &Services, user_id: i64, schedule_id: i64) -> AppResult<bool> {
    let mut conn = state.db.get().await?;
    let Some(role) = crate::auth::store::current_role(&mut conn, user_id).await? else {
        return Ok(false);
    };
    match managed_schedule(&mut conn, Actor { id: user_id, role }, schedule_id).await {
        Ok(_) => Ok(true),
        Err(AppError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_files() {
        for (k, columns) in [(ExportKind::Sales, 13), (ExportKind::Attendees, 12)] {
            assert_eq!(ExportKind::from_file(&format!("{}.csv", k.file())), Some(k));
            assert_eq!(k.columns().len(), columns);
        }
        assert_eq!(ExportKind::from_file("sales"), None);
        assert_eq!(ExportKind::from_file("../x.csv"), None);
    }
}
