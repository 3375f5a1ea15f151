//! Sign up, log in, token refresh with rotation and reuse detection, log out.

use std::net::IpAddr;

use chrono::Utc;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use uuid::Uuid;

use super::{
    Role, password, rate_limit,
    store::{self, NewUser, UserRow},
    tokens,
};
use crate::{
    error::{AppError, AppResult},
    state::Services,
};

/// What a successful sign-up, login or refresh hands back.
pub struct Session {
    pub access_token: String,
    pub access_token_expires_at: i64,
    pub refresh_token: String,
    pub user: UserRow,
}

/// Lower-cases and checks an email address; `field` names it in the error.
pub fn normalize_email(raw: &str, field: &str) -> AppResult<String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(AppError::bad_input(field, "is not a valid email address"))
    }
}

pub fn normalize_display_name(raw: &str, field: &str) -> AppResult<String> {
    crate::text::display_name(raw, field)
}

pub async fn sign_up(
    state: &Services,
    email: &str,
    password: String,
    display_name: &str,
    client: Option<IpAddr>,
) -> AppResult<Session> {
    rate_limit::sign_up_allowed(state, client).await?;
    let email = normalize_email(email, "input.email")?;
    let display_name = normalize_display_name(display_name, "input.displayName")?;
    password::validate(&password, &email, "input.password")?;
    let hash = password::hash(password).await?;
    let mut conn = state.db.get().await?;
    // The account and its first session in one write: an account is never left without the
    // session its maker was told of, and a lost COMMIT answer is settled (`in_doubt`).
    crate::in_doubt::write(&mut conn, state.writes(), async |conn| {
        let user = store::insert_user(
            conn,
            &NewUser {
                email: &email,
                password_hash: &hash,
                display_name: &display_name,
                // Every account starts as a user; only an admin makes hosts and admins.
                role: Role::User.as_str(),
            },
        )
        .await?
        .ok_or_else(|| AppError::Conflict("an account with this email already exists".into()))?;
        start_session(state, conn, user, Uuid::new_v4()).await
    })
    .await
}

