//! Admin GraphQL: `users(search, first, after)` and `setUserRole(userId, role)`.

use async_graphql::{
    Context, ID, Object,
    connection::{Connection, Edge},
};

use crate::{
    auth::{Role, RoleGuard, User, actor, state},
    error::AppError,
    ids, pagination,
};

#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// Accounts whose email or display name contains `search`, oldest first. Admins only.
    #[graphql(
        guard = "RoleGuard(Role::Admin)",
        complexity = "pagination::cost(first, child_complexity)"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, User>> {
        let limit = pagination::page_size(first)?;
        let after = pagination::decode::<i64>(after.as_deref())?;
        let mut conn = state(ctx)?.db.get().await.map_err(AppError::from)?;
        let mut rows = super::store::search_users(&mut conn, search.as_deref(), after, limit)
            .await
            .map_err(AppError::from)?;
        let has_next = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let mut connection = Connection::new(after.is_some(), has_next);
        for row in rows {
            let cursor = pagination::encode(row.id);
            connection.edges.push(Edge::new(cursor, User::try_from(row)?));
        }
        Ok(connection)
    }
}

#[derive(Default)]
pub struct AdminMutation;

#[Object]
impl AdminMutation {
    /// Changes an account's role; effective on that account's next request. Audited.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn set_user_role(&self, ctx: &Context<'_>, user_id: ID, role: Role) -> async_graphql::Result<User> {
        let user_id = ids::parse(&user_id, "userId")?;
        let actor = actor(ctx).await?;
        let mut conn = state(ctx)?.db.get().await.map_err(AppError::from)?;
        let row = super::store::set_role(&mut conn, actor, user_id, role).await?;
        Ok(User::try_from(row)?)
    }
}
