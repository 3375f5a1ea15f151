//! After the hold: payment, cancellation (with refund), expiry, and cancelling a whole
//! schedule. Each takes its locks through `locks`, in the order stated there (schedule →
//! reservations → seats ascending → users ascending); payment skips the schedule row.

use boxoffice_outbox::{append, webhooks::EventType};
use diesel::{
    QueryableByName,
    sql_types::{Array, BigInt, Text},
};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use super::{
    ReservationStatus, SeatChange, sale,
    store::{self, ReservationRow},
};
use crate::{
    concerts::{ScheduleStatus, store::ScheduleRow},
    error::{AppError, AppResult, ErrorCode},
    in_doubt::{self, Witness, Writes},
    locks, points,
    seats::SeatStatus,
};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// What a release committed: the seat change to announce (freed seats, and those handed on
/// to the waiting list as held), how many seats were freed, and the offers made.
#[derive(Default)]
pub(super) struct Freed {
    pub change: Option<SeatChange>,
    pub released: usize,
    pub offers: Vec<crate::waitlist::Offer>,
}

impl Freed {
    /// A release's change, after which the schedule's line is served in the same
    /// transaction (the caller holds the schedule lock).
    async fn serving(
        conn: &mut AsyncPgConnection,
        schedule_id: i64,
        change: Option<SeatChange>,
    ) -> AppResult<Self> {
        let Some(change) = change else {
            return Ok(Self::default());
        };
        let released = change.seats.len();
        let served = crate::waitlist::service::serve(conn, schedule_id).await?;
        Ok(Self {
            change: super::merged(Some(change), served.change),
            released,
            offers: served.offers,
        })
    }
}

pub(super) enum Paid {
    /// Newly paid: the seats went from held to sold.
    Now(ReservationRow, SeatChange),
    /// Was already paid (a retry): nothing changed.
    Already(ReservationRow),
}

/// Pays a hold with the user's points, sells its seats and issues a signed ticket per seat
/// (in the same transaction: a paid seat always has its ticket). Idempotent: paying a paid
/// reservation answers it unchanged; a key already used for another payment is a CONFLICT.
/// Racing the sweeper for the same hold, exactly one wins: both lock the reservation row,
/// and whoever comes second finds it confirmed (sweeper skips it) or expired (HOLD_EXPIRED).
/// A COMMIT without an answer is settled before the answer (`in_doubt`).
pub(super) async fn pay(
    conn: &mut AsyncPgConnection,
    writes: Writes<'_>,
    user_id: i64,
    reservation_id: i64,
    idempotency_key: &str,
    signer: &boxoffice_ticket_codes::TicketSigner,
) -> AppResult<Paid> {
    let mut done = None;
    let committed = in_doubt::within(
        writes.reply,
        conn.transaction(async |conn| {
            let paid = pay_in(conn, user_id, reservation_id, idempotency_key, signer).await?;
            let mark = match &paid {
                Paid::Now(r, _) => Some(in_doubt::mark(conn, Witness::Paid(r.id)).await?),
                Paid::Already(_) => None,
            };
            done = Some((paid, mark));
            Ok(())
        }),
    )
    .await;
    in_doubt::answer(writes, committed, done).await
}

/// The payment's transaction body.
async fn pay_in(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    reservation_id: i64,
    idempotency_key: &str,
    signer: &boxoffice_ticket_codes::TicketSigner,
) -> AppResult<Paid> {
    let r = locks::reservation(conn, reservation_id)
        .await?
        .filter(|r| r.user_id == user_id)
        .ok_or(AppError::NotFound("reservation"))?;
    if let Some(other) = points::store::payment_with_key(conn, user_id, idempotency_key).await?
        && other != Some(reservation_id)
    {
        return Err(AppError::Conflict(
            "this idempotency key was used for another payment".into(),
        ));
    }
    match r.status {
        ReservationStatus::Confirmed => return Ok(Paid::Already(r)),
        ReservationStatus::Expired => {
            return Err(AppError::rule(ErrorCode::HoldExpired, "the hold has expired"));
        }
        ReservationStatus::Cancelled => {
            return Err(AppError::Conflict("the reservation is cancelled".into()));
        }
        ReservationStatus::Held => {}
    }
    if r.expires_at <= sale::db_now(conn).await? {
        return Err(AppError::rule(ErrorCode::HoldExpired, "the hold has expired"));
    }
    let seats = locks::seats_of(conn, &[r.id]).await?;
    diesel::sql_query("UPDATE seats SET status = 'sold' WHERE id = ANY($1)")
        .bind::<Array<BigInt>, _>(&seats)
        .execute(conn)
        .await?;
    if r.total_price > 0 {
        points::store::apply(
            conn,
            &points::store::Entry {
                user_id,
                kind: "payment",
                amount: -r.total_price,
                reservation_id: Some(r.id),
                idempotency_key: Some(idempotency_key),
                reason: None,
                actor_id: None,
                top_up_id: None,
            },
        )
        .await?
        .ok_or_else(|| {
            AppError::rule(
                ErrorCode::InsufficientPoints,
                "not enough points for this reservation",
            )
        })?;
    }
    let r: ReservationRow = diesel::sql_query(
        "UPDATE reservations SET status = 'confirmed', paid_at = now(), updated_at = now()
         WHERE id = $1 RETURNING *",
    )
    .bind::<BigInt, _>(r.id)
    .get_result(conn)
    .await?;
    let issued_at = r.paid_at.unwrap_or_else(chrono::Utc::now);
    crate::tickets::store::issue(conn, signer, r.id, r.schedule_id, &seats, issued_at).await?;
    append::reservations(conn, EventType::ReservationConfirmed, &[r.id]).await?;
    let change = SeatChange {
        schedule_id: r.schedule_id,
        // Filled in by `bump_version` after commit: payment does not take the
        // schedule row lock (it would serialize every payment with every booking).
        version: 0,
        seats: seats.into_iter().map(|id| (id, SeatStatus::Sold)).collect(),
    };
    Ok(Paid::Now(r, change))
}

