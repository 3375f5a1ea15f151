//! The booking load: `clients` tasks that each hold 1 to `per_user_limit` random seats per
//! attempt through `reserveSeats`, until every seat is held or time runs out.
//!
//! Seats are offered in groups (flash-sale: one group of every seat; hot-seats: groups of
//! ten, one after the other). Clients pick among the seats of the current group that no
//! successful answer has claimed yet. Two clients can pick the same seat while both
//! requests are in flight, so collisions happen as they do with real buyers looking at a
//! seat map a moment old, and they grow as the group fills up. When every seat of a group
//! is held, the next group is offered.
//!
//! A user keeps trying until one attempt succeeds (a failed hold holds nothing), then the
//! client moves on to a fresh user: nobody ever reaches the per-user limit, so a
//! LIMIT_EXCEEDED is a server error, not noise.
//!
//! With `best_available` (`--best-available`), clients name no seats: each attempt asks
//! `reserveBestAvailable` for 1 to 4 seats (at most the per-user limit) and the server
//! chooses them; the seats it answers are recorded as claimed, so double holds and the
//! sell-out time are measured the same way.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use rand::{Rng as _, SeedableRng as _, rngs::SmallRng};
use serde_json::json;

use crate::{
    client::{self, Answer, Gql},
    report::Tally,
    setup::User,
};

const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id seatCount } }";
const BEST: &str =
    "mutation($i: BestAvailableInput!) { reserveBestAvailable(input: $i) { id seatCount seats { id } } }";

pub struct Sale {
    /// GraphQL endpoints; client `i` uses `endpoints[i % len]`.
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub schedule_id: i64,
    pub groups: Vec<Vec<i64>>,
    pub users: Vec<User>,
    pub per_user_limit: u32,
    pub deadline: Duration,
    /// Keep the instant each seat's hold was acknowledged (for delivery lag).
    pub record_acks: bool,
    /// Ask for best-available seats instead of naming them.
    pub best_available: bool,
}

pub struct SaleResult {
    pub tally: Tally,
    pub attempts: u64,
    pub successes: u64,
    pub seats_held: u64,
    pub elapsed: Duration,
    /// When the last seat of the last group was acknowledged, if it was.
    pub all_held_at: Option<Duration>,
    /// Groups whose every seat was held.
    pub groups_done: usize,
    /// Seats that two successful answers both claimed.
    pub double_holds: Vec<i64>,
    /// (seat, when its hold was acknowledged), if asked for.
    pub acks: Vec<(i64, Instant)>,
    pub attempts_per_endpoint: Vec<u64>,
}

struct Pool {
    groups: Vec<Vec<i64>>,
    inner: Mutex<PoolInner>,
}

struct PoolInner {
    group: usize,
    /// Seats of the current group not claimed by a successful answer.
    free: Vec<i64>,
    /// Index of each free seat in `free`.
    pos: HashMap<i64, usize>,
    held: HashSet<i64>,
    double: Vec<i64>,
    all_held_at: Option<Instant>,
}

