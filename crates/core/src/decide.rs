//! The batch decision: what each hold request of a batch gets, from what the batch loaded
//! under the schedule lock. Pure (no I/O, no clock), so it is tested without a database.
//!
//! Every per-request failure is decided here, before anything is written, so that nothing
//! of one request's data can make the batch's statements fail (I8): a user that does not
//! exist, a key already used elsewhere, seats of another schedule, a grade the schedule
//! does not have. Requests are decided in order; a request changes a later one's outcome
//! only by taking seats it wanted (or, for the same user, by counting towards the per-user
//! limit).
//!
//! A request names its seats or asks for the best available ones (`Want`). Best-available
//! requests are picked here, in batch order, from the schedule's whole layout
//! (`best_available`), which every claim of the batch, explicit or picked, marks
//! taken: two pickers of one batch never get the same seat, and batches of one schedule
//! are serialized by its lock, so neither do pickers of different batches or instances.

use std::collections::{HashMap, HashSet};

use crate::{
    best_available::SeatLayout,
    refusal::Refusal,
    request::{HoldRequest, MAX_SEATS_PER_REQUEST, Want},
};

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
    /// The grade of its seats when they share one.
    pub grade: Option<String>,
    /// The fingerprint of the request that made it; none for reservations made before
    /// fingerprints were stored.
    pub fingerprint: Option<i64>,
}

impl KeyUse {
    /// Whether `request` (for `schedule_id`) is the request this key was first sent with:
    /// the same fingerprint (operation, schedule, ask). A key names one request; any other
    /// request with it is a CONFLICT. A reservation older than fingerprints is answered to
    /// a request for what it holds: the same seats, or as many seats of the asked grade.
    fn answers(&self, request: &HoldRequest, schedule_id: i64) -> bool {
        match self.fingerprint {
            Some(fp) => fp == request.fingerprint(schedule_id),
            None => self.schedule_id == schedule_id && self.holds(&request.want),
        }
    }

    fn holds(&self, want: &Want) -> bool {
        match want {
            Want::Seats(ids) => self.seat_ids == *ids,
            Want::BestAvailable { count, grade } => {
                self.seat_ids.len() == *count as usize
                    && grade.as_ref().is_none_or(|g| self.grade.as_ref() == Some(g))
            }
        }
    }
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
    /// For the schedule of a draft concert, the requesting users who may see it (its host,
    /// admins: `concerts::service::visible_to`); to everyone else it does not exist. `None`
    /// when the concert is public.
    pub seen_by: Option<HashSet<i64>>,
    /// The requested seats that exist, of any schedule.
    pub seats: HashMap<i64, SeatState>,
    /// The requesting users that exist, with the seats each holds or owns of this schedule.
    pub users: HashMap<i64, i64>,
    /// Keys of the batch's requests already used, by (user, key).
    pub keys: HashMap<(i64, String), KeyUse>,
    /// The schedule's whole layout with what is free, loaded only for a batch with a
    /// best-available request (explicit requests need only `seats`).
    pub layout: Option<SeatLayout>,
    /// The schedule's grade names, by the layout's grade index.
    pub grades: Vec<String>,
}

#[derive(Clone, Debug)]
pub enum Decision {
    /// Hold these seats: the request's own, or those picked for it, ascending.
    Claim(Vec<i64>),
    /// The key was used for this reservation already: answer it.
    Replay(i64),
    Refuse(Refusal),
    /// Same user and key as the earlier request at this index: answer alike.
    SameAs(usize),
}

/// A key sent again with another request (operation, seats, count or grade).
pub const KEY_USED: &str = "this idempotency key was used for another request";

fn key_conflict(message: &str) -> Refusal {
    Refusal::Conflict(message.to_owned())
}

