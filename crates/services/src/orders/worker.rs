//! Order consumers and the reclaimer of orders whose worker died.

use std::time::Duration;

use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use tokio::sync::watch;

use super::jobs::{self, GROUP, Job, JobStatus, Order};
use crate::{
    booking,
    error::{AppError, AppResult},
    state::Services,
};

/// Entries read per call: they go to the booking batcher together.
const READ_COUNT: usize = 128;
const BLOCK_MS: usize = 1000;
/// Retries of an order hit by a transient failure before it is left for the reclaimer
/// (backoff 0.2, 0.4, 0.8, 1.6 s).
const TRANSIENT_RETRIES: usize = 4;

pub fn spawn(state: Services, stop: watch::Receiver<bool>) {
    if state.redis.is_none() {
        return;
    }
    let consumer = format!("c-{}", uuid::Uuid::new_v4());
    for _ in 0..state.config.order_workers {
        tokio::spawn(consume(state.clone(), consumer.clone(), stop.clone()));
    }
    if state.config.order_workers > 0 {
        tokio::spawn(reclaim(state, consumer, stop));
    }
}

async fn consume(state: Services, consumer: String, mut stop: watch::Receiver<bool>) {
    let Ok(kv) = state.kv().cloned() else { return };
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        // A connection of its own: XREADGROUP blocks, and would stall the shared one.
        // Its response timeout must outlast BLOCK.
        let conn = kv.dedicated(Duration::from_secs(5)).await;
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "order worker: Redis unavailable");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(e) = jobs::ensure_group(&kv).await {
            tracing::warn!(error = %e, "order worker: creating the consumer group failed");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        let mut read_cmd = redis::cmd("XREADGROUP");
        read_cmd
            .arg("GROUP")
            .arg(GROUP)
            .arg(&consumer)
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(jobs::stream_key(&kv))
            .arg(">");
        loop {
            let read = tokio::select! {
                r = read_cmd.query_async::<Option<StreamReadReply>>(&mut conn) => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            match read {
                Ok(Some(reply)) => {
                    let entries: Vec<StreamId> = reply.keys.into_iter().flat_map(|k| k.ids).collect();
                    futures_util::future::join_all(entries.iter().map(|e| handle(&state, e))).await;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "order worker: reading the stream failed; reconnecting");
                    break;
                }
            }
        }
    }
}

/// Claims entries another worker took but has not acknowledged for `ORDER_CLAIM_IDLE_MS`.
async fn reclaim(state: Services, consumer: String, mut stop: watch::Receiver<bool>) {
    let Ok(kv) = state.kv().cloned() else { return };
    let idle_ms = state.config.order_claim_idle.as_millis() as u64;
    let every = (state.config.order_claim_idle / 2).max(Duration::from_millis(100));
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(every) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopping {
            leave_group(&kv, &consumer).await;
            return;
        }
        // A live consumer blocks in XREADGROUP for BLOCK_MS at a time: never call it dead
        // within ten of those.
        let dead_ms = idle_ms
            .saturating_mul(DEAD_AFTER_CLAIM_IDLES)
            .max(10 * BLOCK_MS as u64);
        prune_dead_consumers(&kv, &consumer, dead_ms).await;
        let claimed: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
            .arg(jobs::stream_key(&kv))
            .arg(GROUP)
            .arg(&consumer)
            .arg(idle_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(READ_COUNT)
            .query_async(&mut kv.conn())
            .await;
        match claimed {
            Ok(reply) if !reply.claimed.is_empty() => {
                tracing::info!(
                    orders.claimed = reply.claimed.len(),
                    "reclaimed orders of a silent worker"
                );
                metrics::counter!("orders_reclaimed_total").increment(reply.claimed.len() as u64);
                futures_util::future::join_all(reply.claimed.iter().map(|e| handle(&state, e))).await;
            }
            Ok(_) => {}
            Err(e) if e.code() == Some("NOGROUP") => {
                let _ = jobs::ensure_group(&kv).await;
            }
            Err(e) => tracing::warn!(error = %e, "order reclaim failed"),
        }
    }
}

/// A consumer silent for this many claim timeouts, with nothing pending, is dead.
const DEAD_AFTER_CLAIM_IDLES: u64 = 10;

/// Consumers of the group and what each has pending.
async fn consumers(kv: &crate::kv::Kv) -> redis::RedisResult<Vec<redis::streams::StreamInfoConsumer>> {
    let reply: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(jobs::stream_key(kv))
        .arg(GROUP)
        .query_async(&mut kv.conn())
        .await?;
    Ok(reply.consumers)
}

async fn delete_consumer(kv: &crate::kv::Kv, name: &str) -> redis::RedisResult<()> {
    redis::cmd("XGROUP")
        .arg("DELCONSUMER")
        .arg(jobs::stream_key(kv))
        .arg(GROUP)
        .arg(name)
        .query_async(&mut kv.conn())
        .await
}

