//! Tickets, their signing keys, scanners and scans in PostgreSQL. Every function takes the
//! caller's connection, so issuing runs inside the payment's transaction and revoking inside
//! the cancellation's.
//!
//! Locks: the admission is a conditional update of one ticket row (`... WHERE status =
//! 'valid'`), the only lock a check-in takes besides its own scan row; nothing that holds a
//! ticket row waits for a lock of `locks`' order, so it needs no place in it. A payment
//! inserts tickets after its user row (I6 step 6); a cancellation revokes them after its
//! seats. Neither waits for a check-in for longer than its one-row update.

use boxoffice_ticket_codes::{
    Admission, CheckInStatus, KeyId, TicketClaims, TicketRecord, TicketSigner, TicketStatus,
};
use chrono::{DateTime, Utc};
use diesel::{
    OptionalExtension as _, QueryableByName,
    sql_types::{Array, BigInt, Bool, Bytea, Int4, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::{AppError, AppResult};

/// A ticket with its holder's name.
#[derive(QueryableByName, Clone, Debug)]
pub struct TicketRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub reservation_id: i64,
    #[diesel(sql_type = BigInt)]
    pub schedule_id: i64,
    #[diesel(sql_type = BigInt)]
    pub seat_id: i64,
    #[diesel(sql_type = Int4)]
    pub key_id: i32,
    #[diesel(sql_type = Timestamptz)]
    pub issued_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub code: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub checked_in_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub gate: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub revoked_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Text)]
    pub holder_name: String,
}

impl TicketRow {
    pub fn status(&self) -> AppResult<TicketStatus> {
        TicketStatus::parse(&self.status.to_ascii_uppercase())
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("unknown ticket status {:?}", self.status)))
    }

    /// What the door decides on.
    pub fn record(&self) -> AppResult<TicketRecord> {
        let status = self.status()?;
        Ok(TicketRecord {
            id: self.id,
            schedule_id: self.schedule_id,
            seat_id: self.seat_id,
            issued_at: self.issued_at.timestamp(),
            status,
            admission: match (status, self.checked_in_at, &self.gate) {
                (TicketStatus::Used, Some(at), Some(gate)) => Some(Admission {
                    at,
                    gate: gate.clone(),
                }),
                _ => None,
            },
        })
    }
}

