//! Seats a host keeps back or gives away: blocking, unblocking and complimentary tickets.
//! The decision of which seats change, pure like `decide`: the booking core loads the seats
//! under the schedule lock (the lock every hold batch takes), asks here, and writes what was
//! decided in the same transaction. So a seat is never blocked and held at once: whichever
//! of the batch and the block takes the lock second sees what the first one did.

use std::collections::HashMap;

use crate::refusal::Refusal;

/// What the host does with the seats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Keep free seats back (`blockSeats`).
    Block,
    /// Put blocked seats back on sale (`unblockSeats`).
    Unblock,
    /// Give free or blocked seats away at price 0 (`issueComplimentary`).
    Comp,
}

/// A seat's state as loaded under the schedule lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Free,
    Held,
    Sold,
    Blocked,
}

/// Seats one call may name at most.
pub const MAX_BLOCK: usize = 1_000;
pub const MAX_COMP: usize = 20;

/// The seats to change, ascending: for `Block`, the free ones (seats already blocked are
/// left as they are, so blocking twice is harmless); for `Unblock`, the blocked ones (free
/// seats are left, likewise); for `Comp`, all of them. `seats` maps every seat id found to
/// (its schedule, its state); `seat_ids` are the seats asked for, distinct.
pub fn decide(
    keep: Keep,
    schedule_id: i64,
    seat_ids: &[i64],
    seats: &HashMap<i64, (i64, Found)>,
) -> Result<Vec<i64>, Refusal> {
    let max = if keep == Keep::Comp { MAX_COMP } else { MAX_BLOCK };
    if seat_ids.is_empty() || seat_ids.len() > max {
        return Err(Refusal::bad_input(
            "seatIds",
            format!("must list 1 to {max} seats"),
        ));
    }
    let mut sorted = seat_ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != seat_ids.len() {
        return Err(Refusal::bad_input("seatIds", "lists a seat twice"));
    }
    let mut change = Vec::with_capacity(sorted.len());
    for id in sorted {
        let found = match seats.get(&id) {
            Some((s, found)) if *s == schedule_id => *found,
            _ => {
                return Err(Refusal::bad_input(
                    "seatIds",
                    format!("seat {id} is not a seat of this performance"),
                ));
            }
        };
        match (keep, found) {
            (Keep::Block, Found::Free) | (Keep::Unblock, Found::Blocked) => change.push(id),
            (Keep::Block, Found::Blocked) | (Keep::Unblock, Found::Free) => {}
            (Keep::Comp, Found::Free | Found::Blocked) => change.push(id),
            (Keep::Block | Keep::Comp, Found::Held | Found::Sold) => {
                return Err(Refusal::SeatUnavailable(format!(
                    "seat {id} is held or sold: only free seats can be {}",
                    if keep == Keep::Block {
                        "kept back"
                    } else {
                        "given away"
                    }
                )));
            }
            (Keep::Unblock, Found::Held | Found::Sold) => {
                return Err(Refusal::Conflict(format!(
                    "seat {id} is held or sold, not kept back: only blocked seats can be unblocked"
                )));
            }
        }
    }
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seats() -> HashMap<i64, (i64, Found)> {
        [
            (1, (7, Found::Free)),
            (2, (7, Found::Held)),
            (3, (7, Found::Sold)),
            (4, (7, Found::Blocked)),
            (5, (7, Found::Free)),
            (9, (8, Found::Free)),
        ]
        .into_iter()
        .collect()
    }

    fn code(r: Result<Vec<i64>, Refusal>) -> &'static str {
        r.err().map_or("OK", |e| e.code())
    }

    #[test]
    fn blocks_take_free_seats_only_and_are_idempotent() {
        let s = seats();
        assert_eq!(decide(Keep::Block, 7, &[5, 1, 4], &s).unwrap(), [1, 5]);
        assert_eq!(code(decide(Keep::Block, 7, &[1, 2], &s)), "SEAT_UNAVAILABLE");
        assert_eq!(code(decide(Keep::Block, 7, &[3], &s)), "SEAT_UNAVAILABLE");
        assert_eq!(code(decide(Keep::Block, 7, &[9], &s)), "BAD_USER_INPUT");
        assert_eq!(code(decide(Keep::Block, 7, &[404], &s)), "BAD_USER_INPUT");
        assert_eq!(code(decide(Keep::Block, 7, &[1, 1], &s)), "BAD_USER_INPUT");
        assert_eq!(code(decide(Keep::Block, 7, &[], &s)), "BAD_USER_INPUT");
    }

    #[test]
    fn unblocks_free_blocked_seats_only() {
        let s = seats();
        assert_eq!(decide(Keep::Unblock, 7, &[4, 1], &s).unwrap(), [4]);
        assert_eq!(code(decide(Keep::Unblock, 7, &[2], &s)), "CONFLICT");
        assert_eq!(code(decide(Keep::Unblock, 7, &[3], &s)), "CONFLICT");
    }

    #[test]
    fn comps_take_free_and_blocked_seats() {
        let s = seats();
        assert_eq!(decide(Keep::Comp, 7, &[4, 1], &s).unwrap(), [1, 4]);
        assert_eq!(code(decide(Keep::Comp, 7, &[1, 2], &s)), "SEAT_UNAVAILABLE");
        let many: Vec<i64> = (1..=21).collect();
        assert_eq!(code(decide(Keep::Comp, 7, &many, &s)), "BAD_USER_INPUT");
    }
}
