//! Accounts, tokens, roles and the viewer of a request.
//!
//! - `password`: password rules and argon2id hashing.
//! - `tokens`: access JWTs and opaque refresh tokens.
//! - `rate_limit`: login attempt limits in Redis.
//! - `store`: the diesel queries on users and refresh tokens.
//! - `service`: sign up, log in, refresh, log out.
//! - `claim`: an invited account's one-time claim link (`claimAccount`).
//! - `graphql`, in the server (`src/`): the GraphQL types and resolvers of all of the above.
//!
//! Authorization used by every other module lives here too: the request's [`Viewer`] and
//! [`Actor`] with their rules ([`Actor::ensure_manages`] for host-owned resources), and in
//! the server's `auth::context` what reads them from a GraphQL request (`actor`,
//! `RoleGuard`). This file and the types in it know no application state, so
//! the parts the state holds may use them.

pub mod claim;
mod client;
pub use client::{ClientAddr, group};
pub mod local_limits;
pub mod lock;
pub mod locked;
pub mod password;
pub mod rate_limit;
pub mod roles;
pub mod service;
pub use boxoffice_store::auth as store;
pub use boxoffice_store::auth::Role;
pub mod tokens;

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use crate::error::{AppError, AppResult};

/// Every door scanner's token starts with this (`tickets::scanners` makes them): a bearer
/// token with it is a scanner, not a user.
pub const SCANNER_TOKEN_PREFIX: &str = "bos_scan_";

/// The hub topic on which revocations travel between instances: the payload is a user id.
/// Every socket of a revoked user closes (`http::websocket` listens).
pub const REVOKED_TOPIC: &str = "sessions:revoked";

/// Who is making the request, from the access token (HTTP header or WebSocket
/// connection_init). Put into every request's data by the HTTP layer.
#[derive(Clone, Debug)]
pub enum Viewer {
    Anonymous,
    /// A token was presented but is expired, forged or malformed.
    InvalidToken,
    User(AuthUser),
    /// A door scanner's token (`tickets::scanners`), as presented: it can check in for one
    /// performance and nothing else, so it is not a user. The tickets module reads it
    /// against the database when it is used.
    Scanner(ScannerToken),
}

/// A scanner token as presented; never printed.
#[derive(Clone)]
pub struct ScannerToken(pub String);

impl std::fmt::Debug for ScannerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScannerToken(..)")
    }
}

#[derive(Clone, Debug)]
pub struct AuthUser {
    pub id: i64,
    /// When the token expires (Unix seconds); a WebSocket closes then.
    pub expires_at: i64,
    /// The login session the token belongs to (`session_revoked`).
    pub session: Option<uuid::Uuid>,
    /// When the token was issued (Unix milliseconds): a lock refuses older ones for good.
    pub issued_at_ms: i64,
    /// The role read from the database and when: reused for `ROLE_FRESH`, so a request
    /// reads it once, and an operation on a long-lived WebSocket still sees a role change.
    current_role: Arc<Mutex<Option<(Role, Instant)>>>,
}

impl AuthUser {
    /// The role read for this token less than `max_age` ago, if any.
    pub fn fresh_role(&self, max_age: std::time::Duration) -> Option<Role> {
        let cached = *self
            .current_role
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cached.and_then(|(role, at)| (at.elapsed() < max_age).then_some(role))
    }

    /// Remembers the role just read from the database.
    pub fn remember_role(&self, role: Role) {
        *self
            .current_role
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((role, Instant::now()));
    }
}

impl Viewer {
    pub fn from_bearer(keys: &tokens::JwtKeys, header: Option<&str>) -> Self {
        let Some(header) = header else {
            return Self::Anonymous;
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .unwrap_or_default()
            .trim();
        if token.starts_with(SCANNER_TOKEN_PREFIX) {
            return Self::Scanner(ScannerToken(token.to_owned()));
        }
        match keys.verify_claims(token) {
            // The token's role is not trusted for anything: `actor` reads the real one.
            Some(v) => Self::User(AuthUser {
                id: v.user_id,
                expires_at: v.expires_at,
                session: v.session,
                issued_at_ms: v.issued_at_ms,
                current_role: Arc::default(),
            }),
            None => Self::InvalidToken,
        }
    }

    pub fn user(&self) -> AppResult<&AuthUser> {
        match self {
            Self::User(user) => Ok(user),
            Self::Anonymous => Err(AppError::Unauthenticated("authentication required")),
            Self::InvalidToken => Err(AppError::Unauthenticated("invalid or expired access token")),
            Self::Scanner(_) => Err(AppError::Forbidden("a scanner token can only check in")),
        }
    }
}

/// The signed-in user with their role as it is now in the database. Every privileged write
/// goes through this, so a role change takes effect on the next request whatever the
/// access token says.
#[derive(Clone, Copy, Debug)]
pub struct Actor {
    pub id: i64,
    pub role: Role,
}

impl Actor {
    /// Ownership rule for host-owned resources: the owning host, or any admin.
    pub fn ensure_manages(&self, owner_id: i64) -> AppResult<()> {
        if self.role == Role::Admin || (self.role == Role::Host && self.id == owner_id) {
            Ok(())
        } else {
            Err(AppError::Forbidden("you do not manage this resource"))
        }
    }

    /// [`ensure_manages`](Self::ensure_manages) for a concert: someone else's draft is
    /// NOT_FOUND rather than FORBIDDEN, so its existence is not revealed.
    pub fn ensure_manages_concert(
        &self,
        owner_id: i64,
        status: &crate::concerts::ConcertStatus,
    ) -> AppResult<()> {
        match self.ensure_manages(owner_id) {
            Err(_) if *status == crate::concerts::ConcertStatus::Draft => Err(AppError::NotFound("concert")),
            other => other,
        }
    }

    pub fn ensure_role(&self, required: Role) -> AppResult<()> {
        if self.role.allows(required) {
            Ok(())
        } else {
            Err(AppError::Forbidden("your role does not allow this operation"))
        }
    }
}
