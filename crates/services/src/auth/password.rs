//! Password rules and argon2id hashing (on the blocking pool: a hash takes tens of ms).

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

use crate::error::{AppError, AppResult};

pub const MIN_LEN: usize = 8;
/// Bounded so that hashing cost cannot be used to exhaust the server.
pub const MAX_LEN: usize = 128;

/// Checks a new password; `field` names it in the error.
pub fn validate(password: &str, email: &str, field: &str) -> AppResult<()> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(AppError::bad_input(
            field,
            format!("must be at least {MIN_LEN} characters"),
        ));
    }
    if chars > MAX_LEN {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_LEN} characters"),
        ));
    }
    let has_letter = password.chars().any(char::is_alphabetic);
    let has_other = password.chars().any(|c| !c.is_alphabetic());
    if !has_letter || !has_other {
        return Err(AppError::bad_input(
            field,
            "must mix letters with digits or symbols",
        ));
    }
    let lower = password.to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    if lower == email || (local.len() >= 4 && lower.contains(local)) {
        return Err(AppError::bad_input(field, "must not contain your email address"));
    }
    Ok(())
}

pub async fn hash(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal(anyhow::anyhow!("argon2 hash: {e}")))
    })
    .await
    .map_err(AppError::internal)?
}

/// Verifies `password` against a stored PHC string. With `None` (no such account) it
/// verifies against a fixed hash anyway, so that a missing account takes as long to reject
/// as a wrong password.
pub async fn verify(password: String, stored: Option<String>) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
        let found = stored.is_some();
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| AppError::internal(anyhow::anyhow!("stored hash unreadable: {e}")))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(found && ok)
    })
    .await
    .map_err(AppError::internal)?
}

/// argon2id (default parameters) of a random password nobody knows, made on first use.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let unknowable = super::tokens::new_refresh_token();
    Argon2::default()
        .hash_password(unknowable.as_bytes())
        .map(|h| h.to_string())
        .unwrap_or_default()
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let f = "input.password";
        assert!(validate("short1", "a@b.io", f).is_err());
        assert!(validate("onlyletters", "a@b.io", f).is_err());
        assert!(validate("1234567890", "a@b.io", f).is_err());
        assert!(validate(&"a1".repeat(65), "a@b.io", f).is_err());
        assert!(validate("alice2024!", "alice@b.io", f).is_err());
        assert!(validate("correct horse 9", "alice@b.io", f).is_ok());
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let h = hash("correct horse 9".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse 9".into(), Some(h.clone())).await.unwrap());
        assert!(!verify("wrong horse 9".into(), Some(h)).await.unwrap());
        assert!(!verify("anything".into(), None).await.unwrap());
    }
}
