//! The transactional outbox (C20, I12): events written in the transaction of the change they
//! tell (`append`), the webhooks hosts subscribe and their delivery log (`subscriptions`),
//! and the relay that sends every relayed event to a Redis stream and to the webhooks that
//! want it (`relay`, one instance at a time under `lease`).
//!
//! This crate knows the outbox's own tables and reads the rows events are made of; it names
//! no other boxoffice crate except the pure `boxoffice-webhooks`, so the store, the services
//! and the API can all use it. Authorization (who may subscribe to which concert) is the
//! caller's; the relay re-checks ownership when it fans an event out, so a host who lost a
//! concert (or an admin demoted) stops receiving its events at once.

pub mod append;
pub mod lease;
pub mod relay;
pub mod subscriptions;

pub use boxoffice_webhooks as webhooks;
