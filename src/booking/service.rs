//! The booking operations as the API calls them: input checks, then the core.

use std::collections::HashSet;

use super::{
    SeatChange, announce, batcher,
    lifecycle::{self, Paid},
    reserve::{MAX_SEATS_PER_REQUEST, ReserveRequest},
    store::ReservationRow,
};
use crate::{
    auth::{Actor, Role},
    error::{AppError, AppResult},
    points::service::validate_key,
    state::AppState,
};

/// Checks and normalises a hold request (sorted, distinct seats; a sane key).
pub fn request(user_id: i64, seat_ids: &[i64], idempotency_key: Option<&str>) -> AppResult<ReserveRequest> {
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
    Ok(ReserveRequest {
        user_id,
        seat_ids,
        idempotency_key: idempotency_key
            .map(|k| validate_key(k, "input.idempotencyKey"))
            .transpose()?,
    })
}

/// Holds seats through the schedule's batch (group commit), after the queue check.
pub async fn reserve(
    state: &AppState,
    schedule_id: i64,
    request: ReserveRequest,
) -> AppResult<ReservationRow> {
    crate::queue::ensure_admitted(state, schedule_id, request.user_id).await?;
    batcher::submit(state, schedule_id, request).await
}

pub async fn pay(
    state: &AppState,
    user_id: i64,
    reservation_id: i64,
    key: &str,
) -> AppResult<ReservationRow> {
    let key = validate_key(key, "idempotencyKey")?;
    let mut conn = state.db.get().await?;
    match lifecycle::pay(&mut conn, user_id, reservation_id, &key).await? {
        Paid::Already(r) => Ok(r),
        Paid::Now(r, change) => {
            publish_after_commit(state, &mut conn, change).await;
            Ok(r)
        }
    }
}

async fn publish_after_commit(
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
    change: SeatChange,
) {
    match lifecycle::bump_version(conn, change).await {
        Ok(change) => announce(state, change),
        // The sale is committed; only the live update is lost, and the next change's
        // version tells subscribers to re-read.
        Err(e) => tracing::warn!(error = %e, "could not bump the schedule version after a payment"),
    }
}

pub async fn cancel(state: &AppState, actor: Actor, reservation_id: i64) -> AppResult<ReservationRow> {
    let mut conn = state.db.get().await?;
    let (r, change) =
        lifecycle::cancel(&mut conn, actor.id, actor.role == Role::Admin, reservation_id).await?;
    if let Some(change) = change {
        announce(state, change);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_and_sorted() {
        let r = request(1, &[5, 3, 9], Some(" k1 ")).unwrap();
        assert_eq!(r.seat_ids, vec![3, 5, 9]);
        assert_eq!(r.idempotency_key.as_deref(), Some("k1"));
        assert!(request(1, &[], None).is_err());
        assert!(request(1, &[1, 1], None).is_err());
        assert!(request(1, &(1..=11).collect::<Vec<_>>(), None).is_err());
        assert!(request(1, &[1], Some("")).is_err());
    }
}
