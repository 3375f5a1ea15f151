//! Admin GraphQL: `users`, `setUserRole`, the audit log and sales figures.

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};

use crate::{
    auth::{
        Role, User,
        context::{RoleGuard, actor, state},
    },
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
    /// The account that acted; null when the system acted or the account is gone.
    pub actor: Option<User>,
    /// e.g. set_user_role, adjust_points, cancel_concert, cancel_schedule.
    pub action: String,
    /// user, concert or schedule.
    pub target_type: String,
    pub target_id: Option<ID>,
    /// What the target is called now: "display name <email>" for an account, a concert's
    /// title, "concert title, start time" for a schedule. Null when it no longer exists.
    pub target_name: Option<String>,
    pub details: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// Narrows the audit log; every field optional, all given ones must hold.
#[derive(InputObject, Default)]
pub struct AuditLogFilter {
    /// Actions of this account.
    pub actor_id: Option<ID>,
    /// Actions of accounts whose email or display name contains this (case-insensitive).
    pub actor: Option<String>,
    /// Exactly this action, e.g. adjust_points.
    pub action: Option<String>,
    /// Exactly this kind of target: user, concert or schedule.
    pub target_type: Option<String>,
    /// This target (with `targetType`, one object).
    pub target_id: Option<ID>,
    /// Entries at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Entries before this instant.
    pub until: Option<DateTime<Utc>>,
}

impl AuditLogFilter {
    fn check(self) -> Result<super::store::AuditFilter, AppError> {
        let word = |v: Option<String>, field: &str| -> Result<Option<String>, AppError> {
            match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
                Some(s) if s.chars().count() > 100 => {
                    Err(AppError::bad_input(field, "must be at most 100 characters"))
                }
                other => Ok(other),
            }
        };
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            return Err(AppError::bad_input("filter.until", "must be after filter.since"));
        }
        Ok(super::store::AuditFilter {
            actor_id: self
                .actor_id
                .as_ref()
                .map(|id| ids::parse(id, "filter.actorId"))
                .transpose()?,
            actor: word(self.actor, "filter.actor")?,
            action: word(self.action, "filter.action")?,
            target_type: word(self.target_type, "filter.targetType")?,
            target_id: self
                .target_id
                .as_ref()
                .map(|id| ids::parse(id, "filter.targetId"))
                .transpose()?,
            since: self.since,
            until: self.until,
        })
    }
}

#[derive(SimpleObject)]
pub struct ScheduleSales {
    pub schedule_id: ID,
    pub capacity: i32,
    pub seats_held: i64,
    /// Seats paid for (complimentary seats are not sold: see `complimentary`).
    pub seats_sold: i64,
    /// Seats given away at price 0 (`issueComplimentary`) that stand.
    pub complimentary: i64,
    /// Points paid for reservations that stand.
    pub revenue: crate::points::Long,
    /// Points given back by cancellations.
    pub refunded: crate::points::Long,
}

#[derive(SimpleObject)]
pub struct ConcertSales {
    pub concert_id: ID,
    /// Seats paid for, over every performance (what `salesTimeline` counts).
    pub seats_sold: i64,
    /// Seats given away at price 0, over every performance.
    pub complimentary: i64,
    /// Points paid for the concert's reservations that stand (can pass a 32-bit `Int`).
    pub revenue: crate::points::Long,
    pub schedules: Vec<ScheduleSales>,
}

#[derive(Default)]
pub struct ReportsQuery;

#[Object]
impl ReportsQuery {
    /// Privileged actions, newest first, optionally narrowed by `filter`. Admins only.
    #[graphql(
        guard = "RoleGuard(Role::Admin)",
        complexity = "pagination::cost(first, child_complexity)"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<AuditLogFilter>,
    ) -> Result<Connection<String, AuditEntry>, AppError> {
        let limit = pagination::page_size(first)?;
        let after = pagination::decode::<i64>(after.as_deref())?;
        let filter = filter.unwrap_or_default().check()?;
        let mut conn = state(ctx)?.db.get().await?;
        let rows = super::store::audit_log(&mut conn, &filter, after, limit).await?;
        let names = super::store::audit_names(&mut conn, &rows).await?;
        let entry = |r: super::store::AuditRow| {
            let target_name = names.target(&r);
            let actor = r
                .actor_id
                .and_then(|id| names.users.get(&id))
                .cloned()
                .map(User::try_from)
                .transpose()?;
            Ok(AuditEntry {
                id: ids::to_id(r.id),
                actor_id: r.actor_id.map(ids::to_id),
                actor,
                action: r.action,
                target_type: r.target_type,
                target_id: r.target_id.map(ids::to_id),
                target_name,
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
            complimentary: rows.iter().map(|r| r.complimentary).sum(),
            revenue: crate::points::Long(rows.iter().map(|r| r.revenue).sum()),
            schedules: rows
                .into_iter()
                .map(|r| ScheduleSales {
                    schedule_id: ids::to_id(r.schedule_id),
                    capacity: r.capacity,
                    seats_held: r.seats_held,
                    seats_sold: r.seats_sold,
                    complimentary: r.complimentary,
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
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        let row = super::store::set_role(&mut conn, state.writes(), actor, user_id, role).await?;
        User::try_from(row)
    }

    /// Locks an account: it can no longer log in or refresh, its sessions end and its
    /// access tokens are refused at once on every instance, its sockets close. `reason` (1
    /// to 500 characters) goes to the audit log. Not your own account (CONFLICT). Locking
    /// a locked account changes nothing.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn lock_account(&self, ctx: &Context<'_>, user_id: ID, reason: String) -> Result<User, AppError> {
        let user_id = ids::parse(&user_id, "userId")?;
        let actor = actor(ctx).await?;
        User::try_from(crate::auth::lock::lock(state(ctx)?, actor, user_id, &reason).await?)
    }

    /// Unlocks an account (audited); it logs in anew: tokens issued before the unlock stay
    /// refused on every instance, its old sessions stay revoked. Unlocking an unlocked
    /// account changes nothing.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn unlock_account(&self, ctx: &Context<'_>, user_id: ID) -> Result<User, AppError> {
        let user_id = ids::parse(&user_id, "userId")?;
        let actor = actor(ctx).await?;
        User::try_from(crate::auth::lock::unlock(state(ctx)?, actor, user_id).await?)
    }
}
