//! The relay's fan-out step: events out of the outbox, onto the stream, and into the
//! deliveries of the webhooks that want them.

use diesel::{
    QueryableByName,
    sql_types::{Array, BigInt, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use std::collections::HashMap;

use super::{EventRow, EventStream};

/// Which webhooks get a delivery of an outbox row `o`: they want its type, are enabled, and
/// their owner is an admin (a webhook for every concert) or still hosts its concert.
const WANTED_BY: &str = "JOIN webhooks w ON o.event_type = ANY (w.event_types) AND w.disabled_at IS NULL
     JOIN users u ON u.id = w.owner_id
     LEFT JOIN concerts c ON c.id = w.concert_id
     WHERE ((w.concert_id IS NULL AND u.role = 'admin')
         OR (w.concert_id = o.concert_id AND (c.host_id = u.id OR u.role = 'admin')))";

/// One fan-out step; how many events it relayed. Events go out in outbox order, a hold
/// batch's carrier row (`append::BATCH_SUBJECT`) replaced in its place by the events of the
/// reservations it names, made from those reservations now. The stream gets a carrier's
/// events straight from that; only when a webhook wants
/// them are they written as outbox rows of their own (already relayed, for the deliveries
/// to refer to), so a sale nobody subscribed to costs one row per batch. Deliveries are
/// created in that same order, which is the order `claim` keeps per subject.
pub async fn fan_out(
    conn: &mut AsyncPgConnection,
    stream: Option<&dyn EventStream>,
    source: &str,
    batch: i64,
) -> anyhow::Result<usize> {
    conn.transaction(async |conn| {
        let rows: Vec<EventRow> = diesel::sql_query(
            "SELECT id, event_id, event_type, subject, concert_id, data, created_at FROM outbox
             WHERE relayed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind::<BigInt, _>(batch)
        .load(conn)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let held = held(conn, &rows).await?;
        // Each row with the events it stands for: itself, or a carrier's items.
        let expanded: Vec<(&EventRow, Vec<EventRow>)> = rows
            .iter()
            .map(|r| {
                Ok((
                    r,
                    if r.is_carrier() {
                        r.carried(&held)?
                    } else {
                        Vec::new()
                    },
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        let events: Vec<&EventRow> = expanded
            .iter()
            .flat_map(|(r, carried)| std::iter::once(*r).filter(|r| !r.is_carrier()).chain(carried))
            .collect();
        if let Some(stream) = stream {
            let events = events
                .iter()
                .map(|e| e.cloud_event(source))
                .collect::<anyhow::Result<Vec<_>>>()?;
            stream.publish(&events).await?;
        }
        // Carriers some webhook wants become rows of their own, in their place.
        let carriers: Vec<i64> = rows.iter().filter(|r| r.is_carrier()).map(|r| r.id).collect();
        let wanted: Vec<i64> = if carriers.is_empty() {
            Vec::new()
        } else {
            diesel::sql_query(format!(
                "SELECT DISTINCT o.id FROM outbox o {WANTED_BY} AND o.id = ANY ($1)"
            ))
            .bind::<Array<BigInt>, _>(&carriers)
            .load::<Id>(conn)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect()
        };
        let split = split(
            conn,
            expanded
                .iter()
                .filter(|(r, _)| wanted.contains(&r.id))
                .flat_map(|(_, carried)| carried),
        )
        .await?;
        let mut split = split.into_iter();
        let mut order: Vec<i64> = Vec::with_capacity(rows.len());
        for (r, carried) in &expanded {
            if !r.is_carrier() {
                order.push(r.id);
            } else if wanted.contains(&r.id) {
                order.extend(split.by_ref().take(carried.len()));
            }
        }
        if !order.is_empty() {
            diesel::sql_query(format!(
                "INSERT INTO webhook_deliveries (webhook_id, outbox_id, subject)
             SELECT w.id, o.id, o.subject
             FROM unnest($1::bigint[]) WITH ORDINALITY AS x(id, n)
             JOIN outbox o ON o.id = x.id
             {WANTED_BY}
             ORDER BY x.n, w.id
             ON CONFLICT DO NOTHING"
            ))
            .bind::<Array<BigInt>, _>(&order)
            .execute(conn)
            .await?;
        }
        diesel::sql_query("UPDATE outbox SET relayed_at = now() WHERE id = ANY ($1)")
            .bind::<Array<BigInt>, _>(&ids)
            .execute(conn)
            .await?;
        Ok(events.len())
    })
    .await
}

/// The data of the `reservation.held` events the carriers among `rows` stand for, by
/// reservation id: the reservations' columns in one statement, the object made here (what
/// `append::RESERVATION_DATA` makes in SQL, with status `HELD`, its keys in jsonb's order).
/// Made in PostgreSQL (`jsonb_build_object`, a subquery per reservation for its seats,
/// jsonb's text out) it was PostgreSQL work for every held seat while the sale ran.
async fn held(
    conn: &mut AsyncPgConnection,
    rows: &[EventRow],
) -> anyhow::Result<HashMap<i64, serde_json::Value>> {
    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = BigInt)]
        schedule_id: i64,
        #[diesel(sql_type = BigInt)]
        concert_id: i64,
        #[diesel(sql_type = BigInt)]
        user_id: i64,
        #[diesel(sql_type = Int4)]
        seat_count: i32,
        #[diesel(sql_type = BigInt)]
        total_price: i64,
        /// As PostgreSQL writes a time in JSON, so that it reads as in the other events.
        #[diesel(sql_type = Text)]
        expires_at: String,
        #[diesel(sql_type = Array<BigInt>)]
        seat_ids: Vec<i64>,
    }
    let mut ids = Vec::new();
    for r in rows.iter().filter(|r| r.is_carrier()) {
        ids.extend(r.carried_ids()?);
    }
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let found: Vec<Held> = diesel::sql_query(
        "SELECT r.id, r.schedule_id, s.concert_id, r.user_id, r.seat_count, r.total_price,
                to_json(r.expires_at) #>> '{}' AS expires_at,
                array_remove(array_agg(rs.seat_id ORDER BY rs.seat_id), NULL) AS seat_ids
         FROM reservations r JOIN schedules s ON s.id = r.schedule_id
         LEFT JOIN reservation_seats rs ON rs.reservation_id = r.id
         WHERE r.id = ANY ($1)
         GROUP BY r.id, s.concert_id",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .load(conn)
    .await?;
    Ok(found
        .into_iter()
        .map(|h| {
            let seat_ids: Vec<String> = h.seat_ids.iter().map(i64::to_string).collect();
            let data = serde_json::json!({
                "status": "HELD",
                "userId": h.user_id.to_string(),
                "seatIds": seat_ids,
                "concertId": h.concert_id.to_string(),
                "expiresAt": h.expires_at,
                "seatCount": h.seat_count,
                "scheduleId": h.schedule_id.to_string(),
                "totalPrice": h.total_price,
                "reservationId": h.id.to_string(),
            });
            (h.id, data)
        })
        .collect())
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Writes carried events as outbox rows of their own, already relayed (the stream has
/// them), with their carrier's time and their own ids; returns their outbox ids in the
/// order given.
async fn split<'a>(
    conn: &mut AsyncPgConnection,
    events: impl Iterator<Item = &'a EventRow>,
) -> anyhow::Result<Vec<i64>> {
    let (mut event_ids, mut types, mut subjects, mut concerts, mut data, mut times) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for e in events {
        event_ids.push(e.event_id);
        types.push(e.event_type.as_str());
        subjects.push(e.subject.as_str());
        concerts.push(e.concert_id);
        data.push(&e.data);
        times.push(e.created_at);
    }
    if event_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<i64> = diesel::sql_query(
        "INSERT INTO outbox (event_id, event_type, subject, concert_id, data, created_at, relayed_at)
         SELECT e, t, s, c, d, at, now()
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::jsonb[], $6::timestamptz[])
              WITH ORDINALITY AS x(e, t, s, c, d, at, n)
         ORDER BY n
         RETURNING id",
    )
    .bind::<Array<SqlUuid>, _>(&event_ids)
    .bind::<Array<Text>, _>(&types)
    .bind::<Array<Text>, _>(&subjects)
    .bind::<Array<Nullable<BigInt>>, _>(&concerts)
    .bind::<Array<Jsonb>, _>(&data)
    .bind::<Array<Timestamptz>, _>(&times)
    .load::<Id>(conn)
    .await?
    .into_iter()
    .map(|r| r.id)
    .collect();
    if ids.len() != event_ids.len() {
        anyhow::bail!("split {} carried events into {} rows", event_ids.len(), ids.len());
    }
    // Ids are drawn in the order rows are inserted, which is the order given.
    ids.sort_unstable();
    Ok(ids)
}
