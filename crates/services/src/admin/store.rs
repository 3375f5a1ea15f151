//! Admin queries and role changes.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

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
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    user_id: i64,
    role: Role,
) -> AppResult<UserRow> {
    actor.ensure_role(Role::Admin)?;
    if actor.id == user_id {
        return Err(AppError::Conflict("admins cannot change their own role".into()));
    }
    crate::in_doubt::write(conn, writes, async |conn| -> AppResult<UserRow> {
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

#[derive(diesel::Queryable, diesel::Selectable, Debug)]
#[diesel(table_name = crate::schema::audit_log)]
pub struct AuditRow {
    pub id: i64,
    pub actor_id: Option<i64>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<i64>,
    pub details: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// What the audit log is narrowed to; every part optional, all of them together.
#[derive(Default, Debug)]
pub struct AuditFilter {
    pub actor_id: Option<i64>,
    /// Part of the acting account's email or display name (case-insensitive).
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<i64>,
    /// At or after this instant.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Before this instant.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The audit log, newest first, after the cursor id, narrowed by `filter`.
pub async fn audit_log(
    conn: &mut AsyncPgConnection,
    filter: &AuditFilter,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    use crate::schema::audit_log;
    let mut q = audit_log::table
        .select(AuditRow::as_select())
        .order(audit_log::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(audit_log::id.lt(after));
    }
    if let Some(id) = filter.actor_id {
        q = q.filter(audit_log::actor_id.eq(id));
    }
    if let Some(term) = filter.actor.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let pattern = format!("%{}%", escape_like(term));
        let actors = users::table
            .filter(
                users::email
                    .concat(" ")
                    .concat(users::display_name)
                    .ilike(pattern),
            )
            .select(users::id.nullable());
        q = q.filter(audit_log::actor_id.eq_any(actors));
    }
    if let Some(action) = &filter.action {
        q = q.filter(audit_log::action.eq(action.clone()));
    }
    if let Some(t) = &filter.target_type {
        q = q.filter(audit_log::target_type.eq(t.clone()));
    }
    if let Some(id) = filter.target_id {
        q = q.filter(audit_log::target_id.eq(id));
    }
    if let Some(since) = filter.since {
        q = q.filter(audit_log::created_at.ge(since));
    }
    if let Some(until) = filter.until {
        q = q.filter(audit_log::created_at.lt(until));
    }
    q.load(conn).await
}

/// The names an audit page shows instead of bare ids: its accounts (actors and user
/// targets), concert titles, and schedules as "concert title, start time".
#[derive(Default)]
pub struct AuditNames {
    pub users: std::collections::HashMap<i64, UserRow>,
    pub concerts: std::collections::HashMap<i64, String>,
    pub schedules: std::collections::HashMap<i64, String>,
    pub reservations: std::collections::HashMap<i64, String>,
}

impl AuditNames {
    /// A readable name of the row's target, when its type is known and it still exists.
    pub fn target(&self, row: &AuditRow) -> Option<String> {
        let id = row.target_id?;
        match row.target_type.as_str() {
            "user" => self
                .users
                .get(&id)
                .map(|u| format!("{} <{}>", u.display_name, u.email)),
            "concert" => self.concerts.get(&id).cloned(),
            "schedule" => self.schedules.get(&id).cloned(),
            "reservation" => self.reservations.get(&id).cloned(),
            _ => None,
        }
    }
}

/// Loads the names for a page of audit rows in four queries, whatever its length.
pub async fn audit_names(conn: &mut AsyncPgConnection, rows: &[AuditRow]) -> QueryResult<AuditNames> {
    use crate::schema::{concerts, schedules};
    let of = |kind: &str| -> Vec<i64> {
        rows.iter()
            .filter(|r| r.target_type == kind)
            .filter_map(|r| r.target_id)
            .collect()
    };
    let mut user_ids: Vec<i64> = rows.iter().filter_map(|r| r.actor_id).collect();
    user_ids.extend(of("user"));
    user_ids.sort_unstable();
    user_ids.dedup();
    let mut names = AuditNames::default();
    if !user_ids.is_empty() {
        for u in users_store::users_by_ids(conn, &user_ids).await? {
            names.users.insert(u.id, u);
        }
    }
    let concert_ids = of("concert");
    if !concert_ids.is_empty() {
        let found: Vec<(i64, String)> = concerts::table
            .filter(concerts::id.eq_any(&concert_ids))
            .select((concerts::id, concerts::title))
            .load(conn)
            .await?;
        names.concerts.extend(found);
    }
    let schedule_ids = of("schedule");
    if !schedule_ids.is_empty() {
        let found: Vec<(i64, String, chrono::DateTime<chrono::Utc>)> = schedules::table
            .inner_join(concerts::table)
            .filter(schedules::id.eq_any(&schedule_ids))
            .select((schedules::id, concerts::title, schedules::starts_at))
            .load(conn)
            .await?;
        names.schedules.extend(
            found
                .into_iter()
                .map(|(id, title, at)| (id, format!("{title}, {}", at.format("%Y-%m-%d %H:%M UTC")))),
        );
    }
    let reservation_ids = of("reservation");
    if !reservation_ids.is_empty() {
        use crate::schema::reservations;
        let found: Vec<(i64, String, chrono::DateTime<chrono::Utc>, String)> = reservations::table
            .inner_join(schedules::table.inner_join(concerts::table))
            .inner_join(users::table)
            .filter(reservations::id.eq_any(&reservation_ids))
            .select((
                reservations::id,
                concerts::title,
                schedules::starts_at,
                users::email,
            ))
            .load(conn)
            .await?;
        names
            .reservations
            .extend(found.into_iter().map(|(id, title, at, buyer)| {
                (
                    id,
                    format!("#{id} of {buyer}, {title}, {}", at.format("%Y-%m-%d %H:%M UTC")),
                )
            }));
    }
    Ok(names)
}

#[derive(diesel::QueryableByName, Debug)]
pub struct ScheduleSales {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub schedule_id: i64,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub capacity: i32,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub seats_held: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub seats_sold: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub complimentary: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub revenue: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub refunded: i64,
}

/// Per schedule of a concert: seats held now, seats sold (paid for) and given away
/// (complimentary) apart, points taken by paid reservations that stand, and points refunded.
/// A sold seat's reservation says which it is; `salesTimeline` counts the same paid seats.
pub async fn sales(conn: &mut AsyncPgConnection, concert_id: i64) -> QueryResult<Vec<ScheduleSales>> {
    diesel::sql_query(
        "SELECT sc.id AS schedule_id, sc.capacity,
                (SELECT count(*) FROM seats s WHERE s.schedule_id = sc.id AND s.status = 'held') AS seats_held,
                sold.paid AS seats_sold, sold.given AS complimentary,
                coalesce((SELECT sum(r.total_price) FROM reservations r
                          WHERE r.schedule_id = sc.id AND r.status = 'confirmed'), 0)::bigint AS revenue,
                coalesce((SELECT sum(l.amount) FROM point_ledger l JOIN reservations r ON r.id = l.reservation_id
                          WHERE r.schedule_id = sc.id AND l.kind = 'refund'), 0)::bigint AS refunded
         FROM schedules sc
         CROSS JOIN LATERAL (
             SELECT count(*) FILTER (WHERE NOT r.complimentary) AS paid,
                    count(*) FILTER (WHERE r.complimentary) AS given
             FROM seats s JOIN reservations r ON r.id = s.reservation_id
             WHERE s.schedule_id = sc.id AND s.status = 'sold') sold
         WHERE sc.concert_id = $1 ORDER BY sc.starts_at, sc.id",
    )
    .bind::<diesel::sql_types::BigInt, _>(concert_id)
    .load(conn)
    .await
}
