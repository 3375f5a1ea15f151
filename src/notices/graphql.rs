//! GraphQL face of notices: `notices`, `unreadNoticeCount`, `markNoticesRead`. Thin: parse
//! ids, call the module, map rows.

use async_graphql::{Context, ID, Object, SimpleObject, connection::Connection};
use boxoffice_store::notices::NoticeRow;
use chrono::{DateTime, Utc};

use crate::{
    auth::{
        Role,
        context::{RoleGuard, actor, state},
    },
    error::AppError,
    ids, pagination,
};

/// Something boxoffice told the viewer, e.g. that a webhook of theirs was disabled.
#[derive(SimpleObject)]
pub struct Notice {
    pub id: ID,
    /// What happened, as a type name: `webhook.disabled`.
    pub kind: String,
    /// What it is about, e.g. `webhooks/12`.
    pub subject: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    /// When the viewer marked it read; null while unread.
    pub read_at: Option<DateTime<Utc>>,
}

impl From<NoticeRow> for Notice {
    fn from(r: NoticeRow) -> Self {
        Self {
            id: ids::to_id(r.id),
            kind: r.kind,
            subject: r.subject,
            message: r.message,
            created_at: r.created_at,
            read_at: r.read_at,
        }
    }
}

#[derive(Default)]
pub struct NoticesQuery;

#[Object]
impl NoticesQuery {
    /// The viewer's notices, newest first; `unread: true` for the unread ones only.
    #[graphql(
        guard = "RoleGuard(Role::User)",
        complexity = "pagination::cost(first, child_complexity)"
    )]
    async fn notices(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(default = false)] unread: bool,
    ) -> Result<Connection<String, Notice>, AppError> {
        let limit = pagination::page_size(first)?;
        let after = pagination::decode::<i64>(after.as_deref())?;
        let actor = actor(ctx).await?;
        let mut conn = state(ctx)?.db.get().await?;
        let rows = super::list(&mut conn, actor, unread, after, limit).await?;
        pagination::page(
            rows,
            limit,
            after.is_some(),
            |r| pagination::encode(r.id),
            |r| Ok(Notice::from(r)),
        )
    }

    /// How many of the viewer's notices are unread (for a badge).
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn unread_notice_count(&self, ctx: &Context<'_>) -> Result<i64, AppError> {
        let actor = actor(ctx).await?;
        let mut conn = state(ctx)?.db.get().await?;
        super::unread(&mut conn, actor).await
    }
}

#[derive(Default)]
pub struct NoticesMutation;

#[Object]
impl NoticesMutation {
    /// Marks the viewer's notices up to and including `upTo` read (the newest one shown
    /// marks all). Returns how many were unread.
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn mark_notices_read(&self, ctx: &Context<'_>, up_to: ID) -> Result<i32, AppError> {
        let up_to = ids::parse(&up_to, "upTo")?;
        let actor = actor(ctx).await?;
        let mut conn = state(ctx)?.db.get().await?;
        let n = super::mark_read(&mut conn, actor, up_to).await?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
}
