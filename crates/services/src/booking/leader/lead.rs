//! The leading instance's side: renewing the lease and serving the inbox into its own
//! batcher.

use super::{wire::*, *};

/// The leader's loop for one schedule: renews the lease and feeds the inbox into this
/// instance's batcher, until the lease is lost, the schedule goes quiet or shutdown.
pub(super) async fn lead(state: Holds, schedule_id: i64, schedule: Arc<Schedule>, alive: Arc<AtomicBool>) {
    let l = &state.leadership;
    let release = lead_loop(&state, schedule_id, &schedule).await;
    alive.store(false, Ordering::Release);
    l.stats.lost.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("booking_leadership_changes_total", "change" => "lost").increment(1);
    tracing::info!(
        schedule.id = schedule_id,
        "no longer leading this schedule's bookings"
    );
    if release && let Some(kv) = state.redis.as_ref() {
        let released = bounded(
            Script::new(RELEASE)
                .key(lease_key(kv, schedule_id))
                .arg(&l.instance)
                .invoke_async::<i64>(&mut kv.conn()),
        )
        .await;
        if let Err(e) = released {
            tracing::warn!(schedule.id = schedule_id, error = %e, "could not release the booking lease; it expires");
        }
    }
}

/// Returns whether to release the lease (false: lost already, or a simulated crash).
async fn lead_loop(state: &Holds, schedule_id: i64, schedule: &Schedule) -> bool {
    let l = &state.leadership;
    let Some(kv) = state.redis.as_ref() else {
        return false;
    };
    let inbox = inbox_key(kv, schedule_id);
    let Ok(mut conn) = blocking_conn(kv).await else {
        return true;
    };
    let mut renewed = Instant::now();
    loop {
        if l.crashed.load(Ordering::Acquire) {
            return false;
        }
        if l.stopped.load(Ordering::Acquire) {
            return true;
        }
        let idle = schedule
            .rate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .idle_for(Instant::now());
        if idle > LEAD_IDLE {
            return true;
        }
        if renewed.elapsed() >= RENEW {
            match acquire(kv, schedule_id, &l.instance).await {
                Ok(h) if h == l.instance => renewed = Instant::now(),
                Ok(_) => return false,
                // Cannot renew: followers cannot reach Redis either, or will see the lease
                // expire; stop taking forwarded requests.
                Err(_) if renewed.elapsed() < LEASE / 2 => {}
                Err(_) => return true,
            }
        }
        let popped = match pop_all(&mut conn, &inbox, INBOX_BLOCK_S).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(schedule.id = schedule_id, error = %e, "booking inbox unreadable; leaving the lead");
                return true;
            }
        };
        if !popped.is_empty() {
            // Forwarded requests keep the leader busy as its own do.
            schedule
                .rate
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .last_hit = Some(Instant::now());
        }
        for raw in popped {
            match serde_json::from_str::<Envelope>(&raw) {
                Ok(envelope) => {
                    tokio::spawn(serve(state.clone(), schedule_id, envelope));
                }
                Err(e) => {
                    tracing::error!(schedule.id = schedule_id, error = %e, "booking inbox: unreadable request dropped")
                }
            }
        }
    }
}

/// Runs a forwarded request in this instance's batch and sends its outcome back.
async fn serve(state: Holds, schedule_id: i64, envelope: Envelope) {
    let l = &state.leadership;
    let result = batcher::submit(&state.batcher, schedule_id, envelope.request, Wait::Patient).await;
    l.stats.served.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("booking_forward_served_total").increment(1);
    if l.crashed.load(Ordering::Acquire) || l.losing_replies.load(Ordering::Acquire) {
        return;
    }
    let Some(kv) = state.redis.as_ref() else { return };
    let reply = Reply {
        id: envelope.id,
        outcome: result.into(),
    };
    let Ok(raw) = serde_json::to_string(&reply) else {
        return;
    };
    let sent = bounded(
        redis::pipe()
            .rpush(&envelope.reply_to, raw)
            .ignore()
            .expire(&envelope.reply_to, REPLY_TTL_S)
            .ignore()
            .query_async::<()>(&mut kv.conn()),
    )
    .await;
    if let Err(e) = sent {
        // The follower sees no answer, asks again with the key (when the lease moves, or
        // when the outcome is overdue), and gets the replay.
        tracing::warn!(schedule.id = schedule_id, error = %e, "could not send a forwarded booking's outcome");
    }
}
