//! soak: `--minutes` (20) of mixed traffic at `--rate` operations per second (set it to
//! about half of what this mix does flat out: `scripts/bench soak` measures that first), with figures every
//! `--window-seconds` (60) and pass/fail against issue 28's bounds.
//!
//! The traffic, per operation drawn (weights in [`MIX`]): browsing concerts, a schedule's
//! counts, the compact seat map over GraphQL, the seat map over HTTP revalidated with
//! `If-None-Match`, holds (best available or a random named seat) of which some are paid,
//! some cancelled and the rest left to expire (holds last 30 s), the waiting queue
//! (`enterQueue` then `queueStatus` on a queued schedule), a buyer's reservations; and
//! `--subscribers` (500) `seatChanges` sockets over the schedules, each reconnecting after
//! 30 to 90 s.
//!
//! Per window: the server's RSS (the median of a reading every 5 s, and the highest),
//! operations/s, p99 of all operations and of holds, errors other than business refusals,
//! PostgreSQL's dead tuples (`pg_stat_user_tables`) and Redis's `used_memory`. After a
//! warm-up of two windows: RSS grows at most 10 %, the p99 of the last third of windows is
//! at most 1.2x the first third's, no error other than a business refusal, dead tuples at
//! the end under the point where autovacuum starts (summed over the tables: autovacuum
//! keeps up), and Redis memory is bounded: it has stopped growing (at most 10 %
//! over the last third of the windows). Redis memory does grow at first, and by design: the
//! `events` stream keeps the newest `EVENTS_STREAM_MAX_LEN` events (per window:
//! `events_stream_len`), so it grows until that cap and stays there; its growth against the
//! warm-up is reported, not judged.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use rand::{Rng as _, SeedableRng as _, rngs::SmallRng};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::Ctx;
use crate::{
    client::{self, Answer, Gql},
    report::{self, Report},
    server, setup, ws,
};

/// How often the server's RSS is read; a window reports the median of its readings.
const RSS_EVERY: Duration = Duration::from_secs(5);

/// Dead tuples at which autovacuum starts, per table (`autovacuum_vacuum_threshold` plus
/// `autovacuum_vacuum_scale_factor` times its live rows; no table of ours sets its own),
/// summed over the tables.
const VACUUM_TRIGGER: &str = "SELECT coalesce(sum(current_setting('autovacuum_vacuum_threshold')::bigint
    + current_setting('autovacuum_vacuum_scale_factor')::float8 * n_live_tup), 0)::bigint AS n
  FROM pg_stat_user_tables";

/// Schedules on sale without a queue; one more is behind a queue.
const SCHEDULES: usize = 4;
const HOLD_SECONDS: u32 = 30;

#[derive(Clone, Copy, Debug)]
enum Op {
    Browse,
    Counts,
    MapGraphql,
    MapHttp,
    Hold,
    Queue,
    Mine,
}

/// Operation weights (out of their sum).
const MIX: [(Op, u32); 7] = [
    (Op::Browse, 15),
    (Op::Counts, 10),
    (Op::MapGraphql, 5),
    (Op::MapHttp, 20),
    (Op::Hold, 35),
    (Op::Queue, 10),
    (Op::Mine, 5),
];

/// Refusals a buyer meets in a busy sale: not server errors.
const BUSINESS: [&str; 7] = [
    "SEAT_UNAVAILABLE",
    "SOLD_OUT",
    "LIMIT_EXCEEDED",
    "HOLD_EXPIRED",
    "QUEUE_REQUIRED",
    "INSUFFICIENT_POINTS",
    "CONFLICT",
];

const BROWSE: &str =
    "query { concerts(first: 20) { edges { node { id title schedules { id remainingSeats } } } } }";
const COUNTS: &str = "query($s: ID!) { schedule(id: $s) { id version remainingSeats availability { grade available held sold } } }";
const MAP: &str = "query($s: ID!) { schedule(id: $s) { seatMap { version grades { name price color } rows { section row seats grade } idRuns statuses } } }";
const BEST: &str = "mutation($i: BestAvailableInput!) { reserveBestAvailable(input: $i) { id } }";
const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }";
const PAY: &str =
    "mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id status } }";
const CANCEL: &str = "mutation($r: ID!) { cancelReservation(reservationId: $r) { id status } }";
const ENTER: &str = "mutation($s: ID!) { enterQueue(scheduleId: $s) { state } }";
const STATUS: &str = "query($s: ID!) { queueStatus(scheduleId: $s) { state position } }";
const MINE: &str = "query { myReservations(first: 10) { edges { node { id status } } } }";