/// Gives a committed change its schedule version (for changes made without the schedule
/// lock). A short transaction of its own, holding no other lock.
pub(super) async fn bump_version(
    conn: &mut AsyncPgConnection,
    mut change: SeatChange,
) -> AppResult<SeatChange> {
    change.version =
        diesel::sql_query("UPDATE schedules SET version = version + 1 WHERE id = $1 RETURNING version AS id")
            .bind::<BigInt, _>(change.schedule_id)
            .get_result::<Id>(conn)
            .await?
            .id;
    Ok(change)
}

/// Cancels a reservation: a hold is released; a paid one is refunded until the show starts.
/// The freed seats serve the schedule's waiting list in the same transaction.
/// `by_admin` lets an admin cancel anyone's reservation.
pub(super) async fn cancel(
    conn: &mut AsyncPgConnection,
    writes: Writes<'_>,
    user_id: i64,
    by_admin: bool,
    reservation_id: i64,
) -> AppResult<(ReservationRow, Freed)> {
    let r = store::reservation(conn, reservation_id)
        .await?
        .filter(|r| r.user_id == user_id || by_admin)
        .ok_or(AppError::NotFound("reservation"))?;
    release_settled(conn, writes, &r, Release::Cancel).await
}

/// Which release of a reservation: its owner's (or an admin's) cancellation, or the refund
/// its host or an admin gives.
enum Release<'a> {
    Cancel,
    Refund { actor_id: i64, reason: &'a str },
}

/// Runs a release in its transaction under the reply deadline and settles an unanswered
/// COMMIT (`in_doubt`): a release that freed seats is witnessed by its `cancelled_at`.
async fn release_settled(
    conn: &mut AsyncPgConnection,
    writes: Writes<'_>,
    r: &ReservationRow,
    how: Release<'_>,
) -> AppResult<(ReservationRow, Freed)> {
    let mut done = None;
    let committed = in_doubt::within(
        writes.reply,
        conn.transaction(async |conn| {
            // Lock order: the schedule, then the reservation (as it is now).
            let schedule = locks::schedule(conn, r.schedule_id)
                .await?
                .ok_or(AppError::NotFound("schedule"))?;
            let r = locks::reservation(conn, r.id)
                .await?
                .ok_or(AppError::NotFound("reservation"))?;
            let (r, freed) = match how {
                Release::Cancel => cancel_in(conn, &schedule, r).await?,
                Release::Refund { actor_id, reason } => {
                    refund_in(conn, &schedule, r, actor_id, reason).await?
                }
            };
            let mark = match freed.released {
                0 => None,
                _ => Some(in_doubt::mark(conn, Witness::Cancelled(r.id)).await?),
            };
            done = Some(((r, freed), mark));
            Ok(())
        }),
    )
    .await;
    in_doubt::answer(writes, committed, done).await
}

