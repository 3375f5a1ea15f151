//! The hold batch: the requests for one schedule applied in one transaction, as
//! load → decide → write; and a group of batches, the waiting batches of several schedules,
//! applied the same way in one transaction.
//!
//! - load: the schedule row locks (see `locks`), the requests' idempotency keys, then
//!   everything the decisions need: seats, users and what they hold, keys already used.
//!   All of it in one pipeline, so one round trip, for one schedule or many. Only a batch
//!   with a best-available request then reads its schedule's whole layout
//!   (`seats::store::layout_for_picking`), and the seats picked for it: batches of named
//!   seats never pay for that.
//! - decide: `decide::decide` for each schedule's batch, pure. Every per-request failure is
//!   decided there, so nothing of one request's data reaches the write.
//! - write: one statement for all successful requests together: it inserts their
//!   reservations and reservation seats, claims the seats and counts them.
//!
//! Under a schedule's lock nothing else can change which of its seats are available, so the
//! decision holds until commit. Three round trips per transaction whatever the batch size
//! and however many schedules it holds (BEGIN with the load, write, commit): that is how group
//! commit beats one booking per transaction, and how many small sales at once cost per
//! seat what one big sale does (`batcher` forms the groups).

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
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{SeatChange, sale, store::ReservationRow};
use crate::{
    auth::{Actor, Role},
    concerts::{ConcertStatus, service::visible_to, store::ScheduleRow},
    db::{Prepared, pipelined},
    error::{AppError, AppResult},
    in_doubt::{Witness, settle, within},
    locks::{self, LockedSchedule},
    seats::{SeatStatus, best_available::SeatLayout},
};

mod load;
mod write;

use boxoffice_core::{
    decide::{self, Decision, KeyUse, Loaded, SeatState},
    request::HoldRequest,
};
use load::*;
use write::{Claims, write};

/// What one schedule's batch of a group came to.
pub struct BatchOutcome {
    /// One result per request, in order.
    pub results: Vec<AppResult<ReservationRow>>,
    /// The committed seat changes, if any seat changed.
    pub change: Option<SeatChange>,
    /// The layout as this batch left it, for `Layouts` once committed (batches that picked).
    layout: Option<Cached>,
}

/// What a group transaction came to: its batches' outcomes in the order they were given.
pub struct GroupOutcome {
    pub batches: Vec<BatchOutcome>,
    /// The transaction's id, once a schedule row was locked (see `settle`).
    txid: Option<i64>,
    /// A reservation this transaction wrote, if it wrote any: its id and `created_at` (the
    /// transaction's own `now()`), what `settle` finds to know the commit is this one.
    witness: Option<(Witness, DateTime<Utc>)>,
}

impl GroupOutcome {
    /// Finds out whether this transaction, whose COMMIT went unanswered, committed (see
    /// `settle`): if so its answers stand; if not, `cause` is everyone's answer.
    pub(super) async fn settle(self, db: &crate::db::Pool, cause: AppError) -> AppResult<Self> {
        settle(db, self.txid, self.witness, cause).await.map(|()| self)
    }
}

/// One schedule's batch in a group: the schedule and its requests.
pub(super) type Part<'a> = (i64, &'a [HoldRequest]);

/// What became of a batch transaction.
pub(super) enum Applied {
    Committed(GroupOutcome),
    /// The body ran but COMMIT got no answer: the connection dropped (a failover, a killed
    /// backend) while PostgreSQL may already have committed. Answering "nothing written"
    /// would break I9 (an error answer that took effect), so `settle` looks it up first.
    InDoubt {
        outcome: GroupOutcome,
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

/// Whether the batch's load sends its transaction's BEGIN first (`db::pipelined`), or runs
/// in a transaction its caller began.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Begin {
    Pipelined,
    Begun,
}

/// Whether the batch takes the schedule lock: always, except in the negative control of
/// the concurrency tests (`negative-control` feature).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    Take,
    #[cfg(feature = "negative-control")]
    Skip,
}

