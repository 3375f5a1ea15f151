//! The viewer and actor of a GraphQL request, read from its context, and the field guards
//! built on them. Apart from the types in `auth` because these need the application state
//! (the database, to read an account's current role).

use async_graphql::{Context, Guard, parser::types::OperationType};

use super::{Actor, AuthUser, Role, Viewer, store};
use crate::{
    error::{AppError, AppResult},
    state::AppState,
};

pub fn viewer<'a>(ctx: &'a Context<'_>) -> AppResult<&'a Viewer> {
    ctx.data::<Viewer>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no viewer in request data")))
}

pub fn state<'a>(ctx: &'a Context<'_>) -> AppResult<&'a AppState> {
    ctx.data::<AppState>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no app state in schema data")))
}

const ROLE_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The signed-in user with their current role: read once per request at most, in a batch
/// with the other requests' of the moment (`auth::roles`).
pub async fn actor(ctx: &Context<'_>) -> AppResult<Actor> {
    let user = viewer(ctx)?.user()?;
    if let Some(role) = user.fresh_role(ROLE_FRESH) {
        return Ok(Actor { id: user.id, role });
    }
    let role = state(ctx)?
        .roles
        .of(user.id)
        .await?
        .ok_or(AppError::Unauthenticated("this account no longer exists"))?;
    user.remember_role(role);
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
