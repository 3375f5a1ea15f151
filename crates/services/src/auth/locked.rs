//! The accounts whose access tokens this instance screens ([`LockedAccounts::screen`]).
//!
//! Access tokens are checked by signature alone (no query per request), so each instance
//! keeps in memory the locked accounts (every token refused) and those locked or unlocked
//! lately, with their `tokens_valid_after` (a token whose `iat` is earlier is refused). The
//! second kind is kept while a token from before it could still be unexpired
//! (`ACCESS_TOKEN_TTL_SECONDS`), then forgotten. Unlock moves that time to the unlock, so a
//! token issued by a login or refresh racing the lock dies too. The database is the truth:
//! the set is read at start and whenever `auth::lock` says so. The times are the database's
//! clock and the tokens' the issuing instance's: instances keep their clocks in step (NTP),
//! and a login within that skew of an unlock is the only one that could be misjudged.

use std::{collections::HashMap, sync::RwLock, time::Duration};

use chrono::{DateTime, Utc};

use super::{Viewer, store::UserRow};
use crate::{
    db::Pool,
    error::{AppError, AppResult},
};

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
    /// starting before its database), in which case `auth::lock::spawn_sync` reads it at once.
    pub async fn load(pool: &Pool, token_ttl: Duration) -> Self {
        let me = Self::new(token_ttl);
        if let Err(e) = me.reload(pool).await {
            tracing::warn!(error = %e, "could not read the locked accounts at start; retrying");
        }
        me
    }

    pub(super) async fn reload(&self, pool: &Pool) -> AppResult<()> {
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

    pub(super) fn set(&self, row: &UserRow) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

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
