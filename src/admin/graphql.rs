//! Admin GraphQL: `users`, `setUserRole`, the audit log and sales figures.

use async_graphql::{Context, ID, Json, Object, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};

use crate::{
    auth::{Role, RoleGuard, User, actor, state},
    error::AppError,
    ids, pagination,
};

#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// Accounts whose email or display name contains `search`, oldest first. Admins only.
    #[graphql(
        guard = "RoleGuard(Role::Admin)",
        complexity = "pagination::cost(first, child_complexity)"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, User>, AppError> {
        let limit = pagination::page_size(first)?;
        let after = pagination::decode::<i64>(after.as_deref())?;
        let mut conn = state(ctx)?.db.get().await?;
        let rows = super::store::search_users(&mut conn, search.as_deref(), after, limit).await?;
        pagination::page(
            rows,
            limit,
            after.is_some(),
            |r| pagination::encode(r.id),
            User::try_from,
        )
    }
}

/// One privileged action.
#[derive(SimpleObject)]
pub struct AuditEntry {
    pub id: ID,
    pub actor_id: Option<ID>,
    /// e.g. set_user_role, adjust_points, cancel_concert.
    pub action: String,
    pub target_type: String,
    pub target_id: Option<ID>,
    pub details: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct ScheduleSales {
    pub schedule_id: ID,
    pub capacity: i32,
    pub seats_held: i64,
    pub seats_sold: i64,
    /// Points paid for reservations that stand.
    pub revenue: crate::points::Long,
    /// Points given back by cancellations.
    pub refunded: crate::points::Long,
}

#[derive(SimpleObject)]
pub struct ConcertSales {
    pub concert_id: ID,
    pub seats_sold: i64,
    /// Points paid for the concert's reservations that stand (can pass a 32-bit `Int`).
    pub revenue: crate::points::Long,
    pub schedules: Vec<ScheduleSales>,
}

#[derive(Default)]
pub struct ReportsQuery;

#[Object]
impl ReportsQuery {
    /// Privileged actions, newest first. Admins only.
    #[graphql(
        guard = "RoleGuard(Role::Admin)",
        complexity = "pagination::cost(first, child_complexity)"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, AuditEntry>, AppError> {
        let limit = pagination::page_size(first)?;
        let after = pagination::decode::<i64>(after.as_deref())?;
        let mut conn = state(ctx)?.db.get().await?;
        let rows = super::store::audit_log(&mut conn, after, limit).await?;
        let entry = |r: super::store::AuditRow| {
            Ok(AuditEntry {
                id: ids::to_id(r.id),
                actor_id: r.actor_id.map(ids::to_id),
                action: r.action,
                target_type: r.target_type,
                target_id: r.target_id.map(ids::to_id),
                details: Json(r.details),
                created_at: r.created_at,
            })
        };
        pagination::page(rows, limit, after.is_some(), |r| pagination::encode(r.id), entry)
    }

    /// Sales of a concert per schedule: for its host and admins.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn concert_sales(&self, ctx: &Context<'_>, concert_id: ID) -> Result<ConcertSales, AppError> {
        let concert_id = ids::parse(&concert_id, "concertId")?;
        let actor = actor(ctx).await?;
        let mut conn = state(ctx)?.db.get().await?;
        let concert = crate::concerts::store::concert(&mut conn, concert_id)
            .await?
            .ok_or(AppError::NotFound("concert"))?;
        actor.ensure_manages_concert(concert.host_id, &concert.status)?;
        let rows = super::store::sales(&mut conn, concert_id).await?;
        Ok(ConcertSales {
            concert_id: ids::to_id(concert_id),
            seats_sold: rows.iter().map(|r| r.seats_sold).sum(),
            revenue: crate::points::Long(rows.iter().map(|r| r.revenue).sum()),
            schedules: rows
                .into_iter()
                .map(|r| ScheduleSales {
                    schedule_id: ids::to_id(r.schedule_id),
                    capacity: r.capacity,
                    seats_held: r.seats_held,
                    seats_sold: r.seats_sold,
                    revenue: crate::points::Long(r.revenue),
                    refunded: crate::points::Long(r.refunded),
                })
                .collect(),
        })
    }
}

#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Changes an account's role; effective on that account's next request. Audited.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn set_user_role(&self, ctx: &Context<'_>, user_id: ID, role: Role) -> Result<User, AppError> {
        let user_id = ids::parse(&user_id, "userId")?;
        let actor = actor(ctx).await?;
        let mut conn = state(ctx)?.db.get().await?;
        let row = super::store::set_role(&mut conn, actor, user_id, role).await?;
        User::try_from(row)
    }
}
