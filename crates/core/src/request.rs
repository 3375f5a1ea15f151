//! A hold request: what a fan asks of booking, and what its idempotency key stands for.

use serde::{Deserialize, Serialize};

/// At most this many seats in one reservation.
pub const MAX_SEATS_PER_REQUEST: usize = 10;

/// One user's request to hold seats (see `booking::hold_request` and
/// `booking::best_available_request`). Serializable: a follower instance forwards it to the
/// schedule's leading instance whole (`booking::leader`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRequest {
    pub user_id: i64,
    pub want: Want,
    pub idempotency_key: Option<String>,
    /// The operation it came through: part of what its key stands for (absent in requests
    /// forwarded by older instances, which only forwarded direct holds).
    #[serde(default)]
    pub origin: Origin,
}

/// The operation a hold request came through. A key answers only the request it was first
/// sent with: the same operation, schedule and ask (`HoldRequest::fingerprint`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// `reserveSeats` or `reserveBestAvailable` (which one is told by `Want`).
    #[default]
    Direct,
    /// `placeOrder`, applied by an order worker.
    Order,
    /// A hold made for a waiting-list entry (never keyed).
    Waitlist,
}

/// Which seats a request wants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Want {
    /// These seats, sorted ascending, without duplicates.
    Seats(Vec<i64>),
    /// The best `count` free seats, of `grade` (a grade name) if given: chosen in the batch.
    BestAvailable { count: u32, grade: Option<String> },
}

impl HoldRequest {
    /// A request for these seats (sorted ascending, distinct).
    pub fn seats(user_id: i64, seat_ids: Vec<i64>, idempotency_key: Option<String>) -> Self {
        Self {
            user_id,
            want: Want::Seats(seat_ids),
            idempotency_key,
            origin: Origin::Direct,
        }
    }

    /// What the request's key stands for: a hash of its operation, the schedule and what it
    /// asks (the user is the key's own scope). Stored with the reservation it makes
    /// (`reservations.request_hash`) and compared in `decide`, so telling a repeat from
    /// another request with the same key costs no query. Stable across instances and
    /// versions: SHA-256 of a canonical text, its first eight bytes.
    pub fn fingerprint(&self, schedule_id: i64) -> i64 {
        use sha2::Digest as _;
        let operation = match (self.origin, &self.want) {
            (Origin::Direct, Want::Seats(_)) => "reserveSeats",
            (Origin::Direct, Want::BestAvailable { .. }) => "reserveBestAvailable",
            (Origin::Order, _) => "placeOrder",
            (Origin::Waitlist, _) => "waitlist",
        };
        let ask = match &self.want {
            Want::Seats(ids) => {
                let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!("seats:{}", ids.join(","))
            }
            Want::BestAvailable { count, grade: None } => format!("best:{count}:*"),
            Want::BestAvailable {
                count,
                grade: Some(g),
            } => format!("best:{count}:={g}"),
        };
        let digest = sha2::Sha256::digest(format!("{operation}\n{schedule_id}\n{ask}"));
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(first)
    }

    /// The seats it names; none for a best-available request.
    pub fn seat_ids(&self) -> &[i64] {
        match &self.want {
            Want::Seats(ids) => ids,
            Want::BestAvailable { .. } => &[],
        }
    }

    pub fn is_best_available(&self) -> bool {
        matches!(self.want, Want::BestAvailable { .. })
    }
}
