//! GraphQL face of waiting lists: `WaitlistEntry`, `joinWaitlist`, `leaveWaitlist`,
//! `myWaitlist`, `waitlistOffers`.

use async_graphql::{Context, ID, Object, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;

use super::{Offer, WaitlistStatus, service, store};
use crate::{
    auth::{
        Role,
        context::{RoleGuard, actor, state, viewer},
    },
    booking::graphql::Reservation,
    concerts::graphql::Schedule,
    error::AppError,
    ids,
    live::Event,
};

/// Entries `myWaitlist` lists at most.
const MY_ENTRIES: i64 = 50;

/// A place on a sold-out performance's waiting list.
pub struct WaitlistEntry(pub store::EntryRow);

#[Object]
impl WaitlistEntry {
    async fn id(&self) -> ID {
        ids::to_id(self.0.id)
    }
    async fn schedule(&self, ctx: &Context<'_>) -> Result<Schedule, AppError> {
        Schedule::load(ctx, self.0.schedule_id).await
    }
    /// Seats wanted.
    async fn count(&self) -> i32 {
        self.0.seat_count
    }
    /// The grade wanted; any when null.
    async fn grade(&self) -> Option<&str> {
        self.0.grade.as_deref()
    }
    async fn status(&self) -> WaitlistStatus {
        self.0.status
    }
    /// Place in line (1 is next) while WAITING; null otherwise.
    async fn position(&self, ctx: &Context<'_>) -> Result<Option<i64>, AppError> {
        if self.0.status != WaitlistStatus::Waiting {
            return Ok(None);
        }
        let mut conn = state(ctx)?.db.get().await?;
        Ok(Some(
            store::position(&mut conn, self.0.schedule_id, self.0.id).await?,
        ))
    }
    /// The hold made for this entry once OFFERED: pay it before it expires.
    async fn reservation(&self, ctx: &Context<'_>) -> Result<Option<Reservation>, AppError> {
        let Some(id) = self.0.reservation_id else {
            return Ok(None);
        };
        let mut conn = state(ctx)?.db.get().await?;
        Ok(crate::booking::reservation(&mut conn, id).await?.map(Reservation))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Default)]
pub struct WaitlistQuery;

#[Object]
impl WaitlistQuery {
    /// The signed-in user's waiting-list entries still WAITING or OFFERED, newest first (at
    /// most 50).
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn my_waitlist(&self, ctx: &Context<'_>) -> Result<Vec<WaitlistEntry>, AppError> {
        let user_id = viewer(ctx)?.user()?.id;
        let mut conn = state(ctx)?.db.get().await?;
        Ok(store::entries_of_user(&mut conn, user_id, MY_ENTRIES)
            .await?
            .into_iter()
            .map(WaitlistEntry)
            .collect())
    }
}

#[derive(Default)]
pub struct WaitlistMutation;

#[Object]
impl WaitlistMutation {
    /// Joins a sold-out performance's waiting list for `count` seats (1 to 10) of `grade`
    /// (any one grade when null). When seats come back, the earliest entries that fit get a
    /// hold made for them (best available, the usual hold time and per-user limit), told
    /// through `waitlistOffers` and found in `myReservations`. A performance that sells
    /// through the waiting queue takes only fans admitted by it, as for reserving. Errors:
    /// QUEUE_REQUIRED (no live admission), CONFLICT (sales not open, already on the list,
    /// or the seats are available now: reserve them), LIMIT_EXCEEDED, BAD_USER_INPUT
    /// (count, unknown grade), NOT_FOUND.
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn join_waitlist(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        count: i32,
        grade: Option<String>,
    ) -> Result<WaitlistEntry, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let actor = actor(ctx).await?;
        Ok(WaitlistEntry(
            service::join(state(ctx)?, actor, schedule_id, count, grade.as_deref()).await?,
        ))
    }

    /// Leaves a performance's waiting list: the entry you left, now LEFT (a normalised
    /// cache updates the entry it holds), or null if you were not on the list. A hold
    /// already offered stays yours until paid, cancelled or expired. Errors: NOT_FOUND.
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn leave_waitlist(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
    ) -> Result<Option<WaitlistEntry>, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let actor = actor(ctx).await?;
        Ok(service::leave(state(ctx)?, actor, schedule_id)
            .await?
            .map(WaitlistEntry))
    }
}

/// A hold made for one of your waiting-list entries.
pub struct WaitlistOffer(Offer);

#[Object]
impl WaitlistOffer {
    async fn entry_id(&self) -> ID {
        ids::to_id(self.0.entry_id)
    }
    /// The entry the hold was made for, now OFFERED with its `reservation`: the same
    /// `WaitlistEntry` object (by id) that `myWaitlist` lists, so a normalised cache
    /// updates it from the offer.
    async fn entry(&self, ctx: &Context<'_>) -> Result<WaitlistEntry, AppError> {
        let mut conn = state(ctx)?.db.get().await?;
        store::entry(&mut conn, self.0.entry_id)
            .await?
            .filter(|e| e.user_id == self.0.user_id)
            .map(WaitlistEntry)
            .ok_or(AppError::NotFound("waitlist entry"))
    }
    async fn schedule_id(&self) -> ID {
        ids::to_id(self.0.schedule_id)
    }
    /// The hold: pay it before `expiresAt`.
    async fn reservation(&self, ctx: &Context<'_>) -> Result<Reservation, AppError> {
        let mut conn = state(ctx)?.db.get().await?;
        crate::booking::reservation(&mut conn, self.0.reservation_id)
            .await?
            .map(Reservation)
            .ok_or(AppError::NotFound("reservation"))
    }
}

#[derive(Default)]
pub struct WaitlistSubscription;

#[Subscription]
impl WaitlistSubscription {
    /// Holds made for the signed-in user's waiting-list entries, as they are made (on any
    /// instance). Best effort like every live event: an offer missed while disconnected is
    /// in `myWaitlist` and `myReservations`.
    async fn waitlist_offers(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = WaitlistOffer> + use<>> {
        let user_id = viewer(ctx)?.user()?.id;
        let sub = state(ctx)?.live.hub.subscribe(&super::topic(user_id));
        Ok(futures_util::stream::unfold(sub, |mut sub| async move {
            loop {
                match sub.recv().await? {
                    Event::Message(payload) => {
                        if let Ok(offer) = serde_json::from_str::<Offer>(&payload) {
                            return Some((WaitlistOffer(offer), sub));
                        }
                    }
                    // Nothing to re-read here: the offers themselves stay in `myWaitlist`.
                    Event::Resync => {}
                }
            }
        }))
    }
}
