//! Admin adjustments (audited, bounded), the balance bound every credit keeps, and the
//! debt rule for holds. Top-ups are `crate::payments`.

use diesel_async::AsyncPgConnection;

use super::store::{self, Entry, LedgerRow};
use crate::{
    admin::audit,
    auth::{Actor, Role},
    config::PaymentsConfig,
    error::{AppError, AppResult, ErrorCode},
    locks,
};

pub fn validate_key(key: &str, field: &str) -> AppResult<String> {
    let key = key.trim();
    if key.is_empty() || key.len() > 100 || key.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            field,
            "must be 1 to 100 printable characters",
        ));
    }
    Ok(key.to_owned())
}

/// Admin adjustment with a reason, written to the ledger and the audit log together.
/// Bounded like a top-up (`POINTS_MAX_TOP_UP` either way), and a grant may not take the
/// account past `POINTS_MAX_BALANCE` (counting its paid tickets and pending top-ups).
pub async fn adjust(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    bounds: &PaymentsConfig,
    actor: Actor,
    user_id: i64,
    amount: i64,
    reason: &str,
) -> AppResult<LedgerRow> {
    actor.ensure_role(Role::Admin)?;
    let max = bounds.max_top_up;
    if amount == 0 || amount.unsigned_abs() > max.unsigned_abs() {
        return Err(AppError::bad_input(
            "amount",
            format!("must be non-zero and at most {max} either way"),
        ));
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::bad_input("reason", "must be 1 to 500 characters"));
    }
    crate::in_doubt::write(conn, writes, async |conn| {
        if crate::auth::store::user_by_id(conn, user_id).await?.is_none() {
            return Err(AppError::NotFound("user"));
        }
        locks::users(conn, &[user_id]).await?;
        if amount > 0 {
            ensure_room(conn, bounds, user_id, amount).await?;
        }
        let entry = Entry {
            user_id,
            kind: "adjustment",
            amount,
            reservation_id: None,
            idempotency_key: None,
            reason: Some(reason),
            actor_id: Some(actor.id),
            top_up_id: None,
        };
        let row = store::apply(conn, &entry).await?.ok_or_else(|| {
            AppError::rule(
                ErrorCode::InsufficientPoints,
                "the adjustment would make the balance negative",
            )
        })?;
        audit::record(
            conn,
            actor.id,
            "adjust_points",
            "user",
            Some(user_id),
            serde_json::json!({ "amount": amount, "reason": reason, "balance_after": row.balance_after }),
        )
        .await?;
        Ok(row)
    })
    .await
}

/// The balance bound, for a credit of `amount` that is not W-neutral (a top-up, a grant).
///
/// Paying moves points from the balance into a ticket and a refund moves them back, so
/// balance + paid tickets only grows through credits: bounding it at each credit bounds
/// every balance, ledger amount and `balanceAfter` by `POINTS_MAX_BALANCE` (≤ 2·10⁹), which
/// fits a GraphQL `Int`. Pending top-ups count too, so confirming one never breaks it.
/// The caller holds the user row, so payments and other credits wait for it.
pub async fn ensure_room(
    conn: &mut AsyncPgConnection,
    bounds: &PaymentsConfig,
    user_id: i64,
    amount: i64,
) -> AppResult<()> {
    let wallet = store::wallet(conn, user_id)
        .await?
        .ok_or(AppError::Unauthenticated("this account no longer exists"))?;
    let pending = crate::payments::store::pending_sum(conn, user_id).await?;
    let max = bounds.max_balance;
    let used = wallet.points + wallet.in_tickets + pending;
    if used + amount > max {
        return Err(AppError::bad_input(
            "amount",
            format!(
                "an account holds at most {max} points, counting paid tickets and top-ups under way; {} more fit",
                (max - used).max(0)
            ),
        ));
    }
    Ok(())
}
