//! GraphQL face of exports: `exportSchedule`.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::ExportKind;
use crate::{
    auth::{
        Role,
        context::{RoleGuard, actor, state},
    },
    error::AppError,
    ids,
};

/// A signed download link of a CSV export.
#[derive(SimpleObject)]
pub struct Export {
    /// This server's path of the file, signed (`/exports/...`); a plain GET downloads it,
    /// no token needed, until `expiresAt`.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct ExportsMutation;

#[Object]
impl ExportsMutation {
    /// A short-lived signed link to a performance's sales or attendees as CSV (UTF-8,
    /// RFC 4180, spreadsheet-safe), for its concert's host or an admin (another host:
    /// NOT_FOUND). Audited. The link lives `EXPORT_URL_TTL_SECONDS` (5 minutes by default).
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn export_schedule(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        kind: ExportKind,
    ) -> Result<Export, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let actor = actor(ctx).await?;
        let e = super::create(state(ctx)?, actor, schedule_id, kind).await?;
        Ok(Export {
            url: e.path,
            expires_at: e.expires_at,
        })
    }
}
