//! Charging points (idempotent per key) and admin adjustments (audited).

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};

use super::store::{self, Entry, LedgerRow};
use crate::{
    admin::audit,
    auth::{Actor, Role},
    error::{AppError, AppResult, ErrorCode},
};

/// Largest single charge or adjustment.
pub const MAX_AMOUNT: i64 = 10_000_000;

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

fn is_unique_violation(e: &AppError) -> bool {
    matches!(e, AppError::Internal(cause)
        if matches!(cause.downcast_ref::<DieselError>(), Some(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))))
}

/// Adds points to the user's balance. The same key charges once, whatever the number of
/// requests and however they interleave: the ledger's (user, kind, key) unique index decides
/// a race, and the loser answers with the winner's entry.
pub async fn charge(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    amount: i64,
    key: &str,
) -> AppResult<LedgerRow> {
    if !(1..=MAX_AMOUNT).contains(&amount) {
        return Err(AppError::bad_input(
            "amount",
            format!("must be between 1 and {MAX_AMOUNT}"),
        ));
    }
    let key = validate_key(key, "idempotencyKey")?;
    for _ in 0..3 {
        let attempt = conn
            .transaction(async |conn| -> AppResult<LedgerRow> {
                if let Some(done) = store::entry_with_key(conn, user_id, "charge", &key).await? {
                    return replay(done, amount);
                }
                let entry = Entry {
                    user_id,
                    kind: "charge",
                    amount,
                    reservation_id: None,
                    idempotency_key: Some(&key),
                    reason: None,
                    actor_id: None,
                };
                store::apply(conn, &entry)
                    .await?
                    .ok_or(AppError::NotFound("user"))
            })
            .await;
        match attempt {
            Err(e) if is_unique_violation(&e) => continue,
            other => return other,
        }
    }
    Err(AppError::Conflict(
        "the charge could not be settled; retry".into(),
    ))
}

fn replay(done: LedgerRow, amount: i64) -> AppResult<LedgerRow> {
    if done.amount == amount {
        Ok(done)
    } else {
        Err(AppError::Conflict(
            "this idempotency key was used for a different amount".into(),
        ))
    }
}

/// Admin adjustment with a reason, written to the ledger and the audit log together.
pub async fn adjust(
    conn: &mut AsyncPgConnection,
    actor: Actor,
    user_id: i64,
    amount: i64,
    reason: &str,
) -> AppResult<LedgerRow> {
    actor.ensure_role(Role::Admin)?;
    if amount == 0 || amount.abs() > MAX_AMOUNT {
        return Err(AppError::bad_input(
            "amount",
            format!("must be non-zero and at most {MAX_AMOUNT} either way"),
        ));
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::bad_input("reason", "must be 1 to 500 characters"));
    }
    conn.transaction(async |conn| {
        if crate::auth::store::user_by_id(conn, user_id).await?.is_none() {
            return Err(AppError::NotFound("user"));
        }
        let entry = Entry {
            user_id,
            kind: "adjustment",
            amount,
            reservation_id: None,
            idempotency_key: None,
            reason: Some(reason),
            actor_id: Some(actor.id),
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
