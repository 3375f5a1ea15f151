//! Events out of boxoffice, the parts that need no database: the CloudEvents 1.0 envelope
//! and the event type names (`event`), Standard Webhooks signatures and secrets
//! (`signature`), which URLs may receive webhooks (`policy`), the HTTP client that delivers
//! one attempt (`delivery`), and when a failed delivery is tried again (`retry`).
//!
//! What is not here: the outbox table, the relay and its lease, the subscriptions of hosts.
//! Those live with the store and the services, which depend on this crate; this crate names
//! neither.

pub mod delivery;
pub mod event;
pub mod policy;
pub mod retry;
pub mod signature;

pub use delivery::{Attempt, DeliveryClient, DeliveryConfig, Outcome};
pub use event::{CloudEvent, EventType, UnknownEventType};
pub use policy::{UrlPolicy, UrlRefusal};
pub use retry::RetrySchedule;
pub use signature::{Secret, SecretError, SignatureError, Signed};
