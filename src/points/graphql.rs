//! GraphQL face of points: `PointEntry`, `chargePoints`, `pointHistory`, `adjustPoints`.

use async_graphql::{Context, Enum, ID, Object, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};

use super::{service, store};
use crate::{
    auth::{Role, RoleGuard, actor, state, viewer},
    error::AppError,
    ids, pagination,
};

#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum PointEntryKind {
    Charge,
    Payment,
    Refund,
    Adjustment,
}

/// One ledger entry: what changed the balance, by how much, and the balance after it.
#[derive(SimpleObject)]
pub struct PointEntry {
    pub id: ID,
    pub kind: PointEntryKind,
    /// Signed: payments are negative.
    pub amount: i64,
    pub balance_after: i64,
    pub reservation_id: Option<ID>,
    /// The admin's reason, for adjustments.
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<store::LedgerRow> for PointEntry {
    fn from(r: store::LedgerRow) -> Self {
        Self {
            id: ids::to_id(r.id),
            kind: match r.kind.as_str() {
                "payment" => PointEntryKind::Payment,
                "refund" => PointEntryKind::Refund,
                "adjustment" => PointEntryKind::Adjustment,
                _ => PointEntryKind::Charge,
            },
            amount: r.amount,
            balance_after: r.balance_after,
            reservation_id: r.reservation_id.map(ids::to_id),
            reason: r.reason,
            created_at: r.created_at,
        }
    }
}

#[derive(Default)]
pub struct PointsQuery;

#[Object]
impl PointsQuery {
    /// The signed-in user's ledger, newest first.
    #[graphql(
        guard = "RoleGuard(Role::User)",
        complexity = "pagination::cost(first, child_complexity)"
    )]
    async fn point_history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, PointEntry>, AppError> {
        let limit = pagination::page_size(first)?;
        let after = pagination::decode::<i64>(after.as_deref())?;
        let user_id = viewer(ctx)?.user()?.id;
        let mut conn = state(ctx)?.db.get().await?;
        let rows = store::history(&mut conn, user_id, after, limit).await?;
        pagination::page(
            rows,
            limit,
            after.is_some(),
            |r| pagination::encode(r.id),
            |r| Ok(PointEntry::from(r)),
        )
    }
}

#[derive(Default)]
pub struct PointsMutation;

#[Object]
impl PointsMutation {
    /// Adds points to the signed-in user's balance. Send a fresh `idempotencyKey` per
    /// intended charge: repeating a key charges once and answers the same entry.
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn charge_points(
        &self,
        ctx: &Context<'_>,
        amount: i64,
        idempotency_key: String,
    ) -> Result<PointEntry, AppError> {
        let user_id = viewer(ctx)?.user()?.id;
        let mut conn = state(ctx)?.db.get().await?;
        Ok(service::charge(&mut conn, user_id, amount, &idempotency_key)
            .await?
            .into())
    }

    /// Admin correction of a balance, with a reason; audited.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn adjust_points(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        amount: i64,
        reason: String,
    ) -> Result<PointEntry, AppError> {
        let user_id = ids::parse(&user_id, "userId")?;
        let actor = actor(ctx).await?;
        let mut conn = state(ctx)?.db.get().await?;
        Ok(service::adjust(&mut conn, actor, user_id, amount, &reason)
            .await?
            .into())
    }
}
