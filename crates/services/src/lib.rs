//! The services of boxoffice: what the product does, below its GraphQL API.
//!
//! Each domain module holds its rules and queries: `auth` (accounts, tokens, roles),
//! `admin` (users, roles, audit log), `concerts` (concerts, schedules, search), `seats`
//! (layouts, seat map), `booking` (holds, payment, cancellation, expiry: the hold path's
//! batcher and leader, and the lock order through `locks`), `points` (balance and ledger),
//! `payments` (top-ups through a payment provider), `live` (pub/sub across instances and
//! the coalesced seat feeds), `queue` (the waiting queue and its gate), `orders`
//! (asynchronous orders through a Redis stream), `shows` (hosts running a performance),
//! `tickets` (signed tickets and the door), `exports` (CSV of a performance), `host_orders`
//! (a host's view of orders), `events` (the outbox relay and webhooks, on
//! `boxoffice_outbox`), `waitlist`, `notices`. `in_doubt` is how every write ends: its
//! reply deadline, and a COMMIT whose answer was lost looked up before anyone is answered.
//! `config` is every setting, read once at start; `state::Services` is what every service
//! call can reach.
//!
//! This crate never names the server above it (resolvers, the HTTP edge, the composition
//! root): the server builds a [`state::Services`] and hands it down. The shared pieces
//! below come from `boxoffice_store` (`db`, `kv`, `error`, `locks`, `schema`,
//! `invariants`), re-exported under the paths the services name them by.

pub mod admin;
pub mod auth;
pub mod booking;
pub mod concerts;
pub mod config;
pub use boxoffice_store::db;
pub mod events;
pub mod exports;
pub use boxoffice_store::error;
pub mod host_orders;
pub mod ids;
pub mod in_doubt;
pub use boxoffice_store::invariants;
pub use boxoffice_store::kv;
pub mod live;
pub use boxoffice_store::locks;
pub mod notices;
pub mod orders;
pub mod pagination;
pub mod payments;
pub mod points;
pub mod queue;
pub use boxoffice_store::schema;
pub mod seats;
pub mod shows;
pub mod state;
pub mod text;
pub mod tickets;
pub mod waitlist;
