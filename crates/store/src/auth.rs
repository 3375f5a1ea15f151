//! Queries on users and refresh tokens. Each takes a connection so it can run inside a
//! caller's transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    schema::{refresh_tokens, users},
};

// What a user may do (no doc comment: it would become the schema's description).
#[derive(
    async_graphql::Enum,
    Copy,
    Clone,
    Debug,
    Eq,
    PartialEq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Host,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Host => "host",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> AppResult<Self> {
        match s {
            "user" => Ok(Self::User),
            "host" => Ok(Self::Host),
            "admin" => Ok(Self::Admin),
            other => Err(AppError::internal(anyhow::anyhow!(
                "unknown role {other:?} in database"
            ))),
        }
    }

    /// Roles are ordered: an admin may do what a host may, a host what a user may.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub display_name: String,
    pub role: String,
    pub points: i64,
    pub created_at: DateTime<Utc>,
    /// Set while an admin has the account locked (`lockAccount`).
    pub locked_at: Option<DateTime<Utc>>,
    /// Access tokens issued before this are refused (the account's last lock or unlock).
    pub tokens_valid_after: Option<DateTime<Utc>>,
}

impl UserRow {
    pub fn role(&self) -> AppResult<Role> {
        Role::parse(&self.role)
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub display_name: &'a str,
    pub role: &'a str,
}

#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub id: i64,
    pub user_id: i64,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Inserts a user; `Ok(None)` when the email is taken.
pub async fn insert_user(conn: &mut AsyncPgConnection, new: &NewUser<'_>) -> QueryResult<Option<UserRow>> {
    diesel::insert_into(users::table)
        .values(new)
        .on_conflict(users::email)
        .do_nothing()
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

pub async fn user_by_email(conn: &mut AsyncPgConnection, email: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn user_by_id(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn users_by_ids(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<UserRow>> {
    users::table
        .filter(users::id.eq_any(ids))
        .select(UserRow::as_select())
        .load(conn)
        .await
}

pub async fn current_role(conn: &mut AsyncPgConnection, id: i64) -> AppResult<Option<Role>> {
    let role: Option<String> = users::table
        .find(id)
        .select(users::role)
        .first(conn)
        .await
        .optional()?;
    role.as_deref().map(Role::parse).transpose()
}

/// The current roles of the accounts among `ids` that exist (one statement of a fixed
/// shape, `id = ANY($1)`, however many ids: prepared once per connection).
pub async fn current_roles(conn: &mut AsyncPgConnection, ids: &[i64]) -> AppResult<Vec<(i64, Role)>> {
    let rows: Vec<(i64, String)> = users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::role))
        .load(conn)
        .await?;
    rows.into_iter()
        .map(|(id, role)| Ok((id, Role::parse(&role)?)))
        .collect()
}

pub async fn set_role(conn: &mut AsyncPgConnection, id: i64, role: Role) -> QueryResult<Option<UserRow>> {
    diesel::update(users::table.find(id))
        .set((
            users::role.eq(role.as_str()),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

pub async fn insert_refresh_token(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    family_id: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::user_id.eq(user_id),
            refresh_tokens::family_id.eq(family_id),
            refresh_tokens::token_hash.eq(token_hash),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn mark_refresh_token_used(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<()> {
    diesel::update(refresh_tokens::table.find(id))
        .set(refresh_tokens::used_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn revoke_family(conn: &mut AsyncPgConnection, family_id: Uuid) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}

/// Whether the user's login session (refresh-token family) has a token not revoked.
pub async fn session_live(conn: &mut AsyncPgConnection, family_id: Uuid, user_id: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family_id))
            .filter(refresh_tokens::user_id.eq(user_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    ))
    .get_result(conn)
    .await
}

/// The family and the user of a refresh token.
pub async fn family_of(conn: &mut AsyncPgConnection, token_hash: &[u8]) -> QueryResult<Option<(Uuid, i64)>> {
    refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((refresh_tokens::family_id, refresh_tokens::user_id))
        .first(conn)
        .await
        .optional()
}

/// Revokes every refresh token of a user (all their sessions).
pub async fn revoke_user_sessions(conn: &mut AsyncPgConnection, user_id: i64) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::user_id.eq(user_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}

/// Sets an account's password; an open claim link of the account stops working with it
/// (whoever set the password owns the account now).
pub async fn set_password(conn: &mut AsyncPgConnection, id: i64, password_hash: &str) -> QueryResult<usize> {
    let n = diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(password_hash),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    crate::claims::close(conn, id).await?;
    Ok(n)
}

pub async fn set_display_name(
    conn: &mut AsyncPgConnection,
    id: i64,
    display_name: &str,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((
            users::display_name.eq(display_name),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
}

/// Locks an account (`reason` set) or unlocks it (`None`), with whether this call changed
/// it. `Ok(None)`: no such account. Locking a locked account keeps its first time and
/// reason and changes nothing; so does unlocking an unlocked one. The update is
/// conditional, so of two concurrent calls only one changes the row (the other waits for
/// its row lock, then finds nothing to change). Both move the account's
/// `tokens_valid_after` to now: an access token issued before an unlock (so before the
/// lock, or racing it) stays refused after it.
pub async fn set_locked(
    conn: &mut AsyncPgConnection,
    id: i64,
    reason: Option<&str>,
) -> QueryResult<Option<(UserRow, bool)>> {
    let changed = match reason {
        Some(reason) => {
            diesel::update(users::table.find(id).filter(users::locked_at.is_null()))
                .set((
                    users::locked_at.eq(Some(Utc::now())),
                    users::locked_reason.eq(reason),
                    users::tokens_valid_after.eq(diesel::dsl::now),
                    users::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?
        }
        None => {
            diesel::update(users::table.find(id).filter(users::locked_at.is_not_null()))
                .set((
                    users::locked_at.eq(None::<DateTime<Utc>>),
                    users::locked_reason.eq(None::<String>),
                    users::tokens_valid_after.eq(diesel::dsl::now),
                    users::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?
        }
    };
    Ok(user_by_id(conn, id).await?.map(|row| (row, changed == 1)))
}

/// Every account whose access tokens are screened: the locked ones, and those whose
/// `tokens_valid_after` is later than `since` (before it, no token still unexpired was
/// issued). Few: read by each instance every few seconds. (id, locked, valid after).
pub async fn screened_users(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
) -> QueryResult<Vec<(i64, bool, Option<DateTime<Utc>>)>> {
    users::table
        .filter(
            users::locked_at
                .is_not_null()
                .or(users::tokens_valid_after.gt(since)),
        )
        .select((
            users::id,
            users::locked_at.is_not_null(),
            users::tokens_valid_after,
        ))
        .load(conn)
        .await
}