/// What the clients measured in the current window.
#[derive(Default)]
struct Acc {
    latencies_ms: Vec<f64>,
    hold_ms: Vec<f64>,
    ops: u64,
    refusals: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
}

struct Shared {
    gql: Gql,
    endpoint: String,
    base: String,
    schedules: Vec<(i64, Vec<i64>)>,
    queued: i64,
    buyers: Vec<setup::User>,
    queuers: Vec<setup::User>,
    next_buyer: AtomicUsize,
    next_queuer: AtomicUsize,
    acc: Mutex<Acc>,
}

impl Shared {
    fn acc(&self) -> std::sync::MutexGuard<'_, Acc> {
        self.acc.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, ms: f64, hold: bool, outcome: Result<(), String>) {
        let mut a = self.acc();
        a.ops += 1;
        a.latencies_ms.push(ms);
        if hold {
            a.hold_ms.push(ms);
        }
        if let Err(code) = outcome {
            let into = if BUSINESS.contains(&code.as_str()) {
                &mut a.refusals
            } else {
                &mut a.errors
            };
            *into.entry(code).or_default() += 1;
        }
    }

    /// A GraphQL request, measured and recorded; its `data` on success.
    async fn gql(&self, token: Option<&str>, query: &str, variables: Value, hold: bool) -> Option<Value> {
        let (answer, ms) = self
            .gql
            .post(&self.endpoint, token, client::body(query, variables))
            .await;
        match answer {
            Answer::Data(d) => {
                self.record(ms, hold, Ok(()));
                Some(d)
            }
            Answer::Error(code) => {
                self.record(ms, hold, Err(code));
                None
            }
        }
    }
}

/// One window's figures.
struct Window {
    rss_mb: Option<f64>,
    ops_per_s: f64,
    p99_ms: Option<f64>,
    hold_p99_ms: Option<f64>,
    errors: u64,
    dead_tuples: i64,
    /// Dead tuples at which autovacuum would have started on every table, summed.
    vacuum_trigger: i64,
    redis_used_mb: Option<f64>,
    events_stream_len: Option<i64>,
}