/// Decides every request of a batch, in order.
pub fn decide(loaded: &Loaded, requests: &[HoldRequest]) -> Vec<Decision> {
    // Picks and claims mark this copy; the loaded one stays as read.
    let mut layout = loaded.layout.clone();
    let mut taken: HashSet<i64> = HashSet::new();
    let mut held = loaded.users.clone();
    let mut remaining = loaded.remaining;
    let mut first_with_key: HashMap<(i64, &str), usize> = HashMap::new();
    requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if !loaded.users.contains_key(&r.user_id) {
                return Decision::Refuse(Refusal::Unauthenticated("this account no longer exists"));
            }
            // Before anything else about the schedule, keys included: what a fan is told
            // of a draft must be what they are told of an id that does not exist.
            if loaded.seen_by.as_ref().is_some_and(|s| !s.contains(&r.user_id)) {
                return Decision::Refuse(Refusal::NotFound("schedule"));
            }
            if let Some(key) = &r.idempotency_key {
                if let Some(used) = loaded.keys.get(&(r.user_id, key.clone())) {
                    return if used.answers(r, loaded.schedule_id) {
                        Decision::Replay(used.reservation_id)
                    } else if used.schedule_id != loaded.schedule_id {
                        Decision::Refuse(key_conflict(
                            "this idempotency key was used for another performance",
                        ))
                    } else {
                        Decision::Refuse(key_conflict(KEY_USED))
                    };
                }
                if let Some(&first) = first_with_key.get(&(r.user_id, key.as_str())) {
                    return if requests[first].fingerprint(loaded.schedule_id)
                        == r.fingerprint(loaded.schedule_id)
                    {
                        Decision::SameAs(first)
                    } else {
                        Decision::Refuse(key_conflict(KEY_USED))
                    };
                }
                first_with_key.insert((r.user_id, key.as_str()), i);
            }
            if let Some(why) = loaded.closed {
                return Decision::Refuse(Refusal::Conflict(why.to_owned()));
            }
            let mut world = World {
                taken: &mut taken,
                held: &mut held,
                remaining: &mut remaining,
                layout: layout.as_mut(),
            };
            match &r.want {
                Want::Seats(ids) => decide_seats(loaded, r.user_id, ids, &mut world),
                Want::BestAvailable { count, grade } => {
                    decide_best(loaded, r.user_id, *count, grade.as_deref(), &mut world)
                }
            }
        })
        .collect()
}

/// What earlier requests of the batch changed: seats taken, seats per user, seats left,
/// and the layout they were marked taken in (when loaded).
struct World<'a> {
    taken: &'a mut HashSet<i64>,
    held: &'a mut HashMap<i64, i64>,
    remaining: &'a mut i64,
    layout: Option<&'a mut SeatLayout>,
}

impl World<'_> {
    fn limit_refusal(&self, loaded: &Loaded, user_id: i64, n: i64) -> Option<Decision> {
        let mine = self.held.get(&user_id).copied().unwrap_or(0);
        (mine + n > loaded.per_user_limit).then(|| {
            Decision::Refuse(Refusal::LimitExceeded(format!(
                "at most {} seats per person for this performance; you hold {mine}",
                loaded.per_user_limit
            )))
        })
    }

    fn claim(&mut self, user_id: i64, seat_ids: &[i64]) {
        self.taken.extend(seat_ids.iter().copied());
        *self.held.entry(user_id).or_default() += seat_ids.len() as i64;
        *self.remaining -= seat_ids.len() as i64;
    }
}

/// Decides one request for named seats against the seats as loaded plus what earlier
/// requests took.
fn decide_seats(loaded: &Loaded, user_id: i64, seat_ids: &[i64], world: &mut World<'_>) -> Decision {
    if seat_ids.is_empty() || seat_ids.len() > MAX_SEATS_PER_REQUEST {
        return Decision::Refuse(Refusal::bad_input(
            "input.seatIds",
            format!("must list 1 to {MAX_SEATS_PER_REQUEST} seats"),
        ));
    }
    let mut free = true;
    for id in seat_ids {
        match loaded.seats.get(id) {
            Some(s) if s.schedule_id == loaded.schedule_id => {
                free &= s.available && !world.taken.contains(id);
            }
            _ => {
                return Decision::Refuse(Refusal::bad_input(
                    "input.seatIds",
                    format!("seat {id} is not a seat of this performance"),
                ));
            }
        }
    }
    if !free {
        return Decision::Refuse(if *world.remaining <= 0 {
            Refusal::SoldOut("this performance is sold out".into())
        } else {
            Refusal::SeatUnavailable("some of these seats are no longer available".into())
        });
    }
    if let Some(refusal) = world.limit_refusal(loaded, user_id, seat_ids.len() as i64) {
        return refusal;
    }
    if let Some(layout) = world.layout.as_deref_mut() {
        layout.take_ids(seat_ids);
    }
    world.claim(user_id, seat_ids);
    Decision::Claim(seat_ids.to_vec())
}

