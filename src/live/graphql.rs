//! The `seatChanges` subscription.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Subscription};
use futures_util::{Stream, StreamExt as _};

use super::{
    groups::{EventProbe, FirstIsResync},
    seats::{self, SeatUpdate},
};
use crate::{
    auth::{
        Viewer,
        context::{actor, state, viewer},
    },
    concerts::graphql::Schedule,
    error::AppError,
    ids,
    seats::graphql::{GradeAvailability, Seat},
};

/// One `seatChanges` event, shared by every subscriber of the instance.
pub struct SeatChangeEvent(Arc<SeatUpdate>);

/// Seats of a schedule that changed since the previous event.
///
/// Keep the `version` of your seat map (from `schedule { version }`). Apply an event when
/// its `version` is higher than yours, then take its version. If `resync` is true you may
/// have missed changes: read `schedule(id) { seatMap { ... } }` again. Events are coalesced:
/// at most about ten a second, each with every change since the last.
///
/// The event is shared by every subscriber of the instance; fields are worked out only if
/// asked for. Big sales are cheapest to follow through `packed`.
///
/// An event is a value, not an entity: it has no id (urql graphcache: declare
/// `keys: { SeatChangeEvent: () => null }`). The seats in it are entities, keyed by id.
#[Object]
impl SeatChangeEvent {
    async fn schedule_id(&self) -> ID {
        ids::to_id(self.0.schedule_id)
    }
    async fn version(&self) -> i64 {
        self.0.version
    }
    async fn resync(&self) -> bool {
        self.0.resync
    }
    /// The changed seats with their new status, ascending id: the seat map's own `Seat`
    /// objects (same typename and id), so a normalised cache holding the map (Apollo
    /// InMemoryCache, urql graphcache) updates it from the event without client code. Ask
    /// for `id status`; other seat fields are loaded only if asked for.
    async fn seats(&self) -> Vec<Seat> {
        self.0
            .seats
            .iter()
            .map(|(id, st)| Seat::changed(*id, *st))
            .collect()
    }
    /// The same as `seats` in one string: `<seat id><A|H|S|B>` joined by commas, e.g.
    /// `1041H,1042H,2001A` (A available, H held, S sold, B blocked).
    async fn packed(&self) -> &str {
        &self.0.packed
    }
    /// The schedule as it stands after this event's changes (read with `availability`):
    /// the same `Schedule` object, by id, as `schedule(id)`, so a normalised cache (Apollo
    /// InMemoryCache, urql graphcache) that holds it updates `version`, `bookedCount`,
    /// `remainingSeats` and `availability` from the event without client code. Its
    /// `version` may be ahead of the event's own when later changes are on their way. Null
    /// only if it could not be read (the next event carries it).
    async fn schedule(&self) -> Option<Schedule> {
        self.0
            .schedule
            .as_ref()
            .map(|row| Schedule::with_counts((**row).clone(), self.0.availability.clone()))
    }
    /// Seats per grade by status, read after the changes of this event.
    async fn availability(&self) -> Vec<GradeAvailability> {
        self.0
            .availability
            .iter()
            .cloned()
            .map(GradeAvailability::from)
            .collect()
    }
}

#[derive(Default)]
pub struct LiveSubscription;

#[Subscription]
impl LiveSubscription {
    /// Live seat changes of a schedule. The first event is the current state (version and
    /// availability, no seats), so a client can line it up with the map it has read.
    ///
    /// With `sinceVersion` (the version of a map you hold, e.g. from
    /// `GET /schedules/{id}/seat-map`), the first event instead carries every seat that
    /// changed after that version, and its `version` is where you are then; the events that
    /// follow come after it, with no gap and no repeat. If the server no longer knows
    /// what changed since then (it keeps about two minutes of a sale, and only while
    /// someone on its instance watches the schedule), the first event says `resync`: read
    /// the map again (its latest version) and go on from this subscription's events.
    async fn seat_changes(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
        since_version: Option<i64>,
    ) -> async_graphql::Result<impl Stream<Item = SeatChangeEvent> + use<>> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        if since_version.is_some_and(|v| v < 0) {
            return Err(AppError::bad_input("sinceVersion", "must be a schedule version (0 or more)").into());
        }
        let state = state(ctx)?.clone();
        let settings = state
            .queue_flags
            .settings(&state.db, schedule_id)
            .await?
            .ok_or(AppError::NotFound("schedule"))?;
        // A draft's schedule: its host and admins may watch it; to anyone else it does not
        // exist (the role is read only then).
        if settings.concert_status == crate::concerts::ConcertStatus::Draft {
            let actor = match viewer(ctx)? {
                Viewer::User(_) => Some(actor(ctx).await?),
                _ => None,
            };
            if !settings.visible_to(actor) {
                return Err(AppError::NotFound("schedule").into());
            }
        }
        // Subscribe first, then take the current state: nothing falls in between.
        let (updates, joined) = seats::updates(&state, schedule_id, since_version);
        let first = match (joined.last, joined.missed, since_version) {
            // The feed's history has what the subscriber missed: one event with it all.
            // Counts and schedule from the newest state the feed knows (they may be ahead of
            // the event's version, as in any event).
            (Some(last), Some((missed, at)), Some(_)) => {
                let (seats, packed) = seats::merged(&missed);
                SeatUpdate {
                    seats,
                    packed,
                    resync: false,
                    version: at,
                    ..(*last).clone()
                }
            }
            (Some(last), _, None) => SeatUpdate {
                seats: Vec::new(),
                packed: "".into(),
                resync: false,
                ..(*last).clone()
            },
            // No state to start from, or a version the history does not cover: read the
            // state now (after the feed hears everything), and it is the start.
            _ => {
                let heard = joined.ready.wait().await;
                let (availability, schedule) = seats::counts(&state, schedule_id).await?;
                let version = schedule.as_ref().map_or(0, |s| s.version);
                let current = Arc::new(SeatUpdate {
                    schedule_id,
                    version,
                    seats: Vec::new(),
                    availability,
                    schedule,
                    resync: false,
                    packed: "".into(),
                    arrived: None,
                });
                state.live.feeds.remember(&current, heard);
                SeatUpdate {
                    // Changes between that version and now are not known here: re-read.
                    resync: since_version.is_some_and(|v| v != version),
                    ..(*current).clone()
                }
            }
        };
        let mut first = first;
        // A shared group's member that lagged: its fresh state says it may have missed events.
        first.resync |= ctx.data_opt::<FirstIsResync>().is_some();
        let version = first.version;
        // Whoever runs a shared execution learns each event's version from the probe.
        let probe = ctx.data_opt::<Arc<EventProbe>>().cloned();
        let executed = state.subscriptions.seat_events_executed.clone();
        Ok(futures_util::stream::once(async move { Arc::new(first) })
            .chain(updates.filter(move |u| futures_util::future::ready(u.version > version || u.resync)))
            .map(move |u| {
                executed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(p) = &probe {
                    p.set(u.version, u.resync);
                    p.set_arrived(u.arrived);
                }
                SeatChangeEvent(u)
            }))
    }
}