/// On shutdown: this instance's consumer leaves the group, unless it still has entries
/// pending (deleting it would drop them from the pending list; they are reclaimed instead).
async fn leave_group(kv: &crate::kv::Kv, me: &str) {
    match consumers(kv).await {
        Ok(list) if list.iter().any(|c| c.name == me && c.pending == 0) => {
            if let Err(e) = delete_consumer(kv, me).await {
                tracing::warn!(error = %e, "order worker: leaving the consumer group failed");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "order worker: reading the consumer group failed"),
    }
}

/// Removes consumers of dead instances: nothing pending and silent for `dead_ms`.
async fn prune_dead_consumers(kv: &crate::kv::Kv, me: &str, dead_ms: u64) {
    let Ok(list) = consumers(kv).await else { return };
    for c in list {
        if c.name != me && c.pending == 0 && c.idle as u64 >= dead_ms {
            match delete_consumer(kv, &c.name).await {
                Ok(()) => tracing::info!(consumer = %c.name, "removed a dead order consumer"),
                Err(e) => tracing::warn!(error = %e, "removing a dead order consumer failed"),
            }
        }
    }
}

async fn handle(state: &Services, entry: &StreamId) {
    let Ok(kv) = state.kv() else { return };
    let Some(order) = entry
        .get::<String>("order")
        .and_then(|raw| serde_json::from_str::<Order>(&raw).ok())
    else {
        tracing::error!(entry.id = %entry.id, "unreadable order entry; acknowledged and dropped");
        let _ = jobs::ack(kv, &entry.id).await;
        return;
    };
    match process(state, &order).await {
        Ok(()) => {
            if let Err(e) = jobs::ack(kv, &entry.id).await {
                // Left pending: reclaimed later and answered from the stored outcome.
                tracing::warn!(order.job = %order.job_id, error = %e, "acknowledging an order failed");
            }
        }
        // Left pending on purpose: another attempt after the claim timeout.
        Err(e) => tracing::warn!(order.job = %order.job_id, error = %e, "order not settled; will be retried"),
    }
}

/// Applies an order once: a job already decided is only announced again.
pub async fn process(state: &Services, order: &Order) -> AppResult<()> {
    let kv = state.kv()?;
    if let Some(job) = jobs::job(kv, &order.job_id).await?
        && job.status.is_final()
    {
        announce(state, &job);
        return Ok(());
    }
    let ttl = state.config.order_result_ttl.as_secs();
    if !jobs::set_processing(kv, order, ttl).await? {
        // Withdrawn before any worker took it (it did not reach a replica): its client was
        // told UNAVAILABLE, so it must not run.
        if let Some(job) = jobs::job(kv, &order.job_id).await? {
            announce(state, &job);
        }
        return Ok(());
    }
    let request = order.hold_request();
    // A transient failure (database blip, lock timeout) is retried here with backoff; if it
    // lasts, the entry stays pending and another attempt comes after the claim timeout. A
    // job is never FAILED by a transient error.
    let mut backoff = Duration::from_millis(200);
    let mut outcome = booking::hold_order(state, order.schedule_id, request.clone()).await;
    for _ in 0..TRANSIENT_RETRIES {
        if !matches!(outcome, Err(AppError::Unavailable(_))) {
            break;
        }
        metrics::counter!("orders_transient_retries_total").increment(1);
        tokio::time::sleep(backoff).await;
        backoff *= 2;
        outcome = booking::hold_order(state, order.schedule_id, request.clone()).await;
    }
    let job = match outcome {
        Ok(r) => Job {
            job_id: order.job_id.clone(),
            user_id: order.user_id,
            status: JobStatus::Done,
            reservation_id: Some(r.id),
            error_code: None,
            error_message: None,
        },
        // Transient: nothing was written; leave the order for another attempt.
        Err(e @ AppError::Unavailable(_)) => return Err(e),
        Err(e) => Job {
            job_id: order.job_id.clone(),
            user_id: order.user_id,
            status: JobStatus::Failed,
            reservation_id: None,
            error_code: Some(e.code()),
            error_message: Some(match &e {
                AppError::Internal(_) => "internal error".to_owned(),
                other => other.to_string(),
            }),
        },
    };
    jobs::finish(kv, &job, ttl).await?;
    announce(state, &job);
    metrics::counter!("orders_settled_total", "status" => if job.status == JobStatus::Done { "done" } else { "failed" })
        .increment(1);
    Ok(())
}

fn announce(state: &Services, job: &Job) {
    match serde_json::to_string(job) {
        Ok(payload) => state.live.hub.publish(&jobs::topic(&job.job_id), payload),
        Err(e) => tracing::error!(error = %e, "serializing an order outcome"),
    }
}
