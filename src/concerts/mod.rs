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

// Stored in `concerts.status`, mapped once by `text_enum!`.
/// A draft is visible to its host only; published and cancelled concerts are public.
#[derive(
    async_graphql::Enum,
    Copy,
    Clone,
    Debug,
    Eq,
    PartialEq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "lowercase")]
pub enum ConcertStatus {
    Draft,
    Published,
    Cancelled,
}

crate::text_enum!(ConcertStatus {
    Draft => "draft",
    Published => "published",
    Cancelled => "cancelled",
});

// Stored in `schedules.status`, mapped once by `text_enum!`.
/// Whether the performance takes place.
#[derive(
    async_graphql::Enum,
    Copy,
    Clone,
    Debug,
    Eq,
    PartialEq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleStatus {
    Scheduled,
    Cancelled,
}

crate::text_enum!(ScheduleStatus {
    Scheduled => "scheduled",
    Cancelled => "cancelled",
});
