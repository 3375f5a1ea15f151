//! The batch decision: what each hold request of a batch gets, from what the batch loaded
//! under the schedule lock. Pure (no I/O, no clock), so it is tested without a database.
//!
//! Every per-request failure is decided here, before anything is written, so that nothing
//! of one request's data can make the batch's statements fail (I8): a user that does not
//! exist, a key already used elsewhere, seats of another schedule. Requests are decided in
//! order; a request changes a later one's outcome only by taking seats it wanted (or, for
//! the same user, by counting towards the per-user limit).

use std::collections::{HashMap, HashSet};

use crate::error::{AppError, ErrorCode};

/// At most this many seats in one reservation.
pub const MAX_SEATS_PER_REQUEST: usize = 10;

/// One user's request to hold seats. `seat_ids` sorted ascending, without duplicates (see
/// `booking::hold_request`). Serializable: a follower instance forwards it to the
/// schedule's leading instance whole (`booking::leader`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HoldRequest {
    pub user_id: i64,
    pub seat_ids: Vec<i64>,
    pub idempotency_key: Option<String>,
}

/// A requested seat as the batch found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeatState {
    pub schedule_id: i64,
    pub available: bool,
}

/// A reservation already made with a (user, key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUse {
    pub reservation_id: i64,
    pub schedule_id: i64,
    /// Its seats, ascending.
    pub seat_ids: Vec<i64>,
}

/// What the batch read under the schedule lock.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub schedule_id: i64,
    pub per_user_limit: i64,
    /// Seats neither held nor sold.
    pub remaining: i64,
    /// Why the schedule is not on sale, if it is not (`booking::sale`).
    pub closed: Option<&'static str>,
    /// The requested seats that exist, of any schedule.
    pub seats: HashMap<i64, SeatState>,
    /// The requesting users that exist, with the seats each holds or owns of this schedule.
    pub users: HashMap<i64, i64>,
    /// Keys of the batch's requests already used, by (user, key).
    pub keys: HashMap<(i64, String), KeyUse>,
}

#[derive(Clone, Debug)]
pub enum Decision {
    /// Hold the request's seats.
    Claim,
    /// The key was used for this reservation already: answer it.
    Replay(i64),
    Refuse(AppError),
    /// Same user and key as the earlier request at this index: answer alike.
    SameAs(usize),
}

fn key_conflict(message: &str) -> AppError {
    AppError::Conflict(message.to_owned())
}

/// Decides every request of a batch, in order.
pub fn decide(loaded: &Loaded, requests: &[HoldRequest]) -> Vec<Decision> {
    let mut taken: HashSet<i64> = HashSet::new();
    let mut held = loaded.users.clone();
    let mut remaining = loaded.remaining;
    let mut first_with_key: HashMap<(i64, &str), usize> = HashMap::new();
    requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if !loaded.users.contains_key(&r.user_id) {
                return Decision::Refuse(AppError::Unauthenticated("this account no longer exists"));
            }
            if let Some(key) = &r.idempotency_key {
                if let Some(used) = loaded.keys.get(&(r.user_id, key.clone())) {
                    return if used.schedule_id != loaded.schedule_id {
                        Decision::Refuse(key_conflict(
                            "this idempotency key was used for another performance",
                        ))
                    } else if used.seat_ids != r.seat_ids {
                        Decision::Refuse(key_conflict("this idempotency key was used for other seats"))
                    } else {
                        Decision::Replay(used.reservation_id)
                    };
                }
                if let Some(&first) = first_with_key.get(&(r.user_id, key.as_str())) {
                    return if requests[first].seat_ids == r.seat_ids {
                        Decision::SameAs(first)
                    } else {
                        Decision::Refuse(key_conflict("this idempotency key was used for other seats"))
                    };
                }
                first_with_key.insert((r.user_id, key.as_str()), i);
            }
            if let Some(why) = loaded.closed {
                return Decision::Refuse(AppError::Conflict(why.to_owned()));
            }
            decide_one(loaded, r, &mut taken, &mut held, &mut remaining)
        })
        .collect()
}

