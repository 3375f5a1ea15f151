//! Claiming an invited account: the guest of a complimentary ticket with a new e-mail gets
//! an account nobody can log into (`shows::guests`), and the host gets a one-time link to
//! pass on (we send no e-mail). `claimAccount(token, password)` sets the password once and
//! signs in; from then on it is an ordinary account.
//!
//! A token is `ct_<selector>_<verifier>`. The selector finds the row; the row keeps only the
//! SHA-256 of the verifier, compared in constant time, so neither a copy of the database nor
//! a stopwatch on the comparison yields a usable token. A claim is spent in a transaction
//! holding its row (two claims with one token: the second sees the first), expires after
//! `CLAIM_TOKEN_TTL_SECONDS`, and a new comp to the still-unclaimed account replaces it.
//! Attempts are counted like logins (per token and address, and per address), so guessing
//! meets the same limits as guessing a password.

use std::net::IpAddr;

use chrono::Utc;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{password, rate_limit, service, store};
use crate::{
    error::{AppError, AppResult},
    state::Services,
};
use boxoffice_store::claims::{self, NewClaim};

const PREFIX: &str = "ct_";
const INVALID: AppError = AppError::Unauthenticated("invalid claim token");

/// A token just made: the text to hand over once, and what the database keeps of it.
pub struct FreshClaim {
    pub token: String,
    pub stored: NewClaim,
}

impl FreshClaim {
    pub fn generate(ttl: std::time::Duration) -> AppResult<Self> {
        let mut selector = [0u8; 12];
        let mut verifier = [0u8; 32];
        rand::rng().fill_bytes(&mut selector);
        rand::rng().fill_bytes(&mut verifier);
        let selector = hex::encode(selector);
        let verifier = hex::encode(verifier);
        let expires_at = Utc::now() + chrono::Duration::from_std(ttl).map_err(AppError::internal)?;
        Ok(Self {
            token: format!("{PREFIX}{selector}_{verifier}"),
            stored: NewClaim {
                selector,
                verifier_hash: verifier_hash(&verifier),
                expires_at,
            },
        })
    }

    /// Where the guest sets their password: a path of this server's web app.
    pub fn path(&self) -> String {
        format!("/claim?token={}", self.token)
    }
}

fn verifier_hash(verifier: &str) -> [u8; 32] {
    Sha256::digest(verifier.as_bytes()).into()
}

/// The selector and verifier of a well-formed token.
fn parse(token: &str) -> Option<(&str, &str)> {
    let (selector, verifier) = token.trim().strip_prefix(PREFIX)?.split_once('_')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(selector, 24) && hex(verifier, 64)).then_some((selector, verifier))
}

/// Equal hashes, in a time that does not depend on where they differ.
fn same_hash(stored: &[u8], presented: &[u8; 32]) -> bool {
    if stored.len() != presented.len() {
        return false;
    }
    let diff = stored
        .iter()
        .zip(presented)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

/// Why a claim row cannot be spent with the presented verifier, if it cannot.
fn refusal(row: &claims::ClaimRow, presented: &[u8; 32]) -> Option<AppError> {
    if !same_hash(&row.verifier_hash, presented) {
        Some(INVALID)
    } else if row.claimed_at.is_some() {
        Some(AppError::Conflict(
            "this claim link was already used: log in with the password set then".into(),
        ))
    } else if row.expires_at <= Utc::now() {
        Some(AppError::Unauthenticated(
            "this claim link has expired: ask the host for a new one",
        ))
    } else {
        None
    }
}

/// Sets the invited account's password (and display name, if given) with a claim token and
/// signs in. Wrong or replaced: UNAUTHENTICATED; expired: UNAUTHENTICATED saying so; used:
/// CONFLICT; too many attempts: RATE_LIMITED. Audited as `claim_account`.
pub async fn claim(
    state: &Services,
    token: &str,
    new_password: String,
    display_name: Option<&str>,
    client: Option<IpAddr>,
) -> AppResult<service::Session> {
    let parsed = parse(token);
    let counter = format!("claim:{}", parsed.map_or("malformed", |(s, _)| s));
    let attempt = rate_limit::begin_login(state, &counter, client).await?;
    let Some((selector, verifier)) = parsed else {
        return Err(INVALID);
    };
    let presented = verifier_hash(verifier);
    let mut conn = state.db.get().await?;
    let row = claims::by_selector(&mut conn, selector).await?.ok_or(INVALID)?;
    if let Some(refused) = refusal(&row, &presented) {
        tracing::info!(client.addr = ?client, "account claim refused");
        return Err(refused);
    }
    // The token is right: what remains are the holder's own mistakes, not guesses.
    rate_limit::login_succeeded(state, attempt).await?;
    let user = store::user_by_id(&mut conn, row.user_id).await?.ok_or(INVALID)?;
    if user.locked_at.is_some() {
        return Err(AppError::Forbidden(
            "this account is locked; contact the box office",
        ));
    }
    password::validate(&new_password, &user.email, "password")?;
    let display_name = display_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| service::normalize_display_name(n, "displayName"))
        .transpose()?;
    let hash = password::hash(new_password).await?;
    crate::in_doubt::write(
        &mut conn,
        state.writes(),
        async |conn| -> AppResult<service::Session> {
            // Again under the row's lock: a claim racing this one, or a new comp replacing the
            // token, has been decided by now.
            let row = crate::locks::account_claim(conn, selector)
                .await?
                .ok_or(INVALID)?;
            if let Some(refused) = refusal(&row, &presented) {
                return Err(refused);
            }
            store::set_password(conn, row.user_id, &hash).await?;
            if let Some(name) = &display_name {
                store::set_display_name(conn, row.user_id, name).await?;
            }
            crate::admin::audit::record(
                conn,
                row.user_id,
                "claim_account",
                "user",
                Some(row.user_id),
                serde_json::json!({ "display_name_changed": display_name.is_some() }),
            )
            .await?;
            let user = store::user_by_id(conn, row.user_id)
                .await?
                .ok_or(AppError::NotFound("user"))?;
            service::start_session(state, conn, user, Uuid::new_v4()).await
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_keep_only_a_hash() {
        let fresh = FreshClaim::generate(std::time::Duration::from_secs(60)).unwrap();
        let (selector, verifier) = parse(&fresh.token).unwrap();
        assert_eq!(selector, fresh.stored.selector);
        assert_eq!(verifier_hash(verifier), fresh.stored.verifier_hash);
        assert!(!fresh.token.contains(&hex::encode(fresh.stored.verifier_hash)));
        assert!(fresh.path().starts_with("/claim?token=ct_"));
        for bad in [
            "",
            "ct_",
            "rt_00",
            &fresh.token[3..],
            &fresh.token[..fresh.token.len() - 1],
            &format!("{}z", &fresh.token[..fresh.token.len() - 1]),
            &fresh.token.replace('_', "-"),
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn hashes_compare_whole() {
        let a = verifier_hash("a");
        let mut b = a;
        assert!(same_hash(&a, &b));
        b[31] ^= 1;
        assert!(!same_hash(&a, &b));
        assert!(!same_hash(&a[..31], &a));
    }
}
