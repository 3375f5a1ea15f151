//! GraphQL face of booking: `Reservation`, `reserveSeats`, `reserveBestAvailable`,
//! `payReservation`, `cancelReservation`, `reservation`, `myReservations`.

use async_graphql::{Context, ID, InputObject, Object, connection::Connection, dataloader::DataLoader};
use chrono::{DateTime, Utc};

use super::store;
use crate::{
    auth::{
        Role,
        context::{BatchChecksAccount, RoleGuard, actor, state, viewer},
    },
    concerts::graphql::Schedule,
    error::AppError,
    ids, pagination,
};

pub use super::{
    ReservationStatus,
    reserved_seats::{ReservedSeat, ReservedSeatsLoader},
};

pub struct Reservation(pub store::ReservationRow);

#[Object]
impl Reservation {
    async fn id(&self) -> ID {
        ids::to_id(self.0.id)
    }
    async fn schedule(&self, ctx: &Context<'_>) -> Result<Schedule, AppError> {
        Schedule::load(ctx, self.0.schedule_id).await
    }
    async fn status(&self) -> ReservationStatus {
        self.0.status
    }
    async fn seats(&self, ctx: &Context<'_>) -> Result<Vec<ReservedSeat>, AppError> {
        Ok(ctx
            .data::<DataLoader<ReservedSeatsLoader>>()?
            .load_one(self.0.id)
            .await?
            .unwrap_or_default())
    }
    async fn seat_count(&self) -> i32 {
        self.0.seat_count
    }
    /// True when the seats sit side by side: one row of one section, consecutive numbers
    /// (a single seat is together). Said of every reservation, picked or chosen seat by
    /// seat; a best-available pick is false only when no block of that many adjacent seats
    /// of one grade was free, and then it is the closest seats in one section it found.
    async fn together(&self, ctx: &Context<'_>) -> Result<bool, AppError> {
        let seats = ctx
            .data::<DataLoader<ReservedSeatsLoader>>()?
            .load_one(self.0.id)
            .await?
            .unwrap_or_default();
        Ok(side_by_side(&seats))
    }
    /// Sum of the seats' prices when held, in points.
    async fn total_price(&self) -> i64 {
        self.0.total_price
    }
    /// Given by the host (`issueComplimentary`): price 0, confirmed at once.
    async fn complimentary(&self) -> bool {
        self.0.complimentary
    }
    /// The host's note on a complimentary reservation.
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    /// When an unpaid hold lapses.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.paid_at
    }
    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.0.cancelled_at
    }
    /// One ticket per seat once paid (none while held). Cancelling or refunding revokes
    /// them: they stay listed, REVOKED.
    async fn tickets(&self, ctx: &Context<'_>) -> Result<Vec<crate::tickets::graphql::Ticket>, AppError> {
        crate::tickets::graphql::of_reservation(ctx, self.0.id).await
    }
}

/// Whether seats are one block of one row (see `Reservation.together`).
fn side_by_side(seats: &[ReservedSeat]) -> bool {
    let Some(first) = seats.first() else {
        return false;
    };
    let mut numbers: Vec<i32> = Vec::with_capacity(seats.len());
    for s in seats {
        if s.section != first.section || s.row != first.row {
            return false;
        }
        numbers.push(s.number);
    }
    numbers.sort_unstable();
    numbers.windows(2).all(|w| w[1] == w[0] + 1)
}

#[derive(InputObject)]
pub struct ReserveSeatsInput {
    pub schedule_id: ID,
    /// 1 to 10 seats of the schedule, held all or nothing.
    pub seat_ids: Vec<ID>,
    /// Optional but recommended: repeating a request with the same key holds once and
    /// answers the same reservation.
    pub idempotency_key: Option<String>,
}

impl ReserveSeatsInput {
    /// The schedule id and a checked request for `user_id`.
    pub fn parse(&self, user_id: i64) -> Result<(i64, super::HoldRequest), AppError> {
        let schedule_id = ids::parse(&self.schedule_id, "input.scheduleId")?;
        let seat_ids = self
            .seat_ids
            .iter()
            .map(|id| ids::parse(id, "input.seatIds"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            schedule_id,
            super::hold_request(user_id, &seat_ids, self.idempotency_key.as_deref())?,
        ))
    }
}

/// "`count` seats, grade R if you like, the best there are": chosen for you in the booking
/// batch (see `reserveBestAvailable`).
#[derive(InputObject)]
pub struct BestAvailableInput {
    pub schedule_id: ID,
    /// 1 to 10 seats.
    pub count: i32,
    /// A grade name of the schedule (e.g. "R"); any grade, dearest first, when absent. The
    /// seats of one reservation are always of one grade.
    pub grade: Option<String>,
    /// As for `reserveSeats`: repeating the request with the same key holds once and
    /// answers the same reservation; the key with a different request is a CONFLICT.
    pub idempotency_key: Option<String>,
}

