//! Every row lock of boxoffice (`FOR UPDATE`, `SKIP LOCKED`, advisory locks), and the one
//! order they are taken in. No other module writes a locking clause: a new lock goes here,
//! in its place in the order, so a deadlock cycle can be ruled out by reading one file.
//!
//! # Lock order (I6)
//!
//! A transaction takes the locks it needs in this order, never going back up the list:
//!
//! 1. the concert row ([`concert`]): publishing, updating and cancelling a concert, adding a
//!    schedule, cancelling a schedule (its concert first, for the ownership check);
//! 2. schedule rows ([`schedule`], [`schedules_for_batch`]): the booking-count lock. Every
//!    writer that can make a seat of the schedule available or unavailable holds it (a hold
//!    batch, cancel, expiry, cancelling the schedule, replacing the layout), so a batch holding
//!    it decides all its requests from one read of the seats. Several schedules (cancelling a
//!    concert, a group of hold batches) in ascending id, all before any lock further down;
//! 3. idempotency keys of hold requests ([`hold_keys`], transaction-scoped advisory locks in
//!    ascending hash): one user's key sent to two schedules at once is claimed by one batch,
//!    and the other batch reads the first one's committed reservation (it waits at most for
//!    one batch of another schedule, which takes no lock further up this list);
//! 4. reservation rows ([`reservation`], [`live_reservations`], [`due_holds`]), ascending id;
//! 5. seat rows ([`seats_of`]), ascending id;
//! 6. user rows ([`users`]), ascending id (balances);
//! 7. the waiting entries of a schedule's line ([`waitlist`]), ascending id, by the
//!    transaction that just freed seats of it (cancel, expiry), to serve the line. Every
//!    writer of a line holds its schedule row first (joining and leaving take step 2, then
//!    write their entry), so nobody holding an entry lock ever waits for this step. Serving
//!    then holds free seats for the entries: it writes seat rows that were *available*, which
//!    only holders of the schedule row ever lock (as a hold batch does), so coming back to
//!    seat rows after step 7 cannot close a cycle.
//!
//! Payment changes no availability (held → sold), so it starts at step 4: reservation →
//! seats → user. The sweeper: schedule → overdue holds (`SKIP LOCKED`: a hold being paid is
//! left to the payment) → their seats. Inserting a reservation makes PostgreSQL take a
//! `KEY SHARE` lock on its user row (the foreign key) before the batch updates seats; that
//! lock only conflicts with a payment's or refund's `FOR UPDATE` of the user, and neither of
//! those waits for anything a batch holds (they lock held or sold seats, a batch only
//! available ones), so no cycle arises.
//!
//! Top-ups ([`top_up`]) come before user rows: a top-up is confirmed, cancelled or
//! refunded holding its row, then the user's (step 6). Nothing else locks a top-up, and
//! nothing holding a user row waits for one.
//!
//! Refresh tokens ([`refresh_token`]) are a chain of their own: the token row, then nothing
//! on this list. So are account claims ([`account_claim`]): the claim row, then its user's
//! row (the password is written). A complimentary ticket renews a claim after the schedule
//! row (step 2) and only takes a `KEY SHARE` lock on the user, which the claim's update of
//! the password does not conflict with.

