//! The `seatChanges` subscription.

use async_graphql::{Context, ID, SimpleObject, Subscription};
use futures_util::{Stream, StreamExt as _};

use super::seats::{self, SeatUpdate};
use crate::{
    auth::state,
    error::AppError,
    ids,
    seats::graphql::{GradeAvailability, SeatStatus},
};

/// A seat's new status.
#[derive(SimpleObject, Clone)]
pub struct SeatState {
    pub id: ID,
    pub status: SeatStatus,
}

/// Seats of a schedule that changed since the previous event.
///
/// Keep the `version` of your seat map (from `schedule { version }`). Apply an event when
/// its `version` is higher than yours, then take its version. If `resync` is true, or the
/// first event after you subscribed has a version more than the changes you know of, you
/// may have missed changes: read `schedule(id) { seats version }` again. Events are
/// coalesced: at most about ten per second, each with every change since the last.
#[derive(SimpleObject, Clone)]
pub struct SeatChangeEvent {
    pub schedule_id: ID,
    pub version: i64,
    pub seats: Vec<SeatState>,
    /// Seats per grade by status, read after the changes of this event.
    pub availability: Vec<GradeAvailability>,
    pub resync: bool,
}

impl From<&SeatUpdate> for SeatChangeEvent {
    fn from(u: &SeatUpdate) -> Self {
        Self {
            schedule_id: ids::to_id(u.schedule_id),
            version: u.version,
            seats: u
                .seats
                .iter()
                .map(|(id, st)| SeatState {
                    id: ids::to_id(*id),
                    status: SeatStatus::parse(st),
                })
                .collect(),
            availability: u
                .availability
                .iter()
                .cloned()
                .map(GradeAvailability::from)
                .collect(),
            resync: u.resync,
        }
    }
}

#[derive(Default)]
pub struct LiveSubscription;

#[Subscription]
impl LiveSubscription {
    /// Live seat changes of a schedule. The first event is the current state (version and
    /// availability, no seats), so a client can line it up with the map it has read.
    async fn seat_changes(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = SeatChangeEvent> + use<>> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let state = state(ctx)?.clone();
        let mut conn = state.db.get().await.map_err(AppError::from)?;
        let schedule = crate::concerts::store::schedule(&mut conn, schedule_id)
            .await
            .map_err(AppError::from)?
            .ok_or(AppError::NotFound("schedule"))?;
        let concert = crate::concerts::store::concert(&mut conn, schedule.concert_id)
            .await
            .map_err(AppError::from)?
            .ok_or(AppError::NotFound("schedule"))?;
        drop(conn);
        if concert.status == "draft" {
            return Err(AppError::NotFound("schedule").into());
        }
        // Subscribe first, then read the current state: nothing falls in between.
        let updates = seats::updates(&state, schedule_id);
        let (availability, version) = seats::counts(&state, schedule_id).await?;
        let first = SeatChangeEvent {
            schedule_id: ids::to_id(schedule_id),
            version,
            seats: Vec::new(),
            availability: availability.into_iter().map(GradeAvailability::from).collect(),
            resync: false,
        };
        Ok(futures_util::stream::once(async move { first }).chain(
            updates
                .filter(move |u| futures_util::future::ready(u.version > version || u.resync))
                .map(|u| SeatChangeEvent::from(u.as_ref())),
        ))
    }
}
