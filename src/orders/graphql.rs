//! GraphQL face of orders: `placeOrder`, `order(jobId)`, `orderResult(jobId)`.

use std::time::Duration;

use async_graphql::{Context, ID, Object, SimpleObject, Subscription};
use futures_util::Stream;

use super::jobs::{self, Job, JobStatus, Order};
use crate::{
    auth::{
        Role,
        context::{RoleGuard, actor, state, viewer},
    },
    booking::{
        HoldRequest, Origin, Want,
        graphql::{BestAvailableInput, Reservation, ReserveSeatsInput},
    },
    error::{AppError, AppResult, ErrorCode},
    live::Event,
    state::AppState,
};

/// An accepted order.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct OrderTicket {
    /// Follow it with `orderResult(jobId)` or poll `order(jobId)`.
    pub job_id: String,
}

#[async_graphql::ComplexObject]
impl OrderTicket {
    /// The order's state now (QUEUED for a new order; a repeated idempotency key may find
    /// it decided): the same `OrderResult` object, by id, that `order(jobId)` and
    /// `orderResult(jobId)` return, so a normalised cache follows it from the mutation on.
    async fn order(&self, ctx: &Context<'_>) -> async_graphql::Result<OrderResult> {
        let user_id = viewer(ctx)?.user()?.id;
        Ok(own_job(state(ctx)?, user_id, &self.job_id).await?.into())
    }
}

/// Where an order stands; once DONE it has the reservation, once FAILED the error code.
/// Key field: `id` (the job id), the same in `placeOrder { order }`, `order(jobId)` and
/// `orderResult(jobId)`.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct OrderResult {
    /// The job id, as an ID: the key a normalised cache stores this object under.
    pub id: ID,
    pub job_id: String,
    pub status: JobStatus,
    pub error_code: Option<ErrorCode>,
    pub error_message: Option<String>,
    #[graphql(skip)]
    pub reservation_id: Option<i64>,
}

#[async_graphql::ComplexObject]
impl OrderResult {
    async fn reservation(&self, ctx: &Context<'_>) -> Result<Option<Reservation>, AppError> {
        let Some(id) = self.reservation_id else {
            return Ok(None);
        };
        let mut conn = state(ctx)?.db.get().await?;
        Ok(crate::booking::reservation(&mut conn, id).await?.map(Reservation))
    }
}

impl From<Job> for OrderResult {
    fn from(j: Job) -> Self {
        Self {
            id: ID(j.job_id.clone()),
            job_id: j.job_id,
            status: j.status,
            error_code: j.error_code,
            error_message: j.error_message,
            reservation_id: j.reservation_id,
        }
    }
}

/// The job if it is `user_id`'s; someone else's is NOT_FOUND as if it did not exist.
async fn own_job(state: &AppState, user_id: i64, job_id: &str) -> AppResult<Job> {
    jobs::job(state.kv()?, job_id)
        .await?
        .filter(|j| j.user_id == user_id)
        .ok_or(AppError::NotFound("order"))
}

fn validate_job_id(job_id: &str) -> AppResult<()> {
    uuid::Uuid::parse_str(job_id)
        .map(drop)
        .map_err(|_| AppError::bad_input("jobId", "is not a job id"))
}

#[derive(Default)]
pub struct OrdersQuery;

#[Object]
impl OrdersQuery {
    /// An order's state: QUEUED, PROCESSING, DONE (with the reservation) or FAILED (with
    /// the error code). Kept for ORDER_RESULT_TTL_SECONDS.
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn order(&self, ctx: &Context<'_>, job_id: String) -> Result<OrderResult, AppError> {
        validate_job_id(&job_id)?;
        let user_id = viewer(ctx)?.user()?.id;
        Ok(own_job(state(ctx)?, user_id, &job_id).await?.into())
    }
}

#[derive(Default)]
pub struct OrdersMutation;