/// Decides one request against the seats as loaded plus what earlier requests took.
fn decide_one(
    loaded: &Loaded,
    r: &HoldRequest,
    taken: &mut HashSet<i64>,
    held: &mut HashMap<i64, i64>,
    remaining: &mut i64,
) -> Decision {
    if r.seat_ids.is_empty() || r.seat_ids.len() > MAX_SEATS_PER_REQUEST {
        return Decision::Refuse(AppError::bad_input(
            "input.seatIds",
            format!("must list 1 to {MAX_SEATS_PER_REQUEST} seats"),
        ));
    }
    let mut free = true;
    for id in &r.seat_ids {
        match loaded.seats.get(id) {
            Some(s) if s.schedule_id == loaded.schedule_id => {
                free &= s.available && !taken.contains(id);
            }
            _ => {
                return Decision::Refuse(AppError::bad_input(
                    "input.seatIds",
                    format!("seat {id} is not a seat of this performance"),
                ));
            }
        }
    }
    if !free {
        return Decision::Refuse(if *remaining <= 0 {
            AppError::rule(ErrorCode::SoldOut, "this performance is sold out")
        } else {
            AppError::rule(
                ErrorCode::SeatUnavailable,
                "some of these seats are no longer available",
            )
        });
    }
    let n = r.seat_ids.len() as i64;
    let mine = held.get(&r.user_id).copied().unwrap_or(0);
    if mine + n > loaded.per_user_limit {
        return Decision::Refuse(AppError::rule(
            ErrorCode::LimitExceeded,
            format!(
                "at most {} seats per person for this performance; you hold {mine}",
                loaded.per_user_limit
            ),
        ));
    }
    taken.extend(r.seat_ids.iter().copied());
    *held.entry(r.user_id).or_default() += n;
    *remaining -= n;
    Decision::Claim
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 7;

    fn loaded() -> Loaded {
        Loaded {
            schedule_id: S,
            per_user_limit: 4,
            remaining: 10,
            closed: None,
            seats: (1..=10)
                .map(|id| {
                    (
                        id,
                        SeatState {
                            schedule_id: S,
                            available: true,
                        },
                    )
                })
                .chain([(
                    99,
                    SeatState {
                        schedule_id: 8,
                        available: true,
                    },
                )])
                .collect(),
            users: [(1, 0), (2, 0), (3, 3)].into_iter().collect(),
            keys: HashMap::new(),
        }
    }

    fn req(user_id: i64, seats: &[i64], key: Option<&str>) -> HoldRequest {
        HoldRequest {
            user_id,
            seat_ids: seats.to_vec(),
            idempotency_key: key.map(str::to_owned),
        }
    }

    fn code(d: &Decision) -> Option<ErrorCode> {
        match d {
            Decision::Refuse(e) => Some(e.code()),
            _ => None,
        }
    }

    #[test]
    fn each_request_fails_for_its_own_reason() {
        let mut l = loaded();
        l.keys.insert(
            (1, "elsewhere".into()),
            KeyUse {
                reservation_id: 50,
                schedule_id: 8,
                seat_ids: vec![99],
            },
        );
        l.keys.insert(
            (2, "before".into()),
            KeyUse {
                reservation_id: 51,
                schedule_id: S,
                seat_ids: vec![9],
            },
        );
        let d = decide(
            &l,
            &[
                req(1, &[1], None),
                req(404, &[2], None),            // unknown user
                req(1, &[3], Some("elsewhere")), // key used on another schedule
                req(2, &[99], None),             // a seat of another schedule
                req(2, &[4], Some("before")),    // key used with other seats
                req(2, &[9], Some("before")),    // replay
                req(2, &[1], None),              // taken by the first request
                req(3, &[5, 6], None),           // over the limit (holds 3 of 4)
                req(2, &[7, 8], Some("k")),
                req(2, &[7, 8], Some("k")), // double click in the batch
                req(2, &[10], Some("k")),   // same key, other seats
            ],
        );
        assert!(matches!(d[0], Decision::Claim));
        assert_eq!(code(&d[1]), Some(ErrorCode::Unauthenticated));
        assert_eq!(code(&d[2]), Some(ErrorCode::Conflict));
        assert_eq!(code(&d[3]), Some(ErrorCode::BadUserInput));
        assert_eq!(code(&d[4]), Some(ErrorCode::Conflict));
        assert!(matches!(d[5], Decision::Replay(51)));
        assert_eq!(code(&d[6]), Some(ErrorCode::SeatUnavailable));
        assert_eq!(code(&d[7]), Some(ErrorCode::LimitExceeded));
        assert!(matches!(d[8], Decision::Claim));
        assert!(matches!(d[9], Decision::SameAs(8)));
        assert_eq!(code(&d[10]), Some(ErrorCode::Conflict));
    }

    #[test]
    fn a_closed_sale_refuses_new_holds_but_answers_replays() {
        let mut l = loaded();
        l.closed = Some("sales are closed");
        l.keys.insert(
            (1, "k".into()),
            KeyUse {
                reservation_id: 5,
                schedule_id: S,
                seat_ids: vec![1],
            },
        );
        let d = decide(&l, &[req(1, &[1], Some("k")), req(2, &[2], None)]);
        assert!(matches!(d[0], Decision::Replay(5)));
        assert_eq!(code(&d[1]), Some(ErrorCode::Conflict));
    }

    #[test]
    fn nothing_left_is_sold_out() {
        let mut l = loaded();
        l.remaining = 1;
        let d = decide(&l, &[req(1, &[1], None), req(2, &[1], None)]);
        assert!(matches!(d[0], Decision::Claim));
        assert_eq!(code(&d[1]), Some(ErrorCode::SoldOut));
    }

    /// Random batches over a small world: 12 seats (some of another schedule, some taken),
    /// 5 users (one unknown), 3 keys, some already used.
    fn world() -> impl Strategy<Value = (Loaded, Vec<HoldRequest>)> {
        let seats = proptest::collection::vec((any::<bool>(), 0..10u8), 12);
        let users = proptest::collection::vec(0..4i64, 4);
        let used = proptest::collection::vec((1..=4i64, 0..3u8, any::<bool>(), 1..=12i64), 0..4);
        let request = (
            1..=5i64,
            proptest::collection::btree_set(1..=13i64, 1..4),
            proptest::option::of(0..3u8),
        );
        let requests = proptest::collection::vec(request, 1..40);
        (
            seats,
            users,
            used,
            1..=6i64,
            proptest::bool::weighted(0.1),
            requests,
        )
            .prop_map(|(seats, users, used, limit, closed, requests)| {
                let seats: HashMap<i64, SeatState> = seats
                    .into_iter()
                    .enumerate()
                    .map(|(i, (available, other))| {
                        let schedule_id = if other == 0 { 8 } else { S };
                        (
                            i as i64 + 1,
                            SeatState {
                                schedule_id,
                                available,
                            },
                        )
                    })
                    .collect();
                let remaining = seats
                    .values()
                    .filter(|s| s.schedule_id == S && s.available)
                    .count() as i64;
                let loaded = Loaded {
                    schedule_id: S,
                    per_user_limit: limit,
                    remaining,
                    closed: closed.then_some("sales are closed"),
                    seats,
                    users: users
                        .into_iter()
                        .enumerate()
                        .map(|(i, h)| (i as i64 + 1, h))
                        .collect(),
                    keys: used
                        .into_iter()
                        .map(|(user, key, here, seat)| {
                            let schedule_id = if here { S } else { 8 };
                            let k = KeyUse {
                                reservation_id: 1000 + seat,
                                schedule_id,
                                seat_ids: vec![seat],
                            };
                            ((user, format!("k{key}")), k)
                        })
                        .collect(),
                };
                let requests = requests
                    .into_iter()
                    .map(|(user_id, seats, key)| HoldRequest {
                        user_id,
                        seat_ids: seats.into_iter().collect(),
                        idempotency_key: key.map(|k| format!("k{k}")),
                    })
                    .collect();
                (loaded, requests)
            })
    }

    proptest! {
        #[test]
        fn batches_keep_the_rules((loaded, requests) in world()) {
            let decisions = decide(&loaded, &requests);
            prop_assert_eq!(decisions.len(), requests.len());
            let mut claimed: HashSet<i64> = HashSet::new();
            let mut per_user: HashMap<i64, i64> = HashMap::new();
            for (r, d) in requests.iter().zip(&decisions) {
                match d {
                    Decision::Claim => {
                        // All or nothing: every seat of the request, each free, of this
                        // schedule, and no seat twice.
                        prop_assert!(loaded.closed.is_none());
                        prop_assert!(loaded.users.contains_key(&r.user_id));
                        for id in &r.seat_ids {
                            let s = loaded.seats.get(id);
                            prop_assert!(s.is_some_and(|s| s.available && s.schedule_id == S));
                            prop_assert!(claimed.insert(*id), "seat {} claimed twice", id);
                        }
                        *per_user.entry(r.user_id).or_default() += r.seat_ids.len() as i64;
                    }
                    Decision::Replay(id) => {
                        let key = r.idempotency_key.clone().unwrap_or_default();
                        let used = loaded.keys.get(&(r.user_id, key));
                        prop_assert!(used.is_some_and(|u| u.reservation_id == *id && u.seat_ids == r.seat_ids));
                    }
                    Decision::SameAs(first) => {
                        prop_assert!(matches!(decisions[*first], Decision::Claim | Decision::Refuse(_)));
                    }
                    Decision::Refuse(_) => {}
                }
            }
            for (user, n) in per_user {
                prop_assert!(loaded.users[&user] + n <= loaded.per_user_limit);
            }
            // Replays answered alike: a key used before answers its reservation to every
            // request with the same seats and CONFLICT to the others; a key new to the batch
            // makes every later request with the same seats answer like the first one.
            let mut first: HashMap<(i64, String), usize> = HashMap::new();
            for (i, r) in requests.iter().enumerate() {
                let Some(key) = r.idempotency_key.clone() else { continue };
                let k = (r.user_id, key);
                if !loaded.users.contains_key(&r.user_id) {
                    prop_assert!(matches!(decisions[i], Decision::Refuse(_)));
                } else if let Some(used) = loaded.keys.get(&k) {
                    if used.schedule_id == S && used.seat_ids == r.seat_ids {
                        prop_assert!(matches!(decisions[i], Decision::Replay(id) if id == used.reservation_id));
                    } else {
                        prop_assert!(matches!(&decisions[i], Decision::Refuse(e) if e.code() == ErrorCode::Conflict));
                    }
                } else if let Some(&f) = first.get(&k) {
                    if requests[f].seat_ids == r.seat_ids {
                        prop_assert!(matches!(decisions[i], Decision::SameAs(x) if x == f));
                    } else {
                        prop_assert!(matches!(&decisions[i], Decision::Refuse(e) if e.code() == ErrorCode::Conflict));
                    }
                } else {
                    first.insert(k, i);
                }
            }
        }
    }
}
