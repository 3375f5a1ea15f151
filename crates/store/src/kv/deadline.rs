//! Writes that Redis itself refuses once their caller has stopped waiting (I9 through a
//! partition, issue 26).
//!
//! A network that holds bytes and delivers them when it heals turns "no reply within the
//! timeout" into "applied seconds later": a caller told UNAVAILABLE would see its order run
//! after all. So a write whose answer must mean what it says carries a deadline (this
//! instance's clock, unix ms), and its script compares it with Redis's own `TIME` and
//! writes nothing past it (an error reply `LATE`). The instance never answers "not done"
//! before its deadline plus `REDIS_CLOCK_SKEW_MS` (how far Redis's clock may lag behind
//! the instance's) has passed, so any copy of the write still on its way is refused.
//!
//! A reply lost after the write was applied (the residual case) is settled on a fresh
//! connection before answering: each write names how (for an order: the job exists, or a
//! void job hash is written that the enqueue script refuses to write over, so the answer
//! and what Redis does agree whichever of the two arrives first). If the fresh connection
//! cannot settle it either, the answer is UNAVAILABLE after the deadline and the margin, and
//! only a write applied in time whose reply and settling both failed stays a lie
//! (docs/operations.md, Durability).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The error code of a script refusing a write past its deadline (or settled as not done).
pub const LATE: &str = "LATE";

/// How long a write's reply is waited for: the connection's own response timeout.
pub(super) const WRITE_WAIT: Duration = super::RESPONSE_TIMEOUT;
/// How long settling a lost reply may take (connecting and its one script).
/// Short: a partitioned caller waits for it on top of the reply wait (a connection and one
/// script take a few milliseconds where Redis is reachable).
pub(super) const SETTLE_WAIT: Duration = Duration::from_millis(400);
/// Settlings under way at once per instance: during a partition every write's reply is
/// lost, and each settling opens a connection; beyond these, callers only wait out their
/// deadline.
pub(super) const SETTLINGS: usize = 4;

/// The instant past which Redis must refuse a write.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    unix_ms: i64,
    at: Instant,
}

impl Deadline {
    pub(super) fn after(wait: Duration) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            unix_ms: i64::try_from((now + wait).as_millis()).unwrap_or(i64::MAX),
            at: Instant::now() + wait,
        }
    }

    /// The script's argument: unix milliseconds of this instance's clock.
    pub fn unix_ms(&self) -> i64 {
        self.unix_ms
    }

    pub(super) fn at(&self) -> Instant {
        self.at
    }
}

/// Whether a script refused its write as late (nothing was written).
pub fn is_late(e: &redis::RedisError) -> bool {
    e.code() == Some(LATE)
}

/// Whether a failed command may still have been applied, or be later: no reply came from
/// Redis (a timeout, a dropped connection), and it was not a connection that was never made.
pub(super) fn outcome_unknown(e: &redis::RedisError) -> bool {
    e.code().is_none() && !e.is_connection_refusal()
}

/// A refusal that came back before the deadline: Redis's clock is ahead of this instance's
/// by more than the time left, and every such write will be refused while it stays so.
pub(super) fn note_refusal(deadline: &Deadline) {
    let early = deadline.at.saturating_duration_since(Instant::now());
    if !early.is_zero() {
        tracing::warn!(
            redis.clock_ahead_ms_at_least = early.as_millis() as u64,
            "Redis refused a write as late before its deadline: Redis's clock is ahead of this instance's"
        );
    }
}

/// The answer for a write settled as not applied.
pub(super) fn not_applied(cause: &redis::RedisError) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "no reply to the write; settled on a fresh connection: not applied",
        cause.to_string(),
    ))
}

/// The answer for a write whose reply never came and that could not be settled: waited
/// out until no copy of it can be applied any more.
pub(super) fn unanswered(cause: redis::RedisError) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "no reply to the write; past its deadline, Redis refuses it",
        cause.to_string(),
    ))
}