/// The cancellation's transaction body, the schedule and the reservation locked.
async fn cancel_in(
    conn: &mut AsyncPgConnection,
    schedule: &ScheduleRow,
    r: ReservationRow,
) -> AppResult<(ReservationRow, Freed)> {
    match r.status {
        ReservationStatus::Cancelled => return Ok((r, Freed::default())),
        ReservationStatus::Expired => {
            return Err(AppError::rule(
                ErrorCode::HoldExpired,
                "the hold has already expired",
            ));
        }
        ReservationStatus::Confirmed if sale::db_now(conn).await? >= schedule.starts_at => {
            return Err(AppError::Conflict(
                "the show has started; it can no longer be cancelled".into(),
            ));
        }
        ReservationStatus::Confirmed | ReservationStatus::Held => {}
    }
    let refunded = r.status == ReservationStatus::Confirmed;
    let (rows, change) = release(conn, schedule.id, &[r.id], ReservationStatus::Cancelled).await?;
    if refunded {
        refund(conn, &rows).await?;
    }
    let r = rows.into_iter().next().ok_or(AppError::NotFound("reservation"))?;
    let freed = Freed::serving(conn, schedule.id, change).await?;
    Ok((r, freed))
}

/// Refunds a paid reservation for its concert's host or an admin (`refundReservation`): the
/// same release and refund as a fan's cancellation (seats freed, tickets revoked, the
/// points back to the buyer, `reservation.cancelled` and `reservation.refunded` events),
/// audited with the reason, in one transaction. Unlike a fan, the host may refund after the
/// show started. Idempotent: a reservation already refunded (by this, by its owner's
/// cancellation or by a cancelled show) is answered as it is, changing nothing; one never
/// paid has nothing to refund (CONFLICT). The caller checked that `actor_id` manages it.
pub(super) async fn refund_paid(
    conn: &mut AsyncPgConnection,
    writes: Writes<'_>,
    actor_id: i64,
    reservation_id: i64,
    reason: &str,
) -> AppResult<(ReservationRow, Freed)> {
    let r = store::reservation(conn, reservation_id)
        .await?
        .ok_or(AppError::NotFound("reservation"))?;
    release_settled(conn, writes, &r, Release::Refund { actor_id, reason }).await
}

/// The refund's transaction body, the schedule and the reservation locked.
async fn refund_in(
    conn: &mut AsyncPgConnection,
    schedule: &ScheduleRow,
    r: ReservationRow,
    actor_id: i64,
    reason: &str,
) -> AppResult<(ReservationRow, Freed)> {
    match (r.status, r.paid_at) {
        (ReservationStatus::Cancelled, Some(_)) => return Ok((r, Freed::default())),
        (ReservationStatus::Confirmed, _) => {}
        (ReservationStatus::Held, _) => {
            return Err(AppError::Conflict(
                "the reservation is not paid yet: there is nothing to refund (the hold lapses by itself)"
                    .into(),
            ));
        }
        (ReservationStatus::Cancelled, None) | (ReservationStatus::Expired, _) => {
            return Err(AppError::Conflict(
                "the reservation was never paid: there is nothing to refund".into(),
            ));
        }
    }
    let (rows, change) = release(conn, schedule.id, &[r.id], ReservationStatus::Cancelled).await?;
    refund(conn, &rows).await?;
    let r = rows.into_iter().next().ok_or(AppError::NotFound("reservation"))?;
    crate::admin::audit::record(
        conn,
        actor_id,
        "refund_reservation",
        "reservation",
        Some(r.id),
        serde_json::json!({
            "schedule": r.schedule_id,
            "buyer": r.user_id,
            "amount": r.total_price,
            "reason": reason,
        }),
    )
    .await?;
    let freed = Freed::serving(conn, schedule.id, change).await?;
    Ok((r, freed))
}