#[Object]
impl OrdersMutation {
    /// Like `reserveSeats`, but answers at once with a job id; the outcome comes through
    /// `orderResult(jobId)` or `order(jobId)`. Bad input and a missing queue admission are
    /// refused here; everything else (SEAT_UNAVAILABLE, SOLD_OUT, ...) is the outcome. The
    /// same `idempotencyKey` with the same order answers the same job; with another order
    /// it is a CONFLICT (and a key first used by `reserveSeats` or `reserveBestAvailable`
    /// makes the order FAILED with CONFLICT). Give either `input` (named seats) or
    /// `bestAvailable` (seats chosen as by `reserveBestAvailable`), not both.
    #[graphql(guard = "RoleGuard(Role::User)")]
    async fn place_order(
        &self,
        ctx: &Context<'_>,
        input: Option<ReserveSeatsInput>,
        best_available: Option<BestAvailableInput>,
    ) -> Result<OrderTicket, AppError> {
        // The account as it is now (the guard read it): a deleted one is UNAUTHENTICATED
        // here, not an order accepted for nobody.
        let actor = actor(ctx).await?;
        let user_id = actor.id;
        let (schedule_id, request) = match (input, best_available) {
            (Some(input), None) => input.parse(user_id)?,
            (None, Some(best)) => best.parse(user_id)?,
            _ => {
                return Err(AppError::bad_input("input", "give either input or bestAvailable"));
            }
        };
        let state = state(ctx)?;
        crate::queue::ensure_may_book(state, schedule_id, actor).await?;
        let ttl = state.config.order_result_ttl.as_secs();
        let request = HoldRequest {
            origin: Origin::Order,
            ..request
        };
        let fingerprint = request.fingerprint(schedule_id);
        let order = Order {
            job_id: uuid::Uuid::new_v4().to_string(),
            user_id,
            schedule_id,
            seat_ids: request.seat_ids().to_vec(),
            best_available: match request.want {
                Want::Seats(_) => None,
                Want::BestAvailable { count, grade } => Some(jobs::BestAsk { count, grade }),
            },
            key: request.idempotency_key,
        };
        let job_id = jobs::enqueue(state.kv()?, &order, fingerprint, ttl).await?;
        if job_id == order.job_id {
            metrics::counter!("orders_placed_total").increment(1);
        }
        Ok(OrderTicket { job_id })
    }
}

#[derive(Default)]
pub struct OrdersSubscription;

#[Subscription]
impl OrdersSubscription {
    /// The order's state now, then each change, ending with DONE or FAILED. A result that
    /// was ready before you subscribed comes at once. Only the order's owner may subscribe.
    async fn order_result(
        &self,
        ctx: &Context<'_>,
        job_id: String,
    ) -> async_graphql::Result<impl Stream<Item = OrderResult> + use<>> {
        validate_job_id(&job_id)?;
        let user_id = viewer(ctx)?.user()?.id;
        let state = state(ctx)?.clone();
        // Listen first, then read: an outcome stored in between is in one or the other. The
        // listening starts when Redis confirms the subscription, not when it is asked for:
        // an outcome published before that was lost, and the e2e client test then waited
        // for the 5-s re-read below (seen in CI: 5.4 s).
        let sub = state.live.hub.subscribe(&jobs::topic(&job_id));
        sub.ready().wait().await;
        let current = own_job(&state, user_id, &job_id).await?;
        Ok(futures_util::stream::unfold(
            Follow {
                state,
                sub,
                pending: Some(current),
                last: None,
            },
            move |mut f| {
                let job_id = job_id.clone();
                async move {
                    let job = f.next(&job_id).await?;
                    Some((OrderResult::from(job), f))
                }
            },
        ))
    }
}

/// Following one job: its topic, what is still to send, and what was sent last.
struct Follow {
    state: AppState,
    sub: crate::live::hub::Subscription,
    pending: Option<Job>,
    last: Option<JobStatus>,
}

impl Follow {
    /// The next state to send; `None` once a final one was sent.
    async fn next(&mut self, job_id: &str) -> Option<Job> {
        if self.last.is_some_and(JobStatus::is_final) {
            return None;
        }
        loop {
            let job = match self.pending.take() {
                Some(job) => Some(job),
                // A missed message (lag, Redis outage) is made up for by reading the stored
                // state again; so is a long silence.
                None => match tokio::time::timeout(Duration::from_secs(5), self.sub.recv()).await {
                    Ok(Some(Event::Message(payload))) => serde_json::from_str::<Job>(&payload).ok(),
                    Ok(Some(Event::Resync)) | Err(_) => match self.state.kv() {
                        Ok(kv) => jobs::job(kv, job_id).await.ok().flatten(),
                        Err(_) => None,
                    },
                    Ok(None) => return None,
                },
            };
            if let Some(job) = job
                && self.last != Some(job.status)
            {
                self.last = Some(job.status);
                return Some(job);
            }
        }
    }
}
