//! GraphQL face of points: `PointEntry`, `chargePoints`, `pointHistory`, `adjustPoints`.

use async_graphql::{Context, Enum, ID, Object, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};

use super::{service, store};
use crate::{
    auth::{
        Role,
        context::{RoleGuard, actor, state, viewer},
    },
    error::AppError,
    ids, pagination,
};

#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum PointEntryKind {
    /// Points given without payment before payments were real (history only).
    Charge,
    /// A reservation paid with points.
    Payment,
    /// A paid reservation cancelled or refunded: its points back.
    Refund,
    /// An admin's grant or correction, with its reason.
    Adjustment,
    /// A top-up paid through the payment provider (or the sandbox).
    TopUp,
    /// A top-up given back to the card (`refundTopUp`); positive if the provider refused.
    TopUpRefund,
    /// A top-up the provider cancelled after it was credited: its points taken back.
    TopUpCancel,
    /// Points that paid a debt left by a cancelled top-up.
    DebtRepayment,
}

/// One ledger entry: what changed the balance, by how much, and the balance after it.
/// Amounts and balances stay within `POINTS_MAX_BALANCE` (at most 2,000,000,000), so they
/// fit a 32-bit `Int`.
#[derive(SimpleObject)]
pub struct PointEntry {
    pub id: ID,
    pub kind: PointEntryKind,
    /// Signed: payments are negative.
    pub amount: i64,
    pub balance_after: i64,
    pub reservation_id: Option<ID>,
    /// The top-up this entry credits, refunds or takes back.
    pub top_up_id: Option<ID>,
    /// The admin's reason, for adjustments; why, for the other kinds that have one.
    pub reason: Option<String>,
    /// What the entry was for, in words.
    pub description: String,
    pub created_at: DateTime<Utc>,
}

impl From<store::LedgerRow> for PointEntry {
    fn from(r: store::LedgerRow) -> Self {
        let kind = match r.kind.as_str() {
            "payment" => PointEntryKind::Payment,
            "refund" => PointEntryKind::Refund,
            "adjustment" => PointEntryKind::Adjustment,
            "top_up" => PointEntryKind::TopUp,
            "top_up_refund" => PointEntryKind::TopUpRefund,
            "top_up_cancel" => PointEntryKind::TopUpCancel,
            "debt_repayment" => PointEntryKind::DebtRepayment,
            _ => PointEntryKind::Charge,
        };
        let top_up = r.top_up_id.map_or_else(String::new, |t| format!(" {t}"));
        let reservation = r.reservation_id.map_or_else(String::new, |t| format!(" {t}"));
        let description = match kind {
            PointEntryKind::Charge => "Points charged (before payments)".to_owned(),
            PointEntryKind::Payment => format!("Payment for reservation{reservation}"),
            PointEntryKind::Refund => format!("Refund of reservation{reservation}"),
            PointEntryKind::Adjustment => {
                format!("Adjustment by an admin: {}", r.reason.as_deref().unwrap_or(""))
            }
            PointEntryKind::TopUp => format!("Top-up{top_up}"),
            PointEntryKind::TopUpRefund if r.amount < 0 => format!("Top-up{top_up} refunded to the card"),
            PointEntryKind::TopUpRefund => {
                format!("Refund of top-up{top_up} refused by the provider: points back")
            }
            PointEntryKind::TopUpCancel => format!("Top-up{top_up} cancelled by the payment provider"),
            PointEntryKind::DebtRepayment => {
                "Debt repaid (a cancelled top-up's points had been spent)".to_owned()
            }
        };
        Self {
            id: ids::to_id(r.id),
            kind,
            amount: r.amount,
            balance_after: r.balance_after,
            reservation_id: r.reservation_id.map(ids::to_id),
            top_up_id: r.top_up_id.map(ids::to_id),
            reason: r.reason,
            description,
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
    /// A sandbox top-up, answered as its ledger entry: only on a server whose payment
    /// provider is the sandbox (development, the demo), confirmed at once and counted
    /// against the sandbox's daily cap (LIMIT_EXCEEDED above it). Elsewhere FORBIDDEN: pay
    /// a top-up with `startTopUp` and `confirmTopUp`. Repeating a key answers the same entry.
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn charge_points(
        &self,
        ctx: &Context<'_>,
        amount: i64,
        idempotency_key: String,
    ) -> Result<PointEntry, AppError> {
        let user_id = viewer(ctx)?.user()?.id;
        let state = state(ctx)?;
        Ok(crate::payments::service::charge_sandbox(
            state.writes(),
            &state.payments,
            user_id,
            amount,
            &idempotency_key,
        )
        .await?
        .into())
    }

    /// Admin grant or correction of a balance, with a reason; audited (admin, reason,
    /// amount). At most `POINTS_MAX_TOP_UP` either way, and never past `POINTS_MAX_BALANCE`.
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
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        Ok(service::adjust(
            &mut conn,
            state.writes(),
            &state.payments.config,
            actor,
            user_id,
            amount,
            &reason,
        )
        .await?
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, amount: i64) -> store::LedgerRow {
        store::LedgerRow {
            id: 1,
            user_id: 2,
            kind: kind.to_owned(),
            amount,
            balance_after: 10,
            reservation_id: Some(3),
            idempotency_key: None,
            reason: Some("goodwill".to_owned()),
            actor_id: None,
            created_at: Utc::now(),
            top_up_id: Some(4),
        }
    }

    /// Every ledger kind reads as its own sentence in the wallet, and a refused top-up
    /// refund (points given back) reads apart from one that reached the card.
    #[test]
    fn every_ledger_kind_has_its_kind_and_words() {
        let cases = [
            (
                "charge",
                5,
                PointEntryKind::Charge,
                "Points charged (before payments)",
            ),
            (
                "payment",
                -5,
                PointEntryKind::Payment,
                "Payment for reservation 3",
            ),
            ("refund", 5, PointEntryKind::Refund, "Refund of reservation 3"),
            (
                "adjustment",
                5,
                PointEntryKind::Adjustment,
                "Adjustment by an admin: goodwill",
            ),
            ("top_up", 5, PointEntryKind::TopUp, "Top-up 4"),
            (
                "top_up_refund",
                -5,
                PointEntryKind::TopUpRefund,
                "Top-up 4 refunded to the card",
            ),
            (
                "top_up_refund",
                5,
                PointEntryKind::TopUpRefund,
                "Refund of top-up 4 refused by the provider: points back",
            ),
            (
                "top_up_cancel",
                -5,
                PointEntryKind::TopUpCancel,
                "Top-up 4 cancelled by the payment provider",
            ),
            (
                "debt_repayment",
                -5,
                PointEntryKind::DebtRepayment,
                "Debt repaid (a cancelled top-up's points had been spent)",
            ),
        ];
        for (kind, amount, want, words) in cases {
            let entry = PointEntry::from(row(kind, amount));
            assert_eq!(entry.kind, want, "{kind}");
            assert_eq!(entry.description, words, "{kind} {amount}");
            assert_eq!(entry.top_up_id, Some(ID::from("4")));
        }
    }
}