pub async fn soak(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let length = ctx
        .seconds
        .map_or(Duration::from_secs(ctx.minutes * 60), Duration::from_secs);
    let window = Duration::from_secs(ctx.window_seconds).min(length);
    let shared = Arc::new(prepare(ctx).await?);
    let server = ctx.server_pids().first().copied();
    let redis = redis::Client::open(ctx.redis_url.as_str()).context("--redis-url")?;
    let mut kv = redis
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;

    let (stop_tx, stop) = watch::channel(false);
    let ws_events = Arc::new(ws::Counters::default());
    let ws_failures = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let ws_url = format!("{}/graphql", shared.base.replacen("http", "ws", 1));
    for i in 0..ctx.subscribers {
        let schedule = shared.schedules[i % shared.schedules.len()].0;
        let token = shared.buyers[i % shared.buyers.len()].token.clone();
        tasks.push(tokio::spawn(watcher(
            ws_url.clone(),
            token,
            schedule,
            i as u64,
            ws_events.clone(),
            ws_failures.clone(),
            stop.clone(),
        )));
    }
    let period = Duration::from_secs_f64(ctx.clients as f64 / f64::from(ctx.rate));
    for c in 0..ctx.clients {
        tasks.push(tokio::spawn(client(
            shared.clone(),
            c as u64,
            period,
            stop.clone(),
        )));
    }
    eprintln!(
        "bench: soak: {} clients at {} operations/s, {} subscribers, for {} s, figures every {} s",
        ctx.clients,
        ctx.rate,
        ctx.subscribers,
        length.as_secs(),
        window.as_secs()
    );

    let started = Instant::now();
    let mut windows: Vec<Window> = Vec::new();
    let mut all_errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut all_refusals: BTreeMap<String, u64> = BTreeMap::new();
    let mut all_latencies: Vec<f64> = Vec::new();
    let mut table: Vec<Value> = Vec::new();
    while started.elapsed() + Duration::from_millis(100) < length {
        let until = (started + window * (windows.len() as u32 + 1)).min(started + length);
        // RSS every few seconds, the window's median reported: one reading at the window's
        // end catches whatever burst is in flight (sockets reconnecting, a stall's queue),
        // and one high reading would then count as growth.
        let mut rss = Vec::new();
        loop {
            let now = Instant::now();
            if now >= until {
                break;
            }
            tokio::time::sleep_until((now + RSS_EVERY).min(until).into()).await;
            rss.extend(server.and_then(server::rss_mb));
        }
        report::sort(&mut rss);
        let acc = std::mem::take(&mut *shared.acc());
        let secs = window.as_secs_f64();
        let mut lat = acc.latencies_ms;
        let mut holds = acc.hold_ms;
        report::sort(&mut lat);
        report::sort(&mut holds);
        let errors: u64 = acc.errors.values().sum();
        let w = Window {
            rss_mb: report::percentile(&rss, 50.0),
            ops_per_s: acc.ops as f64 / secs,
            p99_ms: report::percentile(&lat, 99.0),
            hold_p99_ms: report::percentile(&holds, 99.0),
            errors,
            dead_tuples: setup::count(
                &mut ctx.db,
                "SELECT coalesce(sum(n_dead_tup), 0)::bigint AS n FROM pg_stat_user_tables",
            )
            .await?,
            vacuum_trigger: setup::count(&mut ctx.db, VACUUM_TRIGGER).await?,
            redis_used_mb: redis_used_mb(&mut kv).await,
            events_stream_len: redis::cmd("XLEN")
                .arg(format!("{}{}", ctx.redis_prefix, boxoffice::events::STREAM))
                .query_async(&mut kv)
                .await
                .ok(),
        };
        let row = json!({
            "window": windows.len() + 1,
            "at_s": report::round2(started.elapsed().as_secs_f64()),
            "rss_mb": w.rss_mb.map(report::round2),
            "rss_max_mb": rss.last().copied().map(report::round2),
            "ops_per_s": report::round2(w.ops_per_s),
            "p99_ms": w.p99_ms.map(report::round2),
            "hold_p99_ms": w.hold_p99_ms.map(report::round2),
            "errors": acc.errors,
            "refusals": acc.refusals.values().sum::<u64>(),
            "dead_tuples": w.dead_tuples,
            "vacuum_trigger": w.vacuum_trigger,
            "redis_used_mb": w.redis_used_mb.map(report::round2),
            "events_stream_len": w.events_stream_len,
            "ws_events": ws_events.events.swap(0, Ordering::Relaxed),
        });
        eprintln!("bench: soak: {row}");
        table.push(row);
        for (k, v) in acc.errors {
            *all_errors.entry(k).or_default() += v;
        }
        for (k, v) in acc.refusals {
            *all_refusals.entry(k).or_default() += v;
        }
        all_latencies.extend(lat);
        windows.push(w);
    }
    stop_tx.send_replace(true);
    for t in tasks {
        let _ = t.await;
    }

    let mut report = Report::new("soak", ctx.clients);
    report.attempts_per_s = windows.iter().map(|w| w.ops_per_s).sum::<f64>() / windows.len().max(1) as f64;
    report.latencies_ms = all_latencies;
    report.errors = all_errors.clone();
    report.finish();
    report.set("rate", ctx.rate);
    report.set("subscribers", ctx.subscribers);
    report.set("window_s", window.as_secs());
    report.set("refusals", json!(all_refusals));
    report.set("ws_failures", ws_failures.load(Ordering::Relaxed));
    report.set("windows", Value::Array(table));
    judge(&mut report, &windows);
    ctx.check(&mut report).await?;
    Ok(report)
}

