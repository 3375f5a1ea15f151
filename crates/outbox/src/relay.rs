//! The relay: takes committed events from the outbox and sends them on, at least once.
//!
//! Every instance runs the loop; only the holder of the `outbox` lease (see `lease`) works,
//! so one relay runs per deployment and another takes over within a lease time when its
//! instance dies. Each round it:
//! 1. fans out: the oldest events not yet relayed (`FOR UPDATE SKIP LOCKED`, in id order)
//!    are published to the event stream (Redis `events`), a delivery is queued for every
//!    webhook that wants each one (its owner still owning the concert), and the events are
//!    marked relayed, all in one transaction;
//! 2. claims due deliveries (`SKIP LOCKED` again, and a claim time written on each, so even a
//!    relay that wakes from a freeze after losing the lease cannot send what another relay
//!    has claimed), never one whose webhook still has an earlier event of the same subject
//!    pending: the events of one reservation arrive in order;
//! 3. sends the claimed deliveries concurrently (at most `concurrency` in flight), each
//!    recorded when it ends: delivered, retried later on the `RetrySchedule`, or given up,
//!    which disables the webhook with the reason (the owner sees it in `webhooks`, and is
//!    told by a `webhook.disabled` notice);
//! 4. now and then prunes events relayed more than the retention ago whose deliveries are
//!    done, with their delivery log.
//!
//! It never touches the booking path: its own small pool, its own HTTP client with bounded
//! timeouts, and a bounded number of deliveries in flight, so a receiver that hangs or fails
//! costs a sale nothing.

use std::{sync::Arc, time::Duration};

