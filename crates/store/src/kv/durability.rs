//! Whether Redis keeps what it acknowledges, watched while the server runs (issue 26).
//!
//! At start the server refuses, in prod, a Redis without an append-only file (unless
//! `REDIS_ACCEPT_VOLATILE`). An AOF switched off later (`CONFIG SET appendonly no`, a
//! config management run, a managed Redis's plan change) went unnoticed. Now the server
//! looks every `REDIS_CHECK_INTERVAL_SECONDS` (and at every `/readyz`), and while the AOF
//! is off where it is required, the writes whose answer promises durability (`placeOrder`,
//! `enterQueue`: [`super::Kv::write_replicated`]) are refused with UNAVAILABLE. The instance
//! stays ready: every instance shares the one Redis, so "not ready" would take the whole
//! site out of its load balancer, holds and payments (PostgreSQL) included, for what only
//! the Redis-kept promises need.

use std::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

#[derive(Default)]
pub(super) struct Durability {
    aof: AtomicU8,
    /// The AOF is required (prod without `REDIS_ACCEPT_VOLATILE`).
    required: bool,
}

impl Durability {
    pub(super) fn new(required: bool) -> Self {
        Self {
            aof: AtomicU8::new(UNKNOWN),
            required,
        }
    }

    /// Records what `INFO persistence` said; a change is logged.
    pub(super) fn record(&self, aof: bool) {
        let now = if aof { ON } else { OFF };
        let before = self.aof.swap(now, Ordering::AcqRel);
        if before == now {
            return;
        }
        match (aof, self.required) {
            (true, _) if before == OFF => {
                tracing::info!(redis.aof = true, "Redis keeps an append-only file again");
            }
            (true, _) => {}
            (false, true) => tracing::error!(
                redis.aof = false,
                "Redis keeps no append-only file: placeOrder and enterQueue answer UNAVAILABLE \
                 until it does (a Redis restart would lose what they accept), or until \
                 REDIS_ACCEPT_VOLATILE=true"
            ),
            (false, false) => tracing::warn!(
                redis.aof = false,
                "Redis keeps no append-only file: a Redis restart loses accepted orders and queue places"
            ),
        }
    }

    /// Whether writes that promise durability are refused now.
    pub(super) fn refuses(&self) -> bool {
        self.required && self.aof.load(Ordering::Acquire) == OFF
    }
}
