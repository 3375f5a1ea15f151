//! Asynchronous orders (C8): `placeOrder` accepts a hold request durably and answers at
//! once with a job id; workers on every instance apply it through the booking core.
//!
//! - An order is a Redis stream entry (`orders`, consumer group `workers`) plus a job hash
//!   (`order:{job}`: status, owner, outcome) with an expiry. The hash is written before the
//!   entry, so a job is always readable once its id is handed out.
//! - A worker reads entries, applies them, stores the outcome in the hash, publishes it on
//!   topic `order:{job}`, and only then acknowledges the entry. An entry left unacknowledged
//!   by a dead worker is claimed by another after `ORDER_CLAIM_IDLE_MS`.
//! - Each order holds its seats with the idempotency key `order:{job}`, so applying it twice
//!   (a worker that died after committing and before acknowledging) answers the same
//!   reservation: it takes effect at most once. A job already decided is not applied again.
//!
//! - `jobs`: the stream and the job hashes.
//! - `worker`: the consumers and the reclaimer.
//! - `graphql`, in the server (`src/`): `placeOrder`, `order(jobId)`, the `orderResult` subscription.

pub mod jobs;
pub mod worker;
