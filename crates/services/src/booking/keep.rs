//! Seats a host keeps back or gives away: `blockSeats`, `unblockSeats`,
//! `issueComplimentary`. Each is one transaction under the schedule row lock, the lock every
//! hold batch of the schedule takes (`locks`, step 2): load the seats → the pure
//! `boxoffice_core::keep::decide` → write. A hold batch and a block of the same seat are
//! therefore decided one after the other, never both from the same free seat.

use boxoffice_core::keep::{self, Found, Keep};
use boxoffice_outbox::{append, webhooks::EventType};
use boxoffice_store::claims;
use diesel::{
    QueryableByName,
    sql_types::{Array, BigInt, Int4, Nullable, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{SeatChange, store::ReservationRow};
use crate::{
    auth::Actor,
    concerts::{service::managed_schedule, store::ScheduleRow},
    error::{AppError, AppResult},
    in_doubt::{self, Writes},
    seats::SeatStatus,
};

#[derive(QueryableByName)]
struct SeatFound {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    schedule_id: i64,
    #[diesel(sql_type = Text)]
    status: SeatStatus,
    #[diesel(sql_type = Text)]
    grade: String,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = BigInt)]
    version: i64,
}

/// The asked seats as they stand; the caller holds the schedule lock, under which no other
/// writer makes a seat of it available or unavailable (a payment turns held into sold, which
/// every decision here treats alike).
async fn load(conn: &mut AsyncPgConnection, seat_ids: &[i64]) -> AppResult<Vec<SeatFound>> {
    Ok(diesel::sql_query(
        "SELECT s.id, coalesce(s.schedule_id, 0) AS schedule_id, s.status, g.name AS grade
         FROM seats s JOIN seat_grades g ON g.id = s.grade_id WHERE s.id = ANY($1)",
    )
    .bind::<Array<BigInt>, _>(seat_ids)
    .load(conn)
    .await?)
}

fn decide(keep: Keep, schedule_id: i64, seat_ids: &[i64], found: &[SeatFound]) -> AppResult<Vec<i64>> {
    let seats = found
        .iter()
        .map(|s| {
            let state = match s.status {
                SeatStatus::Available => Found::Free,
                SeatStatus::Held => Found::Held,
                SeatStatus::Sold => Found::Sold,
                SeatStatus::Blocked => Found::Blocked,
            };
            (s.id, (s.schedule_id, state))
        })
        .collect();
    Ok(keep::decide(keep, schedule_id, seat_ids, &seats)?)
}

/// Moves the booking count by `delta` seats and bumps the version (every seat change does).
async fn count(conn: &mut AsyncPgConnection, schedule_id: i64, delta: i64) -> AppResult<i64> {
    let v: Version = diesel::sql_query(
        "UPDATE schedules SET booked_count = booked_count + $2, version = version + 1, updated_at = now()
         WHERE id = $1 RETURNING version",
    )
    .bind::<BigInt, _>(schedule_id)
    .bind::<Int4, _>(i32::try_from(delta).map_err(AppError::internal)?)
    .get_result(conn)
    .await?;
    Ok(v.version)
}

fn change(schedule_id: i64, version: i64, seats: &[i64], status: SeatStatus) -> SeatChange {
    SeatChange {
        schedule_id,
        version,
        seats: seats.iter().map(|id| (*id, status)).collect(),
    }
}

/// What a block or unblock committed.
pub(super) struct Kept {
    pub schedule: ScheduleRow,
    pub change: Option<SeatChange>,
    pub offers: Vec<crate::waitlist::Offer>,
}

