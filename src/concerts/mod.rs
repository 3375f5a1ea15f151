//! Concerts and their schedules (performances): creating, editing, publishing, cancelling,
//! and finding them.
//!
//! - `store`: rows and diesel queries.
//! - `service`: validation, ownership and status rules.
//! - `search`: the `concerts(filter, first, after)` query (full-text + trigram, keyset pages).
//! - `graphql`: `Concert`, `Schedule`, `Host` and their resolvers and loaders.
//!
//! Seats and layouts are in `seats`; what happens to reservations when a schedule is
//! cancelled is decided in `booking`.

pub mod graphql;
pub mod search;
pub mod service;
pub mod store;

crate::text_enum! {
    // Stored in `concerts.status`.
    /// A draft is visible to its host only; published and cancelled concerts are public.
    pub enum ConcertStatus {
        Draft => "draft",
        Published => "published",
        Cancelled => "cancelled",
    }
}

crate::text_enum! {
    // Stored in `schedules.status`.
    /// Whether the performance takes place.
    pub enum ScheduleStatus {
        Scheduled => "scheduled",
        Cancelled => "cancelled",
    }
}
