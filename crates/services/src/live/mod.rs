//! Live updates across instances.
//!
//! - `hub`: topics. One Redis pub/sub connection per instance, one Redis subscription per
//!   topic while this instance has local subscribers to it, fanned out locally through a
//!   tokio broadcast channel. Without Redis, the same API runs in process.
//! - `seats`: seat changes of a schedule, coalesced once per instance (at most about ten
//!   messages a second), with per-grade availability.
//! - `graphql`, in the server (`src/`): the `seatChanges` subscription.
//! - `groups`, in the server (`src/`): identical subscriptions of an instance executed once per event, their
//!   serialized events shared by every socket.
//!
//! Events are published after the transaction that made them commits. Delivery is best
//! effort: a subscriber that lags or lives through a Redis outage is told so (`resync`)
//! and sees a version gap, and re-reads the seat map.

pub mod hub;
pub mod seats;

pub use hub::{Event, Hub};

use std::sync::Arc;

use crate::booking::change::SeatChange;

/// The live side of an instance: its hub and its seat feeds.
#[derive(Clone)]
pub struct Live {
    pub hub: Hub,
    pub feeds: Arc<seats::Feeds>,
}

impl Live {
    pub fn new(hub: Hub) -> Self {
        Self {
            hub,
            feeds: Arc::default(),
        }
    }

    pub fn publish_seats(&self, change: SeatChange) {
        seats::publish(&self.hub, &change);
    }
}
