//! The booking core: holding seats, paying, cancelling, expiring.
//!
//! This file is booking's one entrance. Resolvers, the order worker and the concerts module
//! call only the functions below; each commits its change and then announces it to live
//! subscribers, here, in one place. Everything else is internal:
//!
//! A hold goes one way: `hold` → `leader` (routes it: this instance, or the instance
//! leading the schedule) → `batcher` (of the instance it was routed to) → `reserve`. The
//! batcher never calls back into the leader.
//!
//! - `leader`: on a busy schedule, one instance leads its bookings under a Redis lease and
//!   the others forward their hold requests to it, so batches stay big across instances.
//!   It only routes: every request ends in some instance's batcher.
//! - `batcher`: one in-process queue per schedule feeding `reserve` with batches (group
//!   commit), retrying a failed batch in halves. It only batches what it is handed.
//! - `reserve`: the batch transaction, load → `decide` → write.
//! - `decide` (in `boxoffice_core`): the pure decision of a batch (unit- and
//!   property-tested without a database).
//! - `sale`: the sale rules (on sale, sales window, published, not cancelled) on the
//!   database clock, for every place that asks.
//! - `lifecycle`: pay, cancel, expire, cancel a schedule.
//! - `crate::in_doubt`: a write whose COMMIT went unanswered (a failover, a partition past
//!   the reply deadline) is looked up before it is answered, so an error is never a change
//!   that took effect (I9). The hold batch, payment, cancellation and refund name their own
//!   witnesses there.
//! - `sweeper`: the background task that expires overdue holds.
//! - `keep`: seats a host keeps back (block, unblock) or gives away (complimentary
//!   tickets), under the same schedule lock as the hold batches.
//! - `store`: reservation rows and reads.
//! - `graphql`, in the server (`src/`): `Reservation`, `reserveSeats`, `payReservation`, `cancelReservation`, ...
//!
//! Row locks and their order (I6) are in `crate::locks`.

pub mod batcher;
pub mod change;
mod keep;
pub mod leader;
mod lifecycle;
mod reserve;
pub mod reserved_seats;
pub mod sale;
pub use boxoffice_store::booking as store;
pub use boxoffice_store::booking::ReservationStatus;
mod sweeper;

use std::collections::HashSet;

use diesel_async::AsyncPgConnection;

pub use batcher::{Batcher, MAX_BATCH, Stats};
// The pure decision and the request it decides live in the core crate (no I/O there).
pub use boxoffice_core::{
    decide::KEY_USED,
    request::{HoldRequest, MAX_SEATS_PER_REQUEST, Origin, Want},
};
pub use change::SeatChange;
pub use keep::Guest;
pub use leader::{Holds, LeaderStats, Leadership};
pub use store::ReservationRow;

use crate::{
    auth::{Actor, Role},
    concerts::{
        ScheduleStatus, service as concerts,
        store::{ConcertRow, ScheduleRow},
    },
    error::{AppError, AppResult},
    in_doubt,
    points::service::validate_key,
    state::Services,
};

/// Two changes of one transaction as one: what subscribers see of a release that served a
/// waiting list is its final state (seats handed on show as held, never as available).
fn merged(first: Option<SeatChange>, later: Option<SeatChange>) -> Option<SeatChange> {
    match (first, later) {
        (Some(a), Some(b)) => Some(a.then(b)),
        (a, b) => a.or(b),
    }
}

/// Holds seats for `requests` inside the caller's transaction, which holds the schedule
/// lock already: how a release serves the schedule's waiting list. One result per request;
/// the change is not announced (the caller announces it after its commit).
pub(crate) async fn hold_in_transaction(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    requests: &[HoldRequest],
) -> AppResult<(Vec<AppResult<ReservationRow>>, Option<SeatChange>)> {
    let outcome = reserve::apply_in_transaction(conn, schedule_id, requests).await?;
    Ok((outcome.results, outcome.change))
}