/// Decides one best-available request: picks its seats from the layout as earlier requests
/// left it.
fn decide_best(
    loaded: &Loaded,
    user_id: i64,
    count: u32,
    grade: Option<&str>,
    world: &mut World<'_>,
) -> Decision {
    if count == 0 || count as usize > MAX_SEATS_PER_REQUEST {
        return Decision::Refuse(Refusal::bad_input(
            "input.count",
            format!("must be 1 to {MAX_SEATS_PER_REQUEST}"),
        ));
    }
    let grade = match grade {
        None => None,
        Some(name) => match loaded.grades.iter().position(|g| g == name) {
            Some(g) => Some(g),
            None => {
                return Decision::Refuse(Refusal::bad_input(
                    "input.grade",
                    format!("this performance has no grade `{name}`"),
                ));
            }
        },
    };
    let Some(layout) = world.layout.as_deref() else {
        return Decision::Refuse(Refusal::Internal(
            "best-available request decided without the layout",
        ));
    };
    let Some(pick) = layout.pick(count as usize, grade) else {
        return Decision::Refuse(if *world.remaining <= 0 {
            Refusal::SoldOut("this performance is sold out".into())
        } else {
            Refusal::SeatUnavailable(format!("fewer than {count} seats of one grade are left"))
        });
    };
    if let Some(refusal) = world.limit_refusal(loaded, user_id, i64::from(count)) {
        return refusal;
    }
    if !world.layout.as_deref_mut().is_some_and(|l| l.take(&pick)) {
        return Decision::Refuse(Refusal::Internal("a fresh pick could not be taken"));
    }
    let mut seat_ids = pick.seat_ids;
    seat_ids.sort_unstable();
    world.claim(user_id, &seat_ids);
    Decision::Claim(seat_ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Origin;
    use proptest::prelude::*;

    const S: i64 = 7;

    fn loaded() -> Loaded {
        Loaded {
            schedule_id: S,
            per_user_limit: 4,
            remaining: 10,
            closed: None,
            seen_by: None,
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
            layout: None,
            grades: Vec::new(),
        }
    }

    fn req(user_id: i64, seats: &[i64], key: Option<&str>) -> HoldRequest {
        HoldRequest::seats(user_id, seats.to_vec(), key.map(str::to_owned))
    }

    fn best(user_id: i64, count: u32, grade: Option<&str>, key: Option<&str>) -> HoldRequest {
        HoldRequest {
            user_id,
            want: Want::BestAvailable {
                count,
                grade: grade.map(str::to_owned),
            },
            idempotency_key: key.map(str::to_owned),
            origin: Origin::Direct,
        }
    }

    /// The layout of the seats of schedule `S` in `seats`: rows of four, by id (seat `id`
    /// is number `(id - 1) % 4 + 1` of row `(id - 1) / 4`), rows alternating grades R and S.
    fn layout_of(seats: &HashMap<i64, SeatState>) -> (SeatLayout, Vec<String>) {
        let mut ids: Vec<i64> = seats
            .iter()
            .filter(|(_, s)| s.schedule_id == S)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        let mut b = crate::best_available::LayoutBuilder::new(vec![200, 100]);
        for id in ids {
            let row = (id - 1) / 4;
            b.seat(
                "Floor",
                &row.to_string(),
                ((id - 1) % 4 + 1) as i32,
                id,
                (row % 2) as usize,
                seats[&id].available,
            );
        }
        (b.finish(), vec!["R".into(), "S".into()])
    }

    fn with_layout(mut l: Loaded) -> Loaded {
        let (layout, grades) = layout_of(&l.seats);
        l.layout = Some(layout);
        l.grades = grades;
        l
    }

    fn claimed(d: &Decision) -> Vec<i64> {
        match d {
            Decision::Claim(seats) => seats.clone(),
            other => panic!("not a claim: {other:?}"),
        }
    }

    #[test]
    fn best_available_picks_share_the_batch_with_named_seats() {
        // Seats 1-4 are row 0 (R), 5-8 row 1 (S), 9-10 row 2 (R).
        let l = with_layout(loaded());
        let d = decide(
            &l,
            &[
                best(1, 2, None, None),      // front R row: 1-2 (2-3 would strand 1 and 4)
                req(2, &[2], None),          // taken by that pick
                req(2, &[4], None),          // a named seat the picker left
                best(2, 2, Some("Z"), None), // no such grade
                best(2, 0, None, None),      // nothing asked
                best(3, 2, None, None),      // over the limit (holds 3 of 4)
                best(2, 2, None, None),      // row 0 is gone: the next R block
                best(1, 2, Some("S"), None), // grade S: row 1, a block stranding nobody
                best(2, 2, Some("R"), None), // no R left
            ],
        );
        assert_eq!(claimed(&d[0]), [1, 2]);
        assert_eq!(code(&d[1]), Some("SEAT_UNAVAILABLE"));
        assert_eq!(claimed(&d[2]), [4]);
        assert_eq!(code(&d[3]), Some("BAD_USER_INPUT"));
        assert_eq!(code(&d[4]), Some("BAD_USER_INPUT"));
        assert_eq!(code(&d[5]), Some("LIMIT_EXCEEDED"));
        assert_eq!(claimed(&d[6]), [9, 10]);
        assert_eq!(claimed(&d[7]), [5, 6]);
        assert_eq!(code(&d[8]), Some("SEAT_UNAVAILABLE"));
    }

    #[test]
    fn a_best_available_key_replays_the_same_ask_only() {
        let mut l = with_layout(loaded());
        l.keys.insert(
            (1, "k".into()),
            KeyUse {
                reservation_id: 40,
                schedule_id: S,
                seat_ids: vec![6, 7],
                grade: Some("S".into()),
                fingerprint: None,
            },
        );
        let d = decide(
            &l,
            &[
                best(1, 2, Some("S"), Some("k")),
                best(1, 2, None, Some("k")),
                best(1, 3, Some("S"), Some("k")),
                best(1, 2, Some("R"), Some("k")),
                best(2, 1, None, Some("n")),
                best(2, 1, None, Some("n")),
                best(2, 2, None, Some("n")),
            ],
        );
        assert!(matches!(d[0], Decision::Replay(40)));
        assert!(matches!(d[1], Decision::Replay(40)));
        assert_eq!(code(&d[2]), Some("CONFLICT"));
        assert_eq!(code(&d[3]), Some("CONFLICT"));
        assert!(matches!(d[4], Decision::Claim(_)));
        assert!(matches!(d[5], Decision::SameAs(4)));
        assert_eq!(code(&d[6]), Some("CONFLICT"));
    }

    #[test]
    fn a_fingerprinted_key_answers_its_own_request_only() {
        // Seat 5 was held with key "k" by reserveSeats; it is grade S, so the older rule
        // (same count, same grade) would replay it to a best-available ask of one S seat.
        let first = req(1, &[5], Some("k"));
        let mut l = with_layout(loaded());
        l.keys.insert(
            (1, "k".into()),
            KeyUse {
                reservation_id: 60,
                schedule_id: S,
                seat_ids: vec![5],
                grade: Some("S".into()),
                fingerprint: Some(first.fingerprint(S)),
            },
        );
        let as_order = HoldRequest {
            origin: Origin::Order,
            ..req(1, &[5], Some("k"))
        };
        let d = decide(
            &l,
            &[
                req(1, &[5], Some("k")),
                best(1, 1, Some("S"), Some("k")),
                best(1, 1, None, Some("k")),
                as_order,
                req(1, &[6], Some("k")),
            ],
        );
        assert!(matches!(d[0], Decision::Replay(60)));
        for (i, d) in d.iter().enumerate().skip(1) {
            assert_eq!(code(d), Some("CONFLICT"), "request {i}");
        }
        // The same seats on another schedule, or another operation: other fingerprints.
        assert_ne!(first.fingerprint(S), first.fingerprint(S + 1));
        assert_ne!(
            best(1, 2, None, None).fingerprint(S),
            best(1, 2, Some("R"), None).fingerprint(S)
        );
        // Stable: a fingerprint stored by one build is compared by the next.
        assert_eq!(req(1, &[1, 2], None).fingerprint(7), 2_688_315_407_617_118_322);
    }

    #[test]
    fn a_draft_is_not_found_for_whoever_may_not_see_it() {
        let mut l = loaded();
        l.closed = Some("not on sale");
        l.seen_by = Some([2].into_iter().collect());
        l.keys.insert(
            (1, "k".into()),
            KeyUse {
                reservation_id: 5,
                schedule_id: 8,
                seat_ids: vec![99],
                grade: None,
                fingerprint: None,
            },
        );
        let d = decide(
            &l,
            &[
                req(1, &[1], None),
                req(1, &[1], Some("k")),
                best(3, 1, None, None),
                req(2, &[1], None),
                req(404, &[1], None),
            ],
        );
        assert_eq!(code(&d[0]), Some("NOT_FOUND"));
        assert_eq!(code(&d[1]), Some("NOT_FOUND"), "not even a key conflict");
        assert_eq!(code(&d[2]), Some("NOT_FOUND"));
        // Its host sees it, and that it is not on sale.
        assert_eq!(code(&d[3]), Some("CONFLICT"));
        assert_eq!(code(&d[4]), Some("UNAUTHENTICATED"));
    }

    #[test]
    fn best_available_on_a_full_house_is_sold_out() {
        let mut l = loaded();
        for s in l.seats.values_mut() {
            s.available = false;
        }
        l.remaining = 0;
        let d = decide(&with_layout(l), &[best(1, 1, None, None)]);
        assert_eq!(code(&d[0]), Some("SOLD_OUT"));
    }

    fn code(d: &Decision) -> Option<&'static str> {
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
                grade: None,
                fingerprint: None,
            },
        );
        l.keys.insert(
            (2, "before".into()),
            KeyUse {
                reservation_id: 51,
                schedule_id: S,
                seat_ids: vec![9],
                grade: None,
                fingerprint: None,
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
        assert!(matches!(d[0], Decision::Claim(_)));
        assert_eq!(code(&d[1]), Some("UNAUTHENTICATED"));
        assert_eq!(code(&d[2]), Some("CONFLICT"));
        assert_eq!(code(&d[3]), Some("BAD_USER_INPUT"));
        assert_eq!(code(&d[4]), Some("CONFLICT"));
        assert!(matches!(d[5], Decision::Replay(51)));
        assert_eq!(code(&d[6]), Some("SEAT_UNAVAILABLE"));
        assert_eq!(code(&d[7]), Some("LIMIT_EXCEEDED"));
        assert!(matches!(d[8], Decision::Claim(_)));
        assert!(matches!(d[9], Decision::SameAs(8)));
        assert_eq!(code(&d[10]), Some("CONFLICT"));
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
                grade: None,
                fingerprint: None,
            },
        );
        let d = decide(&l, &[req(1, &[1], Some("k")), req(2, &[2], None)]);
        assert!(matches!(d[0], Decision::Replay(5)));
        assert_eq!(code(&d[1]), Some("CONFLICT"));
    }

    #[test]
    fn nothing_left_is_sold_out() {
        let mut l = loaded();
        l.remaining = 1;
        let d = decide(&l, &[req(1, &[1], None), req(2, &[1], None)]);
        assert!(matches!(d[0], Decision::Claim(_)));
        assert_eq!(code(&d[1]), Some("SOLD_OUT"));
    }

    /// Random batches over a small world: 12 seats (some of another schedule, some taken),
    /// 5 users (one unknown), 3 keys, some already used.
    fn world() -> impl Strategy<Value = (Loaded, Vec<HoldRequest>)> {
        let seats = proptest::collection::vec((any::<bool>(), 0..10u8), 12);
        let users = proptest::collection::vec(0..4i64, 4);
        let used = proptest::collection::vec((1..=4i64, 0..3u8, any::<bool>(), 1..=12i64), 0..4);
        // A request names seats, or (third element) asks for the best `count` of a grade
        // (0: any, 1: R, 2: S, 3: one the schedule lacks).
        let request = (
            1..=5i64,
            proptest::collection::btree_set(1..=13i64, 1..4),
            proptest::option::of(0..3u8),
            proptest::option::weighted(0.4, (0..5u32, 0..4u8)),
            proptest::bool::weighted(0.2),
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
                    seen_by: None,
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
                            // Half of them made since fingerprints were stored, by a
                            // direct hold of that one seat.
                            let fingerprint = (seat % 2 == 0)
                                .then(|| HoldRequest::seats(user, vec![seat], None).fingerprint(schedule_id));
                            let k = KeyUse {
                                reservation_id: 1000 + seat,
                                schedule_id,
                                seat_ids: vec![seat],
                                grade: None,
                                fingerprint,
                            };
                            ((user, format!("k{key}")), k)
                        })
                        .collect(),
                    layout: None,
                    grades: Vec::new(),
                };
                let requests = requests
                    .into_iter()
                    .map(|(user_id, seats, key, ask, order)| {
                        let key = key.map(|k| format!("k{k}"));
                        let origin = if order { Origin::Order } else { Origin::Direct };
                        match ask {
                            None => HoldRequest {
                                origin,
                                ..HoldRequest::seats(user_id, seats.into_iter().collect(), key)
                            },
                            Some((count, grade)) => {
                                let grade = ["", "R", "S", "Z"][grade as usize];
                                let grade = (!grade.is_empty()).then(|| grade.to_owned());
                                HoldRequest {
                                    user_id,
                                    want: Want::BestAvailable { count, grade },
                                    idempotency_key: key,
                                    origin,
                                }
                            }
                        }
                    })
                    .collect();
                (with_layout(loaded), requests)
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
                    Decision::Claim(seats) => {
                        match &r.want {
                            Want::Seats(ids) => prop_assert_eq!(seats, ids),
                            Want::BestAvailable { count, grade } => {
                                // As many as asked, of one grade, the asked one if any
                                // (rows alternate R and S: row parity is the grade).
                                prop_assert_eq!(seats.len(), *count as usize);
                                let parity: HashSet<i64> = seats.iter().map(|id| (id - 1) / 4 % 2).collect();
                                prop_assert_eq!(parity.len(), 1);
                                if let Some(g) = grade {
                                    let want = if g == "R" { 0 } else { 1 };
                                    prop_assert!(parity.contains(&want));
                                }
                            }
                        }
                        // All or nothing: every seat of the request, each free, of this
                        // schedule, and no seat twice.
                        prop_assert!(loaded.closed.is_none());
                        prop_assert!(loaded.users.contains_key(&r.user_id));
                        for id in seats {
                            let s = loaded.seats.get(id);
                            prop_assert!(s.is_some_and(|s| s.available && s.schedule_id == S));
                            prop_assert!(claimed.insert(*id), "seat {} claimed twice", id);
                        }
                        *per_user.entry(r.user_id).or_default() += seats.len() as i64;
                    }
                    Decision::Replay(id) => {
                        let key = r.idempotency_key.clone().unwrap_or_default();
                        let used = loaded.keys.get(&(r.user_id, key));
                        prop_assert!(used.is_some_and(|u| u.reservation_id == *id && u.answers(r, S)));
                    }
                    Decision::SameAs(first) => {
                        prop_assert!(matches!(decisions[*first], Decision::Claim(_) | Decision::Refuse(_)));
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
                    if used.answers(r, S) {
                        prop_assert!(matches!(decisions[i], Decision::Replay(id) if id == used.reservation_id));
                    } else {
                        prop_assert!(matches!(&decisions[i], Decision::Refuse(e) if e.code() == "CONFLICT"));
                    }
                } else if let Some(&f) = first.get(&k) {
                    if requests[f].fingerprint(S) == r.fingerprint(S) {
                        prop_assert!(matches!(decisions[i], Decision::SameAs(x) if x == f));
                    } else {
                        prop_assert!(matches!(&decisions[i], Decision::Refuse(e) if e.code() == "CONFLICT"));
                    }
                } else {
                    first.insert(k, i);
                }
            }
        }
    }
}
