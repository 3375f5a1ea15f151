//! Locked accounts (`lockAccount`, `unlockAccount`): a locked account cannot log in or
//! refresh, and every access token of it is refused on every instance at once.
//!
//! Access tokens are checked by signature alone (no query per request), so each instance
//! keeps the set of locked account ids in memory and screens every viewer through it
//! ([`LockedAccounts::screen`]). The database is the truth: the set is read at start, again
//! whenever an instance announces a change on the hub topic [`LOCKS_TOPIC`] (within
//! milliseconds), and every [`RELOAD`] in any case, so a lost pub/sub message (a Redis
//! reconnect) delays a lock on another instance by seconds, never for good. Locking also
//! revokes the account's refresh tokens and closes its WebSockets (`REVOKED_TOPIC`).

use std::{collections::HashSet, sync::RwLock, time::Duration};

use diesel_async::AsyncConnection as _;

use super::{Actor, Role, Viewer, store::UserRow};
use crate::{
    db::Pool,
    error::{AppError, AppResult},
    state::AppState,
};

/// The hub topic announcing that some account was locked or unlocked (payload: its id).
pub const LOCKS_TOPIC: &str = "accounts:locks";
/// The longest a lost announcement can delay a lock on another instance.
pub const RELOAD: Duration = Duration::from_secs(5);

/// Ids of the locked accounts, as this instance last read them.
#[derive(Default)]
pub struct LockedAccounts(RwLock<HashSet<i64>>);

impl LockedAccounts {
    /// The set as the database has it now; empty if it cannot be read yet (a server
    /// starting before its database), in which case [`spawn_sync`] reads it at once.
    pub async fn load(pool: &Pool) -> Self {
        let me = Self::default();
        if let Err(e) = me.reload(pool).await {
            tracing::warn!(error = %e, "could not read the locked accounts at start; retrying");
        }
        me
    }

    async fn reload(&self, pool: &Pool) -> AppResult<()> {
        let mut conn = pool.get().await?;
        let ids: HashSet<i64> = super::store::locked_user_ids(&mut conn)
            .await?
            .into_iter()
            .collect();
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = ids;
        Ok(())
    }

    pub fn is_locked(&self, user_id: i64) -> bool {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&user_id)
    }

    fn set(&self, user_id: i64, locked: bool) {
        let mut set = self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if locked {
            set.insert(user_id);
        } else {
            set.remove(&user_id);
        }
    }

    /// The viewer a request goes on with: a locked account's token counts as invalid.
    pub fn screen(&self, viewer: Viewer) -> Viewer {
        match &viewer {
            Viewer::User(u) if self.is_locked(u.id) => Viewer::InvalidToken,
            _ => viewer,
        }
    }
}

/// Keeps this instance's set current until `stop`: on every announcement, and every
/// [`RELOAD`].
pub fn spawn_sync(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
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
pub async fn lock(state: &AppState, actor: Actor, user_id: i64, raw_reason: &str) -> AppResult<UserRow> {
    actor.ensure_role(Role::Admin)?;
    let reason = reason(raw_reason)?;
    if actor.id == user_id {
        return Err(AppError::Conflict("admins cannot lock their own account".into()));
    }
    let mut conn = state.db.get().await?;
    let row = conn
        .transaction(async |conn| -> AppResult<UserRow> {
            let before = super::store::user_by_id(conn, user_id)
                .await?
                .ok_or(AppError::NotFound("user"))?;
            if before.locked_at.is_some() {
                return Ok(before);
            }
            let row = super::store::set_locked(conn, user_id, Some(&reason))
                .await?
                .ok_or(AppError::NotFound("user"))?;
            let sessions = super::store::revoke_user_sessions(conn, user_id).await?;
            crate::admin::audit::record(
                conn,
                actor.id,
                "lock_account",
                "user",
                Some(user_id),
                serde_json::json!({ "reason": reason, "sessions_revoked": sessions }),
            )
            .await?;
            Ok(row)
        })
        .await?;
    announce(state, user_id, true);
    Ok(row)
}

/// Unlocks an account (admins), audited; the account logs in anew (its old sessions stay
/// revoked). Unlocking an account that is not locked changes and audits nothing.
pub async fn unlock(state: &AppState, actor: Actor, user_id: i64) -> AppResult<UserRow> {
    actor.ensure_role(Role::Admin)?;
    let mut conn = state.db.get().await?;
    let row = conn
        .transaction(async |conn| -> AppResult<UserRow> {
            let before = super::store::user_by_id(conn, user_id)
                .await?
                .ok_or(AppError::NotFound("user"))?;
            if before.locked_at.is_none() {
                return Ok(before);
            }
            let row = super::store::set_locked(conn, user_id, None)
                .await?
                .ok_or(AppError::NotFound("user"))?;
            crate::admin::audit::record(
                conn,
                actor.id,
                "unlock_account",
                "user",
                Some(user_id),
                serde_json::json!({}),
            )
            .await?;
            Ok(row)
        })
        .await?;
    announce(state, user_id, false);
    Ok(row)
}

/// After the commit: this instance at once, the others through the hub; a lock also
/// closes the account's sockets everywhere.
fn announce(state: &AppState, user_id: i64, locked: bool) {
    state.locked.set(user_id, locked);
    state.live.hub.publish(LOCKS_TOPIC, user_id.to_string());
    if locked {
        state.live.hub.publish(super::REVOKED_TOPIC, user_id.to_string());
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

    #[test]
    fn a_locked_viewer_is_screened_out() {
        let locks = LockedAccounts::default();
        let keys = super::super::tokens::JwtKeys::new(&"k".repeat(32).into(), Duration::from_secs(60));
        let (token, _) = keys.issue(5, Role::User).unwrap();
        let header = format!("Bearer {token}");
        assert!(matches!(
            locks.screen(Viewer::from_bearer(&keys, Some(&header))),
            Viewer::User(_)
        ));
        locks.set(5, true);
        assert!(locks.is_locked(5));
        assert!(matches!(
            locks.screen(Viewer::from_bearer(&keys, Some(&header))),
            Viewer::InvalidToken
        ));
        assert!(matches!(locks.screen(Viewer::Anonymous), Viewer::Anonymous));
        locks.set(5, false);
        assert!(matches!(
            locks.screen(Viewer::from_bearer(&keys, Some(&header))),
            Viewer::User(_)
        ));
    }
}