/// Applies the batches of several schedules (`parts`, each schedule at most once) in one
/// transaction, or one batch. The caller keeps one user's key out of two parts of a group:
/// both would decide from a snapshot where it is unused (the key's unique index then fails
/// the whole group, which the batcher runs again batch by batch).
///
/// `reply` bounds the whole transaction on this side of the network. PostgreSQL's own
/// timeouts never see bytes a partition holds, and keepalive only ends a connection whose
/// peer's kernel stopped answering: without it, a batch caught by a partition that holds
/// the bytes waits as long as the partition. Given up before COMMIT was sent, nothing can
/// commit (the connection is dropped, and the server rolls back when it sees that or when
/// its idle-in-transaction timeout ends the session): UNAVAILABLE. Given up at COMMIT, the
/// outcome is in doubt and settled like a lost COMMIT.
pub(super) async fn reserve_group(
    conn: &mut AsyncPgConnection,
    parts: &[Part<'_>],
    lock: Lock,
    layouts: Option<&Layouts>,
    reply: Option<std::time::Duration>,
) -> AppResult<Applied> {
    let mut ids: Vec<i64> = parts.iter().map(|p| p.0).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != parts.len() {
        // Two parts of one schedule would both decide from one read of its seats.
        return Err(AppError::internal(anyhow::anyhow!(
            "a schedule twice in one group"
        )));
    }
    let mut body_ended = None;
    let mut applied = None;
    // BEGIN goes out with the load's statements (`db::pipelined`): a round trip less in
    // every batch, all of them on a sale's critical path.
    let transaction = async {
        pipelined::open(conn)?;
        let body = apply(conn, parts, lock, layouts, Begin::Pipelined)
            .await
            .map(|outcome| {
                applied = Some(outcome);
                body_ended = Some(Instant::now());
            });
        pipelined::close(conn, body).await
    };
    let committed = within(reply, transaction).await;
    let mut outcome = match (committed, applied) {
        (Ok(()), Some(outcome)) => outcome,
        // The body ran and COMMIT got no answer (a lost connection, or none within `reply`).
        (Err(cause), Some(outcome))
            if matches!(cause, AppError::Unavailable(_)) && outcome.txid.is_some() =>
        {
            return Ok(Applied::InDoubt { outcome, cause });
        }
        // The body failed, or the server refused the COMMIT itself (it answered): nothing
        // was written.
        (Err(e), _) => return Err(e),
        (Ok(()), None) => return Err(AppError::internal(anyhow::anyhow!("batch body left no outcome"))),
    };
    if let Some(at) = body_ended {
        phase("commit", at);
    }
    if let Some(layouts) = layouts {
        for ((schedule_id, _), batch) in parts.iter().zip(&mut outcome.batches) {
            if let Some(cached) = batch.layout.take() {
                layouts.put(*schedule_id, cached);
            }
        }
    }
    Ok(Applied::Committed(outcome))
}

/// Records how long one step of a batch took (`booking_batch_phase_seconds`): load (BEGIN,
/// the locks and reads, lock waits included, and the layout for best-available picks),
/// decide, write, commit. The schedule lock is held from load to commit and a schedule's
/// batches run one after another, so these say what bounds a sale's throughput.
fn phase(name: &'static str, since: Instant) {
    metrics::histogram!("booking_batch_phase_seconds", "phase" => name).record(since.elapsed().as_secs_f64());
}

/// One batch inside the caller's transaction, which already holds the schedule lock
/// (serving a waiting list after a release): the lock is taken again (a no-op for its
/// holder) to read the schedule as the release left it.
pub(super) async fn apply_in_transaction(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    requests: &[HoldRequest],
) -> AppResult<BatchOutcome> {
    let mut group = apply(conn, &[(schedule_id, requests)], Lock::Take, None, Begin::Begun).await?;
    group
        .batches
        .pop()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("a batch left no outcome")))
}

/// One part's way through its group: its load, its decisions, its claims.
struct Decided {
    decisions: Vec<Decision>,
    /// The numbers of the claiming requests, in order.
    claimed: Vec<usize>,
    claims: Vec<HoldRequest>,
    fingerprints: Vec<Option<i64>>,
    layout: Option<SeatLayout>,
    grades: Vec<String>,
}

