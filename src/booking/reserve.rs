//! Holding seats: many requests for one schedule applied in one transaction.
//!
//! Under the schedule's booking-count row lock nothing else can change which of its seats
//! are available (every writer of a schedule's seats takes that lock first, see
//! `booking`), so each request is decided by pre-checks in memory — no savepoints — and the
//! successful ones are written together: one INSERT of reservations, one of their seats, one
//! UPDATE of the seats and one of the booking count. A request that fails does not undo the
//! others. The cost per transaction is about ten round trips whatever the batch size, which
//! is how group commit beats one-booking-per-transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::{
    OptionalExtension as _, QueryableByName,
    sql_types::{Array, BigInt, Int4, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use super::{SeatChange, store::ReservationRow};
use crate::{
    concerts::store::ScheduleRow,
    error::{AppError, AppResult, ErrorCode},
    seats::store as seats_store,
};

/// At most this many seats in one reservation.
pub const MAX_SEATS_PER_REQUEST: usize = 10;

/// One user's request to hold seats. `seat_ids` sorted ascending, without duplicates.
#[derive(Clone, Debug)]
pub struct ReserveRequest {
    pub user_id: i64,
    pub seat_ids: Vec<i64>,
    pub idempotency_key: Option<String>,
}

/// Whether to take the booking-count lock. Only `Locked` is ever used by the server;
/// `SkipLockForNegativeControl` exists so that a test can show that the concurrency tests
/// catch the races the lock prevents. No configuration reaches it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum LockMode {
    Locked,
    /// Test-only: lets the negative-control test show what the lock prevents.
    SkipLockForNegativeControl,
}

pub struct BatchOutcome {
    /// One result per request, in order.
    pub results: Vec<AppResult<ReservationRow>>,
    /// The committed seat changes, if any seat changed.
    pub change: Option<SeatChange>,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(embed)]
    schedule: ScheduleRow,
    #[diesel(sql_type = Text)]
    concert_status: String,
    #[diesel(sql_type = Timestamptz)]
    db_now: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct UserCount {
    #[diesel(sql_type = BigInt)]
    user_id: i64,
    #[diesel(sql_type = BigInt)]
    seats: i64,
}

#[derive(QueryableByName)]
struct NewId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The error for a request whose seats are not all free: SOLD_OUT when nothing at all is
/// left, SEAT_UNAVAILABLE otherwise.
fn unavailable(remaining: i64) -> AppError {
    if remaining <= 0 {
        AppError::rule(ErrorCode::SoldOut, "this performance is sold out")
    } else {
        AppError::rule(
            ErrorCode::SeatUnavailable,
            "some of these seats are no longer available",
        )
    }
}

/// Applies `requests` for `schedule_id` in one transaction.
pub async fn reserve_batch(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    requests: &[ReserveRequest],
    mode: LockMode,
) -> AppResult<BatchOutcome> {
    conn.transaction(async |conn| apply(conn, schedule_id, requests, mode).await)
        .await
}

