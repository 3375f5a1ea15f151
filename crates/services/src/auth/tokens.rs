//! Access tokens (HS256 JWTs, algorithm pinned on verify) and opaque refresh tokens.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore as _;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Role;

const ISSUER: &str = "boxoffice";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The role when the token was issued. Good enough to decide what to show; privileged
    /// writes re-read the role from the database (see `auth::context::actor`).
    pub role: Role,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    /// The login session (refresh-token family) the token was issued in, so that a socket
    /// can be refused once that session is logged out. Absent in tokens minted outside a
    /// session (tests, the benchmark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<uuid::Uuid>,
    /// When the token was issued, in milliseconds: `iat` is whole seconds, too coarse to
    /// tell a token issued just before an unlock from one issued just after
    /// (`auth::lock`). Absent in tokens of older builds, which count as issued at `iat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<i64>,
}

/// What a valid access token says.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Verified {
    pub user_id: i64,
    pub role: Role,
    /// Unix seconds.
    pub expires_at: i64,
    pub session: Option<uuid::Uuid>,
    /// When the token was issued (Unix milliseconds).
    pub issued_at_ms: i64,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(secret: &secrecy::SecretString, ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        // Only HS256 is ever accepted: a token naming another algorithm ("none", RS256,
        // HS512) is rejected before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs an access token; returns it with its expiry (unix seconds).
    pub fn issue(&self, user_id: i64, role: Role) -> anyhow::Result<(String, i64)> {
        self.issue_in(user_id, role, None)
    }

    /// [`issue`](Self::issue) for a login session (its refresh-token family).
    pub fn issue_for_session(
        &self,
        user_id: i64,
        role: Role,
        session: uuid::Uuid,
    ) -> anyhow::Result<(String, i64)> {
        self.issue_in(user_id, role, Some(session))
    }

    fn issue_in(&self, user_id: i64, role: Role, sid: Option<uuid::Uuid>) -> anyhow::Result<(String, i64)> {
        let now = chrono::Utc::now();
        let exp = now.timestamp() + i64::try_from(self.ttl.as_secs())?;
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            iss: ISSUER.to_owned(),
            iat: now.timestamp(),
            exp,
            sid,
            iat_ms: Some(now.timestamp_millis()),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, exp))
    }

    /// Verifies signature, algorithm, issuer and expiry. Returns the user id and role.
    pub fn verify(&self, token: &str) -> Option<(i64, Role)> {
        self.verify_claims(token).map(|v| (v.user_id, v.role))
    }

    /// As [`verify`](Self::verify), with the expiry (Unix seconds): a WebSocket keeps the
    /// authority of its token only until then.
    pub fn verify_claims(&self, token: &str) -> Option<Verified> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        Some(Verified {
            user_id: data.claims.sub.parse().ok()?,
            role: data.claims.role,
            expires_at: data.claims.exp,
            session: data.claims.sid,
            issued_at_ms: data.claims.iat_ms.unwrap_or(data.claims.iat.saturating_mul(1000)),
        })
    }
}

/// A new opaque refresh token: 256 random bits, hex encoded, with a recognisable prefix.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("rt_{}", hex::encode(bytes))
}

/// What the database stores instead of the token.
pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(
            &"test-secret-test-secret-test-secret-42".to_owned().into(),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn round_trip() {
        let k = keys();
        let (t, _) = k.issue(42, Role::Host).unwrap();
        assert_eq!(k.verify(&t), Some((42, Role::Host)));
    }

    #[test]
    fn rejects_other_algorithms_even_with_the_right_secret() {
        let k = keys();
        let claims = Claims {
            sub: "1".into(),
            role: Role::Admin,
            iss: ISSUER.into(),
            iat: 0,
            exp: chrono::Utc::now().timestamp() + 60,
            sid: None,
            iat_ms: None,
        };
        let secret = EncodingKey::from_secret(b"test-secret-test-secret-test-secret-42");
        let hs512 = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &secret).unwrap();
        assert_eq!(k.verify(&hs512), None);
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let a = new_refresh_token();
        assert_ne!(a, new_refresh_token());
        assert_eq!(hash_refresh_token(&a).len(), 32);
    }
}
