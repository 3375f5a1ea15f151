//! The hold batch: many requests for one schedule applied in one transaction, as
//! load → decide → write.
//!
//! - load: the schedule row lock (see `locks`), the requests' idempotency keys, then
//!   everything the decision needs in a few reads: seats, users and what they hold, keys
//!   already used, and, only when the batch has a best-available request, the schedule's
//!   whole layout (one more read of every seat: explicit requests never pay for it).
//! - decide: `decide::decide`, pure. Every per-request failure is decided there, so nothing
//!   of one request's data reaches the write.
//! - write: one INSERT of reservations, one of their seats, one UPDATE of the seats and one
//!   of the booking count, for all successful requests together.
//!
//! Under the schedule lock nothing else can change which of its seats are available, so the
//! decision holds until commit. About ten round trips per transaction whatever the batch
//! size: that is how group commit beats one booking per transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::{
    QueryableByName,
    sql_types::{Array, BigInt, Int4, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use super::{
    SeatChange,
    decide::{self, Decision, HoldRequest, KeyUse, Loaded, SeatState},
    sale,
    store::{self, ReservationRow},
};
use crate::{
    concerts::store::ScheduleRow,
    error::{AppError, AppResult},
    locks,
    seats::SeatStatus,
};

pub struct BatchOutcome {
    /// One result per request, in order.
    pub results: Vec<AppResult<ReservationRow>>,
    /// The committed seat changes, if any seat changed.
    pub change: Option<SeatChange>,
}

/// Whether the batch takes the schedule lock: always, except in the negative control of
/// the concurrency tests (`negative-control` feature).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    Take,
    #[cfg(feature = "negative-control")]
    Skip,
}

/// Applies `requests` for `schedule_id` in one transaction.
pub(super) async fn reserve_batch(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    requests: &[HoldRequest],
    lock: Lock,
) -> AppResult<BatchOutcome> {
    conn.transaction(async |conn| apply(conn, schedule_id, requests, lock).await)
        .await
}

/// The same inside the caller's transaction, which already holds the schedule lock (serving
/// a waiting list after a release): the lock is taken again (a no-op for its holder) to
/// read the schedule as the release left it.
pub(super) async fn apply_in_transaction(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    requests: &[HoldRequest],
) -> AppResult<BatchOutcome> {
    apply(conn, schedule_id, requests, Lock::Take).await
}

async fn apply(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    requests: &[HoldRequest],
    lock: Lock,
) -> AppResult<BatchOutcome> {
    let locked = match lock {
        Lock::Take => locks::schedule_for_batch(conn, schedule_id).await?,
        #[cfg(feature = "negative-control")]
        Lock::Skip => locks::schedule_for_batch_unlocked(conn, schedule_id).await?,
    };
    let Some(locked) = locked else {
        return Ok(BatchOutcome {
            results: requests
                .iter()
                .map(|_| Err(AppError::NotFound("schedule")))
                .collect(),
            change: None,
        });
    };
    let schedule = locked.schedule;
    let mut keys: Vec<(i64, String)> = requests
        .iter()
        .filter_map(|r| r.idempotency_key.clone().map(|k| (r.user_id, k)))
        .collect();
    // A double-click sends one key several times in a batch.
    keys.sort_unstable();
    keys.dedup();
    locks::hold_keys(conn, &keys).await?;
    let (mut loaded, mut seats, replays) = load(conn, &schedule, &keys, requests).await?;
    loaded.closed = sale::rules(&schedule, locked.concert_status, locked.db_now).refusal();
    if requests.iter().any(HoldRequest::is_best_available) {
        let (layout, grades) = crate::seats::store::layout_for_picking(conn, schedule.id).await?;
        loaded.layout = Some(layout);
        loaded.grades = grades;
    }
    let decisions = decide::decide(&loaded, requests);

    // The claiming requests with the seats they get: picked ones become named ones.
    let mut claimed: Vec<usize> = Vec::new();
    let mut resolved: Vec<HoldRequest> = Vec::new();
    for (i, d) in decisions.iter().enumerate() {
        if let Decision::Claim(seat_ids) = d {
            claimed.push(i);
            resolved.push(HoldRequest::seats(
                requests[i].user_id,
                seat_ids.clone(),
                requests[i].idempotency_key.clone(),
            ));
        }
    }
    let picked: Vec<i64> = resolved
        .iter()
        .flat_map(HoldRequest::seat_ids)
        .filter(|id| !seats.contains_key(id))
        .copied()
        .collect();
    if !picked.is_empty() {
        seats.extend(seat_rows(conn, &picked).await?);
    }
    let mut made: HashMap<usize, ReservationRow> = HashMap::new();
    let mut change = None;
    if !claimed.is_empty() {
        let (rows, seat_change) = write(conn, &schedule, locked.db_now, &resolved, &seats).await?;
        made = claimed.iter().copied().zip(rows).collect();
        change = Some(seat_change);
    }
    let mut results: Vec<AppResult<ReservationRow>> = Vec::with_capacity(requests.len());
    for (i, d) in decisions.into_iter().enumerate() {
        let result = match d {
            Decision::Claim(_) => made
                .get(&i)
                .cloned()
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("claimed request {i} has no row"))),
            Decision::Replay(id) => replays
                .get(&id)
                .cloned()
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("replayed reservation {id} not loaded"))),
            Decision::Refuse(e) => Err(e),
            // Answered alike: the earlier request's own answer.
            Decision::SameAs(first) => results[first].clone(),
        };
        results.push(result);
    }
    Ok(BatchOutcome { results, change })
}