async fn apply(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    requests: &[ReserveRequest],
    mode: LockMode,
) -> AppResult<BatchOutcome> {
    let lock = if mode == LockMode::Locked {
        "FOR UPDATE OF s"
    } else {
        ""
    };
    let locked: Option<Locked> = diesel::sql_query(format!(
        "SELECT s.*, c.status AS concert_status, now() AS db_now
         FROM schedules s JOIN concerts c ON c.id = s.concert_id
         WHERE s.id = $1 {lock}"
    ))
    .bind::<BigInt, _>(schedule_id)
    .get_result(conn)
    .await
    .optional()?;
    let Some(Locked {
        schedule,
        concert_status,
        db_now,
    }) = locked
    else {
        return Ok(all_fail(requests.len(), || AppError::NotFound("schedule")));
    };
    let closed = if schedule.status != "scheduled" || concert_status == "cancelled" {
        Some("this performance is cancelled")
    } else if concert_status != "published" {
        Some("this concert is not on sale")
    } else if db_now < schedule.sales_open_at {
        Some("sales have not opened yet")
    } else if db_now >= schedule.sales_close_at {
        Some("sales are closed")
    } else {
        None
    };

    // Replays: a key already used by this user answers with what it made (I5).
    let keyed: Vec<(i64, String)> = requests
        .iter()
        .filter_map(|r| r.idempotency_key.clone().map(|k| (r.user_id, k)))
        .collect();
    let mut replays: HashMap<(i64, String), ReservationRow> = HashMap::new();
    if !keyed.is_empty() {
        let rows: Vec<ReservationRow> = diesel::sql_query(
            "SELECT r.* FROM reservations r
             JOIN unnest($1::bigint[], $2::text[]) AS k(user_id, key)
               ON r.user_id = k.user_id AND r.idempotency_key = k.key",
        )
        .bind::<Array<BigInt>, _>(keyed.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(keyed.iter().map(|k| k.1.clone()).collect::<Vec<_>>())
        .load(conn)
        .await?;
        for row in rows {
            if let Some(key) = row.idempotency_key.clone() {
                replays.insert((row.user_id, key), row);
            }
        }
    }

    let mut decisions: Vec<Option<Decision>> = requests
        .iter()
        .map(|r| {
            let key = r.idempotency_key.clone()?;
            let row = replays.get(&(r.user_id, key))?;
            Some(Decision::Done(if row.schedule_id == schedule_id {
                Ok(row.clone())
            } else {
                Err(AppError::Conflict(
                    "this idempotency key was used for another reservation".into(),
                ))
            }))
        })
        .collect();
    if let Some(message) = closed {
        for d in decisions.iter_mut().filter(|d| d.is_none()) {
            *d = Some(Decision::Done(Err(AppError::Conflict(message.into()))));
        }
    }

    let pending: Vec<usize> = (0..requests.len()).filter(|i| decisions[*i].is_none()).collect();
    if !pending.is_empty() {
        let all_ids: Vec<i64> = pending
            .iter()
            .flat_map(|i| requests[*i].seat_ids.iter().copied())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let seats: HashMap<i64, seats_store::SeatRow> = seats_store::seats_by_ids(conn, &all_ids)
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        let users: Vec<i64> = pending
            .iter()
            .map(|i| requests[*i].user_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut held_by_user: HashMap<i64, i64> = diesel::sql_query(
            "SELECT user_id, sum(seat_count)::bigint AS seats FROM reservations
             WHERE schedule_id = $1 AND user_id = ANY($2) AND status IN ('held', 'confirmed')
             GROUP BY user_id",
        )
        .bind::<BigInt, _>(schedule_id)
        .bind::<Array<BigInt>, _>(users)
        .load::<UserCount>(conn)
        .await?
        .into_iter()
        .map(|u| (u.user_id, u.seats))
        .collect();
        let mut taken: HashSet<i64> = HashSet::new();
        // Keys first used in this batch: a double-click inside one batch is a replay too.
        let mut first_with_key: HashMap<(i64, String), usize> = HashMap::new();
        let mut remaining = i64::from(schedule.capacity - schedule.booked_count);
        for i in pending {
            let r = &requests[i];
            if let Some(key) = &r.idempotency_key {
                if let Some(first) = first_with_key.get(&(r.user_id, key.clone())) {
                    decisions[i] = Some(Decision::SameAs(*first));
                    continue;
                }
                first_with_key.insert((r.user_id, key.clone()), i);
            }
            decisions[i] = Some(decide(
                r,
                &schedule,
                &seats,
                &mut taken,
                &mut held_by_user,
                &mut remaining,
            ));
        }
    }

    let claimed: Vec<(usize, &[seats_store::SeatRow])> = decisions
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match d {
            Some(Decision::Claim(seats)) => Some((i, seats.as_slice())),
            _ => None,
        })
        .collect();
    let mut made: HashMap<usize, ReservationRow> = HashMap::new();
    let mut change = None;
    if !claimed.is_empty() {
        let rows = write(conn, &schedule, db_now, requests, &claimed).await?;
        let seats: Vec<(i64, String)> = claimed
            .iter()
            .flat_map(|(_, seats)| seats.iter().map(|s| (s.id, "held".to_owned())))
            .collect();
        // Written as the value read under the lock, not `booked_count + n`: the same under
        // the lock, and what lets the negative-control test see a lost update without it.
        let booked = i64::from(schedule.booked_count) + seats.len() as i64;
        let version = diesel::sql_query(
            "UPDATE schedules SET booked_count = $2, version = version + 1, updated_at = now()
             WHERE id = $1 RETURNING version AS id",
        )
        .bind::<BigInt, _>(schedule_id)
        .bind::<Int4, _>(i32::try_from(booked).map_err(AppError::internal)?)
        .get_result::<NewId>(conn)
        .await?
        .id;
        change = Some(SeatChange {
            schedule_id,
            version,
            seats,
        });
        made = claimed.iter().map(|(i, _)| *i).zip(rows).collect();
    }
    let results = decisions
        .into_iter()
        .enumerate()
        .map(|(i, d)| match d {
            Some(Decision::Done(result)) => result,
            Some(Decision::Claim(_)) => made
                .get(&i)
                .cloned()
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("claimed request {i} has no row"))),
            Some(Decision::SameAs(first)) => made.get(&first).cloned().ok_or_else(|| {
                AppError::Conflict("the first request with this idempotency key failed".into())
            }),
            None => Err(AppError::internal(anyhow::anyhow!("request {i} left undecided"))),
        })
        .collect();
    Ok(BatchOutcome { results, change })
}

