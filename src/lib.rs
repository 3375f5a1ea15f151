//! boxoffice: a concert box office served as a GraphQL API.
//!
//! Each domain module holds its rows and queries, its GraphQL types and resolvers:
//! `auth` (accounts, tokens, roles, guards), `admin` (users, roles, audit log), `concerts`
//! (concerts, schedules, search), `seats` (layouts, seat map), `booking` (holds, payment,
//! cancellation, expiry: the lock order lives there), `points` (balance and ledger), `payments` (top-ups through a
//! payment provider), `live`
//! (subscriptions across instances), `queue` (the waiting queue and its gate), `orders`
//! (asynchronous orders through a Redis stream), `shows` (hosts running a performance: edits,
//! prices, blocked seats, complimentary tickets), `events` (the outbox relay and webhooks, on
//! `boxoffice_outbox`), `notices` (what the product tells a user unasked, e.g. a webhook
//! given up on). The shared pieces are few: `locks` (every
//! row lock and their order), `error` (the one error
//! type), `db` (pool and migrations), `kv` (Redis), `schema` and `invariants` come from
//! the `boxoffice_store` crate (the pure rules from `boxoffice_core`) and are re-exported
//! here under their old paths; `config`, `state`, `graphql` (the merged
//! schema), `limits` (what one request may cost), `text` (rules for text users send), `http`
//! (routes and connections), `web` (the embedded web app and playground), `app` (start-up).

// The merged schema's resolver futures nest every write's settling (`in_doubt::write`):
// deeper than the compiler's default of 128 when it lays them out.
#![recursion_limit = "256"]

pub mod admin;
pub mod app;
pub mod auth;
pub mod booking;
pub mod concerts;
pub use boxoffice_services::config;
pub use boxoffice_services::db;
pub mod demo;
pub mod events;
pub mod exports;
pub use boxoffice_services::error;
pub mod graphql;
pub mod host_orders;
pub mod http;
pub use boxoffice_services::ids;
pub use boxoffice_services::in_doubt;
pub use boxoffice_services::invariants;
pub use boxoffice_services::kv;
pub mod limits;
pub mod live;
pub use boxoffice_services::locks;
pub mod notices;
pub mod orders;
pub use boxoffice_services::pagination;
pub mod payments;
pub mod points;
pub mod queue;
pub use boxoffice_services::schema;
pub mod seats;
pub mod shows;
pub mod state;
pub mod telemetry;
pub use boxoffice_services::text;
pub mod tickets;
pub mod waitlist;
pub mod web;
