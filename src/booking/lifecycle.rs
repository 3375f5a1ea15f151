//! After the hold: payment, cancellation (with refund), expiry, and cancelling a whole
//! schedule. Each function is one transaction and takes its locks in the order stated in
//! `booking` (schedule → reservations → seats ascending → users ascending); payment skips
//! the schedule row.

use chrono::{DateTime, Utc};
use diesel::{
    QueryableByName,
    sql_types::{Array, BigInt, Text},
};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use super::{
    SeatChange,
    store::{self, ReservationRow},
};
use crate::{
    concerts::store as concerts_store,
    error::{AppError, AppResult, ErrorCode},
    points,
};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct Now {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    now: DateTime<Utc>,
}

async fn db_now(conn: &mut AsyncPgConnection) -> AppResult<DateTime<Utc>> {
    Ok(diesel::sql_query("SELECT now() AS now")
        .get_result::<Now>(conn)
        .await?
        .now)
}

/// Locks the seats of a reservation in ascending id order (I6) and returns their ids.
async fn lock_seats_of(conn: &mut AsyncPgConnection, reservation_id: i64) -> AppResult<Vec<i64>> {
    Ok(
        diesel::sql_query("SELECT id FROM seats WHERE reservation_id = $1 ORDER BY id FOR UPDATE")
            .bind::<BigInt, _>(reservation_id)
            .load::<Id>(conn)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect(),
    )
}

pub enum Paid {
    /// Newly paid: the seats went from held to sold.
    Now(ReservationRow, SeatChange),
    /// Was already paid (a retry): nothing changed.
    Already(ReservationRow),
}

/// Pays a hold with the user's points and sells its seats. Idempotent: paying a paid
/// reservation answers it unchanged; a key already used for another payment is a CONFLICT.
/// Racing the sweeper for the same hold, exactly one wins: both lock the reservation row,
/// and whoever comes second finds it confirmed (sweeper skips it) or expired (HOLD_EXPIRED).
pub async fn pay(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    reservation_id: i64,
    idempotency_key: &str,
) -> AppResult<Paid> {
    conn.transaction(async |conn| {
        let r = store::reservation_for_update(conn, reservation_id)
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
        match r.status.as_str() {
            "confirmed" => return Ok(Paid::Already(r)),
            "expired" => return Err(AppError::rule(ErrorCode::HoldExpired, "the hold has expired")),
            "cancelled" => return Err(AppError::Conflict("the reservation is cancelled".into())),
            _ => {}
        }
        if r.expires_at <= db_now(conn).await? {
            return Err(AppError::rule(ErrorCode::HoldExpired, "the hold has expired"));
        }
        let seats = lock_seats_of(conn, r.id).await?;
        diesel::sql_query("UPDATE seats SET status = 'sold' WHERE reservation_id = $1")
            .bind::<BigInt, _>(r.id)
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
        let change = SeatChange {
            schedule_id: r.schedule_id,
            // Filled in by `bump_version` after commit: payment does not take the
            // schedule row lock (it would serialize every payment with every booking).
            version: 0,
            seats: seats.into_iter().map(|id| (id, "sold".to_owned())).collect(),
        };
        Ok(Paid::Now(r, change))
    })
    .await
}

/// Gives a committed change its schedule version (for changes made without the schedule
/// lock). A short transaction of its own, holding no other lock.
pub async fn bump_version(conn: &mut AsyncPgConnection, mut change: SeatChange) -> AppResult<SeatChange> {
    change.version =
        diesel::sql_query("UPDATE schedules SET version = version + 1 WHERE id = $1 RETURNING version AS id")
            .bind::<BigInt, _>(change.schedule_id)
            .get_result::<Id>(conn)
            .await?
            .id;
    Ok(change)
}

/// Cancels a reservation: a hold is released; a paid one is refunded until the show starts.
/// `by_admin` lets an admin cancel anyone's reservation.
pub async fn cancel(
    conn: &mut AsyncPgConnection,
    user_id: i64,
    by_admin: bool,
    reservation_id: i64,
) -> AppResult<(ReservationRow, Option<SeatChange>)> {
    let r = store::reservation(conn, reservation_id)
        .await?
        .filter(|r| r.user_id == user_id || by_admin)
        .ok_or(AppError::NotFound("reservation"))?;
    conn.transaction(async |conn| {
        let schedule = concerts_store::lock_schedule(conn, r.schedule_id)
            .await?
            .ok_or(AppError::NotFound("schedule"))?;
        let r = store::reservation_for_update(conn, reservation_id)
            .await?
            .ok_or(AppError::NotFound("reservation"))?;
        match r.status.as_str() {
            "cancelled" => return Ok((r, None)),
            "expired" => {
                return Err(AppError::rule(
                    ErrorCode::HoldExpired,
                    "the hold has already expired",
                ));
            }
            "confirmed" if db_now(conn).await? >= schedule.starts_at => {
                return Err(AppError::Conflict(
                    "the show has started; it can no longer be cancelled".into(),
                ));
            }
            _ => {}
        }
        let refunded = r.status == "confirmed";
        let (rows, change) = release(conn, schedule.id, &[r.id], "cancelled").await?;
        if refunded {
            refund(conn, &rows).await?;
        }
        let r = rows.into_iter().next().ok_or(AppError::NotFound("reservation"))?;
        Ok((r, change))
    })
    .await
}