pub async fn log_in(
    state: &Services,
    email: &str,
    password: String,
    client: Option<IpAddr>,
) -> AppResult<Session> {
    const INVALID: AppError = AppError::Unauthenticated("invalid credentials");
    // Not validated beyond normalising: a malformed email is just another wrong login.
    let email = email.trim().to_lowercase();
    // Counted before the password is looked at: concurrent guesses cannot all get in.
    let attempt = rate_limit::begin_login(state, &email, client).await?;
    if password.len() > password::MAX_LEN * 4 {
        return Err(INVALID);
    }
    let mut conn = state.db.get().await?;
    let user = store::user_by_email(&mut conn, &email).await?;
    let ok = password::verify(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    match user {
        // Said only to whoever knows the password: a guesser learns nothing new.
        Some(user) if ok && user.locked_at.is_some() => {
            rate_limit::login_succeeded(state, attempt).await?;
            Err(AppError::Forbidden(
                "this account is locked; contact the box office",
            ))
        }
        Some(user) if ok => {
            rate_limit::login_succeeded(state, attempt).await?;
            start_session(state, &mut conn, user, Uuid::new_v4()).await
        }
        _ => {
            tracing::info!(client.addr = ?client, "login failed");
            Err(INVALID)
        }
    }
}

enum Rotation {
    Rotated(Session),
    Invalid,
    Reused { user_id: i64, family_id: Uuid },
}

/// Exchanges a refresh token for a new pair. The presented token is used up; presenting it
/// again revokes every token of its family (it must have leaked).
pub async fn refresh(state: &Services, presented: &str) -> AppResult<Session> {
    let hash = tokens::hash_refresh_token(presented.trim());
    let mut conn = state.db.get().await?;
    let outcome = crate::in_doubt::write(&mut conn, state.writes(), async |conn| -> AppResult<Rotation> {
        let Some(row) = crate::locks::refresh_token(conn, &hash).await? else {
            return Ok(Rotation::Invalid);
        };
        if row.revoked_at.is_some() {
            return Ok(Rotation::Invalid);
        }
        if row.used_at.is_some() {
            store::revoke_family(conn, row.family_id).await?;
            revoke_sockets(state, row.user_id);
            return Ok(Rotation::Reused {
                user_id: row.user_id,
                family_id: row.family_id,
            });
        }
        if row.expires_at <= Utc::now() {
            return Ok(Rotation::Invalid);
        }
        store::mark_refresh_token_used(conn, row.id).await?;
        // A lock revokes the account's tokens; a refresh racing the lock (its new token
        // written after the lock's revocation read the table) is caught here next time.
        let Some(user) = store::user_by_id(conn, row.user_id)
            .await?
            .filter(|u| u.locked_at.is_none())
        else {
            return Ok(Rotation::Invalid);
        };
        Ok(Rotation::Rotated(
            start_session(state, conn, user, row.family_id).await?,
        ))
    })
    .await?;
    match outcome {
        Rotation::Rotated(session) => Ok(session),
        Rotation::Invalid => Err(AppError::Unauthenticated("invalid or expired refresh token")),
        Rotation::Reused { user_id, family_id } => {
            tracing::warn!(user.id = user_id, token.family = %family_id, "refresh token reused: family revoked");
            Err(AppError::Unauthenticated("invalid or expired refresh token"))
        }
    }
}

/// Revokes the session (token family) the refresh token belongs to. Unknown tokens are
/// ignored: logging out is idempotent.
pub async fn log_out(state: &Services, presented: &str) -> AppResult<()> {
    let hash = tokens::hash_refresh_token(presented.trim());
    let mut conn = state.db.get().await?;
    if let Some((family, user_id)) = store::family_of(&mut conn, &hash).await? {
        store::revoke_family(&mut conn, family).await?;
        revoke_sockets(state, user_id);
    }
    Ok(())
}

/// Ends the user's WebSockets on every instance (see `http::websocket`): a socket
/// authenticated before a logout or a detected token theft must not keep its authority.
fn revoke_sockets(state: &Services, user_id: i64) {
    state.live.hub.publish(super::REVOKED_TOPIC, user_id.to_string());
}

pub(super) async fn start_session(
    state: &Services,
    conn: &mut AsyncPgConnection,
    user: UserRow,
    family_id: Uuid,
) -> AppResult<Session> {
    let refresh_token = tokens::new_refresh_token();
    let expires_at = Utc::now()
        + chrono::Duration::from_std(state.config.refresh_token_ttl).map_err(AppError::internal)?;
    store::insert_refresh_token(
        conn,
        user.id,
        family_id,
        &tokens::hash_refresh_token(&refresh_token),
        expires_at,
    )
    .await?;
    let (access_token, access_token_expires_at) = state
        .jwt
        .issue_for_session(user.id, user.role()?, family_id)
        .map_err(AppError::internal)?;
    Ok(Session {
        access_token,
        access_token_expires_at,
        refresh_token,
        user,
    })
}

/// What `create-admin` did.
#[derive(Debug, Eq, PartialEq)]
pub enum AdminOutcome {
    Created,
    /// An existing account was made admin with the given password, its sessions revoked.
    PasswordReset {
        sessions_revoked: usize,
    },
}

/// `boxoffice create-admin`: creates the account as admin. An existing account is refused
/// (whoever signed it up chose its password: promoting it would hand them the admin role)
/// unless `reset_password` is set, which sets the given password, makes it admin and
/// revokes every session of the account.
pub async fn create_admin(
    conn: &mut AsyncPgConnection,
    email: &str,
    password: String,
    reset_password: bool,
) -> AppResult<(UserRow, AdminOutcome)> {
    let email = normalize_email(email, "--email")?;
    password::validate(&password, &email, "--password")?;
    if let Some(user) = store::user_by_email(conn, &email).await? {
        if !reset_password {
            return Err(AppError::Conflict(format!(
                "an account with {email} already exists and was NOT made admin: its password \
                 was chosen by whoever signed it up. Run again with --reset-password to make it \
                 admin with the password given here (its sessions are revoked)"
            )));
        }
        let hash = password::hash(password).await?;
        let (user, revoked) = conn
            .transaction(async |conn| -> AppResult<(UserRow, usize)> {
                store::set_password(conn, user.id, &hash).await?;
                let revoked = store::revoke_user_sessions(conn, user.id).await?;
                let user = store::set_role(conn, user.id, Role::Admin)
                    .await?
                    .ok_or(AppError::NotFound("user"))?;
                Ok((user, revoked))
            })
            .await?;
        return Ok((
            user,
            AdminOutcome::PasswordReset {
                sessions_revoked: revoked,
            },
        ));
    }
    let hash = password::hash(password).await?;
    let display_name = email.split('@').next().unwrap_or("admin").to_owned();
    let user = store::insert_user(
        conn,
        &NewUser {
            email: &email,
            password_hash: &hash,
            display_name: &display_name,
            role: Role::Admin.as_str(),
        },
    )
    .await?
    .ok_or_else(|| AppError::Conflict("the account was created concurrently; run again".into()))?;
    Ok((user, AdminOutcome::Created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" Alice@Example.COM ", "e").unwrap(),
            "alice@example.com"
        );
        for bad in ["", "alice", "@x.io", "a@b", "a@.io", "a b@x.io", "a@x.io."] {
            assert!(normalize_email(bad, "e").is_err(), "{bad}");
        }
    }
}
