//! Accounts, tokens, roles and the viewer of a request.
//!
//! - `password`: password rules and argon2id hashing.
//! - `tokens`: access JWTs and opaque refresh tokens.
//! - `rate_limit`: login attempt limits in Redis.
//! - `store`: the diesel queries on users and refresh tokens.
//! - `service`: sign up, log in, refresh, log out.
//! - `claim`: an invited account's one-time claim link (`claimAccount`).
//! - `graphql`: the GraphQL types and resolvers of all of the above.
//!
//! Authorization used by every other module lives here too: [`RoleGuard`] for fields, and
//! [`actor`] + [`Actor::ensure_manages`] for ownership checks on host-owned resources.

pub mod claim;
mod client;
pub mod graphql;
pub use client::{ClientAddr, group};
pub use graphql::User;
pub mod lock;
pub mod password;
pub mod rate_limit;
pub mod service;
pub use boxoffice_store::auth as store;
pub use boxoffice_store::auth::Role;
pub mod tokens;

use std::sync::Arc;

use async_graphql::{Context, Guard, parser::types::OperationType};
use std::{sync::Mutex, time::Instant};

use crate::{
    error::{AppError, AppResult},
    state::AppState,
};

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
        if token.starts_with(crate::tickets::scanners::TOKEN_PREFIX) {
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

pub fn viewer<'a>(ctx: &'a Context<'_>) -> AppResult<&'a Viewer> {
    ctx.data::<Viewer>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no viewer in request data")))
}

pub fn state<'a>(ctx: &'a Context<'_>) -> AppResult<&'a AppState> {
    ctx.data::<AppState>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no app state in schema data")))
}

const ROLE_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The signed-in user with their current role (one query per request at most).
pub async fn actor(ctx: &Context<'_>) -> AppResult<Actor> {
    let user = viewer(ctx)?.user()?;
    let cached = *user
        .current_role
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((role, at)) = cached
        && at.elapsed() < ROLE_FRESH
    {
        return Ok(Actor { id: user.id, role });
    }
    let mut conn = state(ctx)?.db.get().await?;
    let role = store::current_role(&mut conn, user.id)
        .await?
        .ok_or(AppError::Unauthenticated("this account no longer exists"))?;
    *user
        .current_role
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((role, Instant::now()));
    Ok(Actor { id: user.id, role })
}

/// Whether the session the user's token was issued in is over: logged out, revoked as
/// stolen, or gone with its account. Access tokens are not checked per HTTP request (they
/// are short-lived); a WebSocket, which lives on, is checked when it opens, and closed by
/// the revocation broadcast after that (`http::websocket`).
pub async fn session_revoked(state: &AppState, user: &AuthUser) -> AppResult<bool> {
    let Some(session) = user.session else {
        return Ok(false);
    };
    let mut conn = state.db.get().await?;
    Ok(!store::session_live(&mut conn, session, user.id).await?)
}

/// Field guard: the viewer must be signed in and (for host and admin) hold the role now.
///
/// A mutation also needs the account to exist now: a validly signed token outlives a
/// deleted account, and a write in its name would fail on a foreign key (INTERNAL) or be
/// accepted for nobody. So every guarded mutation reads the account (`actor`, once per
/// request) and answers UNAUTHENTICATED when it is gone; queries read only what the
/// token's subject owns, which for a deleted account is nothing, and need no query.
/// `reserveSeats` and `reserveBestAvailable` use [`BatchChecksAccount`] instead.
pub struct RoleGuard(pub Role);

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        viewer(ctx)?.user()?;
        if self.0 == Role::User && ctx.query_env.operation.node.ty != OperationType::Mutation {
            // Any account will do; the token proves it.
            return Ok(());
        }
        actor(ctx).await?.ensure_role(self.0)?;
        Ok(())
    }
}

/// Field guard of the hold mutations: a signed-in user, whose account the booking batch
/// checks with everything else it reads under the schedule lock (UNAUTHENTICATED when it
/// is gone), so the hot path of a sale pays no query of its own for it.
pub struct BatchChecksAccount;

impl Guard for BatchChecksAccount {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        viewer(ctx)?.user()?;
        Ok(())
    }
}
