//! The guest of a complimentary ticket: an account found by e-mail, or created as an
//! invited account when the e-mail is new.
//!
//! An invited account is an ordinary user whose password hash is that of a random secret
//! made once per process and never kept: no password logs into it (logIn answers "invalid
//! credentials", as for any wrong password) until its guest claims it with the one-time
//! link the host is handed (`auth::claim`). Its tickets are there meanwhile. Hashing once
//! per process keeps argon2's cost out of every comp.

use tokio::sync::OnceCell;

use crate::{
    auth::{claim::FreshClaim, password, service::normalize_email, tokens},
    booking::Guest,
    error::AppResult,
};

static INVITED_HASH: OnceCell<String> = OnceCell::const_new();

async fn invited_hash() -> AppResult<&'static str> {
    INVITED_HASH
        .get_or_try_init(|| password::hash(tokens::new_refresh_token()))
        .await
        .map(String::as_str)
}

/// A guest for `email`: checked, with a display name from its local part should the
/// account be created, and a fresh claim link, stored only if the account is (still) one
/// nobody can log into.
pub struct NewGuest {
    pub email: String,
    pub display_name: String,
    pub claim: FreshClaim,
}

impl NewGuest {
    pub fn parse(email: &str, claim_ttl: std::time::Duration) -> AppResult<Self> {
        let email = normalize_email(email, "email")?;
        let local = email.split('@').next().unwrap_or("guest");
        let display_name = crate::text::display_name(local, "email").unwrap_or_else(|_| "Guest".to_owned());
        Ok(Self {
            email,
            display_name,
            claim: FreshClaim::generate(claim_ttl)?,
        })
    }

    pub async fn guest(&self) -> AppResult<Guest<'_>> {
        Ok(Guest {
            email: &self.email,
            display_name: &self.display_name,
            password_hash: invited_hash().await?,
            claim: &self.claim.stored,
        })
    }
}
