//! Door credentials: a host (or an admin) makes a scanner for one performance and hands
//! its token to the door staff; the token can check in for that performance and do
//! nothing else, and revoking the scanner ends it at once (every use reads it).
//!
//! The token is shown once, at creation; only its SHA-256 is stored, like refresh tokens.
//! It is recognisable by its prefix, so the HTTP layer tells it from an access token
//! without a database read.

use data_encoding::BASE64URL_NOPAD;
use diesel::{
    OptionalExtension as _, QueryableByName,
    sql_types::{BigInt, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use sha2::{Digest as _, Sha256};

use super::store::{self, ScannerRow};
use crate::{
    auth::{Actor, SCANNER_TOKEN_PREFIX as TOKEN_PREFIX},
    error::{AppError, AppResult},
};

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[derive(QueryableByName)]
struct Owner {
    #[diesel(sql_type = BigInt)]
    host_id: i64,
    #[diesel(sql_type = Text)]
    status: String,
}

/// The performance's host or an admin; someone else's draft is NOT_FOUND.
async fn ensure_manages_schedule(
    conn: &mut AsyncPgConnection,
    actor: Actor,
    schedule_id: i64,
) -> AppResult<()> {
    let owner: Owner = diesel::sql_query(
        "SELECT c.host_id, c.status FROM schedules s JOIN concerts c ON c.id = s.concert_id WHERE s.id = $1",
    )
    .bind::<BigInt, _>(schedule_id)
    .get_result(conn)
    .await
    .optional()?
    .ok_or(AppError::NotFound("schedule"))?;
    match actor.ensure_manages(owner.host_id) {
        Err(_) if owner.status == "draft" => Err(AppError::NotFound("schedule")),
        other => other,
    }
}

/// A new scanner and its token (the only time the token is seen).
pub async fn create(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    schedule_id: i64,
    name: &str,
) -> AppResult<(ScannerRow, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_input("name", "must be 1 to 100 characters"));
    }
    let token = format!(
        "{TOKEN_PREFIX}{}",
        BASE64URL_NOPAD.encode(&rand::random::<[u8; 32]>())
    );
    crate::in_doubt::write(conn, writes, async |conn| {
        ensure_manages_schedule(conn, actor, schedule_id).await?;
        let row = store::insert_scanner(conn, schedule_id, name, &token_hash(&token), actor.id).await?;
        Ok((row, token))
    })
    .await
}

pub async fn revoke(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    id: i64,
) -> AppResult<ScannerRow> {
    crate::in_doubt::write(conn, writes, async |conn| {
        let scanner = store::scanner(conn, id)
            .await?
            .ok_or(AppError::NotFound("scanner"))?;
        ensure_manages_schedule(conn, actor, scanner.schedule_id).await?;
        store::revoke_scanner(conn, id)
            .await?
            .ok_or(AppError::NotFound("scanner"))
    })
    .await
}

/// The live scanner a token belongs to.
pub async fn authenticate(conn: &mut AsyncPgConnection, token: &str) -> AppResult<ScannerRow> {
    store::scanner_by_token(conn, &token_hash(token))
        .await?
        .ok_or(AppError::Unauthenticated(
            "this scanner token is not valid (revoked or unknown)",
        ))
}

/// The scanners of a performance, for its host.
pub async fn of_schedule(
    conn: &mut AsyncPgConnection,
    actor: Actor,
    schedule_id: i64,
) -> AppResult<Vec<ScannerRow>> {
    ensure_manages_schedule(conn, actor, schedule_id).await?;
    store::scanners_of(conn, schedule_id).await
}

/// Whether `actor` may read a performance's door data (revoked tickets, live check-ins).
pub async fn may_watch(conn: &mut AsyncPgConnection, actor: Actor, schedule_id: i64) -> AppResult<()> {
    ensure_manages_schedule(conn, actor, schedule_id).await
}