/// Sets `status` on the given live reservations of one schedule, frees their seats, revokes
/// their tickets and lowers the booking count. The caller holds the schedule row lock.
async fn release(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    reservation_ids: &[i64],
    status: ReservationStatus,
) -> AppResult<(Vec<ReservationRow>, Option<SeatChange>)> {
    let rows: Vec<ReservationRow> = diesel::sql_query(
        "UPDATE reservations SET status = $2, cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() END,
                updated_at = now()
         WHERE id = ANY($1) AND status IN ('held', 'confirmed')
         RETURNING *",
    )
    .bind::<Array<BigInt>, _>(reservation_ids)
    .bind::<Text, _>(status)
    .load(conn)
    .await?;
    if rows.is_empty() {
        return Ok((rows, None));
    }
    let live: Vec<i64> = rows.iter().map(|r| r.id).collect();
    append::reservations(conn, event_of(status), &live).await?;
    let freed = locks::seats_of(conn, &live).await?;
    // After the seats (lock order): a ticket row is the last thing a cancellation writes.
    crate::tickets::store::revoke_reservations(conn, &live).await?;
    diesel::sql_query("UPDATE seats SET status = 'available', reservation_id = NULL WHERE id = ANY($1)")
        .bind::<Array<BigInt>, _>(&freed)
        .execute(conn)
        .await?;
    let version = diesel::sql_query(
        "UPDATE schedules SET booked_count = booked_count - $2, version = version + 1, updated_at = now()
         WHERE id = $1 RETURNING version AS id",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<diesel::sql_types::Int4, _>(i32::try_from(freed.len()).map_err(AppError::internal)?)
    .get_result::<Id>(conn)
    .await?
    .id;
    let seats: Vec<(i64, SeatStatus)> = freed.into_iter().map(|id| (id, SeatStatus::Available)).collect();
    Ok((
        rows,
        Some(SeatChange {
            schedule_id,
            version,
            seats,
        }),
    ))
}

/// The event of a reservation's new status (I12: every change writes one).
fn event_of(status: ReservationStatus) -> EventType {
    match status {
        ReservationStatus::Held => EventType::ReservationHeld,
        ReservationStatus::Confirmed => EventType::ReservationConfirmed,
        ReservationStatus::Cancelled => EventType::ReservationCancelled,
        ReservationStatus::Expired => EventType::ReservationExpired,
    }
}

/// Refunds paid reservations (users locked in ascending id, I6), one ledger entry each, and
/// writes their `reservation.refunded` events (after the `reservation.cancelled` of the
/// release, so receivers see them in that order).
async fn refund(conn: &mut AsyncPgConnection, rows: &[ReservationRow]) -> AppResult<()> {
    let mut refunded: Vec<i64> = rows
        .iter()
        .filter(|r| r.paid_at.is_some())
        .map(|r| r.id)
        .collect();
    refunded.sort_unstable();
    append::reservations(conn, EventType::ReservationRefunded, &refunded).await?;
    let mut paid: Vec<&ReservationRow> = rows
        .iter()
        .filter(|r| r.paid_at.is_some() && r.total_price > 0)
        .collect();
    paid.sort_by_key(|r| (r.user_id, r.id));
    let mut users: Vec<i64> = paid.iter().map(|r| r.user_id).collect();
    users.dedup();
    locks::users(conn, &users).await?;
    for r in paid {
        points::store::apply(
            conn,
            &points::store::Entry {
                user_id: r.user_id,
                kind: "refund",
                amount: r.total_price,
                reservation_id: Some(r.id),
                idempotency_key: None,
                reason: None,
                actor_id: None,
                top_up_id: None,
            },
        )
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("refund of reservation {} refused", r.id)))?;
    }
    Ok(())
}

/// Cancels a schedule and every live reservation of it, refunding paid ones. Runs inside
/// the caller's transaction. `None` when it was already cancelled.
pub(super) async fn cancel_schedule(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
) -> AppResult<Option<SeatChange>> {
    let schedule = locks::schedule(conn, schedule_id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    if schedule.status == ScheduleStatus::Cancelled {
        return Ok(None);
    }
    let live = locks::live_reservations(conn, schedule_id).await?;
    let (rows, change) = release(conn, schedule_id, &live, ReservationStatus::Cancelled).await?;
    refund(conn, &rows).await?;
    let cancelled = crate::concerts::store::set_schedule_cancelled(conn, schedule_id).await?;
    append::schedules(conn, EventType::ScheduleCancelled, &[schedule_id]).await?;
    Ok(Some(match change {
        Some(mut c) => {
            c.version = cancelled.version;
            c
        }
        None => SeatChange {
            schedule_id,
            version: cancelled.version,
            seats: Vec::new(),
        },
    }))
}

/// Expires up to `limit` overdue holds of one schedule, then serves its waiting list from
/// the freed seats in the same transaction. Holds being paid right now are skipped (SKIP
/// LOCKED) and decided by the payment.
pub(super) async fn expire_due(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    limit: i64,
) -> AppResult<Option<Freed>> {
    conn.transaction(async |conn| {
        if locks::schedule(conn, schedule_id).await?.is_none() {
            return Ok(None);
        }
        let due = locks::due_holds(conn, schedule_id, limit).await?;
        if due.is_empty() {
            return Ok(None);
        }
        let (_, change) = release(conn, schedule_id, &due, ReservationStatus::Expired).await?;
        let freed = Freed::serving(conn, schedule_id, change).await?;
        Ok((freed.released > 0).then_some(freed))
    })
    .await
}

/// Schedules that have overdue holds.
pub(super) async fn schedules_with_due_holds(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> AppResult<Vec<i64>> {
    Ok(diesel::sql_query(
        "SELECT DISTINCT schedule_id AS id FROM reservations
         WHERE status = 'held' AND expires_at <= now() LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .load::<Id>(conn)
    .await?
    .into_iter()
    .map(|r| r.id)
    .collect())
}