impl Pool {
    fn new(groups: Vec<Vec<i64>>) -> Self {
        let mut inner = PoolInner {
            group: 0,
            free: Vec::new(),
            pos: HashMap::new(),
            held: HashSet::new(),
            double: Vec::new(),
            all_held_at: None,
        };
        if let Some(first) = groups.first() {
            inner.offer(first);
        }
        Self {
            groups,
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Up to `want` distinct seats of the current group, or `None` when all are held.
    fn pick(&self, want: usize, rng: &mut SmallRng) -> Option<(usize, Vec<i64>)> {
        let mut p = self.lock();
        while p.free.is_empty() {
            let next = p.group + 1;
            let seats = self.groups.get(next)?;
            p.group = next;
            p.offer(seats);
        }
        let k = want.min(p.free.len());
        let seats = rand::seq::index::sample(rng, p.free.len(), k)
            .into_iter()
            .map(|i| p.free[i])
            .collect();
        Some((p.group, seats))
    }

    /// A successful answer claimed `seats`.
    fn claimed(&self, seats: &[i64], at: Instant) {
        let mut p = self.lock();
        for &s in seats {
            if !p.held.insert(s) {
                p.double.push(s);
            }
            if let Some(i) = p.pos.remove(&s) {
                p.free.swap_remove(i);
                if let Some(&moved) = p.free.get(i) {
                    p.pos.insert(moved, i);
                }
            }
        }
        if p.free.is_empty() && p.group + 1 == self.groups.len() && p.all_held_at.is_none() {
            p.all_held_at = Some(at);
        }
    }

    fn groups_done(&self) -> usize {
        let p = self.lock();
        if p.free.is_empty() { p.group + 1 } else { p.group }
    }
}

impl PoolInner {
    fn offer(&mut self, seats: &[i64]) {
        self.free = seats.iter().copied().filter(|s| !self.held.contains(s)).collect();
        self.pos = self.free.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    }
}

struct ClientResult {
    tally: Tally,
    attempts: u64,
    successes: u64,
    seats_held: u64,
    acks: Vec<(i64, Instant)>,
    endpoint: usize,
}

pub async fn run(gql: &Gql, sale: Sale) -> SaleResult {
    let Sale {
        endpoints,
        clients,
        schedule_id,
        groups,
        users,
        per_user_limit,
        deadline,
        record_acks,
        best_available,
    } = sale;
    let pool = Arc::new(Pool::new(groups));
    let users = Arc::new(users);
    let next_user = Arc::new(AtomicUsize::new(0));
    let endpoints = Arc::new(endpoints);
    let started = Instant::now();
    let stop_at = started + deadline;
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let gql = gql.clone();
        let pool = pool.clone();
        let users = users.clone();
        let next_user = next_user.clone();
        let endpoints = endpoints.clone();
        tasks.push(tokio::spawn(async move {
            let endpoint = c % endpoints.len().max(1);
            let url = endpoints.get(endpoint).cloned().unwrap_or_default();
            let mut rng = SmallRng::seed_from_u64(c as u64 ^ 0x5eed);
            let mut r = ClientResult {
                tally: Tally::default(),
                attempts: 0,
                successes: 0,
                seats_held: 0,
                acks: Vec::new(),
                endpoint,
            };
            let mut user: Option<usize> = None;
            while Instant::now() < stop_at {
                let u = match user {
                    Some(u) => u,
                    None => {
                        let u = next_user.fetch_add(1, Ordering::Relaxed);
                        if u >= users.len() {
                            r.tally.error("BENCH_OUT_OF_USERS");
                            break;
                        }
                        user = Some(u);
                        u
                    }
                };
                let most = if best_available {
                    per_user_limit.clamp(1, 4)
                } else {
                    per_user_limit.max(1)
                };
                let want = rng.random_range(1..=most) as usize;
                let Some((_group, mut seats)) = pool.pick(want, &mut rng) else {
                    break;
                };
                let body = if best_available {
                    // The server chooses: the pick above only says whether seats are left.
                    client::body(
                        BEST,
                        json!({ "i": { "scheduleId": schedule_id.to_string(), "count": want } }),
                    )
                } else {
                    let ids: Vec<String> = seats.iter().map(i64::to_string).collect();
                    client::body(
                        RESERVE,
                        json!({ "i": { "scheduleId": schedule_id.to_string(), "seatIds": ids } }),
                    )
                };
                let (answer, ms) = gql.post(&url, Some(&users[u].token), body).await;
                r.attempts += 1;
                r.tally.latencies_ms.push(ms);
                match answer {
                    Answer::Data(data) => {
                        let at = Instant::now();
                        let field = if best_available {
                            "reserveBestAvailable"
                        } else {
                            "reserveSeats"
                        };
                        if best_available {
                            // The seats the server chose; as many as asked, or a wrong count.
                            seats = data[field]["seats"]
                                .as_array()
                                .map(|s| s.iter().filter_map(|s| s["id"].as_str()?.parse().ok()).collect())
                                .unwrap_or_default();
                            if seats.len() != want {
                                r.tally.error("BENCH_WRONG_SEAT_COUNT");
                            }
                        }
                        let count = data[field]["seatCount"].as_u64().unwrap_or(0);
                        if count != seats.len() as u64 {
                            r.tally.error("BENCH_WRONG_SEAT_COUNT");
                        }
                        pool.claimed(&seats, at);
                        if record_acks {
                            r.acks.extend(seats.iter().map(|&s| (s, at)));
                        }
                        r.successes += 1;
                        r.seats_held += seats.len() as u64;
                        user = None;
                    }
                    Answer::Error(code) => {
                        r.tally.error(&code);
                        match code.as_str() {
                            "SEAT_UNAVAILABLE" => {}
                            // Nothing is left at all: this buyer goes home.
                            "SOLD_OUT" => break,
                            // The outcome is unknown (the hold may have been made), or the
                            // user is somehow at the limit: take a fresh user, and back off
                            // a little so a failing server is not spun against.
                            _ => {
                                user = None;
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        }
                    }
                }
            }
            r
        }));
    }
    let mut out = SaleResult {
        tally: Tally::default(),
        attempts: 0,
        successes: 0,
        seats_held: 0,
        elapsed: Duration::ZERO,
        all_held_at: None,
        groups_done: 0,
        double_holds: Vec::new(),
        acks: Vec::new(),
        attempts_per_endpoint: vec![0; endpoints.len()],
    };
    for t in tasks {
        match t.await {
            Ok(r) => {
                out.tally.merge(r.tally);
                out.attempts += r.attempts;
                out.successes += r.successes;
                out.seats_held += r.seats_held;
                out.acks.extend(r.acks);
                if let Some(n) = out.attempts_per_endpoint.get_mut(r.endpoint) {
                    *n += r.attempts;
                }
            }
            Err(_) => out.tally.error("BENCH_CLIENT_PANICKED"),
        }
    }
    out.elapsed = started.elapsed();
    out.groups_done = pool.groups_done();
    let p = pool.lock();
    out.all_held_at = p.all_held_at.map(|at| at.duration_since(started));
    out.double_holds = p.double.clone();
    out
}
