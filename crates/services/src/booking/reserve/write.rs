//! The group's write: every claim of every schedule in one statement.

use super::*;

/// One schedule's claims in a group's write: the requests naming the seats they get (picked
/// ones included), with what each one's key stands for.
pub(super) struct Claims<'a> {
    pub(super) schedule: &'a ScheduleRow,
    pub(super) requests: &'a [HoldRequest],
    pub(super) fingerprints: &'a [Option<i64>],
}

/// A reservation written by the group, with the number of its request in the write
/// (1-based), the version its schedule reached, and what the statement as a whole claimed.
#[derive(QueryableByName)]
struct Written {
    #[diesel(sql_type = BigInt)]
    ord: i64,
    #[diesel(embed)]
    reservation: ReservationRow,
    #[diesel(sql_type = BigInt)]
    claimed: i64,
    #[diesel(sql_type = BigInt)]
    version: i64,
}

/// The whole write of a group in one statement, so one round trip whatever its size and
/// however many schedules it holds. Each claiming request gets a reservation id from the
/// sequence (`t`, evaluated once because it is volatile); its seats find that id through
/// the request's number. Each schedule is counted once (`counted`). Only the user's foreign
/// key is checked, row by row at the end of the statement; the other pointers carry no key
/// (migration `hold_pointers`) because the statement can only write them to rows it wrote
/// or updated itself: a reservation joins its counted schedule, a claim joins its made
/// reservation, a seat row is what a claim returned, and the caller fails the whole write
/// unless every request got its reservation and every seat was claimed. (A seat row joined
/// to its claim instead, rows estimated at one each, compared every pair: 0.5 ms a batch.)
/// `evented` writes the group's `reservation.held` events to the outbox in the same
/// statement (I12), one carrier row per concert (`boxoffice_outbox::append::BATCH_SUBJECT`)
/// holding only the reservations' ids: the relay makes each event from its reservation
/// later, off these locks (issue 25: the events' JSON built here cost the sale about 10 % of
/// its holds/s).
pub(super) const WRITE: &str = concat!(
    "
WITH t AS (
  SELECT nextval('reservations_id_seq') AS id, u.*
  FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::bigint[], $5::text[], $6::bigint[], $7::timestamptz[])
    WITH ORDINALITY AS u(schedule_id, user_id, seat_count, total, key, fp, expires_at, ord)
), counted AS (
  UPDATE schedules SET booked_count = b.booked, version = version + 1, updated_at = now()
  FROM unnest($12::bigint[], $13::int[]) AS b(id, booked)
  WHERE schedules.id = b.id RETURNING schedules.id, schedules.version
), made AS (
  INSERT INTO reservations (id, schedule_id, user_id, status, seat_count, total_price, idempotency_key, expires_at, request_hash)
  SELECT t.id, t.schedule_id, t.user_id, 'held', t.seat_count, t.total, t.key, t.expires_at, t.fp
  FROM t JOIN counted ON counted.id = t.schedule_id
  RETURNING *
), s AS (
  SELECT made.id AS reservation_id, x.seat_id, x.grade, x.price
  FROM unnest($8::bigint[], $9::bigint[], $10::text[], $11::bigint[]) AS x(req, seat_id, grade, price)
  JOIN t ON t.ord = x.req JOIN made ON made.id = t.id
), claimed AS (
  UPDATE seats SET status = 'held', reservation_id = s.reservation_id FROM s
  WHERE seats.id = s.seat_id AND seats.status = 'available'
  RETURNING s.reservation_id, seats.id, s.grade, s.price
), kept AS (
  INSERT INTO reservation_seats (reservation_id, seat_id, grade_name, price) SELECT * FROM claimed
), evented AS (
  INSERT INTO outbox (event_type, subject, concert_id, data)
  SELECT 'reservation.held', 'batch', c.concert_id, jsonb_build_object('reservationIds', jsonb_agg(made.id ORDER BY made.id))
  FROM made JOIN unnest($12::bigint[], $14::bigint[]) AS c(schedule_id, concert_id) ON c.schedule_id = made.schedule_id
  GROUP BY c.concert_id
)
SELECT t.ord, ",
    boxoffice_store::reservation_columns!("made"),
    ", (SELECT count(*) FROM claimed) AS claimed, counted.version
FROM made JOIN t ON t.id = made.id JOIN counted ON counted.id = made.schedule_id"
);