/// A requested seat with what a reservation snapshots of it.
#[derive(QueryableByName, Clone, Debug)]
struct SeatRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    schedule_id: i64,
    #[diesel(sql_type = Text)]
    status: SeatStatus,
    #[diesel(sql_type = Text)]
    grade: String,
    #[diesel(sql_type = BigInt)]
    price: i64,
}

#[derive(QueryableByName)]
struct UserHolds {
    #[diesel(sql_type = BigInt)]
    user_id: i64,
    #[diesel(sql_type = BigInt)]
    seats: i64,
}

#[derive(QueryableByName)]
struct KeyedSeat {
    #[diesel(sql_type = BigInt)]
    reservation_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    seat_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    grade_name: Option<String>,
}

#[derive(QueryableByName)]
struct NewId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Everything the decision needs, read under the schedule lock and the key locks.
async fn load(
    conn: &mut AsyncPgConnection,
    schedule: &ScheduleRow,
    keys: &[(i64, String)],
    requests: &[HoldRequest],
) -> AppResult<(Loaded, HashMap<i64, SeatRow>, HashMap<i64, ReservationRow>)> {
    let mut seat_ids: Vec<i64> = requests
        .iter()
        .flat_map(|r| r.seat_ids().iter().copied())
        .collect();
    seat_ids.sort_unstable();
    seat_ids.dedup();
    let seats = seat_rows(conn, &seat_ids).await?;
    let mut user_ids: Vec<i64> = requests.iter().map(|r| r.user_id).collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    // Users that exist, with the seats each holds or owns here: a missing user is refused
    // by the decision instead of failing the batch's INSERT on the foreign key.
    let users: HashMap<i64, i64> = diesel::sql_query(
        "SELECT u.id AS user_id, coalesce(sum(r.seat_count), 0)::bigint AS seats
         FROM users u LEFT JOIN reservations r
           ON r.user_id = u.id AND r.schedule_id = $1 AND r.status IN ('held', 'confirmed')
         WHERE u.id = ANY($2)
         GROUP BY u.id",
    )
    .bind::<BigInt, _>(schedule.id)
    .bind::<Array<BigInt>, _>(&user_ids)
    .load::<UserHolds>(conn)
    .await?
    .into_iter()
    .map(|u| (u.user_id, u.seats))
    .collect();
    let mut replays: HashMap<i64, ReservationRow> = HashMap::new();
    let mut used: HashMap<(i64, String), KeyUse> = HashMap::new();
    if !keys.is_empty() {
        let rows = store::reservations_with_keys(conn, keys).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        // Per reservation: its seats, and its seats' grades (one, unless mixed).
        let mut seats_of: HashMap<i64, (Vec<i64>, Vec<String>)> = HashMap::new();
        for s in diesel::sql_query(
            "SELECT r.id AS reservation_id, rs.seat_id, rs.grade_name FROM unnest($1::bigint[]) AS r(id)
             LEFT JOIN reservation_seats rs ON rs.reservation_id = r.id ORDER BY rs.seat_id",
        )
        .bind::<Array<BigInt>, _>(&ids)
        .load::<KeyedSeat>(conn)
        .await?
        {
            let (list, grades) = seats_of.entry(s.reservation_id).or_default();
            list.extend(s.seat_id);
            if let Some(g) = s.grade_name
                && !grades.contains(&g)
            {
                grades.push(g);
            }
        }
        for row in rows {
            let Some(key) = row.idempotency_key.clone() else {
                continue;
            };
            let (seat_ids, mut grades) = seats_of.remove(&row.id).unwrap_or_default();
            used.insert(
                (row.user_id, key),
                KeyUse {
                    reservation_id: row.id,
                    schedule_id: row.schedule_id,
                    seat_ids,
                    grade: (grades.len() == 1).then(|| grades.remove(0)),
                },
            );
            replays.insert(row.id, row);
        }
    }
    let loaded = Loaded {
        schedule_id: schedule.id,
        per_user_limit: i64::from(schedule.per_user_limit),
        remaining: i64::from(schedule.capacity - schedule.booked_count),
        closed: None,
        seats: seats
            .values()
            .map(|s| {
                let state = SeatState {
                    schedule_id: s.schedule_id,
                    available: s.status == SeatStatus::Available,
                };
                (s.id, state)
            })
            .collect(),
        users,
        keys: used,
        layout: None,
        grades: Vec::new(),
    };
    Ok((loaded, seats, replays))
}

