//! Locked accounts (`lockAccount`, `unlockAccount`): a locked account cannot log in or
//! refresh, and every access token of it is refused on every instance at once, and for
//! good: a token issued before the unlock stays refused after it.
//!
//! Access tokens are checked by signature alone (no query per request), so each instance
//! keeps in memory the accounts whose tokens it screens ([`LockedAccounts::screen`]): the
//! locked ones (every token refused) and those locked or unlocked lately, with their
//! `tokens_valid_after` (a token whose `iat` is earlier is refused). The second kind is
//! kept while a token from before it could still be unexpired (`ACCESS_TOKEN_TTL_SECONDS`),
//! then forgotten. Unlock moves that time to the unlock, so a token issued by a login or
//! refresh racing the lock dies too. The database is the truth: the set is read at start,
//! again whenever an instance announces a change on the hub topic [`LOCKS_TOPIC`] (within
//! milliseconds), and every [`RELOAD`] in any case, so a lost pub/sub message (a Redis
//! reconnect) delays a lock or the end of old tokens on another instance by seconds, never
//! for good. Locking also revokes the account's refresh tokens (they stay revoked after
//! the unlock) and closes its WebSockets (`REVOKED_TOPIC`). The times are the database's
//! clock and the tokens' the issuing instance's: instances keep their clocks in step (NTP),
//! and a login within that skew of an unlock is the only one that could be misjudged.

use std::{collections::HashMap, sync::RwLock, time::Duration};

use chrono::{DateTime, Utc};
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

/// How this instance treats an account's access tokens.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Screen {
    /// Locked: every token refused.
    Locked,
    /// Tokens issued before this (Unix milliseconds) refused.
    IssuedAfter(i64),
}

/// The accounts whose tokens are screened, as this instance last read them.
pub struct LockedAccounts {
    screened: RwLock<HashMap<i64, Screen>>,
    /// How long an access token lives: a valid-after time older than this screens nothing.
    token_ttl: Duration,
}

impl LockedAccounts {
    fn new(token_ttl: Duration) -> Self {
        Self {
            screened: RwLock::default(),
            token_ttl,
        }
    }

    /// The set as the database has it now; empty if it cannot be read yet (a server
    /// starting before its database), in which case [`spawn_sync`] reads it at once.
    pub async fn load(pool: &Pool, token_ttl: Duration) -> Self {
        let me = Self::new(token_ttl);
        if let Err(e) = me.reload(pool).await {
            tracing::warn!(error = %e, "could not read the locked accounts at start; retrying");
        }
        me
    }

    async fn reload(&self, pool: &Pool) -> AppResult<()> {
        let mut conn = pool.get().await?;
        // A margin over the token lifetime: the JWT check allows a few seconds of leeway.
        let since = Utc::now()
            - chrono::Duration::from_std(self.token_ttl + Duration::from_secs(60))
                .map_err(AppError::internal)?;
        let screened = super::store::screened_users(&mut conn, since)
            .await?
            .into_iter()
            .filter_map(|(id, locked, after)| Some((id, screen(locked, after)?)))
            .collect();
        *self
            .screened
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = screened;
        Ok(())
    }

    pub fn is_locked(&self, user_id: i64) -> bool {
        self.get(user_id) == Some(Screen::Locked)
    }

    fn get(&self, user_id: i64) -> Option<Screen> {
        self.screened
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&user_id)
            .copied()
    }

    fn set(&self, row: &UserRow) {
        let mut screened = self
            .screened
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match screen(row.locked_at.is_some(), row.tokens_valid_after) {
            Some(s) => screened.insert(row.id, s),
            None => screened.remove(&row.id),
        };
    }

    /// The viewer a request goes on with: a token of a locked account, or one issued
    /// before the account's last lock or unlock, counts as invalid.
    pub fn screen(&self, viewer: Viewer) -> Viewer {
        let refused = match &viewer {
            Viewer::User(u) => match self.get(u.id) {
                Some(Screen::Locked) => true,
                Some(Screen::IssuedAfter(ms)) => u.issued_at_ms < ms,
                None => false,
            },
            _ => false,
        };
        if refused { Viewer::InvalidToken } else { viewer }
    }
}

fn screen(locked: bool, valid_after: Option<DateTime<Utc>>) -> Option<Screen> {
    if locked {
        Some(Screen::Locked)
    } else {
        valid_after.map(|t| Screen::IssuedAfter(t.timestamp_millis()))
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
    set_locked(state, actor, user_id, Some(reason)).await
}

/// Unlocks an account (admins), audited; the account logs in anew (its old sessions stay
/// revoked, and access tokens issued before now stay refused). Unlocking an account that
/// is not locked changes and audits nothing.
pub async fn unlock(state: &AppState, actor: Actor, user_id: i64) -> AppResult<UserRow> {
    actor.ensure_role(Role::Admin)?;
    set_locked(state, actor, user_id, None).await
}

/// Both: the change, and only if this call made it (of two at once, one does) the
/// revoked sessions of a lock and the audit entry, in one transaction; then the news.
async fn set_locked(
    state: &AppState,
    actor: Actor,
    user_id: i64,
    reason: Option<String>,
) -> AppResult<UserRow> {
    let mut conn = state.db.get().await?;
    let row = conn
        .transaction(async |conn| -> AppResult<UserRow> {
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
fn announce(state: &AppState, row: &UserRow) {
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

    #[test]
    fn locked_accounts_and_tokens_from_before_an_unlock_are_screened_out() {
        let locks = LockedAccounts::new(Duration::from_secs(60));
        let mark = |s: Option<Screen>| {
            let mut m = locks.screened.write().unwrap();
            match s {
                Some(s) => m.insert(5, s),
                None => m.remove(&5),
            };
        };
        let keys = super::super::tokens::JwtKeys::new(&"k".repeat(32).into(), Duration::from_secs(60));
        let (token, _) = keys.issue(5, Role::User).unwrap();
        let header = format!("Bearer {token}");
        let viewer = || locks.screen(Viewer::from_bearer(&keys, Some(&header)));
        let Viewer::User(user) = viewer() else {
            panic!("a fresh token is a user")
        };
        let issued = user.issued_at_ms;
        assert!(
            (Utc::now().timestamp_millis() - issued).abs() < 5_000,
            "milliseconds: {issued}"
        );

        mark(Some(Screen::Locked));
        assert!(locks.is_locked(5));
        assert!(matches!(viewer(), Viewer::InvalidToken));
        assert!(matches!(locks.screen(Viewer::Anonymous), Viewer::Anonymous));
        // Unlocked a millisecond after the token was issued: refused for good.
        mark(Some(Screen::IssuedAfter(issued + 1)));
        assert!(!locks.is_locked(5));
        assert!(matches!(viewer(), Viewer::InvalidToken));
        // A token issued at or after the unlock passes.
        mark(Some(Screen::IssuedAfter(issued)));
        assert!(matches!(viewer(), Viewer::User(_)));
        mark(None);
        assert!(matches!(viewer(), Viewer::User(_)));
        assert_eq!(screen(false, None), None);
        assert_eq!(screen(true, None), Some(Screen::Locked));
    }
}
