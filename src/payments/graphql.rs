//! GraphQL face of payments: `TopUp`, `Wallet`, `startTopUp`, `confirmTopUp`,
//! `refundTopUp`, `wallet`, `myTopUps`. Thin: validate, authorize, call `service`.

use async_graphql::{Context, Enum, ID, Object, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};

use super::{TopUpStatus, provider::ProviderKind, service, store};
use crate::{
    auth::{
        Role,
        context::{RoleGuard, actor, state, viewer},
    },
    error::AppError,
    ids, pagination,
};

/// Who takes the money.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum PaymentProviderName {
    /// Development and demo only: no money moves.
    Sandbox,
    /// Toss Payments.
    Toss,
}

impl PaymentProviderName {
    fn of(s: &str) -> Self {
        if s == "toss" { Self::Toss } else { Self::Sandbox }
    }
}

/// Money in: a payment through the provider that credits `amount` points once confirmed.
#[derive(SimpleObject)]
pub struct TopUp {
    pub id: ID,
    /// Points, paid as the same amount in the provider's currency (KRW for Toss).
    pub amount: i64,
    pub status: TopUpStatus,
    /// Our order id: the provider's payment window is opened with it.
    pub order_id: String,
    /// What the payment window shows.
    pub order_name: String,
    pub provider: PaymentProviderName,
    /// True when no money moved: the sandbox provider.
    pub sandbox: bool,
    /// Why it failed or what the provider last said.
    pub failure: Option<String>,
    /// Points the account owed when the provider cancelled this top-up after its points
    /// were spent.
    pub debt_created: i64,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
}

impl From<store::TopUpRow> for TopUp {
    fn from(r: store::TopUpRow) -> Self {
        let provider = PaymentProviderName::of(&r.provider);
        Self {
            id: ids::to_id(r.id),
            amount: r.amount,
            status: r.status,
            order_name: format!("boxoffice points {}", r.amount),
            order_id: r.order_id,
            provider,
            sandbox: provider == PaymentProviderName::Sandbox,
            failure: r.failure,
            debt_created: r.debt_created,
            created_at: r.created_at,
            confirmed_at: r.confirmed_at,
        }
    }
}

/// The signed-in fan's money: the balance, any debt, and how to top up here.
#[derive(SimpleObject)]
pub struct Wallet {
    /// The balance (equal to the sum of `pointHistory`).
    pub points: i64,
    /// Points owed after a top-up was cancelled by the provider once spent; while above
    /// zero, new holds are refused and credits pay it first.
    pub debt: i64,
    /// Points in paid tickets (they come back on a refund).
    pub in_tickets: i64,
    /// The provider top-ups go through here; null when this server takes no payments.
    pub provider: Option<PaymentProviderName>,
    /// True on the sandbox provider: top-ups are free and capped, for development.
    pub sandbox: bool,
    /// The sandbox's cap per account per 24 hours, and what is left of it now.
    pub sandbox_daily_limit: Option<i64>,
    pub sandbox_remaining: Option<i64>,
    /// Largest single top-up.
    pub max_top_up: i64,
    /// Most an account may hold (balance, paid tickets and pending top-ups together).
    pub max_balance: i64,
    /// The key the web app opens the provider's payment window with (Toss's client key).
    pub client_key: Option<String>,
    /// The script of the provider's payment window, for a web app to load.
    pub checkout_script: Option<String>,
}

#[derive(Default)]
pub struct PaymentsQuery;

#[Object]
impl PaymentsQuery {
    /// The signed-in user's wallet.
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn wallet(&self, ctx: &Context<'_>) -> Result<Wallet, AppError> {
        let user_id = viewer(ctx)?.user()?.id;
        let state = state(ctx)?;
        let payments = &state.payments;
        let mut conn = state.db.get().await?;
        let w = crate::points::store::wallet(&mut conn, user_id)
            .await?
            .ok_or(AppError::Unauthenticated("this account no longer exists"))?;
        let sandbox = payments.is_sandbox();
        let (limit, remaining) = if sandbox {
            let given = store::sandbox_sum_last_day(&mut conn, user_id).await?;
            let cap = payments.config.sandbox_daily_limit;
            (Some(cap), Some((cap - given).max(0)))
        } else {
            (None, None)
        };
        Ok(Wallet {
            points: w.points,
            debt: w.debt,
            in_tickets: w.in_tickets,
            provider: payments.kind().map(|k| match k {
                ProviderKind::Sandbox => PaymentProviderName::Sandbox,
                ProviderKind::Toss => PaymentProviderName::Toss,
            }),
            sandbox,
            sandbox_daily_limit: limit,
            sandbox_remaining: remaining,
            max_top_up: payments.config.max_top_up,
            max_balance: payments.config.max_balance,
            client_key: payments
                .provider()
                .ok()
                .and_then(|p| p.client_key())
                .map(str::to_owned),
            checkout_script: (payments.kind() == Some(ProviderKind::Toss))
                .then(|| super::toss::CHECKOUT_SCRIPT.to_owned()),
        })
    }