use boxoffice_webhooks::{CloudEvent, DeliveryClient, EventType, Outcome, RetrySchedule, Secret, Signed};
use chrono::{DateTime, Utc};
use diesel::{
    QueryResult, QueryableByName,
    sql_types::{BigInt, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl, pooled_connection::bb8};
use futures_util::future::BoxFuture;
use tokio::{sync::watch, task::JoinSet, time::Instant};

use crate::lease;

mod fan_out;
pub use fan_out::fan_out;

pub type Pool = bb8::Pool<AsyncPgConnection>;

/// The name of the relay's lease.
pub const LEASE: &str = "outbox";

/// Where relayed events go besides webhooks: the deployment's Redis stream `events`.
pub trait EventStream: Send + Sync {
    /// Appends the events in order. An error leaves them unrelayed, to be published again
    /// (consumers drop duplicates by `id`).
    fn publish<'a>(&'a self, events: &'a [CloudEvent]) -> BoxFuture<'a, anyhow::Result<()>>;
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// This instance's name in the lease (unique per process).
    pub instance: String,
    /// CloudEvents `source` of every event.
    pub source: String,
    /// How long the lease lasts unrenewed: how soon another instance takes over from a dead one.
    pub lease: Duration,
    /// Wait between rounds that found nothing to do.
    pub poll: Duration,
    /// Events fanned out per round.
    pub fan_out_batch: i64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How long a claimed delivery is the claimer's: longer than one attempt can take.
    pub claim: Duration,
    /// Events are kept this long after they were relayed (and their deliveries are done).
    pub retention: Duration,
    pub schedule: RetrySchedule,
}

impl RelayConfig {
    pub fn new(instance: String, source: String) -> RelayConfig {
        RelayConfig {
            instance,
            source,
            lease: Duration::from_secs(10),
            poll: Duration::from_millis(250),
            fan_out_batch: 500,
            concurrency: 16,
            claim: Duration::from_secs(30),
            retention: Duration::from_secs(7 * 24 * 3600),
            schedule: RetrySchedule::default(),
        }
    }
}

/// How often pruning runs (it deletes in bounded chunks).
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const PRUNE_CHUNK: i64 = 5000;

pub struct Relay {
    pool: Pool,
    stream: Option<Arc<dyn EventStream>>,
    client: DeliveryClient,
    config: RelayConfig,
}

impl Relay {
    pub fn new(
        pool: Pool,
        stream: Option<Arc<dyn EventStream>>,
        client: DeliveryClient,
        config: RelayConfig,
    ) -> Arc<Relay> {
        Arc::new(Relay {
            pool,
            stream,
            client,
            config,
        })
    }

    pub fn spawn(self: Arc<Self>, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    /// The loop, until `stop` turns true; then the deliveries in flight finish (each is
    /// bounded by the client's timeout) and the lease is given back.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut in_flight: JoinSet<()> = JoinSet::new();
        let mut last_prune: Option<Instant> = None;
        while !*stop.borrow() {
            while in_flight.try_join_next().is_some() {}
            let worked = match self.round(&mut in_flight, &mut last_prune).await {
                Ok(worked) => worked,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay round failed; retrying");
                    0
                }
            };
            // A round that did not fill its fan-out batch waits (for the poll, a delivery's
            // end, or the stop) before the next: during a sale the events then go out a
            // batch at a time, not in back-to-back rounds of a few, each with its own lease
            // renewal, statements and commit on the cores the sale needs.
            if worked < self.config.fan_out_batch as usize {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.poll) => {}
                    _ = stop.wait_for(|s| *s) => {}
                    Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                }
            }
        }
        while in_flight.join_next().await.is_some() {}
        if let Ok(mut conn) = self.pool.get().await
            && let Err(e) = lease::release(&mut conn, LEASE, &self.config.instance).await
        {
            tracing::warn!(error = %e, "could not give the outbox lease back; it runs out by itself");
        }
    }

    /// One round; how much it did (events fanned out and deliveries started).
    async fn round(
        self: &Arc<Self>,
        in_flight: &mut JoinSet<()>,
        last_prune: &mut Option<Instant>,
    ) -> anyhow::Result<usize> {
        let mut conn = self.pool.get().await?;
        if !lease::acquire(&mut conn, LEASE, &self.config.instance, self.config.lease).await? {
            return Ok(0);
        }
        let fanned = fan_out(
            &mut conn,
            self.stream.as_deref(),
            &self.config.source,
            self.config.fan_out_batch,
        )
        .await?;
        let free = self.config.concurrency.saturating_sub(in_flight.len());
        let claimed = if free > 0 {
            claim(&mut conn, free as i64, self.config.claim).await?
        } else {
            Vec::new()
        };
        let started = claimed.len();
        for delivery in claimed {
            let relay = Arc::clone(self);
            in_flight.spawn(async move { relay.deliver(delivery).await });
        }
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            *last_prune = Some(Instant::now());
            let pruned = prune(&mut conn, self.config.retention).await?;
            if pruned > 0 {
                tracing::info!(events = pruned, "pruned relayed events past their retention");
            }
        }
        Ok(fanned + started)
    }

    async fn deliver(&self, d: Claimed) {
        let attempt = match d.message(&self.config.source) {
            Ok((signed, body)) => self.client.deliver(&d.url, &signed, body).await,
            Err(e) => boxoffice_webhooks::Attempt {
                outcome: Outcome::Failed(format!("could not sign: {e}")),
                status: None,
                latency: Duration::ZERO,
            },
        };
        let result = async {
            let mut conn = self.pool.get().await?;
            record(&mut conn, &d, &attempt, &self.config.schedule).await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            // The claim runs out and the delivery is tried again: at least once.
            tracing::warn!(error = %e, webhook.id = d.webhook_id, "could not record a webhook attempt");
        }
    }
}

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = SqlUuid)]
    event_id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    concert_id: Option<i64>,
    #[diesel(sql_type = Jsonb)]
    data: serde_json::Value,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

impl EventRow {
    fn is_carrier(&self) -> bool {
        self.subject == crate::append::BATCH_SUBJECT
    }

    /// The ids of the reservations a carrier carries, in its order.
    fn carried_ids(&self) -> anyhow::Result<Vec<i64>> {
        self.data
            .get(crate::append::CARRIED_IDS)
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| anyhow::anyhow!("carrier {} names no reservations", self.id))?
            .iter()
            .map(|id| {
                id.as_i64()
                    .ok_or_else(|| anyhow::anyhow!("carrier {} names a reservation by {id}", self.id))
            })
            .collect()
    }

    /// A carrier's events, in the order it carries them: each its reservation's event, with
    /// the carrier's type, concert and time and an id of its own (`append::carried_event_id`),
    /// its data taken from `held` (see `fan_out::held`).
    fn carried(
        &self,
        held: &std::collections::HashMap<i64, serde_json::Value>,
    ) -> anyhow::Result<Vec<EventRow>> {
        (0_u32..)
            .zip(self.carried_ids()?)
            .map(|(n, reservation)| {
                let data = held.get(&reservation).ok_or_else(|| {
                    anyhow::anyhow!(
                        "carrier {} names reservation {reservation}, which does not exist",
                        self.id
                    )
                })?;
                Ok(EventRow {
                    id: self.id,
                    event_id: crate::append::carried_event_id(self.event_id, n),
                    event_type: self.event_type.clone(),
                    subject: crate::append::reservation_subject(reservation),
                    concert_id: self.concert_id,
                    data: data.clone(),
                    created_at: self.created_at,
                })
            })
            .collect()
    }

    fn cloud_event(&self, source: &str) -> anyhow::Result<CloudEvent> {
        Ok(CloudEvent::new(
            self.event_id.to_string(),
            source,
            EventType::parse(&self.event_type)?,
            self.created_at,
            self.subject.clone(),
            self.data.clone(),
        ))
    }
}

