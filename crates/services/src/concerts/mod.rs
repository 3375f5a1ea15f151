//! Concerts and their schedules (performances): creating, editing, publishing, cancelling,
//! and finding them.
//!
//! - `store`: rows and diesel queries.
//! - `service`: validation, ownership and status rules.
//! - `search`: the `concerts(filter, first, after)` query (full-text + trigram, keyset pages).
//! - `graphql`, in the server (`src/`): `Concert`, `Schedule`, `Host` and their resolvers and loaders.
//!
//! Seats and layouts are in `seats`; what happens to reservations when a schedule is
//! cancelled is decided in `booking`.

pub mod search;
pub mod service;
pub use boxoffice_store::concerts as store;
pub use boxoffice_store::concerts::{ConcertStatus, ScheduleStatus};