/// Writes the reservations of every part's claims and their seats, claims the seats and
/// counts them per schedule. Returns, for each part in order, its reservations in the order
/// of its claims and its seat change.
pub(super) async fn write(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    parts: &[Claims<'_>],
    seats: &HashMap<i64, SeatRow>,
) -> AppResult<Vec<(Vec<ReservationRow>, SeatChange)>> {
    let seat = |id: &i64| {
        seats
            .get(id)
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("claimed seat {id} not loaded")))
    };
    let mut schedules = Vec::new();
    let mut users = Vec::new();
    let mut counts = Vec::new();
    let mut totals = Vec::new();
    let mut keys = Vec::new();
    let mut fingerprints = Vec::new();
    let mut expiries = Vec::new();
    let mut seat_ids = Vec::new();
    let mut owners = Vec::new();
    let mut grades = Vec::new();
    let mut prices = Vec::new();
    let mut counted = Vec::with_capacity(parts.len());
    let mut booked = Vec::with_capacity(parts.len());
    let mut concerts = Vec::with_capacity(parts.len());
    let mut ord = 0_i64;
    for part in parts {
        let schedule = part.schedule;
        let expires_at = now + chrono::Duration::seconds(i64::from(schedule.hold_seconds));
        let mut claimed = 0_i64;
        for (r, fingerprint) in part.requests.iter().zip(part.fingerprints) {
            ord += 1;
            schedules.push(schedule.id);
            users.push(r.user_id);
            keys.push(r.idempotency_key.clone());
            fingerprints.push(*fingerprint);
            expiries.push(expires_at);
            counts.push(i32::try_from(r.seat_ids().len()).map_err(AppError::internal)?);
            let mut total = 0;
            for s in r.seat_ids() {
                let s = seat(s)?;
                total += s.price;
                seat_ids.push(s.id);
                owners.push(ord);
                grades.push(s.grade.clone());
                prices.push(s.price);
            }
            totals.push(total);
            claimed += r.seat_ids().len() as i64;
        }
        // Written as the value read under the lock, not `booked_count + n`: the same under
        // the lock, and what lets the negative-control test see a lost update without it.
        counted.push(schedule.id);
        booked.push(i32::try_from(i64::from(schedule.booked_count) + claimed).map_err(AppError::internal)?);
        concerts.push(schedule.concert_id);
    }
    let written: Vec<Written> = Prepared(
        diesel::sql_query(WRITE)
            .bind::<Array<BigInt>, _>(schedules)
            .bind::<Array<BigInt>, _>(users)
            .bind::<Array<Int4>, _>(counts)
            .bind::<Array<BigInt>, _>(totals)
            .bind::<Array<Nullable<Text>>, _>(keys)
            .bind::<Array<Nullable<BigInt>>, _>(fingerprints)
            .bind::<Array<Timestamptz>, _>(expiries)
            .bind::<Array<BigInt>, _>(owners)
            .bind::<Array<BigInt>, _>(&seat_ids)
            .bind::<Array<Text>, _>(grades)
            .bind::<Array<BigInt>, _>(prices)
            .bind::<Array<BigInt>, _>(&counted)
            .bind::<Array<Int4>, _>(booked)
            .bind::<Array<BigInt>, _>(concerts),
    )
    .load(conn)
    .await?;
    let updated = <[Written]>::first(&written).map_or(0, |w| w.claimed);
    if usize::try_from(updated).ok() != Some(seat_ids.len()) {
        // Only possible if a writer changed seats without the booking-count lock.
        return Err(AppError::internal(anyhow::anyhow!(
            "claimed {updated} of {} seats under the schedule locks",
            seat_ids.len()
        )));
    }
    let versions: HashMap<i64, i64> = written
        .iter()
        .map(|w| (w.reservation.schedule_id, w.version))
        .collect();
    // RETURNING order is unspecified: put rows back in the order of the claims.
    let mut by_ord: HashMap<i64, ReservationRow> =
        written.into_iter().map(|w| (w.ord, w.reservation)).collect();
    let mut ords = 1_i64..;
    let mut seat_ids = seat_ids.into_iter();
    parts
        .iter()
        .map(|part| {
            let rows = part
                .requests
                .iter()
                .zip(ords.by_ref())
                .map(|(_, ord)| {
                    by_ord.remove(&ord).ok_or_else(|| {
                        AppError::internal(anyhow::anyhow!("reservation of request {ord} not returned"))
                    })
                })
                .collect::<AppResult<Vec<_>>>()?;
            let count: usize = part.requests.iter().map(|r| r.seat_ids().len()).sum();
            let mut changed: Vec<(i64, SeatStatus)> = seat_ids
                .by_ref()
                .take(count)
                .map(|id| (id, SeatStatus::Held))
                .collect();
            changed.sort_unstable_by_key(|c| c.0);
            let version = versions.get(&part.schedule.id).copied().ok_or_else(|| {
                AppError::internal(anyhow::anyhow!("schedule {} not counted", part.schedule.id))
            })?;
            Ok((
                rows,
                SeatChange {
                    schedule_id: part.schedule.id,
                    version,
                    seats: changed,
                },
            ))
        })
        .collect()
}