/// A delivery this relay claimed, with what sending it needs (no `Debug`: it holds the
/// webhook's secrets).
#[derive(QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = BigInt)]
    pub delivery_id: i64,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    /// The claim's token: recording the outcome only counts if the claim is still this one.
    #[diesel(sql_type = Timestamptz)]
    pub claimed_until: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub webhook_id: i64,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Text)]
    secret: String,
    #[diesel(sql_type = Nullable<Text>)]
    previous_secret: Option<String>,
    #[diesel(embed)]
    event: EventRow,
}

impl std::fmt::Debug for EventRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRow")
            .field("id", &self.id)
            .field("event_id", &self.event_id)
            .finish()
    }
}

impl Claimed {
    pub fn event_id(&self) -> uuid::Uuid {
        self.event.event_id
    }

    /// The signed message: the event's bytes and the headers, signed with the current
    /// secret and, during a rotation's grace period, the previous one too.
    fn message(&self, source: &str) -> anyhow::Result<(Signed, Vec<u8>)> {
        let body = self.event.cloud_event(source)?.to_body();
        let mut secrets = vec![Secret::parse(&self.secret)?];
        if let Some(previous) = &self.previous_secret {
            secrets.push(Secret::parse(previous)?);
        }
        let signed = Signed::new(
            &secrets,
            &self.event.event_id.to_string(),
            Utc::now().timestamp(),
            &body,
        )?;
        Ok((signed, body))
    }
}

/// Claims up to `limit` due deliveries for `ttl`.
pub async fn claim(conn: &mut AsyncPgConnection, limit: i64, ttl: Duration) -> QueryResult<Vec<Claimed>> {
    diesel::sql_query(
        "WITH due AS (
           SELECT d.id FROM webhook_deliveries d
           JOIN webhooks w ON w.id = d.webhook_id
           WHERE d.status = 'pending' AND w.disabled_at IS NULL AND d.next_attempt_at <= now()
             AND (d.claimed_until IS NULL OR d.claimed_until < now())
             AND NOT EXISTS (
               SELECT 1 FROM webhook_deliveries e
               WHERE e.webhook_id = d.webhook_id AND e.subject = d.subject
                 AND e.status = 'pending' AND e.id < d.id)
           ORDER BY d.next_attempt_at, d.id
           LIMIT $1
           FOR UPDATE OF d SKIP LOCKED
         )
         UPDATE webhook_deliveries d
         SET claimed_until = now() + $2 * interval '1 millisecond', attempts = d.attempts + 1
         FROM due, webhooks w, outbox o
         WHERE d.id = due.id AND w.id = d.webhook_id AND o.id = d.outbox_id
         RETURNING d.id AS delivery_id, d.attempts, d.claimed_until, w.id AS webhook_id, w.url, w.secret,
                   CASE WHEN w.previous_secret_until > now() THEN w.previous_secret END AS previous_secret,
                   o.id, o.event_id, o.event_type, o.subject, o.concert_id, o.data, o.created_at",
    )
    .bind::<BigInt, _>(limit)
    .bind::<BigInt, _>(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
    .load(conn)
    .await
}

