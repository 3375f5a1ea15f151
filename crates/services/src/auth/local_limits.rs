//! The login and sign-up counters of one instance, used when Redis is not configured (a
//! single instance, tests); `auth::rate_limit` decides what to count.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Counters of a single instance: key -> (count, window end).
#[derive(Default)]
pub struct LocalLimits(Mutex<HashMap<String, (u64, Instant)>>);

impl LocalLimits {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Instant)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds one to `key` (a new window of `window` if none is running) and returns the new
    /// count and the seconds left.
    pub(super) fn incr(map: &mut HashMap<String, (u64, Instant)>, key: &str, window: Duration) -> (u64, u64) {
        let now = Instant::now();
        let entry = map.entry(key.to_owned()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        (entry.0, entry.1.duration_since(now).as_secs().max(1))
    }
}
