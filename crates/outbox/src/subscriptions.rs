//! The webhooks hosts and admins subscribe, and what was delivered to them.
//!
//! Who may do what is decided by the caller (the API): these functions take an `Owner`
//! filter and never widen it. A webhook's secret is returned only when it is made or
//! rotated; reads never select it.

use boxoffice_webhooks::{EventType, Secret};
use chrono::{DateTime, Utc};
use diesel::{
    QueryResult, QueryableByName,
    sql_types::{Array, BigInt, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Whose webhooks a call may see: one user's, or everyone's (an admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    User(i64),
    Anyone,
}

impl Owner {
    /// The owner id to filter on; NULL matches every owner in the queries below.
    fn filter(self) -> Option<i64> {
        match self {
            Owner::User(id) => Some(id),
            Owner::Anyone => None,
        }
    }
}

#[derive(QueryableByName, Debug, Clone, PartialEq)]
pub struct WebhookRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub owner_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub concert_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Array<Text>)]
    pub event_types: Vec<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub disabled_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub disabled_reason: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

const WEBHOOK_COLUMNS: &str =
    "id, owner_id, concert_id, url, event_types, disabled_at, disabled_reason, created_at";

/// A new subscription, already authorized and validated by the caller (the URL through
/// `UrlPolicy::check`, the concert through the owner's rights).
pub struct NewWebhook<'a> {
    pub owner_id: i64,
    pub concert_id: Option<i64>,
    pub url: &'a str,
    pub event_types: &'a [EventType],
}

/// Most webhooks one account may have: each one is work for the relay on every event.
pub const MAX_WEBHOOKS_PER_OWNER: i64 = 20;

/// Creates the webhook with a fresh secret; `None` if the owner already has the most allowed.
pub async fn create(
    conn: &mut AsyncPgConnection,
    new: &NewWebhook<'_>,
) -> QueryResult<Option<(WebhookRow, Secret)>> {
    let secret = Secret::generate();
    let mut types: Vec<&str> = new.event_types.iter().map(|t| t.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    // The count and the insert in one statement: two concurrent creations can both pass the
    // count, a bounded overshoot the limit tolerates (it bounds work, it is not a quota).
    let rows: Vec<WebhookRow> = diesel::sql_query(format!(
        "INSERT INTO webhooks (owner_id, concert_id, url, event_types, secret)
         SELECT $1, $2, $3, $4, $5
         WHERE (SELECT count(*) FROM webhooks WHERE owner_id = $1) < $6
         RETURNING {WEBHOOK_COLUMNS}"
    ))
    .bind::<BigInt, _>(new.owner_id)
    .bind::<Nullable<BigInt>, _>(new.concert_id)
    .bind::<Text, _>(new.url)
    .bind::<Array<Text>, _>(types)
    .bind::<Text, _>(secret.expose())
    .bind::<BigInt, _>(MAX_WEBHOOKS_PER_OWNER)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map(|row| (row, secret)))
}

pub async fn list(conn: &mut AsyncPgConnection, owner: Owner) -> QueryResult<Vec<WebhookRow>> {
    diesel::sql_query(format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE $1::bigint IS NULL OR owner_id = $1 ORDER BY id"
    ))
    .bind::<Nullable<BigInt>, _>(owner.filter())
    .load(conn)
    .await
}