use chrono::{DateTime, Utc};
use diesel::{
    OptionalExtension as _, QueryableByName,
    prelude::*,
    sql_types::{Array, BigInt, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::{
    auth::RefreshTokenRow,
    booking::ReservationRow,
    claims::ClaimRow,
    concerts::{ConcertRow, ConcertStatus, ScheduleRow},
    db::Prepared,
    schema::{account_claims, concerts, refresh_tokens, reservations, schedules},
    waitlist::EntryRow,
};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

fn ids(rows: Vec<Id>) -> Vec<i64> {
    rows.into_iter().map(|r| r.id).collect()
}

/// Lock order step 1: A concert row.
pub async fn concert(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<ConcertRow>> {
    concerts::table
        .find(id)
        .select(ConcertRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Lock order step 2: A schedule row (the booking-count lock).
pub async fn schedule(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<ScheduleRow>> {
    schedules::table
        .find(id)
        .select(ScheduleRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// The schedule row as a hold batch locks it: with its concert's status and the database
/// clock, which the sale rules are decided on.
#[derive(QueryableByName)]
pub struct LockedSchedule {
    #[diesel(embed)]
    pub schedule: ScheduleRow,
    #[diesel(sql_type = Text)]
    pub concert_status: ConcertStatus,
    /// Who may see the schedule while its concert is a draft (with admins).
    #[diesel(sql_type = BigInt)]
    pub concert_host_id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub db_now: DateTime<Utc>,
    /// The batch transaction's id: if its COMMIT gets no answer (the connection dropped, a
    /// failover), `txid_status` on a new connection tells whether it committed.
    #[diesel(sql_type = BigInt)]
    pub txid: i64,
}

/// Lock order step 2: The schedule row for a hold batch.
///
/// This and `hold_keys` take the connection shared, so that a batch can send them with its
/// reads in one pipeline: PostgreSQL runs a connection's statements in order, so the reads
/// start only once the locks are held, and each reads a snapshot taken after that.
pub async fn schedule_for_batch(conn: &AsyncPgConnection, id: i64) -> QueryResult<Option<LockedSchedule>> {
    Ok(schedules_for_batch(conn, &[id]).await?.pop())
}

/// Lock order step 2, several schedules: the schedule rows of a group of hold batches (one
/// transaction for the waiting batches of several schedules), locked in ascending id by
/// one statement (`ORDER BY` under `FOR UPDATE` locks rows in the order they come out), so
/// two groups sharing schedules wait for each other and never close a cycle. The rows come
/// back in ascending id; schedules that do not exist are left out.
pub async fn schedules_for_batch(conn: &AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<LockedSchedule>> {
    read_schedules_for_batch(conn, ids, "FOR UPDATE OF s").await
}

/// The same read without the lock: only for the negative control of the concurrency tests
/// (the `negative-control` feature, which a release build does not have).
#[cfg(feature = "negative-control")]
pub async fn schedules_for_batch_unlocked(
    conn: &AsyncPgConnection,
    ids: &[i64],
) -> QueryResult<Vec<LockedSchedule>> {
    read_schedules_for_batch(conn, ids, "").await
}

async fn read_schedules_for_batch(
    mut conn: &AsyncPgConnection,
    ids: &[i64],
    lock: &'static str,
) -> QueryResult<Vec<LockedSchedule>> {
    // Kept prepared (one statement for each `lock`): it is a batch's first statement.
    Prepared(
        diesel::sql_query(format!(
            "SELECT {}, c.status AS concert_status, c.host_id AS concert_host_id, now() AS db_now,
                    txid_current() AS txid
             FROM schedules s JOIN concerts c ON c.id = s.concert_id
             WHERE s.id = ANY($1) ORDER BY s.id {lock}",
            crate::schedule_columns!("s")
        ))
        .bind::<Array<BigInt>, _>(ids),
    )
    .load(&mut conn)
    .await
}

/// Lock order step 3: The (user, key) pairs of a batch's hold requests, as transaction-scoped advisory locks
/// in ascending hash order (a hash collision only makes two batches wait for each other).
/// The first key of the pair is the namespace, so these never meet another advisory lock.
pub async fn hold_keys(mut conn: &AsyncPgConnection, keys: &[(i64, String)]) -> QueryResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let users: Vec<i64> = keys.iter().map(|k| k.0).collect();
    let names: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    Prepared(
        diesel::sql_query(
            "SELECT count(pg_advisory_xact_lock(1651470187, h)) AS id FROM (
               SELECT DISTINCT hashtext(u::text || ':' || k) AS h
               FROM unnest($1::bigint[], $2::text[]) AS t(u, k) ORDER BY h) x",
        )
        .bind::<Array<BigInt>, _>(users)
        .bind::<Array<Text>, _>(names),
    )
    .execute(&mut conn)
    .await
    .map(drop)
}

/// Lock order step 4: A reservation row.
pub async fn reservation(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<ReservationRow>> {
    reservations::table
        .find(id)
        .select(ReservationRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Lock order step 4: The held or paid reservations of a schedule, ascending id.
pub async fn live_reservations(conn: &mut AsyncPgConnection, schedule_id: i64) -> QueryResult<Vec<i64>> {
    diesel::sql_query(
        "SELECT id FROM reservations WHERE schedule_id = $1 AND status IN ('held', 'confirmed')
         ORDER BY id FOR UPDATE",
    )
    .bind::<BigInt, _>(schedule_id)
    .load::<Id>(conn)
    .await
    .map(ids)
}

/// Lock order step 4: Up to `limit` overdue holds of a schedule, ascending id; holds locked by a payment
/// are skipped and left to it.
pub async fn due_holds(conn: &mut AsyncPgConnection, schedule_id: i64, limit: i64) -> QueryResult<Vec<i64>> {
    diesel::sql_query(
        "SELECT id FROM reservations
         WHERE schedule_id = $1 AND status = 'held' AND expires_at <= now()
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<BigInt, _>(limit)
    .load::<Id>(conn)
    .await
    .map(ids)
}

/// Lock order step 5: The seats of some reservations, ascending id. Found through
/// `reservation_seats`: `seats.reservation_id` has no index, so that claiming and
/// releasing seats are HOT updates (see the migration `seats_hot_updates`).
pub async fn seats_of(conn: &mut AsyncPgConnection, reservation_ids: &[i64]) -> QueryResult<Vec<i64>> {
    diesel::sql_query(
        "SELECT s.id FROM seats s
         WHERE s.id IN (SELECT rs.seat_id FROM reservation_seats rs WHERE rs.reservation_id = ANY($1))
           AND s.reservation_id = ANY($1)
         ORDER BY s.id FOR UPDATE OF s",
    )
    .bind::<Array<BigInt>, _>(reservation_ids)
    .load::<Id>(conn)
    .await
    .map(ids)
}

/// Lock order step 6: User rows, ascending id, before several balance changes in one transaction.
pub async fn users(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::sql_query("SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind::<Array<BigInt>, _>(ids)
        .execute(conn)
        .await
        .map(drop)
}

/// A top-up row, before its user's row (see the module doc).
pub async fn top_up(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<crate::payments::TopUpRow>> {
    diesel::sql_query("SELECT * FROM top_ups WHERE id = $1 FOR UPDATE")
        .bind::<BigInt, _>(id)
        .get_result(conn)
        .await
        .optional()
}

/// Lock order step 7: Up to `limit` waiting entries of a schedule's line, earliest first.
/// The caller holds the schedule row (step 2).
pub async fn waitlist(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    limit: i64,
) -> QueryResult<Vec<EntryRow>> {
    diesel::sql_query(
        "SELECT * FROM waitlist_entries WHERE schedule_id = $1 AND status = 'waiting'
         ORDER BY id LIMIT $2 FOR UPDATE",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// A refresh token row (its own chain): two refreshes with one token are decided one after
/// the other.
pub async fn refresh_token(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<RefreshTokenRow>> {
    refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select(RefreshTokenRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// An account claim by its selector (its own chain, then the user row): two claims with one
/// token are decided one after the other, and the second sees the first's use.
pub async fn account_claim(conn: &mut AsyncPgConnection, selector: &str) -> QueryResult<Option<ClaimRow>> {
    account_claims::table
        .filter(account_claims::selector.eq(selector))
        .select(ClaimRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}