/// Sets `status` on the given live reservations of one schedule, frees their seats and
/// lowers the booking count. The caller holds the schedule row lock.
async fn release(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    reservation_ids: &[i64],
    status: &str,
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
    // Seats in ascending id (I6).
    let freed: Vec<i64> = diesel::sql_query(
        "WITH locked AS (SELECT id FROM seats WHERE reservation_id = ANY($1) ORDER BY id FOR UPDATE)
         UPDATE seats SET status = 'available', reservation_id = NULL
         FROM locked WHERE seats.id = locked.id
         RETURNING seats.id",
    )
    .bind::<Array<BigInt>, _>(&live)
    .load::<Id>(conn)
    .await?
    .into_iter()
    .map(|r| r.id)
    .collect();
    let version = diesel::sql_query(
        "UPDATE schedules SET booked_count = booked_count - $2, version = version + 1, updated_at = now()
         WHERE id = $1 RETURNING version AS id",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<diesel::sql_types::Int4, _>(i32::try_from(freed.len()).map_err(AppError::internal)?)
    .get_result::<Id>(conn)
    .await?
    .id;
    let mut seats: Vec<(i64, String)> = freed.into_iter().map(|id| (id, "available".to_owned())).collect();
    seats.sort_unstable();
    Ok((
        rows,
        Some(SeatChange {
            schedule_id,
            version,
            seats,
        }),
    ))
}

/// Refunds paid reservations (users locked in ascending id, I6), one ledger entry each.
async fn refund(conn: &mut AsyncPgConnection, rows: &[ReservationRow]) -> AppResult<()> {
    let mut paid: Vec<&ReservationRow> = rows
        .iter()
        .filter(|r| r.paid_at.is_some() && r.total_price > 0)
        .collect();
    paid.sort_by_key(|r| (r.user_id, r.id));
    let mut users: Vec<i64> = paid.iter().map(|r| r.user_id).collect();
    users.dedup();
    points::store::lock_users(conn, &users).await?;
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
            },
        )
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("refund of reservation {} refused", r.id)))?;
    }
    Ok(())
}

/// Cancels a schedule and every live reservation of it, refunding paid ones. Runs inside
/// the caller's transaction. `None` when it was already cancelled.
pub async fn cancel_schedule(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
) -> AppResult<Option<SeatChange>> {
    let schedule = concerts_store::lock_schedule(conn, schedule_id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    if schedule.status == "cancelled" {
        return Ok(None);
    }
    let live: Vec<i64> = diesel::sql_query(
        "SELECT id FROM reservations WHERE schedule_id = $1 AND status IN ('held', 'confirmed')
         ORDER BY id FOR UPDATE",
    )
    .bind::<BigInt, _>(schedule_id)
    .load::<Id>(conn)
    .await?
    .into_iter()
    .map(|r| r.id)
    .collect();
    let (rows, change) = release(conn, schedule_id, &live, "cancelled").await?;
    refund(conn, &rows).await?;
    let cancelled = concerts_store::set_schedule_cancelled(conn, schedule_id).await?;
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

/// Expires up to `limit` overdue holds of one schedule. Holds being paid right now are
/// skipped (SKIP LOCKED) and decided by the payment.
pub async fn expire_due(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
    limit: i64,
) -> AppResult<Option<SeatChange>> {
    conn.transaction(async |conn| {
        if concerts_store::lock_schedule(conn, schedule_id).await?.is_none() {
            return Ok(None);
        }
        let due: Vec<i64> = diesel::sql_query(
            "SELECT id FROM reservations
             WHERE schedule_id = $1 AND status = 'held' AND expires_at <= now()
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind::<BigInt, _>(schedule_id)
        .bind::<BigInt, _>(limit)
        .load::<Id>(conn)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
        if due.is_empty() {
            return Ok(None);
        }
        let (_, change) = release(conn, schedule_id, &due, "expired").await?;
        Ok(change)
    })
    .await
}

/// Schedules that have overdue holds.
pub async fn schedules_with_due_holds(conn: &mut AsyncPgConnection, limit: i64) -> AppResult<Vec<i64>> {
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