/// The bounds of issue 28, after a warm-up of two windows (one if the run has fewer than
/// four).
fn judge(report: &mut Report, windows: &[Window]) {
    let warm = if windows.len() >= 4 { 2 } else { 1 };
    let Some(base) = windows.get(warm - 1) else {
        report.target("soak", None, 0.0, true);
        return;
    };
    let after = &windows[warm..];
    let growth = |now: Option<f64>, then: Option<f64>| match (now, then) {
        (Some(n), Some(t)) if t > 0.0 => Some(n / t),
        _ => None,
    };
    let max_rss = after
        .iter()
        .filter_map(|w| w.rss_mb)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    report.target("rss_growth", growth(max_rss, base.rss_mb), 1.10, true);
    let third = after.len().div_ceil(3).max(1);
    let median = |ws: &[Window]| {
        let mut v: Vec<f64> = ws.iter().filter_map(|w| w.p99_ms).collect();
        report::sort(&mut v);
        report::percentile(&v, 50.0)
    };
    let (first, last) = if after.is_empty() {
        (None, None)
    } else {
        (
            median(&after[..third.min(after.len())]),
            median(&after[after.len().saturating_sub(third)..]),
        )
    };
    report.target("p99_drift", growth(last, first), 1.20, true);
    let errors: u64 = windows.iter().map(|w| w.errors).sum();
    report.target("errors_other_than_refusals", Some(errors as f64), 0.0, true);
    // Autovacuum keeps up when the tables' dead tuples stay under the point where it starts
    // on each (its threshold plus its scale factor times the live rows): that point grows
    // with the tables, so a bound fixed at minute 2 judged the reservations the soak adds,
    // not the vacuum. Summed over the tables, which do not all peak at once.
    let dead_last = after.last().map(|w| w.dead_tuples as f64);
    let dead_bound = after.last().map_or(10_000, |w| w.vacuum_trigger.max(10_000));
    report.target("dead_tuples_last", dead_last, dead_bound as f64, true);
    report.set("dead_tuples_twice_warm_up", (2 * base.dead_tuples).max(10_000));
    let max_redis = after
        .iter()
        .filter_map(|w| w.redis_used_mb)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    report.set(
        "redis_memory_growth_since_warm_up",
        growth(max_redis, base.redis_used_mb).map(report::round2),
    );
    // Bounded: the last third of the run grows no more, whatever it took to get there.
    let last_third = &after[after.len().saturating_sub(third)..];
    let redis_span = last_third
        .iter()
        .filter_map(|w| w.redis_used_mb)
        .fold(None, |m, x| match m {
            None => Some((x, x)),
            Some((lo, hi)) => Some((f64::min(lo, x), f64::max(hi, x))),
        });
    report.target(
        "redis_memory_growth_last_third",
        redis_span.and_then(|(lo, hi)| growth(Some(hi), Some(lo))),
        1.10,
        true,
    );
    let hold_p99: Vec<f64> = windows.iter().filter_map(|w| w.hold_p99_ms).collect();
    report.set(
        "hold_p99_ms_by_window",
        json!(hold_p99.iter().map(|x| report::round2(*x)).collect::<Vec<_>>()),
    );
    let passed = report.targets.iter().all(|t| t.contains(": met"));
    report.set("soak_passed", passed);
}

async fn redis_used_mb(kv: &mut redis::aio::MultiplexedConnection) -> Option<f64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(kv).await.ok()?;
    let bytes: f64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))?
        .trim()
        .parse()
        .ok()?;
    Some(bytes / 1_048_576.0)
}

/// The schedules, the buyers (with points to pay) and the queuers.
async fn prepare(ctx: &mut Ctx) -> anyhow::Result<Shared> {
    let host = ctx.host().await?;
    let endpoint = ctx.endpoint().to_owned();
    let mut schedules = Vec::new();
    for i in 0..=SCHEDULES {
        let queue = (i == SCHEDULES).then_some((ctx.admit_per_second, 1_000));
        let seats = if queue.is_some() {
            ctx.seats.min(1_000)
        } else {
            ctx.seats
        };
        let show = setup::show(
            &ctx.gql,
            &endpoint,
            &host.token,
            &setup::ShowSpec {
                seats,
                per_user_limit: ctx.per_user_limit,
                queue,
                hold_seconds: HOLD_SECONDS,
            },
        )
        .await?;
        schedules.push((show.schedule_id, show.seats));
    }
    let (queued, _) = schedules.pop().context("no queued schedule")?;
    let buyers = ctx.buyers("soak", ctx.users.unwrap_or(20_000)).await?;
    setup::fund(&mut ctx.db, &buyers, 1_000_000).await?;
    let queuers = ctx.buyers("soak-queue", 5_000).await?;
    eprintln!(
        "bench: soak: {SCHEDULES} schedules of {} seats and a queued one",
        ctx.seats
    );
    Ok(Shared {
        gql: ctx.gql.clone(),
        base: endpoint.trim_end_matches("/graphql").to_owned(),
        endpoint,
        schedules,
        queued,
        buyers,
        queuers,
        next_buyer: AtomicUsize::new(0),
        next_queuer: AtomicUsize::new(0),
        acc: Mutex::default(),
    })
}