pub async fn get(conn: &mut AsyncPgConnection, owner: Owner, id: i64) -> QueryResult<Option<WebhookRow>> {
    let rows: Vec<WebhookRow> = diesel::sql_query(format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $2 AND ($1::bigint IS NULL OR owner_id = $1)"
    ))
    .bind::<Nullable<BigInt>, _>(owner.filter())
    .bind::<BigInt, _>(id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// Deletes the webhook with its deliveries; the row it was, if it was the owner's.
pub async fn delete(conn: &mut AsyncPgConnection, owner: Owner, id: i64) -> QueryResult<Option<WebhookRow>> {
    let rows: Vec<WebhookRow> = diesel::sql_query(format!(
        "DELETE FROM webhooks WHERE id = $2 AND ($1::bigint IS NULL OR owner_id = $1) RETURNING {WEBHOOK_COLUMNS}"
    ))
    .bind::<Nullable<BigInt>, _>(owner.filter())
    .bind::<BigInt, _>(id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

/// How long a rotated-out secret keeps signing beside the new one, so the receiver can be
/// switched over without losing a message.
pub const ROTATION_GRACE_HOURS: i32 = 24;

/// A new secret for the webhook; the old one signs too for `ROTATION_GRACE_HOURS`.
pub async fn rotate_secret(
    conn: &mut AsyncPgConnection,
    owner: Owner,
    id: i64,
) -> QueryResult<Option<(WebhookRow, Secret)>> {
    let secret = Secret::generate();
    let rows: Vec<WebhookRow> = diesel::sql_query(format!(
        "UPDATE webhooks SET previous_secret = secret, secret = $3,
                previous_secret_until = now() + make_interval(hours => $4)
         WHERE id = $2 AND ($1::bigint IS NULL OR owner_id = $1) RETURNING {WEBHOOK_COLUMNS}"
    ))
    .bind::<Nullable<BigInt>, _>(owner.filter())
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(secret.expose())
    .bind::<Int4, _>(ROTATION_GRACE_HOURS)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map(|row| (row, secret)))
}

/// One event's delivery to one webhook, as the delivery log shows it.
#[derive(QueryableByName, Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub webhook_id: i64,
    #[diesel(sql_type = SqlUuid)]
    pub event_id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub event_type: String,
    #[diesel(sql_type = Text)]
    pub subject: String,
    /// pending, delivered or failed.
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    pub next_attempt_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName, Debug, Clone, PartialEq)]
pub struct AttemptRow {
    #[diesel(sql_type = BigInt)]
    pub delivery_id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub attempted_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Int4>)]
    pub status_code: Option<i32>,
    #[diesel(sql_type = BigInt)]
    pub latency_ms: i64,
    /// delivered, failed or gone.
    #[diesel(sql_type = Text)]
    pub outcome: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
}

/// A webhook's deliveries, newest first, after the cursor id; `limit + 1` rows are read so
/// the caller can tell whether there is a next page.
pub async fn deliveries(
    conn: &mut AsyncPgConnection,
    webhook_id: i64,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    diesel::sql_query(
        "SELECT d.id, d.webhook_id, o.event_id, o.event_type, d.subject, d.status, d.attempts,
                d.next_attempt_at, d.created_at, d.finished_at
         FROM webhook_deliveries d JOIN outbox o ON o.id = d.outbox_id
         WHERE d.webhook_id = $1 AND ($2::bigint IS NULL OR d.id < $2)
         ORDER BY d.id DESC LIMIT $3",
    )
    .bind::<BigInt, _>(webhook_id)
    .bind::<Nullable<BigInt>, _>(after)
    .bind::<BigInt, _>(limit + 1)
    .load(conn)
    .await
}

/// The attempts of the given deliveries, oldest first (one query for a page of deliveries).
pub async fn attempts(conn: &mut AsyncPgConnection, delivery_ids: &[i64]) -> QueryResult<Vec<AttemptRow>> {
    diesel::sql_query(
        "SELECT delivery_id, attempted_at, status_code, latency_ms, outcome, error
         FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, id",
    )
    .bind::<Array<BigInt>, _>(delivery_ids)
    .load(conn)
    .await
}

/// Sends an event again to the caller's webhooks that received it (or were to), whatever
/// became of the earlier delivery: it is due at once, and a webhook that had been disabled
/// is enabled again (asking for a redelivery says the receiver is back). The retry schedule
/// still counts from the event, so an old event gets one attempt, not a new day of retries.
pub async fn redeliver(
    conn: &mut AsyncPgConnection,
    owner: Owner,
    event_id: uuid::Uuid,
) -> QueryResult<Vec<DeliveryRow>> {
    let rows: Vec<DeliveryRow> = diesel::sql_query(
        "WITH again AS (
           UPDATE webhook_deliveries d
           SET status = 'pending', next_attempt_at = now(), claimed_until = NULL, finished_at = NULL
           FROM outbox o, webhooks w
           WHERE o.event_id = $2 AND d.outbox_id = o.id AND w.id = d.webhook_id
             AND ($1::bigint IS NULL OR w.owner_id = $1)
           RETURNING d.*, o.event_id, o.event_type
         ), enabled AS (
           UPDATE webhooks SET disabled_at = NULL, disabled_reason = NULL
           WHERE id IN (SELECT webhook_id FROM again) AND disabled_at IS NOT NULL
         )
         SELECT id, webhook_id, event_id, event_type, subject, status, attempts, next_attempt_at,
                created_at, finished_at
         FROM again ORDER BY id",
    )
    .bind::<Nullable<BigInt>, _>(owner.filter())
    .bind::<SqlUuid, _>(event_id)
    .load(conn)
    .await?;
    Ok(rows)
}