enum Decision {
    Done(AppResult<ReservationRow>),
    /// Hold these seats.
    Claim(Vec<seats_store::SeatRow>),
    /// Same user and key as an earlier request of the batch: answer with its outcome.
    SameAs(usize),
}

/// Decides one request against the seats as they are plus what earlier requests of the
/// batch took.
fn decide(
    r: &ReserveRequest,
    schedule: &ScheduleRow,
    seats: &HashMap<i64, seats_store::SeatRow>,
    taken: &mut HashSet<i64>,
    held_by_user: &mut HashMap<i64, i64>,
    remaining: &mut i64,
) -> Decision {
    let mut wanted = Vec::with_capacity(r.seat_ids.len());
    for id in &r.seat_ids {
        match seats.get(id) {
            Some(s) if s.schedule_id == schedule.id => wanted.push(s.clone()),
            _ => {
                return Decision::Done(Err(AppError::bad_input(
                    "input.seatIds",
                    format!("seat {id} is not a seat of this performance"),
                )));
            }
        }
    }
    if wanted
        .iter()
        .any(|s| s.status != "available" || taken.contains(&s.id))
    {
        return Decision::Done(Err(unavailable(*remaining)));
    }
    let held = held_by_user.get(&r.user_id).copied().unwrap_or(0);
    let n = wanted.len() as i64;
    if held + n > i64::from(schedule.per_user_limit) {
        return Decision::Done(Err(AppError::rule(
            ErrorCode::LimitExceeded,
            format!(
                "at most {} seats per person for this performance; you hold {held}",
                schedule.per_user_limit
            ),
        )));
    }
    taken.extend(wanted.iter().map(|s| s.id));
    *held_by_user.entry(r.user_id).or_default() += n;
    *remaining -= n;
    Decision::Claim(wanted)
}

/// Writes the reservations of the successful requests, their seats, and claims the seats.
async fn write(
    conn: &mut AsyncPgConnection,
    schedule: &ScheduleRow,
    now: DateTime<Utc>,
    requests: &[ReserveRequest],
    claimed: &[(usize, &[seats_store::SeatRow])],
) -> AppResult<Vec<ReservationRow>> {
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
    let users: Vec<i64> = claimed.iter().map(|(i, _)| requests[*i].user_id).collect();
    let keys: Vec<Option<String>> = claimed
        .iter()
        .map(|(i, _)| requests[*i].idempotency_key.clone())
        .collect();
    let counts: Vec<i32> = claimed.iter().map(|(_, s)| s.len() as i32).collect();
    let totals: Vec<i64> = claimed
        .iter()
        .map(|(_, s)| s.iter().map(|x| x.price).sum())
        .collect();
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
    let mut seat_ids = Vec::new();
    let mut owners = Vec::new();
    let mut grades = Vec::new();
    let mut prices = Vec::new();
    for ((_, seats), id) in claimed.iter().zip(&ids) {
        for s in seats.iter() {
            seat_ids.push(s.id);
            owners.push(*id);
            grades.push(s.grade.clone());
            prices.push(s.price);
        }
    }
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
    // RETURNING order is unspecified: put rows in the order of `ids`.
    let mut by_id: HashMap<i64, ReservationRow> = rows.into_iter().map(|r| (r.id, r)).collect();
    ids.iter()
        .map(|id| {
            by_id
                .remove(id)
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("reservation {id} not returned")))
        })
        .collect()
}

fn all_fail(n: usize, err: impl Fn() -> AppError) -> BatchOutcome {
    BatchOutcome {
        results: (0..n).map(|_| Err(err())).collect(),
        change: None,
    }
}
