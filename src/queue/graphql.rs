//! GraphQL face of the queue: `enterQueue`, `queueStatus` (query and subscription).

use std::time::Duration;

use async_graphql::{Context, Enum, ID, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;

use super::store::{self, Place};
use crate::{
    auth::{
        Actor, Role,
        context::{RoleGuard, actor, state, viewer},
    },
    booking::sale::{self, Sale},
    concerts::{ConcertStatus, store::ScheduleRow},
    error::{AppError, AppResult},
    ids,
    state::AppState,
};

#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum QueueState {
    /// Arrived before sales opened: placed in random order among the early at opening.
    Early,
    Waiting,
    /// May reserve until `admissionExpiresAt`.
    Admitted,
    NotInQueue,
}

/// A place in a schedule's waiting queue. Key field: `id`, the same for one user and
/// schedule whether it comes from `enterQueue`, the `queueStatus` query or the `queueStatus`
/// subscription, so a normalised cache keeps one ticket up to date from all three.
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct QueueTicket {
    /// `<scheduleId>:<userId>`: stable for the user's place in this schedule's queue.
    pub id: ID,
    pub schedule_id: ID,
    pub state: QueueState,
    /// 1 for the next to be admitted; null unless WAITING.
    pub position: Option<i64>,
    /// People ahead; null unless WAITING.
    pub ahead: Option<i64>,
    /// Rough wait until admission, from the admission rate (until opening when EARLY).
    pub eta_seconds: Option<i64>,
    pub admitted: bool,
    pub admission_expires_at: Option<DateTime<Utc>>,
}

impl QueueTicket {
    /// Whether `other` says something this ticket does not. The EARLY estimate counts down
    /// with the clock, so it alone is no news: a subscriber gets an event when the place
    /// changes, not every second before opening.
    fn is_news_after(&self, other: &QueueTicket) -> bool {
        if self.state == QueueState::Early && other.state == QueueState::Early {
            return false;
        }
        self != other
    }
}

fn ticket(schedule: &ScheduleRow, user_id: i64, place: Place) -> QueueTicket {
    let rate = i64::from(schedule.admit_per_second.max(1));
    let (state, position, ahead, eta, until) = match place {
        Place::Early => {
            let wait = (schedule.sales_open_at - Utc::now()).num_seconds().max(0);
            (QueueState::Early, None, None, Some(wait), None)
        }
        Place::Waiting { ahead } => (
            QueueState::Waiting,
            Some(ahead + 1),
            Some(ahead),
            Some((ahead + 1 + rate - 1) / rate),
            None,
        ),
        Place::Admitted { until } => (QueueState::Admitted, None, None, Some(0), Some(until)),
        Place::Absent => (QueueState::NotInQueue, None, None, None, None),
    };
    QueueTicket {
        id: ID(format!("{}:{user_id}", schedule.id)),
        schedule_id: ids::to_id(schedule.id),
        state,
        position,
        ahead,
        eta_seconds: eta,
        admitted: state == QueueState::Admitted,
        admission_expires_at: until,
    }
}

/// The schedule if it runs a queue that can still be joined. A draft's schedule is
/// NOT_FOUND to whoever may not see it (`who`, asked only then: the viewer as an actor),
/// and not on sale to its host and admins.
async fn queued_schedule(
    state: &AppState,
    schedule_id: i64,
    who: impl AsyncFnOnce() -> AppResult<Option<Actor>>,
) -> AppResult<ScheduleRow> {
    let settings = state
        .queue_flags
        .settings(&state.db, schedule_id)
        .await?
        .ok_or(AppError::NotFound("schedule"))?;
    if settings.concert_status == ConcertStatus::Draft && !settings.visible_to(who().await?) {
        return Err(AppError::NotFound("schedule"));
    }
    let schedule = settings.schedule;
    let now = state.db_clock.now(&state.db).await?;
    match sale::rules(&schedule, settings.concert_status, now) {
        Sale::Unpublished => {
            return Err(AppError::Conflict("this performance is not on sale".into()));
        }
        Sale::Closed | Sale::Cancelled => {
            return Err(AppError::Conflict("sales for this performance are closed".into()));
        }
        // The queue fills before opening too.
        Sale::Open | Sale::NotYetOpen => {}
    }
    if !schedule.queue_enabled {
        return Err(AppError::Conflict(
            "this performance has no waiting queue; reserve directly".into(),
        ));
    }
    Ok(schedule)
}

async fn status(state: &AppState, schedule: &ScheduleRow, user_id: i64) -> AppResult<QueueTicket> {
    let before = Utc::now() < schedule.sales_open_at;
    Ok(ticket(
        schedule,
        user_id,
        store::enter(state, schedule.id, user_id, before, false).await?,
    ))
}

#[derive(Default)]
pub struct QueueQuery;

#[Object]
impl QueueQuery {
    /// Your place in a schedule's queue. Polling (or subscribing) keeps the place: a waiter
    /// silent for QUEUE_ABANDON_SECONDS (default 30) drops out.
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn queue_status(&self, ctx: &Context<'_>, schedule_id: ID) -> Result<QueueTicket, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let user_id = viewer(ctx)?.user()?.id;
        let state = state(ctx)?;
        let schedule = queued_schedule(state, schedule_id, async || Ok(Some(actor(ctx).await?))).await?;
        status(state, &schedule, user_id).await
    }
}

#[derive(Default)]
pub struct QueueMutation;

#[Object]
impl QueueMutation {
    /// Joins a schedule's waiting queue (entering again keeps your place). Reserve once
    /// the ticket says ADMITTED, before `admissionExpiresAt`.
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn enter_queue(&self, ctx: &Context<'_>, schedule_id: ID) -> Result<QueueTicket, AppError> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let actor = actor(ctx).await?;
        let user_id = actor.id;
        let state = state(ctx)?;
        let schedule = queued_schedule(state, schedule_id, async || Ok(Some(actor))).await?;
        let before = Utc::now() < schedule.sales_open_at;
        let place = store::enter(state, schedule_id, user_id, before, true).await?;
        metrics::counter!("queue_entered_total").increment(1);
        Ok(ticket(&schedule, user_id, place))
    }
}

#[derive(Default)]
pub struct QueueSubscription;

/// How often a queue subscription looks at its place (and shows it is alive).
const POLL: Duration = Duration::from_secs(1);

#[Subscription]
impl QueueSubscription {
    /// Your place in the queue now, then each time it changes (checked every second; the
    /// EARLY countdown alone is not a change). While subscribed, you keep your place.
    async fn queue_status(
        &self,
        ctx: &Context<'_>,
        schedule_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = QueueTicket> + use<>> {
        let schedule_id = ids::parse(&schedule_id, "scheduleId")?;
        let user_id = viewer(ctx)?.user()?.id;
        let state = state(ctx)?.clone();
        let schedule = queued_schedule(&state, schedule_id, async || Ok(Some(actor(ctx).await?))).await?;
        let first = status(&state, &schedule, user_id).await?;
        Ok(futures_util::stream::unfold(
            (state, schedule, Some(first.clone()), first),
            move |(state, schedule, pending, last)| async move {
                if let Some(t) = pending {
                    return Some((t, (state, schedule, None, last)));
                }
                loop {
                    tokio::time::sleep(POLL).await;
                    match status(&state, &schedule, user_id).await {
                        Ok(t) if t.is_news_after(&last) => {
                            return Some((t.clone(), (state, schedule, None, t)));
                        }
                        Ok(_) => {}
                        // Redis away: keep the subscription, try again next second.
                        Err(e) => tracing::debug!(error = %e, "queue status poll failed"),
                    }
                }
            },
        ))
    }
}
