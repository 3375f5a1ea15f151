//! GraphQL face of running a show: `updateSchedule`, `updateGradePrices`, `blockSeats`,
//! `unblockSeats`, `issueComplimentary`. Hosts (of the concert) and admins; to another host
//! the schedule does not exist (NOT_FOUND), a fan is FORBIDDEN by the role guard.

use async_graphql::{Context, ID, Object, SimpleObject};

use super::{
    edit::{self, GradePriceInput, ScheduleUpdateInput},
    guests::NewGuest,
};
use crate::{
    auth::{
        Role,
        context::{RoleGuard, actor, state},
        graphql::AccountClaim,
    },
    booking::{self, graphql::Reservation},
    concerts::graphql::Schedule,
    error::{AppError, AppResult},
    ids,
};

fn seat_ids(ids: &[ID]) -> AppResult<Vec<i64>> {
    ids.iter().map(|id| ids::parse(id, "seatIds")).collect()
}

/// A short free text (a reason, a note): trimmed, at most `max` characters, no control
/// characters.
fn short_text(value: &str, field: &str, max: usize) -> AppResult<String> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            field,
            format!("must be 1 to {max} printable characters"),
        ));
    }
    Ok(v.to_owned())
}

/// What `issueComplimentary` gives the host: the guest's reservation and, when the guest
/// cannot log in yet (an invited account), the link that lets them claim it.
#[derive(SimpleObject)]
pub struct ComplimentaryIssue {
    pub reservation: Reservation,
    /// Null when the guest's account already has a password.
    pub claim: Option<AccountClaim>,
}

#[derive(Default)]
pub struct ShowsMutation;

#[Object]
impl ShowsMutation {
    /// Changes a performance's start, sales window, per-user limit, hold time or queue
    /// settings (absent fields stay). Nothing moves into the past; the sales window closes
    /// no later than the show; a lower per-user limit applies to the next holds only.
    /// Moving a show with tickets sold tells their holders and is audited.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn update_schedule(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ScheduleUpdateInput,
    ) -> Result<Schedule, AppError> {
        let id = ids::parse(&id, "id")?;
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        let edited = edit::update_schedule(&mut conn, state.writes(), actor, id, &input).await?;
        if edited.changed {
            booking::announce_schedule(state, id, edited.schedule.version);
        }
        Ok(Schedule::new(edited.schedule))
    }

    /// Changes the prices of grades while none of their seats is held or sold.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn update_grade_prices(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        prices: Vec<GradePriceInput>,
    ) -> Result<Schedule, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        let edited =
            edit::update_grade_prices(&mut conn, state.bulk_writes(), actor, schedule_id, &prices).await?;
        if edited.changed {
            booking::announce_schedule(state, schedule_id, edited.schedule.version);
        }
        Ok(Schedule::new(edited.schedule))
    }

    /// Keeps free seats back (status BLOCKED): never sold, shown on every map. Seats
    /// already blocked stay so; a held or sold seat is refused (SEAT_UNAVAILABLE).
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn block_seats(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        seat_ids: Vec<ID>,
        reason: String,
    ) -> Result<Schedule, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let seats = self::seat_ids(&seat_ids)?;
        let reason = short_text(&reason, "reason", 200)?;
        let actor = actor(ctx).await?;
        let row = booking::block(state(ctx)?, actor, schedule_id, &seats, &reason).await?;
        Ok(Schedule::new(row))
    }

    /// Puts blocked seats back on sale (the waiting list is served first).
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn unblock_seats(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        seat_ids: Vec<ID>,
    ) -> Result<Schedule, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let seats = self::seat_ids(&seat_ids)?;
        let actor = actor(ctx).await?;
        let row = booking::unblock(state(ctx)?, actor, schedule_id, &seats).await?;
        Ok(Schedule::new(row))
    }

    /// Gives free or blocked seats to the account of `email` at price 0: a confirmed,
    /// complimentary reservation with its tickets. A new e-mail gets an invited account
    /// that no password logs into until its guest claims it: `claim` is the one-time link
    /// to pass on (shown once), also given again, replacing the old one, while the account
    /// is unclaimed. Audited.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn issue_complimentary(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        seat_ids: Vec<ID>,
        email: String,
        note: Option<String>,
    ) -> Result<ComplimentaryIssue, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let seats = self::seat_ids(&seat_ids)?;
        let state = state(ctx)?;
        let guest = NewGuest::parse(&email, state.config.claim_token_ttl)?;
        let note = match note.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(n) => Some(short_text(n, "note", 500)?),
        };
        let actor = actor(ctx).await?;
        let (reservation, claim_issued) = booking::comp(
            state,
            actor,
            schedule_id,
            &seats,
            &guest.guest().await?,
            note.as_deref(),
        )
        .await?;
        Ok(ComplimentaryIssue {
            reservation: Reservation(reservation),
            claim: claim_issued.then(|| AccountClaim::from(&guest.claim)),
        })
    }
}