/// The given seats (of any schedule) with what a reservation snapshots of them.
async fn seat_rows(conn: &mut AsyncPgConnection, ids: &[i64]) -> AppResult<HashMap<i64, SeatRow>> {
    Ok(diesel::sql_query(
        "SELECT s.id, s.schedule_id, s.status, g.name AS grade, g.price
         FROM seats s JOIN seat_grades g ON g.id = s.grade_id
         WHERE s.id = ANY($1)",
    )
    .bind::<Array<BigInt>, _>(ids)
    .load::<SeatRow>(conn)
    .await?
    .into_iter()
    .map(|s| (s.id, s))
    .collect())
}

/// Writes the reservations of the claims (requests naming the seats they get) and their
/// seats, claims the seats and counts them. Returns the reservations in the order of `claimed`.
async fn write(
    conn: &mut AsyncPgConnection,
    schedule: &ScheduleRow,
    now: DateTime<Utc>,
    claimed: &[HoldRequest],
    seats: &HashMap<i64, SeatRow>,
) -> AppResult<(Vec<ReservationRow>, SeatChange)> {
    let n = i32::try_from(claimed.len()).map_err(AppError::internal)?;
    // Ids first, so that reservations and their seats line up without relying on the
    // order of RETURNING.
    let ids: Vec<i64> =
        diesel::sql_query("SELECT nextval('reservations_id_seq') AS id FROM generate_series(1, $1)")
            .bind::<Int4, _>(n)
            .load::<NewId>(conn)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
    let expires_at = now + chrono::Duration::seconds(i64::from(schedule.hold_seconds));
    let seat = |id: &i64| {
        seats
            .get(id)
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("claimed seat {id} not loaded")))
    };
    let mut users = Vec::with_capacity(claimed.len());
    let mut keys = Vec::with_capacity(claimed.len());
    let mut counts = Vec::with_capacity(claimed.len());
    let mut totals = Vec::with_capacity(claimed.len());
    let mut seat_ids = Vec::new();
    let mut owners = Vec::new();
    let mut grades = Vec::new();
    let mut prices = Vec::new();
    for (r, id) in claimed.iter().zip(&ids) {
        users.push(r.user_id);
        keys.push(r.idempotency_key.clone());
        counts.push(i32::try_from(r.seat_ids().len()).map_err(AppError::internal)?);
        let mut total = 0;
        for s in r.seat_ids() {
            let s = seat(s)?;
            total += s.price;
            seat_ids.push(s.id);
            owners.push(*id);
            grades.push(s.grade.clone());
            prices.push(s.price);
        }
        totals.push(total);
    }
    let rows: Vec<ReservationRow> = diesel::sql_query(
        "INSERT INTO reservations (id, schedule_id, user_id, status, seat_count, total_price, idempotency_key, expires_at)
         SELECT t.id, $2, t.user_id, 'held', t.seat_count, t.total, t.key, $3
         FROM unnest($1::bigint[], $4::bigint[], $5::int[], $6::bigint[], $7::text[]) AS t(id, user_id, seat_count, total, key)
         RETURNING *",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<BigInt, _>(schedule.id)
    .bind::<Timestamptz, _>(expires_at)
    .bind::<Array<BigInt>, _>(users)
    .bind::<Array<Int4>, _>(counts)
    .bind::<Array<BigInt>, _>(totals)
    .bind::<Array<Nullable<Text>>, _>(keys)
    .load(conn)
    .await?;
    diesel::sql_query(
        "INSERT INTO reservation_seats (reservation_id, seat_id, grade_name, price)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[])",
    )
    .bind::<Array<BigInt>, _>(&owners)
    .bind::<Array<BigInt>, _>(&seat_ids)
    .bind::<Array<Text>, _>(grades)
    .bind::<Array<BigInt>, _>(prices)
    .execute(conn)
    .await?;
    let updated = diesel::sql_query(
        "UPDATE seats SET status = 'held', reservation_id = c.reservation_id
         FROM unnest($1::bigint[], $2::bigint[]) AS c(seat_id, reservation_id)
         WHERE seats.id = c.seat_id AND seats.status = 'available'",
    )
    .bind::<Array<BigInt>, _>(&seat_ids)
    .bind::<Array<BigInt>, _>(&owners)
    .execute(conn)
    .await?;
    if updated != seat_ids.len() {
        // Only possible if a writer changed seats without the booking-count lock.
        return Err(AppError::internal(anyhow::anyhow!(
            "claimed {updated} of {} seats under the schedule lock",
            seat_ids.len()
        )));
    }
    // Written as the value read under the lock, not `booked_count + n`: the same under the
    // lock, and what lets the negative-control test see a lost update without it.
    let booked = i64::from(schedule.booked_count) + seat_ids.len() as i64;
    let version = diesel::sql_query(
        "UPDATE schedules SET booked_count = $2, version = version + 1, updated_at = now()
         WHERE id = $1 RETURNING version AS id",
    )
    .bind::<BigInt, _>(schedule.id)
    .bind::<Int4, _>(i32::try_from(booked).map_err(AppError::internal)?)
    .get_result::<NewId>(conn)
    .await?
    .id;
    // RETURNING order is unspecified: put rows in the order of `ids`.
    let mut by_id: HashMap<i64, ReservationRow> = rows.into_iter().map(|r| (r.id, r)).collect();
    let rows = ids
        .iter()
        .map(|id| {
            by_id
                .remove(id)
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("reservation {id} not returned")))
        })
        .collect::<AppResult<Vec<_>>>()?;
    let mut changed: Vec<(i64, SeatStatus)> = seat_ids.into_iter().map(|id| (id, SeatStatus::Held)).collect();
    changed.sort_unstable_by_key(|c| c.0);
    Ok((
        rows,
        SeatChange {
            schedule_id: schedule.id,
            version,
            seats: changed,
        },
    ))
}