impl BestAvailableInput {
    /// The schedule id and a checked request for `user_id`.
    pub fn parse(&self, user_id: i64) -> Result<(i64, super::HoldRequest), AppError> {
        let schedule_id = ids::parse(&self.schedule_id, "input.scheduleId")?;
        Ok((
            schedule_id,
            super::best_available_request(
                user_id,
                self.count,
                self.grade.as_deref(),
                self.idempotency_key.as_deref(),
            )?,
        ))
    }
}

#[derive(Default)]
pub struct BookingQuery;

#[Object]
impl BookingQuery {
    /// One of the signed-in user's reservations (admins: anyone's).
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn reservation(&self, ctx: &Context<'_>, id: ID) -> Result<Reservation, AppError> {
        let id = ids::parse(&id, "id")?;
        let user_id = viewer(ctx)?.user()?.id;
        let mut conn = state(ctx)?.db.get().await?;
        let r = store::reservation(&mut conn, id)
            .await?
            .ok_or(AppError::NotFound("reservation"))?;
        drop(conn);
        if r.user_id != user_id && actor(ctx).await?.role != Role::Admin {
            return Err(AppError::NotFound("reservation"));
        }
        Ok(Reservation(r))
    }

    /// The signed-in user's reservations, newest first.
    #[graphql(
        guard = "RoleGuard(Role::User)",
        complexity = "pagination::cost(first, child_complexity)"
    )]
    async fn my_reservations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Reservation>, AppError> {
        let limit = pagination::page_size(first)?;
        let after = pagination::decode::<i64>(after.as_deref())?;
        let user_id = viewer(ctx)?.user()?.id;
        let mut conn = state(ctx)?.db.get().await?;
        let rows = store::reservations_of_user(&mut conn, user_id, after, limit).await?;
        pagination::page(
            rows,
            limit,
            after.is_some(),
            |r| pagination::encode(r.id),
            |r| Ok(Reservation(r)),
        )
    }
}

#[derive(Default)]
pub struct BookingMutation;

#[Object]
impl BookingMutation {
    /// Holds 1 to 10 seats, all or nothing, until `expiresAt`. Errors: SEAT_UNAVAILABLE,
    /// SOLD_OUT, LIMIT_EXCEEDED, QUEUE_REQUIRED, CONFLICT (sales not open), BAD_USER_INPUT.
    #[graphql(guard = "BatchChecksAccount")]
    async fn reserve_seats(
        &self,
        ctx: &Context<'_>,
        input: ReserveSeatsInput,
    ) -> Result<Reservation, AppError> {
        let user_id = viewer(ctx)?.user()?.id;
        let (schedule_id, request) = input.parse(user_id)?;
        let state = state(ctx)?;
        Ok(Reservation(super::hold(state, schedule_id, request).await?))
    }

    /// Holds the best `count` free seats of one grade, all or nothing, until `expiresAt`:
    /// side by side in one row when possible (`together`), the dearer grade and the front
    /// first, never leaving a lone seat between taken ones when another choice exists.
    /// Chosen inside the schedule's booking batch, so concurrent pickers never share a seat.
    /// Errors as `reserveSeats`: SEAT_UNAVAILABLE (not that many seats of one grade left),
    /// SOLD_OUT, LIMIT_EXCEEDED, QUEUE_REQUIRED, CONFLICT (sales not open, or the key used
    /// for another request), BAD_USER_INPUT (count, unknown grade).
    #[graphql(guard = "BatchChecksAccount")]
    async fn reserve_best_available(
        &self,
        ctx: &Context<'_>,
        input: BestAvailableInput,
    ) -> Result<Reservation, AppError> {
        let user_id = viewer(ctx)?.user()?.id;
        let (schedule_id, request) = input.parse(user_id)?;
        let state = state(ctx)?;
        Ok(Reservation(super::hold(state, schedule_id, request).await?))
    }

    /// Pays a hold with points and sells its seats. Errors: INSUFFICIENT_POINTS,
    /// HOLD_EXPIRED, NOT_FOUND. Paying again answers the paid reservation unchanged.
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn pay_reservation(
        &self,
        ctx: &Context<'_>,
        reservation_id: ID,
        idempotency_key: String,
    ) -> Result<Reservation, AppError> {
        let reservation_id = ids::parse(&reservation_id, "reservationId")?;
        let user_id = viewer(ctx)?.user()?.id;
        Ok(Reservation(
            super::pay(state(ctx)?, user_id, reservation_id, &idempotency_key).await?,
        ))
    }

    /// Releases a hold, or cancels a paid reservation and refunds it (until the show starts).
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn cancel_reservation(
        &self,
        ctx: &Context<'_>,
        reservation_id: ID,
    ) -> Result<Reservation, AppError> {
        let reservation_id = ids::parse(&reservation_id, "reservationId")?;
        let actor = actor(ctx).await?;
        Ok(Reservation(
            super::cancel(state(ctx)?, actor, reservation_id).await?,
        ))
    }
}
