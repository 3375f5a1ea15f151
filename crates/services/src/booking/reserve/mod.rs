//! The hold batch: many requests for one schedule applied in one transaction, as
//! load → decide → write.
//!
//! - load: the schedule row lock (see `locks`), the requests' idempotency keys, then
//!   everything the decision needs: seats, users and what they hold, keys already used.
//!   All of it in one pipeline, so one round trip. Only a batch with a best-available
//!   request then reads the schedule's whole layout (`seats::store::layout_for_picking`),
//!   and the seats picked for it: batches of named seats never pay for that.
//! - decide: `decide::decide`, pure. Every per-request failure is decided there, so nothing
//!   of one request's data reaches the write.
//! - write: one statement for all successful requests together: it inserts their
//!   reservations and reservation seats, claims the seats and counts them.
//!
//! Under the schedule lock nothing else can change which of its seats are available, so the
//! decision holds until commit. Four round trips per transaction whatever the batch size
//! (begin, load, write, commit): that is how group commit beats one booking per
//! transaction.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::{
    QueryableByName,
    sql_types::{Array, BigInt, Int4, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use super::{SeatChange, sale, store::ReservationRow};
use crate::{
    auth::{Actor, Role},
    concerts::{ConcertStatus, service::visible_to, store::ScheduleRow},
    db::Prepared,
    error::{AppError, AppResult},
    locks::{self, LockedSchedule},
    seats::{SeatStatus, best_available::SeatLayout},
};

mod load;
mod settle;

use boxoffice_core::{
    decide::{self, Decision, KeyUse, Loaded, SeatState},
    request::HoldRequest,
};
use load::*;
pub(super) use settle::settle;

pub struct BatchOutcome {
    /// One result per request, in order.
    pub results: Vec<AppResult<ReservationRow>>,
    /// The committed seat changes, if any seat changed.
    pub change: Option<SeatChange>,
    /// The layout as this batch left it, for `Layouts` once committed (batches that picked).
    layout: Option<Cached>,
    /// The transaction's id, once the schedule row was locked (see `settle`).
    txid: Option<i64>,
    /// A reservation this transaction wrote, if it wrote any: its id and `created_at` (the
    /// transaction's own `now()`), what `settle` finds to know the commit is this one.
    witness: Option<(i64, DateTime<Utc>)>,
}

impl BatchOutcome {
    /// A batch that wrote `witness` (if anything) in transaction `txid`, answers aside.
    #[cfg(feature = "negative-control")]
    pub(in crate::booking) fn in_doubt(txid: i64, witness: Option<(i64, DateTime<Utc>)>) -> Self {
        Self {
            results: Vec::new(),
            change: None,
            layout: None,
            txid: Some(txid),
            witness,
        }
    }
}

/// What became of a batch transaction.
pub(super) enum Applied {
    Committed(BatchOutcome),
    /// The body ran but COMMIT got no answer: the connection dropped (a failover, a killed
    /// backend) while PostgreSQL may already have committed. Answering "nothing written"
    /// would break I9 (an error answer that took effect), so `settle` looks it up first.
    InDoubt {
        outcome: BatchOutcome,
        cause: AppError,
    },
}

/// A schedule's layout for picking, as it stands at `version` of the schedule.
#[derive(Clone)]
struct Cached {
    version: i64,
    layout: SeatLayout,
    grades: Vec<String>,
}

/// The layouts of the schedules this instance's batches picked from, each with the schedule
/// version it is true at. A batch with a best-available request uses the layout only when
/// the version it read under the schedule lock is the same (every change of a seat bumps
/// it, whoever makes it), else reads it again: reading 20,000 seats per batch made
/// best-available picks three times slower than named seats. A layout is stored only after
/// its batch committed. The picks stay checked by the write (`seats.status = 'available'`
/// under the lock), so a layout can only make a pick worse, never sell a seat twice.
#[derive(Default)]
pub(super) struct Layouts {
    map: std::sync::Mutex<HashMap<i64, Cached>>,
    /// Batches that read their layout from the database, and batches that reused one.
    pub reads: AtomicU64,
    pub reuses: AtomicU64,
}

impl Layouts {
    /// Schedules kept at most; a 50,000-seat layout is about 1 MB.
    const MAX: usize = 32;

    fn get(&self, schedule_id: i64, version: i64) -> Option<Cached> {
        let map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = map.get(&schedule_id).filter(|c| c.version == version).cloned();
        let counter = if found.is_some() {
            &self.reuses
        } else {
            &self.reads
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn put(&self, schedule_id: i64, cached: Cached) {
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= Self::MAX && !map.contains_key(&schedule_id) {
            map.clear();
        }
        map.insert(schedule_id, cached);
    }
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
    layouts: Option<&Layouts>,
) -> AppResult<Applied> {
    let began = Instant::now();
    let mut body_ended = None;
    let mut applied = None;
    let committed = conn
        .transaction(async |conn| {
            phase("begin", began);
            applied = Some(apply(conn, schedule_id, requests, lock, layouts).await?);
            body_ended = Some(Instant::now());
            Ok::<_, AppError>(())
        })
        .await;
    let mut outcome = match (committed, applied) {
        (Ok(()), Some(outcome)) => outcome,
        // The server refused the COMMIT itself (it answered): nothing was written.
        (Err(cause), Some(outcome))
            if matches!(cause, AppError::Unavailable(_)) && outcome.txid.is_some() =>
        {
            return Ok(Applied::InDoubt { outcome, cause });
        }
        (Err(e), _) => return Err(e),
        (Ok(()), None) => return Err(AppError::internal(anyhow::anyhow!("batch body left no outcome"))),
    };
    if let Some(at) = body_ended {
        phase("commit", at);
    }
    if let (Some(layouts), Some(cached)) = (layouts, outcome.layout.take()) {
        layouts.put(schedule_id, cached);
    }
    Ok(Applied::Committed(outcome))
}

/// Records how long one step of a batch took (`booking_batch_phase_seconds`): begin, load
/// (the locks and reads, lock waits included, and the layout for best-available picks),
/// decide, write, commit. The schedule lock is held from load to commit and a schedule's
/// batches run one after another, so these say what bounds a sale's throughput.
fn phase(name: &'static str, since: Instant) {
    metrics::histogram!("booking_batch_phase_seconds", "phase" => name).record(since.elapsed().as_secs_f64());
}

/// The same inside the caller's transaction, which already holds the schedule lock (serving
/// a waiting list after a release): the lock is taken again (a no-op for its holder) to
/// read the schedule as the release left it.
pub(super) async fn apply_in_transaction(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    requests: &[HoldRequest],
) -> AppResult<BatchOutcome> {
    apply(conn, schedule_id, requests, Lock::Take, None).await
}

async fn apply(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    requests: &[HoldRequest],
    lock: Lock,
    layouts: Option<&Layouts>,
) -> AppResult<BatchOutcome> {
    let mut keys: Vec<(i64, String)> = requests
        .iter()
        .filter_map(|r| r.idempotency_key.clone().map(|k| (r.user_id, k)))
        .collect();
    // A double-click sends one key several times in a batch.
    keys.sort_unstable();
    keys.dedup();
    let loading = Instant::now();
    let Some((locked, loaded, seats, replays)) = load(conn, schedule_id, &keys, requests, lock).await? else {
        return Ok(BatchOutcome {
            results: requests
                .iter()
                .map(|_| Err(AppError::NotFound("schedule")))
                .collect(),
            change: None,
            layout: None,
            txid: None,
            witness: None,
        });
    };
    let schedule = locked.schedule;
    let mut loaded = Loaded {
        closed: sale::rules(&schedule, locked.concert_status, locked.db_now).refusal(),
        ..loaded
    };
    if requests.iter().any(HoldRequest::is_best_available) {
        let cached = layouts.and_then(|l| l.get(schedule.id, schedule.version));
        let (layout, grades) = match cached {
            Some(c) => (c.layout, c.grades),
            None => crate::seats::store::layout_for_picking(conn, schedule.id).await?,
        };
        loaded.layout = Some(layout);
        loaded.grades = grades;
    }
    phase("load", loading);
    let deciding = Instant::now();
    let decisions = decide::decide(&loaded, requests);

    // The claiming requests with the seats they get: picked seats become named ones.
    let mut claimed: Vec<usize> = Vec::new();
    let mut resolved: Vec<HoldRequest> = Vec::new();
    // What each claim's key stands for: the request as asked, not as resolved.
    let mut fingerprints: Vec<Option<i64>> = Vec::new();
    for (i, d) in decisions.iter().enumerate() {
        if let Decision::Claim(seat_ids) = d {
            claimed.push(i);
            fingerprints.push(
                requests[i]
                    .idempotency_key
                    .as_ref()
                    .map(|_| requests[i].fingerprint(schedule_id)),
            );
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
    let mut seats = seats;
    if !picked.is_empty() {
        seats.extend(read_seats(conn, &picked).await?.into_iter().map(|s| (s.id, s)));
    }
    phase("decide", deciding);
    let mut made: HashMap<usize, ReservationRow> = HashMap::new();
    let mut change = None;
    let mut witness = None;
    if !claimed.is_empty() {
        let writing = Instant::now();
        let (rows, seat_change) =
            write(conn, &schedule, locked.db_now, &resolved, &fingerprints, &seats).await?;
        phase("write", writing);
        witness = <[ReservationRow]>::first(&rows).map(|r| (r.id, r.created_at));
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
            Decision::Refuse(e) => Err(e.into()),
            // Answered alike: the earlier request's own answer.
            Decision::SameAs(first) => results[first].clone(),
        };
        results.push(result);
    }
    // The layout as this batch leaves it: what it read, with every claim taken.
    let layout = match (layouts, loaded.layout) {
        (Some(_), Some(mut layout)) => {
            for seat_ids in resolved.iter().map(HoldRequest::seat_ids) {
                layout.take_ids(seat_ids);
            }
            Some(Cached {
                version: change.as_ref().map_or(schedule.version, |c| c.version),
                layout,
                grades: loaded.grades,
            })
        }
        _ => None,
    };
    Ok(BatchOutcome {
        results,
        change,
        layout,
        txid: Some(locked.txid),
        witness,
    })
}

/// A reservation written by the batch, with the number of its request in the batch
/// (1-based) and what the statement as a whole did.
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

/// The whole write of a batch in one statement, so one round trip whatever its size. Each
/// claiming request gets a reservation id from the sequence (`t`, evaluated once because
/// it is volatile); its seats find that id through the request's number. The foreign keys
/// are checked at the end of the statement, when every part of it is done. `evented` writes
/// the batch's `reservation.held` events to the outbox in the same statement (I12) as one
/// carrier row (`boxoffice_outbox::append::BATCH_SUBJECT`) holding only the reservations'
/// ids: the relay makes each event from its reservation later, off this lock (issue 25: the
/// events' JSON built here cost the sale about 10 % of its holds/s).
const WRITE: &str = concat!(
    "
WITH t AS (
  SELECT nextval('reservations_id_seq') AS id, u.*
  FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::text[], $12::bigint[]) WITH ORDINALITY AS u(user_id, seat_count, total, key, fp, ord)
), made AS (
  INSERT INTO reservations (id, schedule_id, user_id, status, seat_count, total_price, idempotency_key, expires_at, request_hash)
  SELECT t.id, $5, t.user_id, 'held', t.seat_count, t.total, t.key, $6, t.fp FROM t
  RETURNING *
), s AS (
  SELECT t.id AS reservation_id, x.seat_id, x.grade, x.price
  FROM unnest($7::bigint[], $8::bigint[], $9::text[], $10::bigint[]) AS x(req, seat_id, grade, price)
  JOIN t ON t.ord = x.req
), kept AS (
  INSERT INTO reservation_seats (reservation_id, seat_id, grade_name, price) SELECT * FROM s
), claimed AS (
  UPDATE seats SET status = 'held', reservation_id = s.reservation_id FROM s
  WHERE seats.id = s.seat_id AND seats.status = 'available' RETURNING seats.id
), counted AS (
  UPDATE schedules SET booked_count = $11, version = version + 1, updated_at = now()
  WHERE id = $5 RETURNING version
), evented AS (
  INSERT INTO outbox (event_type, subject, concert_id, data)
  SELECT 'reservation.held', 'batch', $13::bigint, jsonb_build_object('reservationIds', jsonb_agg(made.id ORDER BY made.id))
  FROM made HAVING count(*) > 0
)
SELECT t.ord, ",
    boxoffice_store::reservation_columns!("made"),
    ", (SELECT count(*) FROM claimed) AS claimed, (SELECT version FROM counted) AS version
FROM made JOIN t ON t.id = made.id"
);

/// Writes the reservations of the claims (requests naming the seats they get, picked ones
/// included) and their seats, claims the seats and counts them. Returns the reservations in
/// the order of `claimed`.
async fn write(
    conn: &mut AsyncPgConnection,
    schedule: &ScheduleRow,
    now: DateTime<Utc>,
    claimed: &[HoldRequest],
    fingerprints: &[Option<i64>],
    seats: &HashMap<i64, SeatRow>,
) -> AppResult<(Vec<ReservationRow>, SeatChange)> {
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
    for (ord, r) in (1_i64..).zip(claimed) {
        users.push(r.user_id);
        keys.push(r.idempotency_key.clone());
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
    }
    // Written as the value read under the lock, not `booked_count + n`: the same under the
    // lock, and what lets the negative-control test see a lost update without it.
    let booked = i64::from(schedule.booked_count) + seat_ids.len() as i64;
    let written: Vec<Written> = Prepared(
        diesel::sql_query(WRITE)
            .bind::<Array<BigInt>, _>(users)
            .bind::<Array<Int4>, _>(counts)
            .bind::<Array<BigInt>, _>(totals)
            .bind::<Array<Nullable<Text>>, _>(keys)
            .bind::<BigInt, _>(schedule.id)
            .bind::<Timestamptz, _>(expires_at)
            .bind::<Array<BigInt>, _>(owners)
            .bind::<Array<BigInt>, _>(&seat_ids)
            .bind::<Array<Text>, _>(grades)
            .bind::<Array<BigInt>, _>(prices)
            .bind::<Int4, _>(i32::try_from(booked).map_err(AppError::internal)?)
            .bind::<Array<Nullable<BigInt>>, _>(fingerprints)
            .bind::<BigInt, _>(schedule.concert_id),
    )
    .load(conn)
    .await?;
    let (updated, version) = <[Written]>::first(&written).map_or((0, 0), |w| (w.claimed, w.version));
    if usize::try_from(updated).ok() != Some(seat_ids.len()) {
        // Only possible if a writer changed seats without the booking-count lock.
        return Err(AppError::internal(anyhow::anyhow!(
            "claimed {updated} of {} seats under the schedule lock",
            seat_ids.len()
        )));
    }
    // RETURNING order is unspecified: put rows in the order of `claimed`.
    let mut by_ord: HashMap<i64, ReservationRow> =
        written.into_iter().map(|w| (w.ord, w.reservation)).collect();
    let rows = (1..=claimed.len() as i64)
        .map(|ord| {
            by_ord.remove(&ord).ok_or_else(|| {
                AppError::internal(anyhow::anyhow!("reservation of request {ord} not returned"))
            })
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
