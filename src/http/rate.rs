//! The rate limit for requests without a valid token, per client address (IPv6 by /64):
//! a token bucket per address from the `governor` crate, swept of idle addresses so that
//! a scan from many addresses cannot grow it without bound.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use governor::{
    Quota, RateLimiter,
    clock::{Clock as _, DefaultClock},
    state::keyed::DefaultKeyedStateStore,
};

type Keyed = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

pub struct AnonymousLimiter {
    limiter: Arc<Keyed>,
}

/// How often addresses whose buckets are full again are forgotten.
const SWEEP: Duration = Duration::from_secs(10);

impl AnonymousLimiter {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let quota = Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        let limiter = Arc::new(RateLimiter::keyed(quota));
        let weak = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP);
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else { return };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
        Self { limiter }
    }

    /// `Err(seconds to wait)` when `group` has spent its burst.
    pub fn check(&self, group: IpAddr) -> Result<(), u64> {
        self.limiter.check_key(&group).map_err(|not_until| {
            not_until
                .wait_time_from(self.limiter.clock().now())
                .as_secs()
                .max(1)
        })
    }
}