    /// The signed-in user's top-ups, newest first.
    #[graphql(
        guard = "RoleGuard(Role::User)",
        complexity = "pagination::cost(first, child_complexity)"
    )]
    async fn my_top_ups(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, TopUp>, AppError> {
        let limit = pagination::page_size(first)?;
        let after = pagination::decode::<i64>(after.as_deref())?;
        let user_id = viewer(ctx)?.user()?.id;
        let mut conn = state(ctx)?.db.get().await?;
        let rows = store::of_user(&mut conn, user_id, after, limit).await?;
        pagination::page(
            rows,
            limit,
            after.is_some(),
            |r| pagination::encode(r.id),
            |r| Ok(TopUp::from(r)),
        )
    }
}

#[derive(Default)]
pub struct PaymentsMutation;

#[Object]
impl PaymentsMutation {
    /// Starts a top-up of `amount` points. With a real provider it is PENDING: open the
    /// provider's payment window with its `orderId`, `orderName` and `amount`, then call
    /// `confirmTopUp` with what the window returns. On the sandbox it is CONFIRMED at once.
    /// A repeated key answers the same top-up (CONFLICT with another amount). Errors:
    /// BAD_USER_INPUT (amount outside 1..POINTS_MAX_TOP_UP, or the account would hold more
    /// than POINTS_MAX_BALANCE), LIMIT_EXCEEDED (sandbox daily cap), FORBIDDEN (no provider).
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn start_top_up(
        &self,
        ctx: &Context<'_>,
        amount: i64,
        idempotency_key: String,
    ) -> Result<TopUp, AppError> {
        let user_id = viewer(ctx)?.user()?.id;
        let state = state(ctx)?;
        Ok(
            service::start(state.writes(), &state.payments, user_id, amount, &idempotency_key)
                .await?
                .into(),
        )
    }

    /// Confirms a paid top-up with what the provider's payment window returned
    /// (`paymentKey`, `orderId`, `amount`; `topUpId` optional, checked against the order).
    /// Credits the points once, only if the provider confirms that exact amount for that
    /// order. An amount other than the top-up's is BAD_USER_INPUT (nothing confirmed); a
    /// provider refusal is CONFLICT (the top-up FAILED); no answer in time leaves it
    /// PENDING, settled later (call again, or the provider's webhook will).
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn confirm_top_up(
        &self,
        ctx: &Context<'_>,
        payment_key: String,
        order_id: String,
        amount: i64,
        top_up_id: Option<ID>,
    ) -> Result<TopUp, AppError> {
        let user_id = viewer(ctx)?.user()?.id;
        let state = state(ctx)?;
        if let Some(id) = &top_up_id {
            let id = ids::parse(id, "topUpId")?;
            let mut conn = state.db.get().await?;
            let matches = store::by_id(&mut conn, id)
                .await?
                .is_some_and(|t| t.order_id == order_id && t.user_id == user_id);
            if !matches {
                return Err(AppError::NotFound("top-up"));
            }
        }
        Ok(service::confirm(
            state.writes(),
            &state.payments,
            user_id,
            &order_id,
            &payment_key,
            amount,
        )
        .await?
        .into())
    }

    /// Gives a confirmed top-up back to the card, at most once, while all its points are
    /// still in the balance (INSUFFICIENT_POINTS once any were spent). Answers REFUNDED, or
    /// REFUNDING while the provider has not answered (retried by the server).
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn refund_top_up(&self, ctx: &Context<'_>, top_up_id: ID) -> Result<TopUp, AppError> {
        let id = ids::parse(&top_up_id, "topUpId")?;
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        Ok(service::refund(state.writes(), &state.payments, actor, id)
            .await?
            .into())
    }
}