/// Tells live subscribers about a committed change. Never fails the caller: the change
/// is already committed, and a subscriber that misses it sees the version gap.
fn announce(live: &crate::live::Live, change: SeatChange) {
    metrics::counter!("seat_changes_total").increment(change.seats.len() as u64);
    live.publish_seats(change);
}

/// Checks and normalises a hold request (sorted, distinct seats; a sane key).
pub fn hold_request(user_id: i64, seat_ids: &[i64], idempotency_key: Option<&str>) -> AppResult<HoldRequest> {
    if seat_ids.is_empty() || seat_ids.len() > MAX_SEATS_PER_REQUEST {
        return Err(AppError::bad_input(
            "input.seatIds",
            format!("must list 1 to {MAX_SEATS_PER_REQUEST} seats"),
        ));
    }
    let distinct: HashSet<i64> = seat_ids.iter().copied().collect();
    if distinct.len() != seat_ids.len() {
        return Err(AppError::bad_input("input.seatIds", "lists a seat twice"));
    }
    let mut seat_ids = seat_ids.to_vec();
    seat_ids.sort_unstable();
    Ok(HoldRequest::seats(
        user_id,
        seat_ids,
        idempotency_key.map(hold_key).transpose()?,
    ))
}

/// A client's idempotency key for a hold. Keys starting with `leader::GENERATED_KEY_PREFIX`
/// are the ones this server makes for forwarded requests, which take no key lock (see
/// `reserve::load`): a client may not send one.
fn hold_key(key: &str) -> AppResult<String> {
    let key = validate_key(key, "input.idempotencyKey")?;
    if key.starts_with(leader::GENERATED_KEY_PREFIX) {
        return Err(AppError::bad_input(
            "input.idempotencyKey",
            format!("must not start with {}", leader::GENERATED_KEY_PREFIX),
        ));
    }
    Ok(key)
}

/// Checks a best-available request (`reserveBestAvailable`): 1 to 10 seats, a grade name if
/// any (whether the schedule has it is decided in the batch, under its lock), a sane key.
pub fn best_available_request(
    user_id: i64,
    count: i32,
    grade: Option<&str>,
    idempotency_key: Option<&str>,
) -> AppResult<HoldRequest> {
    let count = u32::try_from(count)
        .ok()
        .filter(|c| (1..=MAX_SEATS_PER_REQUEST).contains(&(*c as usize)))
        .ok_or_else(|| AppError::bad_input("input.count", format!("must be 1 to {MAX_SEATS_PER_REQUEST}")))?;
    let grade = match grade.map(str::trim) {
        Some("") => return Err(AppError::bad_input("input.grade", "must not be empty")),
        g => g.map(str::to_owned),
    };
    Ok(HoldRequest {
        user_id,
        want: Want::BestAvailable { count, grade },
        idempotency_key: idempotency_key.map(hold_key).transpose()?,
        origin: Origin::Direct,
    })
}

/// Holds seats for a fan (`reserveSeats`, `reserveBestAvailable`): the queue admission
/// first, then the schedule's batch (group commit), where best-available seats are picked.
pub async fn hold(state: &Services, schedule_id: i64, request: HoldRequest) -> AppResult<ReservationRow> {
    crate::queue::ensure_admitted(state, schedule_id, request.user_id).await?;
    state
        .payments
        .debtors
        .ensure_not_in_debt(&state.db, request.user_id)
        .await?;
    leader::submit(&state.holds, schedule_id, request).await
}

/// Holds seats for an accepted order (`placeOrder`, whose admission was checked when it
/// was placed).
pub async fn hold_order(
    state: &Services,
    schedule_id: i64,
    request: HoldRequest,
) -> AppResult<ReservationRow> {
    state
        .payments
        .debtors
        .ensure_not_in_debt(&state.db, request.user_id)
        .await?;
    leader::submit(&state.holds, schedule_id, request).await
}

