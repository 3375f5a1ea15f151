//! The pure core of boxoffice: the rules of a sale that need no I/O, no clock of their own
//! and no runtime, so they are unit- and property-tested without a database. No tokio, no
//! diesel, no async-graphql here (this crate's Cargo.toml is the check): the crates above
//! load what these functions decide on, and write what they decided.
//!
//! - `best_available`: a schedule's seat layout, indexed for picking the best free seats.
//! - `request`: a hold request and what its idempotency key stands for.
//! - `decide`: the decision of a hold batch, request by request.
//! - `sale`: whether a schedule is on sale at a given moment.
//! - `keep`: which seats a host's block, unblock or complimentary ticket changes.
//! - `refusal`: why a rule refuses, mapped to the API's error codes by the server.

pub mod best_available;
pub mod decide;
pub mod keep;
pub mod refusal;
pub mod request;
pub mod sale;

pub use refusal::Refusal;
