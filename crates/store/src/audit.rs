//! The audit log: one row per privileged action, written in the same transaction as the
//! action itself so that neither exists without the other.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::audit_log;

pub async fn record(
    conn: &mut AsyncPgConnection,
    actor_id: i64,
    action: &str,
    target_type: &str,
    target_id: Option<i64>,
    details: serde_json::Value,
) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::actor_id.eq(actor_id),
            audit_log::action.eq(action),
            audit_log::target_type.eq(target_type),
            audit_log::target_id.eq(target_id),
            audit_log::details.eq(details),
        ))
        .execute(conn)
        .await
        .map(drop)
}