/// Pays a hold with the user's points and sells its seats.
pub async fn pay(
    state: &Services,
    user_id: i64,
    reservation_id: i64,
    key: &str,
) -> AppResult<ReservationRow> {
    let key = validate_key(key, "idempotencyKey")?;
    let mut conn = state.db.get().await?;
    match lifecycle::pay(
        &mut conn,
        state.writes(),
        user_id,
        reservation_id,
        &key,
        state.tickets.signer(),
    )
    .await?
    {
        lifecycle::Paid::Already(r) => Ok(r),
        lifecycle::Paid::Now(r, change) => {
            // Payment does not take the schedule lock; its version bump is a short
            // transaction of its own after the commit, on a connection from the pool: a
            // payment settled after its COMMIT went unanswered left its own inside that
            // transaction, and the pool discards such a connection when it comes back.
            drop(conn);
            let bumped = match state.db.get().await {
                Ok(mut conn) => lifecycle::bump_version(&mut conn, change).await,
                Err(e) => Err(e.into()),
            };
            match bumped {
                Ok(change) => announce(&state.live, change),
                // The sale is committed; only the live update is lost, and the next
                // change's version tells subscribers to re-read.
                Err(e) => tracing::warn!(error = %e, "could not bump the schedule version after a payment"),
            }
            Ok(r)
        }
    }
}

/// Releases a hold or refunds a paid reservation (its owner, or an admin).
pub async fn cancel(state: &Services, actor: Actor, reservation_id: i64) -> AppResult<ReservationRow> {
    let mut conn = state.db.get().await?;
    let (r, freed) = lifecycle::cancel(
        &mut conn,
        state.writes(),
        actor.id,
        actor.role == Role::Admin,
        reservation_id,
    )
    .await?;
    if let Some(change) = freed.change {
        announce(&state.live, change);
    }
    crate::waitlist::publish(&state.live.hub, &freed.offers);
    Ok(r)
}

/// Refunds a paid reservation in full (`refundReservation`, by its concert's host or an
/// admin: the caller checked which). Idempotent; see `lifecycle::refund_paid`.
pub async fn refund(
    state: &Services,
    actor: Actor,
    reservation_id: i64,
    reason: &str,
) -> AppResult<ReservationRow> {
    let mut conn = state.db.get().await?;
    let (r, freed) =
        lifecycle::refund_paid(&mut conn, state.writes(), actor.id, reservation_id, reason).await?;
    if let Some(change) = freed.change {
        announce(&state.live, change);
    }
    crate::waitlist::publish(&state.live.hub, &freed.offers);
    Ok(r)
}

/// Cancels one schedule (its host or an admin): every live reservation is cancelled and
/// paid ones refunded, in one transaction.
pub async fn cancel_schedule(state: &Services, actor: Actor, schedule_id: i64) -> AppResult<ScheduleRow> {
    let mut conn = state.db.get().await?;
    let (schedule, change) = in_doubt::write(&mut conn, state.bulk_writes(), async |conn| {
        let schedule = concerts::check_cancel_schedule(conn, actor, schedule_id).await?;
        if schedule.status == ScheduleStatus::Cancelled {
            return Ok((schedule, None));
        }
        let change = lifecycle::cancel_schedule(conn, schedule_id).await?;
        // Cancelling refunds everyone holding or owning a seat: audited like
        // cancelConcert.
        crate::admin::audit::record(
            conn,
            actor.id,
            "cancel_schedule",
            "schedule",
            Some(schedule_id),
            serde_json::json!({ "concert": schedule.concert_id }),
        )
        .await?;
        let schedule = crate::concerts::store::schedule(conn, schedule_id)
            .await?
            .ok_or(AppError::NotFound("schedule"))?;
        Ok::<_, AppError>((schedule, change))
    })
    .await?;
    if let Some(change) = change {
        announce(&state.live, change);
    }
    Ok(schedule)
}