const TICKET_COLUMNS: &str =
    "t.id, t.reservation_id, t.schedule_id, t.seat_id, t.key_id, t.issued_at, t.code,
    t.status, t.checked_in_at, t.gate, t.revoked_at, u.display_name AS holder_name";

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Issues one ticket per seat of a reservation just paid, in the payment's transaction:
/// ids are drawn first because each code signs its own ticket id.
pub async fn issue(
    conn: &mut AsyncPgConnection,
    signer: &TicketSigner,
    reservation_id: i64,
    schedule_id: i64,
    seat_ids: &[i64],
    issued_at: DateTime<Utc>,
) -> AppResult<()> {
    if seat_ids.is_empty() {
        return Ok(());
    }
    let count = i32::try_from(seat_ids.len()).map_err(AppError::internal)?;
    let ids: Vec<i64> = diesel::sql_query(
        "SELECT nextval(pg_get_serial_sequence('tickets', 'id')) AS id FROM generate_series(1, $1)",
    )
    .bind::<Int4, _>(count)
    .load::<Id>(conn)
    .await?
    .into_iter()
    .map(|r| r.id)
    .collect();
    let issued = issued_at.timestamp();
    let codes: Vec<String> = ids
        .iter()
        .zip(seat_ids)
        .map(|(&ticket_id, &seat_id)| {
            signer.sign(TicketClaims {
                key_id: signer.key_id(),
                ticket_id,
                schedule_id,
                seat_id,
                issued_at: issued,
            })
        })
        .collect();
    diesel::sql_query(
        "INSERT INTO tickets (id, reservation_id, schedule_id, seat_id, key_id, issued_at, code)
         SELECT t.id, $2, $3, t.seat_id, $4, to_timestamp($5), t.code
         FROM unnest($1::bigint[], $6::bigint[], $7::text[]) AS t(id, seat_id, code)",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<BigInt, _>(reservation_id)
    .bind::<BigInt, _>(schedule_id)
    .bind::<Int4, _>(key_id_column(signer.key_id())?)
    .bind::<BigInt, _>(issued)
    .bind::<Array<BigInt>, _>(seat_ids)
    .bind::<Array<Text>, _>(&codes)
    .execute(conn)
    .await?;
    Ok(())
}

fn key_id_column(key_id: KeyId) -> AppResult<i32> {
    i32::try_from(key_id.0).map_err(AppError::internal)
}

/// Revokes the tickets of reservations being cancelled or refunded; the revoked ids.
pub async fn revoke_reservations(
    conn: &mut AsyncPgConnection,
    reservation_ids: &[i64],
) -> AppResult<Vec<i64>> {
    Ok(diesel::sql_query(
        "UPDATE tickets SET status = 'revoked', revoked_at = now()
         WHERE reservation_id = ANY($1) AND status <> 'revoked' RETURNING id",
    )
    .bind::<Array<BigInt>, _>(reservation_ids)
    .load::<Id>(conn)
    .await?
    .into_iter()
    .map(|r| r.id)
    .collect())
}

/// The tickets of these reservations, by ticket id.
pub async fn of_reservations(
    conn: &mut AsyncPgConnection,
    reservation_ids: &[i64],
) -> AppResult<Vec<TicketRow>> {
    Ok(diesel::sql_query(format!(
        "SELECT {TICKET_COLUMNS} FROM tickets t JOIN reservations r ON r.id = t.reservation_id
         JOIN users u ON u.id = r.user_id WHERE t.reservation_id = ANY($1) ORDER BY t.id"
    ))
    .bind::<Array<BigInt>, _>(reservation_ids)
    .load(conn)
    .await?)
}

pub async fn ticket(conn: &mut AsyncPgConnection, id: i64) -> AppResult<Option<TicketRow>> {
    Ok(diesel::sql_query(format!(
        "SELECT {TICKET_COLUMNS} FROM tickets t JOIN reservations r ON r.id = t.reservation_id
         JOIN users u ON u.id = r.user_id WHERE t.id = $1"
    ))
    .bind::<BigInt, _>(id)
    .get_result(conn)
    .await
    .optional()?)
}

pub async fn tickets(conn: &mut AsyncPgConnection, ids: &[i64]) -> AppResult<Vec<TicketRow>> {
    Ok(diesel::sql_query(format!(
        "SELECT {TICKET_COLUMNS} FROM tickets t JOIN reservations r ON r.id = t.reservation_id
         JOIN users u ON u.id = r.user_id WHERE t.id = ANY($1)"
    ))
    .bind::<Array<BigInt>, _>(ids)
    .load(conn)
    .await?)
}

/// The admission: the ticket goes from VALID to USED, or nothing happens (someone else
/// admitted it first, or it was revoked). Exactly one of any number of concurrent scans
/// of a ticket gets `true`.
pub async fn admit(
    conn: &mut AsyncPgConnection,
    ticket_id: i64,
    at: DateTime<Utc>,
    gate: &str,
) -> AppResult<bool> {
    let n = diesel::sql_query(
        "UPDATE tickets SET status = 'used', checked_in_at = $2, gate = $3 WHERE id = $1 AND status = 'valid'",
    )
    .bind::<BigInt, _>(ticket_id)
    .bind::<Timestamptz, _>(at)
    .bind::<Text, _>(gate)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// A performance's door times come from its start; and whether it is cancelled.
#[derive(QueryableByName, Clone, Debug)]
pub struct ShowRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub starts_at: DateTime<Utc>,
    #[diesel(sql_type = Int4)]
    pub capacity: i32,
}

pub async fn show(conn: &mut AsyncPgConnection, schedule_id: i64) -> AppResult<Option<ShowRow>> {
    Ok(
        diesel::sql_query("SELECT id, starts_at, capacity FROM schedules WHERE id = $1")
            .bind::<BigInt, _>(schedule_id)
            .get_result(conn)
            .await
            .optional()?,
    )
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

pub async fn admitted_count(conn: &mut AsyncPgConnection, schedule_id: i64) -> AppResult<i64> {
    Ok(
        diesel::sql_query("SELECT count(*) AS n FROM tickets WHERE schedule_id = $1 AND status = 'used'")
            .bind::<BigInt, _>(schedule_id)
            .get_result::<Count>(conn)
            .await?
            .n,
    )
}

#[derive(QueryableByName, Clone, Debug)]
pub struct GateCount {
    #[diesel(sql_type = Text)]
    pub gate: String,
    #[diesel(sql_type = BigInt)]
    pub admitted: i64,
}

pub async fn admitted_by_gate(conn: &mut AsyncPgConnection, schedule_id: i64) -> AppResult<Vec<GateCount>> {
    Ok(diesel::sql_query(
        "SELECT gate, count(*) AS admitted FROM tickets WHERE schedule_id = $1 AND status = 'used'
         GROUP BY gate ORDER BY gate",
    )
    .bind::<BigInt, _>(schedule_id)
    .load(conn)
    .await?)
}

#[derive(QueryableByName, Clone, Debug)]
pub struct RevokedRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub revoked_at: DateTime<Utc>,
}

/// Tickets of a performance revoked at or after `since` (all of them without it), oldest
/// first, so a scanner can ask again from the last one it saw.
pub async fn revoked_since(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    since: Option<DateTime<Utc>>,
) -> AppResult<Vec<RevokedRow>> {
    Ok(diesel::sql_query(
        "SELECT id, revoked_at FROM tickets WHERE schedule_id = $1 AND status = 'revoked'
         AND ($2::timestamptz IS NULL OR revoked_at >= $2) ORDER BY revoked_at, id",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<Nullable<Timestamptz>, _>(since)
    .load(conn)
    .await?)
}

// ---- keys ----

#[derive(QueryableByName, Clone, Debug)]
pub struct KeyRow {
    #[diesel(sql_type = Int4)]
    pub key_id: i32,
    #[diesel(sql_type = Bytea)]
    pub public_key: Vec<u8>,
    /// The start of the last performance this key signed tickets for.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_show: Option<DateTime<Utc>>,
}

/// Records the signing key's public half under its id. The same id naming another key is
/// refused: codes would name the wrong key.
pub async fn register_key(
    conn: &mut AsyncPgConnection,
    key_id: KeyId,
    public_key: &[u8; 32],
) -> AppResult<()> {
    let id = key_id_column(key_id)?;
    diesel::sql_query("INSERT INTO ticket_keys (key_id, public_key) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind::<Int4, _>(id)
        .bind::<Bytea, _>(public_key.as_slice())
        .execute(conn)
        .await?;
    let stored: Option<KeyRow> = diesel::sql_query(
        "SELECT key_id, public_key, NULL::timestamptz AS last_show FROM ticket_keys WHERE key_id = $1",
    )
    .bind::<Int4, _>(id)
    .get_result(conn)
    .await
    .optional()?;
    match stored {
        Some(k) if k.public_key == public_key => Ok(()),
        Some(_) => Err(AppError::internal(anyhow::anyhow!(
            "TICKET_SIGNING_KEY: key id {key_id} already names another public key; give a new key a new id"
        ))),
        None => Err(AppError::internal(anyhow::anyhow!(
            "TICKET_SIGNING_KEY: this key is already registered under another key id"
        ))),
    }
}

/// The next free key id (for a development key made at start).
pub async fn next_key_id(conn: &mut AsyncPgConnection) -> AppResult<i32> {
    diesel::sql_query("SELECT coalesce(max(key_id) + 1, 1)::bigint AS n FROM ticket_keys")
        .get_result::<Count>(conn)
        .await?
        .n
        .try_into()
        .map_err(AppError::internal)
}

pub async fn keys(conn: &mut AsyncPgConnection) -> AppResult<Vec<KeyRow>> {
    Ok(diesel::sql_query(
        "SELECT k.key_id, k.public_key,
                (SELECT max(s.starts_at) FROM tickets t JOIN schedules s ON s.id = t.schedule_id
                 WHERE t.key_id = k.key_id) AS last_show
         FROM ticket_keys k ORDER BY k.key_id",
    )
    .load(conn)
    .await?)
}

// ---- scanners ----

#[derive(QueryableByName, Clone, Debug)]
pub struct ScannerRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub schedule_id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub created_by: i64,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub revoked_at: Option<DateTime<Utc>>,
}

const SCANNER_COLUMNS: &str = "id, schedule_id, name, created_by, created_at, revoked_at";

pub async fn insert_scanner(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    name: &str,
    token_hash: &[u8],
    created_by: i64,
) -> AppResult<ScannerRow> {
    Ok(diesel::sql_query(format!(
        "INSERT INTO scanners (schedule_id, name, token_hash, created_by) VALUES ($1, $2, $3, $4)
         RETURNING {SCANNER_COLUMNS}"
    ))
    .bind::<BigInt, _>(schedule_id)
    .bind::<Text, _>(name)
    .bind::<Bytea, _>(token_hash)
    .bind::<BigInt, _>(created_by)
    .get_result(conn)
    .await?)
}

pub async fn scanner(conn: &mut AsyncPgConnection, id: i64) -> AppResult<Option<ScannerRow>> {
    Ok(
        diesel::sql_query(format!("SELECT {SCANNER_COLUMNS} FROM scanners WHERE id = $1"))
            .bind::<BigInt, _>(id)
            .get_result(conn)
            .await
            .optional()?,
    )
}

/// A live (not revoked) scanner by its token's hash.
pub async fn scanner_by_token(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> AppResult<Option<ScannerRow>> {
    Ok(diesel::sql_query(format!(
        "SELECT {SCANNER_COLUMNS} FROM scanners WHERE token_hash = $1 AND revoked_at IS NULL"
    ))
    .bind::<Bytea, _>(token_hash)
    .get_result(conn)
    .await
    .optional()?)
}

pub async fn revoke_scanner(conn: &mut AsyncPgConnection, id: i64) -> AppResult<Option<ScannerRow>> {
    Ok(diesel::sql_query(format!(
        "UPDATE scanners SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {SCANNER_COLUMNS}"
    ))
    .bind::<BigInt, _>(id)
    .get_result(conn)
    .await
    .optional()?)
}

pub async fn scanners_of(conn: &mut AsyncPgConnection, schedule_id: i64) -> AppResult<Vec<ScannerRow>> {
    Ok(diesel::sql_query(format!(
        "SELECT {SCANNER_COLUMNS} FROM scanners WHERE schedule_id = $1 ORDER BY id"
    ))
    .bind::<BigInt, _>(schedule_id)
    .load(conn)
    .await?)
}

// ---- scans ----

/// A scan as stored, by its nonce.
#[derive(QueryableByName, Clone, Debug)]
pub struct ScanRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub nonce: String,
    #[diesel(sql_type = Bytea)]
    pub code_hash: Vec<u8>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub ticket_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub first_check_in_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub first_gate: Option<String>,
}

impl ScanRow {
    pub fn status(&self) -> AppResult<CheckInStatus> {
        CheckInStatus::parse(&self.status)
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("unknown scan status {:?}", self.status)))
    }
}

