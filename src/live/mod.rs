//! The GraphQL face of [`boxoffice_services::live`]: the service lives in that crate,
//! re-exported here so resolvers name it as before.

pub use boxoffice_services::live::*;

pub mod graphql;
pub mod groups;

use std::sync::{Arc, atomic::AtomicU64};

/// The API side of live updates: subscriptions executed by async-graphql, shared by the
/// sockets of this instance.
#[derive(Clone, Default)]
pub struct Subscriptions {
    /// Identical subscriptions executed once per event, their frames shared.
    pub groups: Arc<groups::Groups>,
    /// `seatChanges` events handed to async-graphql to execute, all subscribers together:
    /// with groups, one per event and group plus each subscriber's first event.
    pub seat_events_executed: Arc<AtomicU64>,
}
