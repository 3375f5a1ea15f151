//! Admin queries and role changes.

use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use super::audit;
use crate::{
    auth::{
        Actor, Role,
        store::{self as users_store, UserRow},
    },
    error::{AppError, AppResult},
    schema::users,
};

/// Users whose email or display name contains `search` (case-insensitive), by id, after
/// the cursor id. Fetches one extra row to tell whether there is a next page.
pub async fn search_users(
    conn: &mut AsyncPgConnection,
    search: Option<&str>,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<UserRow>> {
    let mut query = users::table
        .select(UserRow::as_select())
        .order(users::id.asc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(term) = search.map(str::trim).filter(|s| !s.is_empty()) {
        let pattern = format!("%{}%", escape_like(term));
        query = query.filter(
            users::email
                .concat(" ")
                .concat(users::display_name)
                .ilike(pattern),
        );
    }
    if let Some(after) = after {
        query = query.filter(users::id.gt(after));
    }
    query.load(conn).await
}

fn escape_like(term: &str) -> String {
    term.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Changes a user's role and audits it, in one transaction. An admin cannot change their
/// own role (that is how the last admin would lock everyone out).
pub async fn set_role(
    conn: &mut AsyncPgConnection,
    actor: Actor,
    user_id: i64,
    role: Role,
) -> AppResult<UserRow> {
    actor.ensure_role(Role::Admin)?;
    if actor.id == user_id {
        return Err(AppError::Conflict("admins cannot change their own role".into()));
    }
    conn.transaction(async |conn| -> AppResult<UserRow> {
        let before = users_store::current_role(conn, user_id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        let row = users_store::set_role(conn, user_id, role)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        audit::record(
            conn,
            actor.id,
            "set_user_role",
            "user",
            Some(user_id),
            serde_json::json!({ "from": before.as_str(), "to": role.as_str() }),
        )
        .await?;
        Ok(row)
    })
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(super::escape_like("50%_a\\"), "50\\%\\_a\\\\");
    }
}