/// A scan to store.
pub struct NewScan<'a> {
    pub schedule_id: i64,
    pub scanner_id: i64,
    pub nonce: &'a str,
    pub code_hash: &'a [u8],
    pub ticket_id: Option<i64>,
    pub gate: &'a str,
    pub scanned_at: DateTime<Utc>,
    pub offline: bool,
    pub status: CheckInStatus,
    pub first: Option<&'a Admission>,
}

/// Claims the scan's nonce: its id, or `None` when the nonce was stored before (a scan
/// sent again). A concurrent scan with the same nonce waits here until the first commits,
/// so a nonce is decided once.
pub async fn claim_scan(conn: &mut AsyncPgConnection, scan: &NewScan<'_>) -> AppResult<Option<i64>> {
    Ok(diesel::sql_query(
        "INSERT INTO check_ins (schedule_id, scanner_id, nonce, code_hash, ticket_id, gate, scanned_at, offline,
                                status, first_check_in_at, first_gate)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (schedule_id, nonce) DO NOTHING RETURNING id",
    )
    .bind::<BigInt, _>(scan.schedule_id)
    .bind::<BigInt, _>(scan.scanner_id)
    .bind::<Text, _>(scan.nonce)
    .bind::<Bytea, _>(scan.code_hash)
    .bind::<Nullable<BigInt>, _>(scan.ticket_id)
    .bind::<Text, _>(scan.gate)
    .bind::<Timestamptz, _>(scan.scanned_at)
    .bind::<Bool, _>(scan.offline)
    .bind::<Text, _>(scan.status.as_str())
    .bind::<Nullable<Timestamptz>, _>(scan.first.map(|a| a.at))
    .bind::<Nullable<Text>, _>(scan.first.map(|a| a.gate.as_str()))
    .get_result::<Id>(conn)
    .await
    .optional()?
    .map(|r| r.id))
}

/// Corrects a claimed scan's answer after losing the admission race.
pub async fn set_scan_outcome(
    conn: &mut AsyncPgConnection,
    id: i64,
    status: CheckInStatus,
    first: Option<&Admission>,
) -> AppResult<()> {
    diesel::sql_query(
        "UPDATE check_ins SET status = $2, first_check_in_at = $3, first_gate = $4 WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(status.as_str())
    .bind::<Nullable<Timestamptz>, _>(first.map(|a| a.at))
    .bind::<Nullable<Text>, _>(first.map(|a| a.gate.as_str()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Stored scans of a performance by nonce.
pub async fn scans(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    nonces: &[String],
) -> AppResult<Vec<ScanRow>> {
    Ok(diesel::sql_query(
        "SELECT id, nonce, code_hash, ticket_id, status, first_check_in_at, first_gate FROM check_ins
         WHERE schedule_id = $1 AND nonce = ANY($2)",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<Array<Text>, _>(nonces)
    .load(conn)
    .await?)
}
