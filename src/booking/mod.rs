//! The booking core: holding seats, paying, cancelling, expiring.
//!
//! # Lock order (I6)
//!
//! Every transaction that changes seats of a schedule takes its locks in this order:
//!
//! 1. the schedule row (`SELECT ... FOR UPDATE`: the booking-count lock),
//! 2. reservation rows,
//! 3. seat rows, ascending id,
//! 4. user rows, ascending id.
//!
//! Payment changes no availability (held → sold), so it skips step 1 and starts at the
//! reservation; its version bump runs afterwards in a transaction of its own. Because every
//! writer that can make a seat available or unavailable holds the schedule lock, a batch
//! holding it can decide all its requests from one read of the seats.
//!
//! - `reserve`: the batch transaction (group commit) and its request type.
//! - `batcher`: one in-process queue per schedule feeding `reserve` with batches.
//! - `lifecycle`: pay, cancel, expire, cancel a schedule.
//! - `sweeper`: the background task that expires overdue holds.
//! - `store`: reservation rows and queries.
//! - `graphql`: `Reservation`, `reserveSeats`, `payReservation`, `cancelReservation`, ...

pub mod batcher;
pub mod graphql;
pub mod lifecycle;
pub mod reserve;
pub mod service;
pub mod store;
pub mod sweeper;

pub use lifecycle::cancel_schedule;

use crate::state::AppState;

/// Seats of one schedule that changed in one committed transaction, with the schedule
/// version after it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeatChange {
    pub schedule_id: i64,
    pub version: i64,
    /// (seat id, new status: available, held or sold)
    pub seats: Vec<(i64, String)>,
}

/// Tells live subscribers about a committed change. Never fails the caller: the change
/// is already committed, and a subscriber that misses it sees the version gap.
pub fn announce(state: &AppState, change: SeatChange) {
    metrics::counter!("seat_changes_total").increment(change.seats.len() as u64);
    state.live.publish_seats(change);
}
