//! Writing events, always inside the caller's transaction: the event commits with its
//! change or not at all (I12). Each function reads the rows as the transaction has just left
//! them, so the event carries the state after the change.
//!
//! The hold batch does not come here: it writes its `reservation.held` events in its one
//! write statement (booking's `reserve::WRITE`, the `evented` part) as one carrier row, with
//! subject [`BATCH_SUBJECT`] and `data` `{"reservationIds": [...]}`: only the ids of the
//! batch's reservations, in ascending order. The relay makes each event's data from its
//! reservation when it publishes the carrier, in its place, as the reservations' own events
//! (`relay::fan_out`), each with an id of its own ([`carried_event_id`]): no consumer ever
//! meets a carrier. Why: the write runs under the
//! schedule's lock, and everything in it delays every other batch of the sale. A row per
//! reservation (each with its index entries, then its relaying update) cost the sale 11-12 %
//! of its holds/s, and a carrier holding the events' JSON still about 10 % (issue 25's bound
//! is 5 %): building and compressing several KB of JSON per batch under the lock.

use boxoffice_webhooks::EventType;
use diesel::{
    QueryResult,
    sql_types::{Array, BigInt, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// The `data` of every reservation event (CloudEvents `data`), from `reservations r` joined
/// to `schedules s`: the reservation as it is. IDs are strings, as the GraphQL API serves
/// them; statuses are the API's. (A carried `reservation.held` event's data is the same
/// object, made by the relay: `relay::fan_out`.)
pub const RESERVATION_DATA: &str = "jsonb_build_object(
    'reservationId', r.id::text, 'scheduleId', r.schedule_id::text, 'concertId', s.concert_id::text,
    'userId', r.user_id::text, 'status', upper(r.status), 'seatCount', r.seat_count,
    'totalPrice', r.total_price, 'expiresAt', r.expires_at,
    'seatIds', (SELECT coalesce(jsonb_agg(rs.seat_id::text ORDER BY rs.seat_id), '[]'::jsonb)
                FROM reservation_seats rs WHERE rs.reservation_id = r.id))";

/// The subject of a hold batch's carrier row (see the module's documentation).
pub const BATCH_SUBJECT: &str = "batch";

/// The key of a carrier's `data` that lists its reservations' ids.
pub const CARRIED_IDS: &str = "reservationIds";

/// The CloudEvents id of the `item`-th (0-based) event of the carrier whose own id is
/// `carrier`: the carrier's random id with the item's number plus one in its last four
/// bytes (XOR), so every relaying of the carrier gives each event the same id (consumers
/// drop duplicates by it) and ids of different carriers stay as unlikely to meet as random
/// ones. The version and variant bits are untouched.
pub fn carried_event_id(carrier: uuid::Uuid, item: u32) -> uuid::Uuid {
    let mut bytes = *carrier.as_bytes();
    for (b, x) in bytes[12..].iter_mut().zip((item + 1).to_be_bytes()) {
        *b ^= x;
    }
    uuid::Uuid::from_bytes(bytes)
}

/// Subjects: the object an event is about, the unit of ordering.
pub fn reservation_subject(id: i64) -> String {
    format!("reservations/{id}")
}

/// One event of `event_type` for each of the reservations (in ascending id, so a batch's
/// events of several reservations are in a stable order).
pub async fn reservations(
    conn: &mut AsyncPgConnection,
    event_type: EventType,
    reservation_ids: &[i64],
) -> QueryResult<usize> {
    if reservation_ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(format!(
        "INSERT INTO outbox (event_type, subject, concert_id, data)
         SELECT $1, 'reservations/' || r.id, s.concert_id, {RESERVATION_DATA}
         FROM reservations r JOIN schedules s ON s.id = r.schedule_id
         WHERE r.id = ANY($2) ORDER BY r.id"
    ))
    .bind::<Text, _>(event_type.as_str())
    .bind::<Array<BigInt>, _>(reservation_ids)
    .execute(conn)
    .await
}

/// One event of `event_type` for each of the schedules.
pub async fn schedules(
    conn: &mut AsyncPgConnection,
    event_type: EventType,
    schedule_ids: &[i64],
) -> QueryResult<usize> {
    if schedule_ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "INSERT INTO outbox (event_type, subject, concert_id, data)
         SELECT $1, 'schedules/' || s.id, s.concert_id, jsonb_build_object(
             'scheduleId', s.id::text, 'concertId', s.concert_id::text,
             'concertStatus', upper(c.status), 'status', upper(s.status),
             'startsAt', s.starts_at, 'salesOpenAt', s.sales_open_at, 'salesCloseAt', s.sales_close_at,
             'capacity', s.capacity, 'bookedCount', s.booked_count, 'version', s.version)
         FROM schedules s JOIN concerts c ON c.id = s.concert_id
         WHERE s.id = ANY($2) ORDER BY s.id",
    )
    .bind::<Text, _>(event_type.as_str())
    .bind::<Array<BigInt>, _>(schedule_ids)
    .execute(conn)
    .await
}

/// The same for every schedule of a concert (publishing or cancelling a concert).
pub async fn schedules_of_concert(
    conn: &mut AsyncPgConnection,
    event_type: EventType,
    concert_id: i64,
) -> QueryResult<usize> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let ids: Vec<i64> = diesel::sql_query("SELECT id FROM schedules WHERE concert_id = $1 ORDER BY id")
        .bind::<BigInt, _>(concert_id)
        .load::<Id>(conn)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    schedules(conn, event_type, &ids).await
}

/// `topup.confirmed`: a top-up was credited. It belongs to no concert, so only webhooks of
/// admins for every concert receive it.
pub async fn top_up_confirmed(conn: &mut AsyncPgConnection, top_up_id: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO outbox (event_type, subject, concert_id, data)
         SELECT $1, 'topups/' || t.id, NULL, jsonb_build_object(
             'topUpId', t.id::text, 'userId', t.user_id::text, 'amount', t.amount,
             'provider', t.provider, 'confirmedAt', t.confirmed_at)
         FROM top_ups t WHERE t.id = $2",
    )
    .bind::<Text, _>(EventType::TopupConfirmed.as_str())
    .bind::<BigInt, _>(top_up_id)
    .execute(conn)
    .await
}

/// `ticket.checked_in`: tickets were admitted at a gate (online, or in an offline batch
/// uploaded later: `offline` says which, and `checkedInAt` is when it was scanned). Written
/// in the admission's transaction, so a scan that lost its race writes nothing; an offline
/// batch writes all its admissions' events in one statement, in ticket id order.
pub async fn tickets_checked_in(
    conn: &mut AsyncPgConnection,
    ticket_ids: &[i64],
    offline: bool,
) -> QueryResult<usize> {
    if ticket_ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "INSERT INTO outbox (event_type, subject, concert_id, data)
         SELECT $1, 'tickets/' || t.id, s.concert_id, jsonb_build_object(
             'ticketId', t.id::text, 'reservationId', t.reservation_id::text,
             'scheduleId', t.schedule_id::text, 'concertId', s.concert_id::text,
             'seatId', t.seat_id::text, 'gate', t.gate, 'checkedInAt', t.checked_in_at,
             'offline', $3)
         FROM tickets t JOIN schedules s ON s.id = t.schedule_id
         WHERE t.id = ANY($2) AND t.status = 'used' ORDER BY t.id",
    )
    .bind::<Text, _>(EventType::TicketCheckedIn.as_str())
    .bind::<Array<BigInt>, _>(ticket_ids)
    .bind::<diesel::sql_types::Bool, _>(offline)
    .execute(conn)
    .await
}