/// Cancels a concert and every schedule of it, refunding every paid reservation, in one
/// transaction (concert row first, then each schedule in ascending id: see `locks`).
pub async fn cancel_concert(
    state: &Services,
    actor: Actor,
    concert_id: i64,
    reason: &str,
) -> AppResult<ConcertRow> {
    let reason = concerts::cancel_reason(reason)?;
    let mut conn = state.db.get().await?;
    let (concert, changes) = in_doubt::write(&mut conn, state.bulk_writes(), async |conn| {
        let schedules = concerts::check_cancel_concert(conn, actor, concert_id).await?;
        let mut changes = Vec::new();
        for schedule_id in schedules {
            changes.extend(lifecycle::cancel_schedule(conn, schedule_id).await?);
        }
        let concert =
            concerts::mark_concert_cancelled(conn, actor, concert_id, &reason, changes.len()).await?;
        Ok::<_, AppError>((concert, changes))
    })
    .await?;
    for change in changes {
        announce(&state.live, change);
    }
    Ok(concert)
}

/// Keeps free seats of a schedule back (its host or an admin): BLOCKED, never sold. Under
/// the schedule lock of the hold batches, so a seat is never blocked and held at once.
pub async fn block(
    state: &Services,
    actor: Actor,
    schedule_id: i64,
    seat_ids: &[i64],
    reason: &str,
) -> AppResult<ScheduleRow> {
    let mut conn = state.db.get().await?;
    let kept = keep::block(&mut conn, state.writes(), actor, schedule_id, seat_ids, reason).await?;
    if let Some(change) = kept.change {
        announce(&state.live, change);
    }
    Ok(kept.schedule)
}

/// Puts blocked seats back on sale; the schedule's waiting list is served first.
pub async fn unblock(
    state: &Services,
    actor: Actor,
    schedule_id: i64,
    seat_ids: &[i64],
) -> AppResult<ScheduleRow> {
    let mut conn = state.db.get().await?;
    let kept = keep::unblock(&mut conn, state.writes(), actor, schedule_id, seat_ids).await?;
    if let Some(change) = kept.change {
        announce(&state.live, change);
    }
    crate::waitlist::publish(&state.live.hub, &kept.offers);
    Ok(kept.schedule)
}

/// Gives free or blocked seats to a guest at price 0, tickets issued (its host or an
/// admin); whether the guest's claim link was stored (an invited account, unclaimed).
pub async fn comp(
    state: &Services,
    actor: Actor,
    schedule_id: i64,
    seat_ids: &[i64],
    guest: &Guest<'_>,
    note: Option<&str>,
) -> AppResult<(ReservationRow, bool)> {
    let (reservation, change, claim_issued) =
        keep::comp(state, actor, schedule_id, seat_ids, guest, note).await?;
    announce(&state.live, change);
    Ok((reservation, claim_issued))
}

/// Announces a schedule change that moved no seat (its times, prices or limits): a
/// `seatChanges` event with no seats and the new version, whose `schedule` carries the
/// change to every watcher, holders on their checkout pages among them.
pub fn announce_schedule(state: &Services, schedule_id: i64, version: i64) {
    announce(
        &state.live,
        SeatChange {
            schedule_id,
            version,
            seats: Vec::new(),
        },
    );
}

/// Expires every overdue hold now (what the sweeper does on each tick). Returns the number
/// of seats released.
pub async fn expire_due_holds(state: &Services) -> AppResult<usize> {
    sweeper::sweep(state).await
}

/// Starts the background sweeper of overdue holds.
pub fn spawn_sweeper(
    state: Services,
    interval: std::time::Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    sweeper::spawn(state, interval, stop);
}

/// Stops leading schedules' bookings when `stop` turns true (shutdown): the leases are
/// released so another instance takes over at once, and this instance batches alone.
pub fn stop_leading_on(state: Services, stop: tokio::sync::watch::Receiver<bool>) {
    leader::stop_on(state.leadership.clone(), stop);
}

/// A reservation by id (no ownership check: the caller's).
pub async fn reservation(conn: &mut AsyncPgConnection, id: i64) -> AppResult<Option<ReservationRow>> {
    Ok(store::reservation(conn, id).await?)
}