async fn apply(
    conn: &mut AsyncPgConnection,
    parts: &[Part<'_>],
    lock: Lock,
    layouts: Option<&Layouts>,
    begin: Begin,
) -> AppResult<GroupOutcome> {
    let loading = Instant::now();
    let GroupLoad {
        parts: loads,
        mut seats,
        replays,
        txid,
    } = load(conn, parts, lock, begin).await?;
    let mut decided: Vec<Option<(LockedSchedule, Decided)>> = Vec::with_capacity(parts.len());
    let mut deciding = std::time::Duration::ZERO;
    for ((schedule_id, requests), part) in parts.iter().zip(loads) {
        let Some(PartLoad { locked, mut loaded }) = part else {
            decided.push(None);
            continue;
        };
        loaded.closed = sale::rules(&locked.schedule, locked.concert_status, locked.db_now).refusal();
        let schedule = &locked.schedule;
        if requests.iter().any(HoldRequest::is_best_available) {
            let cached = layouts.and_then(|l| l.get(schedule.id, schedule.version));
            let (layout, grades) = match cached {
                Some(c) => (c.layout, c.grades),
                None => crate::seats::store::layout_for_picking(conn, schedule.id).await?,
            };
            loaded.layout = Some(layout);
            loaded.grades = grades;
        }
        let started = Instant::now();
        let part = decide_part(*schedule_id, requests, loaded);
        deciding += started.elapsed();
        decided.push(Some((locked, part)));
    }
    metrics::histogram!("booking_batch_phase_seconds", "phase" => "load")
        .record(loading.elapsed().saturating_sub(deciding).as_secs_f64());
    let reading = Instant::now();
    // Picked seats become named ones: read what the write needs of them, for all parts.
    let picked: Vec<i64> = decided
        .iter()
        .flatten()
        .flat_map(|(_, d)| d.claims.iter().flat_map(HoldRequest::seat_ids))
        .filter(|id| !seats.contains_key(id))
        .copied()
        .collect();
    if !picked.is_empty() {
        seats.extend(read_seats(conn, &picked).await?.into_iter().map(|s| (s.id, s)));
    }
    metrics::histogram!("booking_batch_phase_seconds", "phase" => "decide")
        .record((deciding + reading.elapsed()).as_secs_f64());
    let claims: Vec<Claims<'_>> = decided
        .iter()
        .flatten()
        .filter(|(_, d)| !d.claims.is_empty())
        .map(|(locked, d)| Claims {
            schedule: &locked.schedule,
            requests: &d.claims,
            fingerprints: &d.fingerprints,
        })
        .collect();
    let mut written = Vec::new();
    let mut witness = None;
    if !claims.is_empty() {
        let writing = Instant::now();
        // One transaction, one `now()`: every schedule's lock read the same.
        let db_now = decided
            .iter()
            .flatten()
            .map(|(l, _)| l.db_now)
            .next()
            .unwrap_or_else(Utc::now);
        written = write(conn, db_now, &claims, &seats).await?;
        phase("write", writing);
        witness = written
            .iter()
            .flat_map(|(rows, _)| <[ReservationRow]>::first(rows))
            .map(|r| (Witness::Held(r.id), r.created_at))
            .next();
    }
    drop(claims);
    let mut written = written.into_iter();
    let batches = decided
        .into_iter()
        .zip(parts)
        .map(|(part, (_, requests))| {
            let Some((locked, d)) = part else {
                return BatchOutcome {
                    results: requests
                        .iter()
                        .map(|_| Err(AppError::NotFound("schedule")))
                        .collect(),
                    change: None,
                    layout: None,
                };
            };
            // A part without claims wrote nothing (and a missing write answers INTERNAL:
            // its claims have no rows).
            let (rows, change) = if d.claimed.is_empty() {
                (Vec::new(), None)
            } else {
                written
                    .next()
                    .map_or((Vec::new(), None), |(rows, c)| (rows, Some(c)))
            };
            finish(&locked.schedule, d, rows, change, &replays, layouts.is_some())
        })
        .collect();
    Ok(GroupOutcome {
        batches,
        txid,
        witness,
    })
}

/// Decides one part's requests and resolves its claims: picked seats become named ones.
fn decide_part(schedule_id: i64, requests: &[HoldRequest], loaded: Loaded) -> Decided {
    let decisions = decide::decide(&loaded, requests);
    let mut claimed = Vec::new();
    let mut claims = Vec::new();
    // What each claim's key stands for: the request as asked, not as resolved.
    let mut fingerprints = Vec::new();
    for (i, d) in decisions.iter().enumerate() {
        if let Decision::Claim(seat_ids) = d {
            claimed.push(i);
            fingerprints.push(
                requests[i]
                    .idempotency_key
                    .as_ref()
                    .map(|_| requests[i].fingerprint(schedule_id)),
            );
            claims.push(HoldRequest::seats(
                requests[i].user_id,
                seat_ids.clone(),
                requests[i].idempotency_key.clone(),
            ));
        }
    }
    Decided {
        decisions,
        claimed,
        claims,
        fingerprints,
        layout: loaded.layout,
        grades: loaded.grades,
    }
}

/// One part's answers, and the layout it leaves: what it read, with every claim taken.
fn finish(
    schedule: &ScheduleRow,
    d: Decided,
    rows: Vec<ReservationRow>,
    change: Option<SeatChange>,
    replays: &HashMap<i64, ReservationRow>,
    keep_layout: bool,
) -> BatchOutcome {
    let made: HashMap<usize, ReservationRow> = d.claimed.iter().copied().zip(rows).collect();
    let mut results: Vec<AppResult<ReservationRow>> = Vec::with_capacity(d.decisions.len());
    for (i, decision) in d.decisions.into_iter().enumerate() {
        let result = match decision {
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
    let layout = match (keep_layout, d.layout) {
        (true, Some(mut layout)) => {
            for seat_ids in d.claims.iter().map(HoldRequest::seat_ids) {
                layout.take_ids(seat_ids);
            }
            Some(Cached {
                version: change.as_ref().map_or(schedule.version, |c| c.version),
                layout,
                grades: d.grades,
            })
        }
        _ => None,
    };
    BatchOutcome {
        results,
        change,
        layout,
    }
}
