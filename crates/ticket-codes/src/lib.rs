//! Tickets as signed codes, and what the door decides about them: pure functions, no
//! database, no network, no clock of their own (every function that needs the time takes it).
//!
//! - [`code`]: the compact binary layout of a ticket code and its base32 text (the format is
//!   documented there and in `docs/tickets.md`).
//! - [`keys`]: Ed25519 signing and a key ring of key ids, so keys can rotate while tickets
//!   signed by an older key still verify until their shows end.
//! - [`qr`]: the code as an SVG QR code.
//! - [`door`]: the check-in decision for one scan, given the ticket's state and the show.
//! - [`batch`]: the rule for scans made offline and uploaded together.
//!
//! Not here: storing tickets, the conditional update that admits a ticket exactly once, and
//! the GraphQL types; those live in the layers above, which call these functions.

pub mod batch;
pub mod code;
pub mod door;
pub mod keys;
pub mod qr;

pub use code::{CodeError, TicketClaims};
pub use door::{Admission, CheckInStatus, Decision, Show, TicketRecord, TicketStatus};
pub use keys::{KeyId, KeyRing, SigningKeyConfig, TicketSigner};
