//! GraphQL face of accounts: `User`, `AuthPayload`, `me`, `signUp`, `logIn`,
//! `refreshToken`, `logOut`, `claimAccount`. Resolvers only parse, call `service` and map.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::ClientAddr;
use super::{
    Role,
    context::{actor, state, viewer},
    service,
    store::UserRow,
};
use crate::error::AppError;

/// An account. `email` and `points` are private: only the account itself and admins may
/// read them.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct User {
    pub id: ID,
    pub display_name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub user_id: i64,
    #[graphql(skip)]
    email: String,
    #[graphql(skip)]
    points_balance: i64,
    #[graphql(skip)]
    locked_at: Option<DateTime<Utc>>,
    /// Set when the object is the requester's own account (me, a fresh sign-in).
    #[graphql(skip)]
    own: bool,
}

#[ComplexObject]
impl User {
    async fn email(&self, ctx: &Context<'_>) -> Result<&str, AppError> {
        self.private(ctx).await?;
        Ok(&self.email)
    }

    /// The point balance (equal to the sum of the account's ledger entries).
    async fn points(&self, ctx: &Context<'_>) -> Result<i64, AppError> {
        self.private(ctx).await?;
        Ok(self.points_balance)
    }

    /// Since when an admin has the account locked (`lockAccount`); null when it is not.
    async fn locked_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>, AppError> {
        self.private(ctx).await?;
        Ok(self.locked_at)
    }
}

impl User {
    /// Marks the object as the requester's own account, whose private fields it may read.
    pub fn own(mut self) -> Self {
        self.own = true;
        self
    }

    /// The account itself may read its private fields, and so may an admin (by the role
    /// in the database now, as for every privileged action).
    async fn private(&self, ctx: &Context<'_>) -> Result<(), AppError> {
        if self.own || viewer(ctx)?.user()?.id == self.user_id {
            return Ok(());
        }
        actor(ctx).await?.ensure_role(Role::Admin)
    }
}

impl TryFrom<UserRow> for User {
    type Error = AppError;

    fn try_from(row: UserRow) -> Result<Self, AppError> {
        Ok(Self {
            id: ID(row.id.to_string()),
            role: row.role()?,
            display_name: row.display_name,
            created_at: row.created_at,
            user_id: row.id,
            email: row.email,
            points_balance: row.points,
            locked_at: row.locked_at,
            own: false,
        })
    }
}

#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Short-lived access token: send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// When the access token expires.
    pub access_token_expires_at: DateTime<Utc>,
    /// Opaque, single-use: exchange it with `refreshToken` for a new pair.
    pub refresh_token: String,
    pub user: User,
}

impl TryFrom<service::Session> for AuthPayload {
    type Error = AppError;

    fn try_from(s: service::Session) -> Result<Self, AppError> {
        Ok(Self {
            access_token: s.access_token,
            access_token_expires_at: DateTime::from_timestamp(s.access_token_expires_at, 0)
                .unwrap_or_default(),
            refresh_token: s.refresh_token,
            user: User::try_from(s.user)?.own(),
        })
    }
}

/// A one-time link that lets the guest of an invited account set its password
/// (`claimAccount`). Shown once: only a hash of its token is kept.
#[derive(SimpleObject)]
pub struct AccountClaim {
    /// The token `claimAccount` takes.
    pub token: String,
    /// The web app's page for it on this server (`/claim?token=...`), to put after the
    /// server's own address.
    pub url: String,
    /// After this the link no longer works; a new complimentary ticket gives a new one.
    pub expires_at: DateTime<Utc>,
}

impl From<&super::claim::FreshClaim> for AccountClaim {
    fn from(c: &super::claim::FreshClaim) -> Self {
        Self {
            token: c.token.clone(),
            url: c.path(),
            expires_at: c.stored.expires_at,
        }
    }
}

#[derive(InputObject)]
pub struct SignUpInput {
    pub email: String,
    /// At least 8 characters, mixing letters with digits or symbols.
    pub password: String,
    pub display_name: String,
}

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The signed-in account.
    async fn me(&self, ctx: &Context<'_>) -> Result<User, AppError> {
        let id = viewer(ctx)?.user()?.id;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        let row = super::store::user_by_id(&mut conn, id)
            .await?
            .ok_or(AppError::Unauthenticated("this account no longer exists"))?;
        Ok(User::try_from(row)?.own())
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Creates an account (role USER) and signs it in.
    async fn sign_up(&self, ctx: &Context<'_>, input: SignUpInput) -> Result<AuthPayload, AppError> {
        let client = ctx.data::<ClientAddr>().ok().and_then(|c| c.0);
        let session = service::sign_up(
            state(ctx)?,
            &input.email,
            input.password,
            &input.display_name,
            client,
        )
        .await?;
        session.try_into()
    }

    /// Any failure answers "invalid credentials"; repeated failures answer RATE_LIMITED.
    async fn log_in(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> Result<AuthPayload, AppError> {
        let client = ctx.data::<ClientAddr>().ok().and_then(|c| c.0);
        let session = service::log_in(state(ctx)?, &email, password, client).await?;
        session.try_into()
    }

    /// Exchanges a refresh token for a new pair; the old one is used up. Presenting a used
    /// token again signs out every session descended from the same login.
    async fn refresh_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload, AppError> {
        let session = service::refresh(state(ctx)?, &refresh_token).await?;
        session.try_into()
    }

    /// Claims an invited account (made by a complimentary ticket for a new e-mail) with the
    /// token of its one-time link: sets its password (and display name, when given) and
    /// signs in. A wrong or replaced token is UNAUTHENTICATED, an expired one too (saying
    /// so), a used one CONFLICT; attempts count like logins (RATE_LIMITED).
    async fn claim_account(
        &self,
        ctx: &Context<'_>,
        token: String,
        password: String,
        display_name: Option<String>,
    ) -> Result<AuthPayload, AppError> {
        let client = ctx.data::<ClientAddr>().ok().and_then(|c| c.0);
        let session =
            super::claim::claim(state(ctx)?, &token, password, display_name.as_deref(), client).await?;
        session.try_into()
    }

    /// Ends the session the refresh token belongs to, and closes the account's WebSockets
    /// (4403). Access tokens already issued stay valid over HTTP until they expire (at most
    /// ACCESS_TOKEN_TTL_SECONDS).
    async fn log_out(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool, AppError> {
        service::log_out(state(ctx)?, &refresh_token).await?;
        Ok(true)
    }
}