/// One client: an operation every `period`, drawn from [`MIX`].
async fn client(shared: Arc<Shared>, seed: u64, period: Duration, stop: watch::Receiver<bool>) {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x50a4);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The tag of each schedule's map this client holds.
    let mut tags: BTreeMap<i64, String> = BTreeMap::new();
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    while !*stop.borrow() {
        tick.tick().await;
        let (schedule, seats) = &shared.schedules[rng.random_range(0..shared.schedules.len())];
        let s = schedule.to_string();
        let mut pick = rng.random_range(0..total);
        let op = MIX
            .iter()
            .find(|(_, w)| {
                let hit = pick < *w;
                pick = pick.saturating_sub(*w);
                hit
            })
            .map_or(Op::Browse, |(op, _)| *op);
        match op {
            Op::Browse => {
                shared.gql(None, BROWSE, json!({}), false).await;
            }
            Op::Counts => {
                shared.gql(None, COUNTS, json!({ "s": s }), false).await;
            }
            Op::MapGraphql => {
                shared.gql(None, MAP, json!({ "s": s }), false).await;
            }
            Op::MapHttp => {
                let url = format!("{}/schedules/{s}/seat-map", shared.base);
                let (res, ms) = shared.gql.get(&url, tags.get(schedule).map(String::as_str)).await;
                let outcome = match res {
                    Ok(got) if got.status == 200 || got.status == 304 => {
                        if let Some(tag) = got.etag {
                            tags.insert(*schedule, tag);
                        }
                        Ok(())
                    }
                    Ok(got) => Err(format!("HTTP_{}", got.status)),
                    Err(code) => Err(code),
                };
                shared.record(ms, false, outcome);
            }
            Op::Hold => hold(&shared, &mut rng, &s, seats).await,
            Op::Queue => {
                let u = shared.next_queuer.fetch_add(1, Ordering::Relaxed) % shared.queuers.len();
                let token = Some(shared.queuers[u].token.as_str());
                let q = json!({ "s": shared.queued.to_string() });
                if shared.gql(token, ENTER, q.clone(), false).await.is_some() {
                    shared.gql(token, STATUS, q, false).await;
                }
            }
            Op::Mine => {
                let u = rng.random_range(0..shared.buyers.len());
                shared
                    .gql(Some(&shared.buyers[u].token), MINE, json!({}), false)
                    .await;
            }
        }
    }
}

/// A hold by the next buyer; then pay (30 %), cancel (40 %) or leave it to expire.
async fn hold(shared: &Shared, rng: &mut SmallRng, s: &str, seats: &[i64]) {
    let u = shared.next_buyer.fetch_add(1, Ordering::Relaxed) % shared.buyers.len();
    let token = Some(shared.buyers[u].token.as_str());
    let (query, vars, field) = if rng.random_bool(0.7) {
        (
            BEST,
            json!({ "i": { "scheduleId": s, "count": rng.random_range(1..=2) } }),
            "reserveBestAvailable",
        )
    } else {
        let seat = seats[rng.random_range(0..seats.len())].to_string();
        (
            RESERVE,
            json!({ "i": { "scheduleId": s, "seatIds": [seat] } }),
            "reserveSeats",
        )
    };
    let Some(data) = shared.gql(token, query, vars, true).await else {
        return;
    };
    let Some(id) = data[field]["id"].as_str().map(str::to_owned) else {
        return;
    };
    let roll = rng.random_range(0..10);
    if roll < 3 {
        let key = format!("soak-{id}");
        shared.gql(token, PAY, json!({ "r": id, "k": key }), false).await;
    } else if roll < 7 {
        shared.gql(token, CANCEL, json!({ "r": id }), false).await;
    }
}

/// A `seatChanges` socket that reconnects after 30 to 90 s, until `stop`.
async fn watcher(
    ws_url: String,
    token: String,
    schedule: i64,
    seed: u64,
    counters: Arc<ws::Counters>,
    failures: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x3a7c);
    // Spread the connections over the first seconds.
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..3_000))).await;
    while !*stop.borrow() {
        let socket = match ws::subscribe(&ws_url, &token, schedule).await {
            Ok(s) => s,
            Err(_) => {
                failures.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (end_tx, end) = watch::channel(false);
        let life = Duration::from_secs(rng.random_range(30..=90));
        let mut outer = stop.clone();
        let timer = tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(life) => {}
                _ = outer.wait_for(|s| *s) => {}
            }
            end_tx.send_replace(true);
        });
        let seen = ws::listen(socket, false, counters.clone(), end).await;
        timer.abort();
        if seen.failure.is_some() && !*stop.borrow() {
            failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}
