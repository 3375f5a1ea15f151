//! What a committed transaction changed in a schedule's seats: the unit live subscribers
//! receive (`live` publishes it, booking and the waiting list make it).

use crate::seats::SeatStatus;

/// Seats of one schedule that changed in one committed transaction, with the schedule
/// version after it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeatChange {
    pub schedule_id: i64,
    pub version: i64,
    /// (seat id, new status), ascending seat id.
    pub seats: Vec<(i64, SeatStatus)>,
}

impl SeatChange {
    /// This change followed by `later` of the same schedule (made after it in the same
    /// transaction): per seat the later status wins, and the later version.
    pub(super) fn then(mut self, later: Self) -> Self {
        let mut seats: std::collections::BTreeMap<i64, SeatStatus> = self.seats.into_iter().collect();
        seats.extend(later.seats);
        self.seats = seats.into_iter().collect();
        self.version = self.version.max(later.version);
        self
    }
}
