//! When a failed delivery is tried again, and when to stop.
//!
//! Exponential backoff from a few seconds, capped, with jitter so that endpoints which
//! failed together (a receiver's outage) are not all retried in the same second; the last
//! attempt falls at least `give_up_after` (24 hours) after the event, so a receiver down for
//! most of a day still gets everything, and after it the endpoint is disabled. With the
//! defaults: about 5 s, 20 s, 1.5 min, 5 min, 20 min, 1.5 h, then every 4 h, then one last
//! attempt at the 24 h mark: 13 attempts in all (11 to 16 with jitter).

use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrySchedule {
    /// Wait before the second attempt (the first is immediate).
    pub first: Duration,
    /// Each wait is this many times the one before…
    pub factor: u32,
    /// …up to this.
    pub cap: Duration,
    /// The last attempt is at least this long after the event.
    pub give_up_after: Duration,
    /// Each wait is moved by up to this fraction of itself, either way.
    pub jitter: f64,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule {
            first: Duration::from_secs(5),
            factor: 4,
            cap: Duration::from_secs(4 * 3600),
            give_up_after: Duration::from_secs(24 * 3600),
            jitter: 0.2,
        }
    }
}

impl RetrySchedule {
    /// The wait after the `failed`-th failed attempt (1 for the first), before jitter.
    pub fn base_delay(&self, failed: u32) -> Duration {
        let exponent = failed.saturating_sub(1).min(32);
        let grown = self.first.saturating_mul(self.factor.saturating_pow(exponent));
        grown.min(self.cap)
    }

    /// When to try again after the `failed`-th failed attempt at `now`, for an event of
    /// `event_time`; `None` once the last attempt (at or after the deadline) has failed: the
    /// delivery is given up and the endpoint disabled. `unit` is a uniform draw from [0, 1),
    /// passed in so the schedule is a pure function.
    pub fn next_attempt(
        &self,
        event_time: DateTime<Utc>,
        failed: u32,
        now: DateTime<Utc>,
        unit: f64,
    ) -> Option<DateTime<Utc>> {
        let deadline = event_time + chrono_duration(self.give_up_after);
        if now >= deadline {
            return None;
        }
        let base = self.base_delay(failed).as_secs_f64();
        let spread = base * self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let wait = Duration::from_secs_f64((base + spread).max(0.0));
        let next = now + chrono_duration(wait);
        // Never past the deadline by more than the wait itself: the last attempt is the one
        // at the deadline, so "at least 24 hours" holds without stretching it to 28.
        Some(next.min(deadline))
    }

    /// Draws the jitter from the thread's generator.
    pub fn next_attempt_now(&self, event_time: DateTime<Utc>, failed: u32) -> Option<DateTime<Utc>> {
        self.next_attempt(event_time, failed, Utc::now(), rand::random::<f64>())
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn walk(schedule: &RetrySchedule, unit: f64) -> Vec<DateTime<Utc>> {
        let event = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        let mut attempts = vec![event];
        let mut failed = 0;
        loop {
            failed += 1;
            let now = *attempts.last().unwrap();
            match schedule.next_attempt(event, failed, now, unit) {
                Some(next) => attempts.push(next),
                None => return attempts,
            }
            assert!(failed < 100, "the schedule never ends");
        }
    }

    #[test]
    fn first_retry_within_seconds_last_a_day_later_then_stop() {
        let schedule = RetrySchedule::default();
        let event = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        for unit in [0.0, 0.5, 0.999] {
            let attempts = walk(&schedule, unit);
            let second = (attempts[1] - event).num_seconds();
            assert!((4..=6).contains(&second), "second attempt after {second} s");
            let last = *attempts.last().unwrap();
            assert!(last - event >= chrono::Duration::hours(24), "last at {last}");
            assert!(last - event < chrono::Duration::hours(25));
            assert!(attempts.windows(2).all(|w| w[0] < w[1]), "attempts go forward");
            assert!((11..=16).contains(&attempts.len()), "{} attempts", attempts.len());
        }
    }

    #[test]
    fn waits_grow_exponentially_up_to_the_cap() {
        let s = RetrySchedule::default();
        assert_eq!(s.base_delay(1), Duration::from_secs(5));
        assert_eq!(s.base_delay(2), Duration::from_secs(20));
        assert_eq!(s.base_delay(3), Duration::from_secs(80));
        assert_eq!(s.base_delay(7), Duration::from_secs(4 * 3600));
        assert_eq!(s.base_delay(1000), Duration::from_secs(4 * 3600));
    }

    #[test]
    fn jitter_spreads_the_same_retry() {
        let s = RetrySchedule::default();
        let event = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        let now = event + chrono::Duration::minutes(10);
        let early = s.next_attempt(event, 4, now, 0.0).unwrap() - now;
        let late = s.next_attempt(event, 4, now, 0.999).unwrap() - now;
        assert_eq!(early.num_seconds(), 256); // 320 s less 20 %
        assert_eq!(late.num_seconds(), 383); // 320 s plus almost 20 %
    }

    #[test]
    fn nothing_after_the_deadline() {
        let s = RetrySchedule::default();
        let event = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        assert_eq!(
            s.next_attempt(event, 3, event + chrono::Duration::hours(24), 0.5),
            None
        );
        // A redelivery asked for a week later is one attempt, not a new day of retries.
        assert_eq!(
            s.next_attempt(event, 1, event + chrono::Duration::days(7), 0.5),
            None
        );
    }
}
