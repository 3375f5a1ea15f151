//! Locking and unlocking accounts (`lockAccount`, `unlockAccount`): a locked account cannot
//! log in or refresh, and every access token of it is refused on every instance at once,
//! and for good: a token issued before the unlock stays refused after it.
//!
//! What each instance screens, and how, is `auth::locked`; this module changes the database
//! (the truth), revokes sessions, audits, and tells every instance: the changing instance
//! at once, the others through the hub topic [`LOCKS_TOPIC`] (within milliseconds), and
//! every [`RELOAD`] in any case, so a lost pub/sub message (a Redis reconnect) delays a lock
//! or the end of old tokens on another instance by seconds, never for good. Locking also
//! revokes the account's refresh tokens (they stay revoked after the unlock) and closes its
//! WebSockets (`REVOKED_TOPIC`).

use std::time::Duration;

use super::{Actor, Role, store::UserRow};
use crate::{
    error::{AppError, AppResult},
    state::Services,
};

/// The hub topic announcing that some account was locked or unlocked (payload: its id).
pub const LOCKS_TOPIC: &str = "accounts:locks";
/// The longest a lost announcement can delay a lock on another instance.
pub const RELOAD: Duration = Duration::from_secs(5);

/// Keeps this instance's set current until `stop`: on every announcement, and every
/// [`RELOAD`].
pub fn spawn_sync(state: Services, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut changes = state.live.hub.subscribe(LOCKS_TOPIC);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELOAD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                event = changes.recv() => if event.is_none() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = state.locked.reload(&state.db).await {
                tracing::warn!(error = %e, "could not reread the locked accounts");
            }
        }
    });
}

fn reason(raw: &str) -> AppResult<String> {
    let r = raw.trim();
    match r.chars().count() {
        0 => Err(AppError::bad_input("reason", "must not be empty")),
        n if n > 500 => Err(AppError::bad_input("reason", "must be at most 500 characters")),
        _ => Ok(r.to_owned()),
    }
}

/// Locks an account (admins; not their own): sessions revoked, sockets closed, tokens
/// refused everywhere, audited. Locking a locked account changes and audits nothing.
pub async fn lock(state: &Services, actor: Actor, user_id: i64, raw_reason: &str) -> AppResult<UserRow> {
    actor.ensure_role(Role::Admin)?;
    let reason = reason(raw_reason)?;
    if actor.id == user_id {
        return Err(AppError::Conflict("admins cannot lock their own account".into()));
    }
    set_locked(state, actor, user_id, Some(reason)).await
}

/// Unlocks an account (admins), audited; the account logs in anew (its old sessions stay
/// revoked, and access tokens issued before now stay refused). Unlocking an account that
/// is not locked changes and audits nothing.
pub async fn unlock(state: &Services, actor: Actor, user_id: i64) -> AppResult<UserRow> {
    actor.ensure_role(Role::Admin)?;
    set_locked(state, actor, user_id, None).await
}

/// Both: the change, and only if this call made it (of two at once, one does) the
/// revoked sessions of a lock and the audit entry, in one transaction; then the news.
async fn set_locked(
    state: &Services,
    actor: Actor,
    user_id: i64,
    reason: Option<String>,
) -> AppResult<UserRow> {
    let mut conn = state.db.get().await?;
    let row = crate::in_doubt::write(&mut conn, state.writes(), async |conn| -> AppResult<UserRow> {
        let (row, changed) = super::store::set_locked(conn, user_id, reason.as_deref())
            .await?
            .ok_or(AppError::NotFound("user"))?;
        if !changed {
            return Ok(row);
        }
        let (action, details) = match &reason {
            Some(reason) => {
                let sessions = super::store::revoke_user_sessions(conn, user_id).await?;
                (
                    "lock_account",
                    serde_json::json!({ "reason": reason, "sessions_revoked": sessions }),
                )
            }
            None => ("unlock_account", serde_json::json!({})),
        };
        crate::admin::audit::record(conn, actor.id, action, "user", Some(user_id), details).await?;
        Ok(row)
    })
    .await?;
    announce(state, &row);
    Ok(row)
}

/// After the commit: this instance at once, the others through the hub; a lock also
/// closes the account's sockets everywhere.
fn announce(state: &Services, row: &UserRow) {
    state.locked.set(row);
    state.live.hub.publish(LOCKS_TOPIC, row.id.to_string());
    if row.locked_at.is_some() {
        state.live.hub.publish(super::REVOKED_TOPIC, row.id.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_checked() {
        assert_eq!(reason(" fraud ").unwrap(), "fraud");
        assert!(reason("").is_err());
        assert!(reason(&"x".repeat(501)).is_err());
    }
}