/// Blocks free seats (already blocked ones stay). A blocked seat counts as booked: it is not
/// available, so the booking count (I2) includes it.
pub(super) async fn block(
    conn: &mut AsyncPgConnection,
    writes: Writes<'_>,
    actor: Actor,
    schedule_id: i64,
    seat_ids: &[i64],
    reason: &str,
) -> AppResult<Kept> {
    in_doubt::write(conn, writes, async |conn| {
        let (schedule, _) = managed_schedule(conn, actor, schedule_id).await?;
        let found = load(conn, seat_ids).await?;
        let blocked = decide(Keep::Block, schedule_id, seat_ids, &found)?;
        if blocked.is_empty() {
            return Ok(Kept {
                schedule,
                change: None,
                offers: Vec::new(),
            });
        }
        let n = diesel::sql_query(
            "UPDATE seats SET status = 'blocked', block_reason = $2 WHERE id = ANY($1) AND status = 'available'",
        )
        .bind::<Array<BigInt>, _>(&blocked)
        .bind::<Text, _>(reason)
        .execute(conn)
        .await?;
        if n != blocked.len() {
            return Err(AppError::internal(anyhow::anyhow!(
                "blocked {n} of {} free seats under the schedule lock",
                blocked.len()
            )));
        }
        let version = count(conn, schedule_id, blocked.len() as i64).await?;
        crate::admin::audit::record(
            conn,
            actor.id,
            "block_seats",
            "schedule",
            Some(schedule_id),
            serde_json::json!({ "seats": blocked, "reason": reason }),
        )
        .await?;
        let schedule = reread(conn, schedule_id).await?;
        Ok(Kept {
            schedule,
            change: Some(change(schedule_id, version, &blocked, SeatStatus::Blocked)),
            offers: Vec::new(),
        })
    })
    .await
}

/// Puts blocked seats back on sale (free ones stay); they serve the schedule's waiting list
/// first, in the same transaction, as any release does.
pub(super) async fn unblock(
    conn: &mut AsyncPgConnection,
    writes: Writes<'_>,
    actor: Actor,
    schedule_id: i64,
    seat_ids: &[i64],
) -> AppResult<Kept> {
    in_doubt::write(conn, writes, async |conn| {
        let (schedule, _) = managed_schedule(conn, actor, schedule_id).await?;
        let found = load(conn, seat_ids).await?;
        let freed = decide(Keep::Unblock, schedule_id, seat_ids, &found)?;
        if freed.is_empty() {
            return Ok(Kept {
                schedule,
                change: None,
                offers: Vec::new(),
            });
        }
        let n = diesel::sql_query(
            "UPDATE seats SET status = 'available', block_reason = NULL WHERE id = ANY($1) AND status = 'blocked'",
        )
        .bind::<Array<BigInt>, _>(&freed)
        .execute(conn)
        .await?;
        if n != freed.len() {
            return Err(AppError::internal(anyhow::anyhow!(
                "unblocked {n} of {} blocked seats under the schedule lock",
                freed.len()
            )));
        }
        let version = count(conn, schedule_id, -(freed.len() as i64)).await?;
        crate::admin::audit::record(
            conn,
            actor.id,
            "unblock_seats",
            "schedule",
            Some(schedule_id),
            serde_json::json!({ "seats": freed }),
        )
        .await?;
        let released = change(schedule_id, version, &freed, SeatStatus::Available);
        let served = crate::waitlist::service::serve(conn, schedule_id).await?;
        let schedule = reread(conn, schedule_id).await?;
        Ok(Kept {
            schedule,
            change: super::merged(Some(released), served.change),
            offers: served.offers,
        })
    })
    .await
}

async fn reread(conn: &mut AsyncPgConnection, schedule_id: i64) -> AppResult<ScheduleRow> {
    crate::concerts::store::schedule(conn, schedule_id)
        .await?
        .ok_or(AppError::NotFound("schedule"))
}

/// Who gets a complimentary ticket: an account by e-mail, created as an invited account
/// (with `password_hash`, a hash nobody has the password of) when there is none. `claim`
/// is the stored half of a fresh claim link, kept for an account created now or one still
/// unclaimed (replacing its older link), never for an account someone can log into.
pub struct Guest<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub claim: &'a boxoffice_store::claims::NewClaim,
}

