//! Waiting lists of sold-out performances.
//!
//! A fan who finds no seats joins the line of a schedule with what they want (`count` seats,
//! a grade if they care). When seats of that schedule come back (a hold expires, a
//! reservation is cancelled, seats are added), the transaction that frees them also serves
//! the line (`service::serve`): under the schedule's booking-count lock it asks the booking
//! batch for the best available seats for each waiting entry, earliest first, and each entry
//! that fits gets a hold of its own (the schedule's hold time, the per-user limit respected).
//! The freed seats are therefore never seen as available: the one announced change shows
//! them held. The fan learns it through `waitlistOffers` (published through the live hub,
//! hence across instances), `myWaitlist` and `myReservations`. An offer is an ordinary hold:
//! not paid, it expires, and its seats go to the next entry the same way.
//!
//! - `store`: entry rows and reads.
//! - `service`: joining, leaving, serving the line, publishing offers.
//! - `graphql`, in the server (`src/`): `WaitlistEntry`, `joinWaitlist`, `leaveWaitlist`, `myWaitlist`,
//!   `waitlistOffers`.
//!
//! Locks: joining and leaving take the schedule row (step 2 of `crate::locks`), so every
//! change of a line is serialized with the changes of its seats; serving locks the waiting
//! entries last (step 7).

pub mod service;
pub use boxoffice_store::waitlist as store;
pub use boxoffice_store::waitlist::{Offer, WaitlistStatus};

use crate::live::hub::Hub;

/// The live topic of one fan's offers.
pub fn topic(user_id: i64) -> String {
    format!("waitlist:{user_id}")
}

/// Tells each fan about their offer, after the commit. Best effort like every live event:
/// a fan who misses it still finds the hold in `myReservations` and `myWaitlist`.
pub fn publish(hub: &Hub, offers: &[Offer]) {
    for offer in offers {
        match serde_json::to_string(offer) {
            Ok(payload) => hub.publish(&topic(offer.user_id), payload),
            Err(e) => tracing::warn!(error = %e, "could not encode a waitlist offer"),
        }
    }
}