/// Records an attempt's end: the attempt in the log always; the delivery's state only if
/// the claim is still this relay's (else another relay owns the delivery now).
pub async fn record(
    conn: &mut AsyncPgConnection,
    d: &Claimed,
    attempt: &boxoffice_webhooks::Attempt,
    schedule: &RetrySchedule,
) -> QueryResult<()> {
    let failed = u32::try_from(d.attempts).unwrap_or(u32::MAX);
    let (status, next, outcome, error, disable): (
        &str,
        Option<DateTime<Utc>>,
        &str,
        Option<String>,
        Option<String>,
    ) = match &attempt.outcome {
        Outcome::Delivered => ("delivered", None, "delivered", None, None),
        Outcome::Gone => (
            "failed",
            None,
            "gone",
            None,
            Some("the receiver answered 410 Gone: it wants no more events".to_owned()),
        ),
        Outcome::Failed(why) => match schedule.next_attempt_now(d.event.created_at, failed) {
            Some(at) => ("pending", Some(at), "failed", Some(why.clone()), None),
            None => (
                "failed",
                None,
                "failed",
                Some(why.clone()),
                Some(format!(
                    "deliveries failed for {} attempts over a day; the last: {why}",
                    d.attempts
                )),
            ),
        },
    };
    conn.transaction(async |conn| {
        diesel::sql_query(
            "INSERT INTO webhook_attempts (delivery_id, status_code, latency_ms, outcome, error)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind::<BigInt, _>(d.delivery_id)
        .bind::<Nullable<Int4>, _>(attempt.status.map(i32::from))
        .bind::<BigInt, _>(attempt.latency_ms())
        .bind::<Text, _>(outcome)
        .bind::<Nullable<Text>, _>(error.as_deref())
        .execute(conn)
        .await?;
        let still_ours = diesel::sql_query(
            "UPDATE webhook_deliveries
             SET status = $3, next_attempt_at = coalesce($4, next_attempt_at), claimed_until = NULL,
                 finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END
             WHERE id = $1 AND claimed_until = $2",
        )
        .bind::<BigInt, _>(d.delivery_id)
        .bind::<Timestamptz, _>(d.claimed_until)
        .bind::<Text, _>(status)
        .bind::<Nullable<Timestamptz>, _>(next)
        .execute(conn)
        .await?
            == 1;
        if let (true, Some(reason)) = (still_ours, disable.as_deref()) {
            tracing::warn!(webhook.id = d.webhook_id, reason = %reason, "webhook disabled");
            disable_webhook(conn, d.webhook_id, reason).await?;
        }
        Ok(())
    })
    .await
}

/// Disables a webhook: nothing more is sent to it, and what was waiting is given up (a
/// redelivery asked for later enables it again). Its owner is told with a notice
/// (`webhook.disabled`, the store's `notices`) in the same statement, once: a webhook that
/// was already disabled is left as it is and nobody is told twice.
pub async fn disable_webhook(conn: &mut AsyncPgConnection, webhook_id: i64, reason: &str) -> QueryResult<()> {
    diesel::sql_query(
        "WITH off AS (
           UPDATE webhooks SET disabled_at = now(), disabled_reason = $2
           WHERE id = $1 AND disabled_at IS NULL RETURNING id, owner_id, url
         ), told AS (
           INSERT INTO notices (user_id, kind, subject, message)
           SELECT owner_id, 'webhook.disabled', 'webhooks/' || id,
                  left('Your webhook to ' || url || ' was disabled: ' || $2
                       || '. Nothing more is sent to it; redeliverEvent sends an event again and enables it.', 2000)
           FROM off
         )
         UPDATE webhook_deliveries SET status = 'failed', finished_at = now(), claimed_until = NULL
         WHERE webhook_id IN (SELECT id FROM off) AND status = 'pending'",
    )
    .bind::<BigInt, _>(webhook_id)
    .bind::<Text, _>(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes events relayed more than `retention` ago whose deliveries are all done (their
/// deliveries and attempts go with them); how many.
pub async fn prune(conn: &mut AsyncPgConnection, retention: Duration) -> QueryResult<usize> {
    let seconds = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
    let mut total = 0;
    loop {
        let deleted = diesel::sql_query(
            "DELETE FROM outbox WHERE id IN (
               SELECT o.id FROM outbox o
               WHERE o.relayed_at < now() - $1 * interval '1 second'
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.outbox_id = o.id AND d.status = 'pending')
               ORDER BY o.id LIMIT $2)",
        )
        .bind::<BigInt, _>(seconds)
        .bind::<BigInt, _>(PRUNE_CHUNK)
        .execute(conn)
        .await?;
        total += deleted;
        if deleted < PRUNE_CHUNK as usize {
            return Ok(total);
        }
    }
}
