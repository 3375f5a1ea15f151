//! Notices (C20's "the host told"): what boxoffice tells a user when no request of theirs
//! is waiting for the answer, such as a webhook given up on. They are written where the
//! decision is made (the relay, in `boxoffice_outbox`); here a signed-in user reads their
//! own and marks them read. Nobody reads another's, an admin included: a notice is mail.

use boxoffice_store::notices::{self as store, NoticeRow};
use diesel_async::AsyncPgConnection;

use crate::{auth::Actor, error::AppResult};

/// The actor's notices, newest first (at most `limit + 1`: the extra one says there is more).
pub async fn list(
    conn: &mut AsyncPgConnection,
    actor: Actor,
    unread_only: bool,
    before: Option<i64>,
    limit: i64,
) -> AppResult<Vec<NoticeRow>> {
    Ok(store::list(conn, actor.id, unread_only, before, limit).await?)
}

/// Marks the actor's notices up to `up_to` read; how many were unread. An id that is not
/// theirs marks only their own below it, so it tells nothing of others'.
pub async fn mark_read(conn: &mut AsyncPgConnection, actor: Actor, up_to: i64) -> AppResult<usize> {
    Ok(store::mark_read(conn, actor.id, up_to).await?)
}

pub async fn unread(conn: &mut AsyncPgConnection, actor: Actor) -> AppResult<i64> {
    Ok(store::unread_count(conn, actor.id).await?)
}
