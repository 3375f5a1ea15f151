//! Rules for webhooks: who may subscribe to what, and what a subscription may say. The
//! storage and the relay are `boxoffice_outbox`'s; this module authorizes and validates.
//!
//! A host subscribes to its own concerts (another host's published concert is FORBIDDEN, a
//! draft NOT_FOUND, as everywhere else); only an admin subscribes to every concert at once
//! (and so receives `topup.confirmed`, which belongs to no concert). Everyone sees and
//! changes only their own webhooks; an admin sees and changes all.

use boxoffice_outbox::{
    subscriptions::{self, DeliveryRow, NewWebhook, Owner, WebhookRow},
    webhooks::{EventType, Secret, UrlPolicy},
};
use diesel_async::AsyncPgConnection;

use crate::{
    auth::{Actor, Role},
    error::{AppError, AppResult},
};

/// Event types one webhook may name: all of them, once each.
const MAX_EVENT_TYPES: usize = EventType::ALL.len();

pub struct NewSubscription<'a> {
    pub url: &'a str,
    pub events: &'a [String],
    pub concert_id: Option<i64>,
}

fn owner(actor: Actor) -> Owner {
    if actor.role == Role::Admin {
        Owner::Anyone
    } else {
        Owner::User(actor.id)
    }
}

/// Parses the event type names: at least one, each known.
pub fn event_types(names: &[String]) -> AppResult<Vec<EventType>> {
    if names.is_empty() {
        return Err(AppError::bad_input("events", "name at least one event type"));
    }
    if names.len() > MAX_EVENT_TYPES {
        return Err(AppError::bad_input(
            "events",
            format!("names at most {MAX_EVENT_TYPES} event types"),
        ));
    }
    names
        .iter()
        .map(|n| {
            EventType::parse(n.trim()).map_err(|_| {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                AppError::bad_input(
                    "events",
                    format!("{n:?} is not an event type; known: {}", known.join(", ")),
                )
            })
        })
        .collect()
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    policy: UrlPolicy,
    input: &NewSubscription<'_>,
) -> AppResult<(WebhookRow, Secret)> {
    actor.ensure_role(Role::Host)?;
    let events = event_types(input.events)?;
    let url = policy
        .check(input.url)
        .await
        .map_err(|refusal| AppError::bad_input("url", refusal.to_string()))?;
    if input.concert_id.is_none() && actor.role != Role::Admin {
        return Err(AppError::Forbidden(
            "only an admin may subscribe to every concert; name a concertId",
        ));
    }
    crate::in_doubt::write(conn, writes, async |conn| {
        if let Some(id) = input.concert_id {
            let concert = crate::concerts::store::concert(conn, id)
                .await?
                .ok_or(AppError::NotFound("concert"))?;
            actor.ensure_manages_concert(concert.host_id, &concert.status)?;
        }
        subscriptions::create(
            conn,
            &NewWebhook {
                owner_id: actor.id,
                concert_id: input.concert_id,
                url: url.as_str(),
                event_types: &events,
            },
        )
        .await?
        .ok_or_else(|| {
            AppError::rule(
                crate::error::ErrorCode::LimitExceeded,
                format!(
                    "an account may have at most {} webhooks",
                    subscriptions::MAX_WEBHOOKS_PER_OWNER
                ),
            )
        })
    })
    .await
}

pub async fn list(conn: &mut AsyncPgConnection, actor: Actor) -> AppResult<Vec<WebhookRow>> {
    actor.ensure_role(Role::Host)?;
    Ok(subscriptions::list(conn, owner(actor)).await?)
}

pub async fn get(conn: &mut AsyncPgConnection, actor: Actor, id: i64) -> AppResult<WebhookRow> {
    actor.ensure_role(Role::Host)?;
    subscriptions::get(conn, owner(actor), id)
        .await?
        .ok_or(AppError::NotFound("webhook"))
}

pub async fn delete(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    id: i64,
) -> AppResult<WebhookRow> {
    actor.ensure_role(Role::Host)?;
    crate::in_doubt::write(conn, writes, async |conn| {
        subscriptions::delete(conn, owner(actor), id)
            .await?
            .ok_or(AppError::NotFound("webhook"))
    })
    .await
}

pub async fn rotate_secret(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    id: i64,
) -> AppResult<(WebhookRow, Secret)> {
    actor.ensure_role(Role::Host)?;
    crate::in_doubt::write(conn, writes, async |conn| {
        subscriptions::rotate_secret(conn, owner(actor), id)
            .await?
            .ok_or(AppError::NotFound("webhook"))
    })
    .await
}

pub async fn deliveries(
    conn: &mut AsyncPgConnection,
    actor: Actor,
    webhook_id: i64,
    after: Option<i64>,
    limit: i64,
) -> AppResult<Vec<DeliveryRow>> {
    get(conn, actor, webhook_id).await?;
    Ok(subscriptions::deliveries(conn, webhook_id, after, limit).await?)
}

pub async fn redeliver(
    conn: &mut AsyncPgConnection,
    writes: crate::in_doubt::Writes<'_>,
    actor: Actor,
    event_id: &str,
) -> AppResult<Vec<DeliveryRow>> {
    actor.ensure_role(Role::Host)?;
    let event_id: uuid::Uuid = event_id
        .trim()
        .parse()
        .map_err(|_| AppError::bad_input("eventId", "is not an event id"))?;
    crate::in_doubt::write(conn, writes, async |conn| {
        let again = subscriptions::redeliver(conn, owner(actor), event_id).await?;
        if again.is_empty() {
            // Never sent to a webhook of the caller's: as good as unknown.
            return Err(AppError::NotFound("event"));
        }
        Ok(again)
    })
    .await
}
