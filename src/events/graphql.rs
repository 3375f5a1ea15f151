//! GraphQL face of webhooks: `createWebhook`, `webhooks`, `deleteWebhook`,
//! `rotateWebhookSecret`, `webhookDeliveries`, `redeliverEvent`. Thin: parse ids, call
//! `service`, map rows.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject, connection::Connection};
use boxoffice_outbox::subscriptions::{AttemptRow, DeliveryRow, WebhookRow};
use chrono::{DateTime, Utc};

use super::service;
use crate::{
    auth::{
        Role,
        context::{RoleGuard, actor, state},
    },
    error::AppError,
    ids, pagination,
};

#[derive(InputObject)]
pub struct CreateWebhookInput {
    /// Where events are POSTed: http or https, resolving to public addresses only.
    pub url: String,
    /// Event types to receive, e.g. `reservation.confirmed` (see docs/api.md).
    pub events: Vec<String>,
    /// The concert whose events to receive; omitted: every concert (admins only).
    pub concert_id: Option<ID>,
}

/// A subscription: events of one concert (or all, for an admin) POSTed to a URL, signed
/// per the Standard Webhooks specification.
#[derive(SimpleObject)]
pub struct Webhook {
    pub id: ID,
    pub url: String,
    pub events: Vec<String>,
    pub concert_id: Option<ID>,
    /// Set when deliveries were given up (failing for a day, or the receiver answered 410):
    /// nothing more is sent until an event is redelivered.
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Self {
            id: ids::to_id(r.id),
            url: r.url,
            events: r.event_types,
            concert_id: r.concert_id.map(ids::to_id),
            disabled_at: r.disabled_at,
            disabled_reason: r.disabled_reason,
            created_at: r.created_at,
        }
    }
}

/// A webhook with its signing secret, shown only here: when it is made or rotated.
#[derive(SimpleObject)]
pub struct WebhookWithSecret {
    pub id: ID,
    /// `whsec_…`: verify `webhook-signature` with it. Not shown again.
    pub secret: String,
    pub webhook: Webhook,
}

/// One event's delivery to one webhook.
#[derive(SimpleObject)]
pub struct WebhookDelivery {
    pub id: ID,
    /// The event's id, also its `webhook-id` header.
    pub event_id: String,
    pub event_type: String,
    pub subject: String,
    /// PENDING, DELIVERED or FAILED (given up).
    pub status: String,
    pub attempts: Vec<WebhookAttempt>,
    /// When the next attempt is due, while PENDING.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct WebhookAttempt {
    pub attempted_at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    /// DELIVERED, FAILED or GONE.
    pub outcome: String,
    pub error: Option<String>,
}

fn delivery(r: DeliveryRow, attempts: &mut Vec<AttemptRow>) -> WebhookDelivery {
    let mine: Vec<WebhookAttempt> = attempts
        .extract_if(.., |a| a.delivery_id == r.id)
        .map(|a| WebhookAttempt {
            attempted_at: a.attempted_at,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            outcome: a.outcome.to_uppercase(),
            error: a.error,
        })
        .collect();
    WebhookDelivery {
        id: ids::to_id(r.id),
        event_id: r.event_id.to_string(),
        event_type: r.event_type,
        subject: r.subject,
        next_attempt_at: (r.status == "pending").then_some(r.next_attempt_at),
        status: r.status.to_uppercase(),
        attempts: mine,
        created_at: r.created_at,
    }
}

#[derive(Default)]
pub struct WebhooksQuery;

#[Object]
impl WebhooksQuery {
    /// The viewer's webhooks (an admin: everyone's).
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn webhooks(&self, ctx: &Context<'_>) -> Result<Vec<Webhook>, AppError> {
        let actor = actor(ctx).await?;
        let mut conn = state(ctx)?.db.get().await?;
        Ok(service::list(&mut conn, actor)
            .await?
            .into_iter()
            .map(Webhook::from)
            .collect())
    }

    /// A webhook's deliveries, newest first, each with its attempts.
    #[graphql(
        guard = "RoleGuard(Role::Host)",
        complexity = "pagination::cost(first, child_complexity)"
    )]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, WebhookDelivery>, AppError> {
        let webhook_id = ids::parse(&webhook_id, "webhookId")?;
        let limit = pagination::page_size(first)?;
        let after = pagination::decode::<i64>(after.as_deref())?;
        let actor = actor(ctx).await?;
        let mut conn = state(ctx)?.db.get().await?;
        let rows = service::deliveries(&mut conn, actor, webhook_id, after, limit).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut attempts = boxoffice_outbox::subscriptions::attempts(&mut conn, &ids).await?;
        pagination::page(
            rows,
            limit,
            after.is_some(),
            |r| pagination::encode(r.id),
            |r| Ok(delivery(r, &mut attempts)),
        )
    }
}

#[derive(Default)]
pub struct WebhooksMutation;

#[Object]
impl WebhooksMutation {
    /// Subscribes a URL to events of a concert of the viewer's (an admin: any, or all).
    /// Returns the signing secret, which is never shown again.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookInput,
    ) -> Result<WebhookWithSecret, AppError> {
        let actor = actor(ctx).await?;
        let concert_id = input
            .concert_id
            .as_ref()
            .map(|id| ids::parse(id, "concertId"))
            .transpose()?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        let (row, secret) = service::create(
            &mut conn,
            state.writes(),
            actor,
            state.webhook_policy,
            &service::NewSubscription {
                url: &input.url,
                events: &input.events,
                concert_id,
            },
        )
        .await?;
        Ok(WebhookWithSecret {
            id: ids::to_id(row.id),
            secret: secret.expose(),
            webhook: row.into(),
        })
    }

    /// Deletes a webhook of the viewer's, with its delivery log.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<Webhook, AppError> {
        let id = ids::parse(&id, "id")?;
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        Ok(service::delete(&mut conn, state.writes(), actor, id)
            .await?
            .into())
    }

    /// A new signing secret; the old one keeps signing beside it for 24 hours.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn rotate_webhook_secret(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookWithSecret, AppError> {
        let id = ids::parse(&id, "id")?;
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        let (row, secret) = service::rotate_secret(&mut conn, state.writes(), actor, id).await?;
        Ok(WebhookWithSecret {
            id: ids::to_id(row.id),
            secret: secret.expose(),
            webhook: row.into(),
        })
    }

    /// Sends an event again, now, to the viewer's webhooks that received it (enabling a
    /// disabled one). Returns the deliveries queued.
    #[graphql(guard = "RoleGuard(Role::Host)")]
    async fn redeliver_event(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
    ) -> Result<Vec<WebhookDelivery>, AppError> {
        let actor = actor(ctx).await?;
        let state = state(ctx)?;
        let mut conn = state.db.get().await?;
        let rows = service::redeliver(&mut conn, state.writes(), actor, &event_id).await?;
        let mut none = Vec::new();
        Ok(rows.into_iter().map(|r| delivery(r, &mut none)).collect())
    }
}