/// The negative control of the concurrency tests, and the one-request-per-transaction path
/// they race with. Compiled only with the `negative-control` cargo feature, which the test
/// suite turns on for itself; a release build has neither.
#[cfg(feature = "negative-control")]
pub mod negative_control {
    use diesel_async::AsyncPgConnection;

    use super::{HoldRequest, ReservationRow, reserve};
    use crate::error::AppResult;

    /// One request in a batch transaction of its own, on the caller's connection.
    pub async fn hold_alone(
        conn: &mut AsyncPgConnection,
        schedule_id: i64,
        request: HoldRequest,
    ) -> AppResult<AppResult<ReservationRow>> {
        one(conn, schedule_id, request, reserve::Lock::Take).await
    }

    /// The same without the schedule lock: what the lock prevents.
    pub async fn hold_alone_without_lock(
        conn: &mut AsyncPgConnection,
        schedule_id: i64,
        request: HoldRequest,
    ) -> AppResult<AppResult<ReservationRow>> {
        one(conn, schedule_id, request, reserve::Lock::Skip).await
    }

    /// Whether a hold batch whose COMMIT went unanswered is taken for committed, given its
    /// transaction id and the reservation it wrote (`in_doubt::settle`): what a standby
    /// promoted without the batch's WAL, which gave that id to a transaction of its own,
    /// must not make it say.
    pub async fn settles_as_committed(
        db: &crate::db::Pool,
        txid: i64,
        witness: Option<(i64, chrono::DateTime<chrono::Utc>)>,
    ) -> bool {
        let cause = crate::error::AppError::unavailable(anyhow::anyhow!("the COMMIT went unanswered"));
        let witness = witness.map(|(id, at)| (crate::in_doubt::Witness::Held(id), at));
        crate::in_doubt::settle(db, Some(txid), witness, cause)
            .await
            .is_ok()
    }

    async fn one(
        conn: &mut AsyncPgConnection,
        schedule_id: i64,
        request: HoldRequest,
        lock: reserve::Lock,
    ) -> AppResult<AppResult<ReservationRow>> {
        let outcome =
            match reserve::reserve_group(conn, &[(schedule_id, &[request])], lock, None, None).await? {
                reserve::Applied::Committed(outcome) => outcome,
                reserve::Applied::InDoubt { cause, .. } => return Err(cause),
            };
        Ok(outcome
            .batches
            .into_iter()
            .flat_map(|b| b.results)
            .next()
            .unwrap_or_else(|| Err(crate::error::AppError::internal(anyhow::anyhow!("no result")))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_and_sorted() {
        let r = hold_request(1, &[5, 3, 9], Some(" k1 ")).unwrap();
        assert_eq!(r.seat_ids(), [3, 5, 9]);
        assert_eq!(r.idempotency_key.as_deref(), Some("k1"));
        assert!(hold_request(1, &[], None).is_err());
        assert!(hold_request(1, &[1, 1], None).is_err());
        assert!(hold_request(1, &(1..=11).collect::<Vec<_>>(), None).is_err());
        assert!(hold_request(1, &[1], Some("")).is_err());
        // The prefix of the keys the server makes for forwarded requests.
        assert!(hold_request(1, &[1], Some("~fwd:0123")).is_err());
        assert!(best_available_request(1, 1, None, Some(" ~fwd:x")).is_err());
        assert!(hold_request(1, &[1], Some("fwd:0123")).is_ok());
    }

    #[test]
    fn best_available_requests_are_checked() {
        let r = best_available_request(1, 2, Some(" R "), None).unwrap();
        assert_eq!(
            r.want,
            Want::BestAvailable {
                count: 2,
                grade: Some("R".into())
            }
        );
        assert!(r.seat_ids().is_empty());
        for bad in [0, -1, 11] {
            let e = best_available_request(1, bad, None, None).unwrap_err();
            assert_eq!(e.code(), crate::error::ErrorCode::BadUserInput, "count {bad}");
        }
        assert!(best_available_request(1, 1, Some(" "), None).is_err());
        assert!(best_available_request(1, 10, None, Some("k")).is_ok());
    }
}