/// Gives free or blocked seats to `guest` at price 0: a confirmed, complimentary
/// reservation with a ticket per seat, in one transaction under the schedule lock (the
/// seats turn sold; those that were free count as booked now, blocked ones already did).
/// Not before a sale's rules (it is the host's gift) nor after the show started. The flag:
/// whether the guest's claim link was stored (the guest cannot log in yet).
pub(super) async fn comp(
    state: &crate::state::Services,
    actor: Actor,
    schedule_id: i64,
    seat_ids: &[i64],
    guest: &Guest<'_>,
    note: Option<&str>,
) -> AppResult<(ReservationRow, SeatChange, bool)> {
    let signer = state.tickets.signer();
    let mut conn = state.db.get().await?;
    in_doubt::write(&mut conn, state.writes(), async |conn| {
        let (schedule, _) = managed_schedule(conn, actor, schedule_id).await?;
        let now = super::sale::db_now(conn).await?;
        if schedule.starts_at <= now {
            return Err(AppError::Conflict(
                "rule `no tickets after the show starts`: this performance has started".into(),
            ));
        }
        let found = load(conn, seat_ids).await?;
        let given = decide(Keep::Comp, schedule_id, seat_ids, &found)?;
        let were_free = found
            .iter()
            .filter(|s| given.contains(&s.id) && s.status == SeatStatus::Available)
            .count() as i64;
        let (user_id, invited) = guest_account(conn, guest).await?;
        let claim_issued = if invited {
            claims::insert(conn, user_id, guest.claim, actor.id).await?;
            true
        } else {
            claims::renew(conn, user_id, guest.claim, actor.id).await?
        };
        let reservation: ReservationRow = diesel::sql_query(
            "INSERT INTO reservations (schedule_id, user_id, status, seat_count, total_price, expires_at,
                                       paid_at, complimentary, note)
             VALUES ($1, $2, 'confirmed', $3, 0, now(), now(), true, $4) RETURNING *",
        )
        .bind::<BigInt, _>(schedule_id)
        .bind::<BigInt, _>(user_id)
        .bind::<Int4, _>(i32::try_from(given.len()).map_err(AppError::internal)?)
        .bind::<Nullable<Text>, _>(note)
        .get_result(conn)
        .await?;
        let grades: Vec<String> = given
            .iter()
            .map(|id| {
                found
                    .iter()
                    .find(|s| s.id == *id)
                    .map(|s| s.grade.clone())
                    .ok_or_else(|| AppError::internal(anyhow::anyhow!("seat {id} not loaded")))
            })
            .collect::<AppResult<_>>()?;
        diesel::sql_query(
            "INSERT INTO reservation_seats (reservation_id, seat_id, grade_name, price)
             SELECT $1, x.seat_id, x.grade, 0 FROM unnest($2::bigint[], $3::text[]) AS x(seat_id, grade)",
        )
        .bind::<BigInt, _>(reservation.id)
        .bind::<Array<BigInt>, _>(&given)
        .bind::<Array<Text>, _>(&grades)
        .execute(conn)
        .await?;
        let n = diesel::sql_query(
            "UPDATE seats SET status = 'sold', reservation_id = $2, block_reason = NULL
             WHERE id = ANY($1) AND status IN ('available', 'blocked')",
        )
        .bind::<Array<BigInt>, _>(&given)
        .bind::<BigInt, _>(reservation.id)
        .execute(conn)
        .await?;
        if n != given.len() {
            return Err(AppError::internal(anyhow::anyhow!(
                "sold {n} of {} complimentary seats under the schedule lock",
                given.len()
            )));
        }
        let version = count(conn, schedule_id, were_free).await?;
        let issued_at = reservation.paid_at.unwrap_or(now);
        crate::tickets::store::issue(conn, signer, reservation.id, schedule_id, &given, issued_at).await?;
        append::reservations(conn, EventType::ReservationConfirmed, &[reservation.id]).await?;
        crate::admin::audit::record(
            conn,
            actor.id,
            "issue_complimentary",
            "reservation",
            Some(reservation.id),
            serde_json::json!({
                "schedule": schedule_id, "seats": given, "guest": user_id,
                "invited": invited, "claim_issued": claim_issued, "note": note,
            }),
        )
        .await?;
        Ok((
            reservation,
            change(schedule_id, version, &given, SeatStatus::Sold),
            claim_issued,
        ))
    })
    .await
}

/// The guest's account, created as invited if the e-mail is new; whether it was created.
async fn guest_account(conn: &mut AsyncPgConnection, guest: &Guest<'_>) -> AppResult<(i64, bool)> {
    use crate::auth::store;
    if let Some(user) = store::user_by_email(conn, guest.email).await? {
        return Ok((user.id, false));
    }
    let new = store::NewUser {
        email: guest.email,
        password_hash: guest.password_hash,
        display_name: guest.display_name,
        role: crate::auth::Role::User.as_str(),
    };
    match store::insert_user(conn, &new).await? {
        Some(user) => Ok((user.id, true)),
        // Signed up meanwhile.
        None => store::user_by_email(conn, guest.email)
            .await?
            .map(|u| (u.id, false))
            .ok_or(AppError::NotFound("user")),
    }
}
