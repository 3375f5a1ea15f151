//! The scenarios of BENCH.md. Each makes its own data, drives the server, checks the
//! invariants in the database and returns its report.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use boxoffice::auth::Role;
use diesel_async::AsyncPgConnection;
use rand::{Rng as _, SeedableRng as _, rngs::SmallRng};
use serde_json::json;
use tokio::sync::watch;

use crate::{
    client::{self, Answer, Gql},
    cpu,
    report::{self, Report, Tally},
    sale::{self, Sale, SaleResult},
    server,
    setup::{self, Minter, Show, ShowSpec, User},
    workers,
};

/// Everything a scenario needs: the options, the HTTP client and the database.
pub struct Ctx {
    /// GraphQL endpoints (`http://127.0.0.1:PORT/graphql`), one per `--url`.
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub seats: usize,
    pub seconds: Option<u64>,
    pub users: Option<usize>,
    pub per_user_limit: u32,
    /// flash-sale: ask for best-available seats instead of naming them.
    pub best_available: bool,
    pub subscribers: usize,
    pub sampled_subscribers: usize,
    pub server_pid: Option<u32>,
    pub redis_url: String,
    pub redis_prefix: String,
    pub admit_per_second: u32,
    pub gql: Gql,
    pub db: AsyncPgConnection,
    pub minter: Minter,
    pub tag: String,
}

impl Ctx {
    pub(crate) fn endpoint(&self) -> &str {
        self.endpoints.first().map_or("", String::as_str)
    }

    fn seconds_or(&self, default: u64) -> Duration {
        Duration::from_secs(self.seconds.unwrap_or(default))
    }

    async fn host(&mut self) -> anyhow::Result<User> {
        let mut hosts = setup::users(&mut self.db, &self.minter, &self.tag, "host", 1, Role::Host).await?;
        hosts.pop().context("no host account was made")
    }

    pub(crate) async fn show(&mut self, seats: usize, queue: Option<(u32, u32)>) -> anyhow::Result<Show> {
        let host = self.host().await?;
        let started = Instant::now();
        let endpoint = self.endpoint().to_owned();
        let show = setup::show(
            &self.gql,
            &endpoint,
            &host.token,
            &ShowSpec {
                seats,
                per_user_limit: self.per_user_limit,
                queue,
            },
        )
        .await?;
        eprintln!(
            "bench: schedule {} with {} seats made in {:.1} s",
            show.schedule_id,
            show.seats.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(show)
    }

    pub(crate) async fn buyers(&mut self, kind: &str, n: usize) -> anyhow::Result<Vec<User>> {
        let started = Instant::now();
        let users = setup::users(&mut self.db, &self.minter, &self.tag, kind, n, Role::User).await?;
        eprintln!(
            "bench: {} users made and their tokens minted in {:.1} s",
            users.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(users)
    }

    /// I1-I7 (`boxoffice::invariants`) plus: the seats the answers said were held are the schedule's booking count,
    /// and no seat was claimed by two successful answers.
    pub(crate) async fn check_sale(
        &mut self,
        report: &mut Report,
        schedule_id: i64,
        res: &SaleResult,
    ) -> anyhow::Result<()> {
        let booked = setup::booked_count(&mut self.db, schedule_id).await?;
        report.set("booked_count", booked);
        if u64::try_from(booked).ok() != Some(res.seats_held) {
            report.violations.push(format!(
                "seats held by successful answers ({}) differ from the schedule's booking count ({booked})",
                res.seats_held
            ));
        }
        if !res.double_holds.is_empty() {
            report.violations.push(format!(
                "{} seats were held by two successful answers (e.g. seat {})",
                res.double_holds.len(),
                res.double_holds[0]
            ));
        }
        self.check(report).await
    }

    /// The server processes behind the endpoints (`--server-pid`, or whoever listens on
    /// each endpoint's port).
    pub(crate) fn server_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.server_pid.into_iter().collect();
        for e in &self.endpoints {
            if let Some(pid) = url::Url::parse(e)
                .ok()
                .and_then(|u| u.port_or_known_default())
                .and_then(server::pid_listening_on)
                && !pids.contains(&pid)
            {
                pids.push(pid);
            }
        }
        pids
    }

    async fn check(&mut self, report: &mut Report) -> anyhow::Result<()> {
        let started = Instant::now();
        let found = setup::invariants(&mut self.db).await?;
        report.violations.extend(found);
        eprintln!(
            "bench: invariants checked in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// Fills in what every booking scenario reports.
pub(crate) fn sale_report(report: &mut Report, res: SaleResult) -> SaleResult {
    let secs = res.elapsed.as_secs_f64().max(1e-9);
    report.attempts_per_s = res.attempts as f64 / secs;
    report.holds_per_s = res.seats_held as f64 / secs;
    let mut res = res;
    report.latencies_ms = std::mem::take(&mut res.tally.latencies_ms);
    report.errors = std::mem::take(&mut res.tally.errors);
    report.set("attempts", res.attempts);
    report.set("successful_holds", res.successes);
    report.set("seats_held", res.seats_held);
    report.set("elapsed_s", secs);
    report.finish();
    res
}

/// flash-sale (one endpoint) and two-instances (clients round-robin over two).
pub async fn flash_sale(ctx: &mut Ctx, name: &'static str) -> anyhow::Result<Report> {
    let show = ctx.show(ctx.seats, None).await?;
    let users = ctx.buyers(name, ctx.users.unwrap_or(ctx.seats)).await?;
    let sale = Sale {
        endpoints: ctx.endpoints.clone(),
        clients: ctx.clients,
        schedule_id: show.schedule_id,
        groups: vec![show.seats.clone()],
        users,
        per_user_limit: ctx.per_user_limit,
        deadline: ctx.seconds_or(60),
        record_acks: false,
        best_available: ctx.best_available,
    };
    eprintln!(
        "bench: {name}: {} clients, {} seats",
        ctx.clients,
        show.seats.len()
    );
    let servers = ctx.server_pids();
    let cpu_before = cpu::Snapshot::take(&servers);
    let res = sale::run(&ctx.gql, sale).await;
    let cpu = cpu_before.until(&cpu::Snapshot::take(&servers), res.seats_held, "seat");
    let mut report = Report::new(name, ctx.clients);
    let res = sale_report(&mut report, res);
    report.set("cpu", cpu);
    report.set("seats", show.seats.len());
    report.set("sold_out", res.all_held_at.is_some());
    report.set("sold_out_s", res.all_held_at.map(|d| d.as_secs_f64()));
    report.set("schedule_id", show.schedule_id);
    if ctx.endpoints.len() > 1 {
        report.set("urls", json!(ctx.endpoints));
        report.set("attempts_per_url", json!(res.attempts_per_endpoint));
    }
    ctx.check_sale(&mut report, show.schedule_id, &res).await?;
    let p99 = report.p(99.0);
    report.target("p99_ms", p99, 50.0, true);
    Ok(report)
}

/// hot-seats: every client wants the same ten seats; when those are all held, the next
/// ten, until `--seconds` (default 10) or the seats run out.
pub async fn hot_seats(ctx: &mut Ctx) -> anyhow::Result<Report> {
    const HOT: usize = 10;
    let show = ctx.show(ctx.seats, None).await?;
    let users = ctx.buyers("hot-seats", ctx.users.unwrap_or(ctx.seats)).await?;
    let groups: Vec<Vec<i64>> = show.seats.chunks(HOT).map(<[i64]>::to_vec).collect();
    let sale = Sale {
        endpoints: ctx.endpoints.clone(),
        clients: ctx.clients,
        schedule_id: show.schedule_id,
        groups,
        users,
        per_user_limit: ctx.per_user_limit,
        deadline: ctx.seconds_or(10),
        record_acks: false,
        best_available: false,
    };
    eprintln!(
        "bench: hot-seats: {} clients on {HOT} seats at a time",
        ctx.clients
    );
    let servers = ctx.server_pids();
    let cpu_before = cpu::Snapshot::take(&servers);
    let res = sale::run(&ctx.gql, sale).await;
    let cpu = cpu_before.until(&cpu::Snapshot::take(&servers), res.seats_held, "seat");
    let mut report = Report::new("hot-seats", ctx.clients);
    let res = sale_report(&mut report, res);
    report.set("cpu", cpu);
    report.set("hot_seats", HOT);
    report.set("rounds_done", res.groups_done);
    report.set(
        "rounds_per_s",
        res.groups_done as f64 / res.elapsed.as_secs_f64().max(1e-9),
    );
    report.set("schedule_id", show.schedule_id);
    ctx.check_sale(&mut report, show.schedule_id, &res).await?;
    let p99 = report.p(99.0);
    report.target("p99_ms", p99, 50.0, true);
    Ok(report)
}

/// The compact seat map (`seatMap`): what a client of a 20,000-seat venue reads.
const SEAT_MAP: &str = "query($s: ID!) { schedule(id: $s) { version capacity bookedCount availability { grade available } seatMap { version grades { name price color } rows { section row seats grade } idRuns statuses } } }";

/// seat-map: clients read the whole seat map of one schedule for `--seconds` (default 10).
pub async fn seat_map(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let show = ctx.show(ctx.seats, None).await?;
    let reader = ctx.buyers("seat-map", 1).await?;
    let token = reader.first().map(|u| u.token.clone()).unwrap_or_default();
    let endpoint = ctx.endpoint().to_owned();
    let body = client::body(SEAT_MAP, json!({ "s": show.schedule_id.to_string() }));
    let mut report = Report::new("seat-map", ctx.clients);

    // One full read, checked field by field, before the load.
    let (answer, _) = ctx.gql.post(&endpoint, Some(&token), body.clone()).await;
    match answer {
        Answer::Data(d) => {
            let n = d["schedule"]["seatMap"]["statuses"].as_str().map_or(0, str::len);
            if n != show.seats.len() {
                report.violations.push(format!(
                    "the seat map lists {n} seats, the layout has {}",
                    show.seats.len()
                ));
            }
        }
        Answer::Error(code) => anyhow::bail!("the seat map could not be read: {code}"),
    }

    let stop_at = Instant::now() + ctx.seconds_or(10);
    let servers = ctx.server_pids();
    let cpu_before = cpu::Snapshot::take(&servers);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..ctx.clients {
        let gql = ctx.gql.clone();
        let endpoint = endpoint.clone();
        let token = token.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut bytes = 0u64;
            while Instant::now() < stop_at {
                let (res, ms) = gql.post_raw(&endpoint, Some(&token), body.clone()).await;
                tally.latencies_ms.push(ms);
                match res {
                    Ok(b) if looks_like_a_seat_map(&b) => bytes += b.len() as u64,
                    Ok(b) => match client::parse(&b) {
                        Answer::Error(code) => tally.error(&code),
                        Answer::Data(_) => tally.error("BENCH_UNEXPECTED_ANSWER"),
                    },
                    Err(code) => {
                        tally.error(&code);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            (tally, bytes)
        }));
    }
    let mut tally = Tally::default();
    let mut bytes = 0u64;
    for t in tasks {
        let (t, b) = t.await.context("a seat-map client panicked")?;
        tally.merge(t);
        bytes += b;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let requests = tally.latencies_ms.len();
    let ok = requests as u64 - tally.errors.values().sum::<u64>();
    let cpu = cpu_before.until(&cpu::Snapshot::take(&servers), ok, "request");
    report.attempts_per_s = requests as f64 / secs;
    report.latencies_ms = tally.latencies_ms;
    report.errors = tally.errors;
    report.finish();
    report.set("seats", show.seats.len());
    report.set("requests", requests);
    report.set("requests_per_s", ok as f64 / secs);
    report.set(
        "kb_per_answer",
        if ok > 0 {
            bytes as f64 / ok as f64 / 1024.0
        } else {
            0.0
        },
    );
    report.set("mb_per_s", bytes as f64 / secs / 1_048_576.0);
    report.set("cpu", cpu);
    report.set("elapsed_s", secs);
    report.set("schedule_id", show.schedule_id);
    ctx.check(&mut report).await?;
    let rps = Some(ok as f64 / secs);
    report.target("requests_per_s", rps, 1000.0, false);
    let p99 = report.p(99.0);
    report.target("p99_ms", p99, 100.0, true);
    Ok(report)
}

/// A seat map answer without errors, judged without parsing every answer.
fn looks_like_a_seat_map(b: &[u8]) -> bool {
    let tail = &b[b.len().saturating_sub(256)..];
    b.starts_with(br#"{"data":{"schedule":{"#) && !tail.windows(9).any(|w| w == br#""errors":"#)
}

/// fan-out: `--subscribers` (default 5,000) WebSocket subscribers of one schedule while
/// a flash sale runs on it. Delivery lag per seat: arrival at a subscriber minus the
/// moment the HTTP answer acknowledged the hold (the commit happened before the answer,
/// so this overstates nothing; an event that beats the answer counts as 0).
///
/// The subscribers live in worker processes of at most 5,000 sockets each (`workers`): one
/// process may not hold 20,000 open files here. Each socket signs in as one of
/// `subscribers / 8` watchers (`WS_MAX_SOCKETS_PER_USER` is 10).
pub async fn fan_out(ctx: &mut Ctx) -> anyhow::Result<Report> {
    const SOCKETS_PER_WATCHER: usize = 8;
    let show = ctx.show(ctx.seats, None).await?;
    let users = ctx.buyers("fan-out", ctx.users.unwrap_or(ctx.seats)).await?;
    let watchers = ctx
        .buyers(
            "fan-out-watcher",
            ctx.subscribers.div_ceil(SOCKETS_PER_WATCHER).max(1),
        )
        .await?;
    let endpoint = ctx.endpoint().to_owned();
    let ws_url = endpoint.replacen("http://", "ws://", 1);

    let pid = ctx.server_pid.or_else(|| {
        url::Url::parse(&endpoint)
            .ok()
            .and_then(|u| u.port_or_known_default())
            .and_then(server::pid_listening_on)
    });
    let rss_idle = pid.and_then(server::rss_mb);
    let rss = pid.map(server::RssWatch::start);
    workers::wall_ns(Instant::now());

    // Subscribe everyone first, each up to its first event.
    let started = Instant::now();
    let tokens: Vec<String> = (0..ctx.subscribers)
        .map(|i| watchers[i % watchers.len()].token.clone())
        .collect();
    let every = (ctx.subscribers / ctx.sampled_subscribers.max(1)).max(1);
    let sampled: HashSet<usize> = (0..ctx.subscribers).step_by(every).collect();
    let jobs = workers::jobs(&ws_url, show.schedule_id, tokens, &sampled);
    let mut running = Vec::with_capacity(jobs.len());
    for job in &jobs {
        running.push(workers::Worker::spawn(job).await?);
    }
    let (mut subscribed, mut client_rss) = (0u64, 0.0f64);
    for w in &mut running {
        let (ok, _failed, rss) = w.ready().await?;
        subscribed += ok;
        client_rss += rss;
    }
    let subscribe_s = started.elapsed().as_secs_f64();
    let rss_subscribed = pid.and_then(server::rss_mb);
    eprintln!(
        "bench: fan-out: {subscribed} of {} subscribers in {subscribe_s:.1} s over {} worker processes ({client_rss:.0} MB); flash sale with {} clients",
        ctx.subscribers,
        running.len(),
        ctx.clients
    );

    let sale = Sale {
        endpoints: vec![endpoint.clone()],
        clients: ctx.clients,
        schedule_id: show.schedule_id,
        groups: vec![show.seats.clone()],
        users,
        per_user_limit: ctx.per_user_limit,
        deadline: ctx.seconds_or(60),
        record_acks: true,
        best_available: false,
    };
    let servers = ctx.server_pids();
    let cpu_before = cpu::Snapshot::take(&servers);
    let res = sale::run(&ctx.gql, sale).await;
    let cpu = cpu_before.until(&cpu::Snapshot::take(&servers), res.seats_held, "seat");
    // Let the last coalesced events reach everyone: at 15,000 sockets on a busy machine
    // delivery took up to 2.6 s, and a seat still on its way when the subscribers stop
    // would count as missed.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut report = Report::new("fan-out", ctx.clients);
    let mut res = sale_report(&mut report, res);
    let acks: Vec<(i64, i128)> = std::mem::take(&mut res.acks)
        .into_iter()
        .map(|(seat, at)| (seat, workers::wall_ns(at)))
        .collect();
    let mut seen = workers::Outcome::default();
    for w in running {
        seen.merge(w.finish(&acks).await?);
    }
    let mut lags = std::mem::take(&mut seen.lags_ms);
    report::sort(&mut lags);
    let lag = |p| report::percentile(&lags, p).map(report::round2);
    report.set("seats", show.seats.len());
    report.set("sold_out_s", res.all_held_at.map(|d| d.as_secs_f64()));
    report.set("subscribers", ctx.subscribers);
    report.set("subscribers_ok", seen.ok);
    report.set("subscribers_failed", json!(seen.failures));
    report.set("subscribe_s", subscribe_s);
    report.set("worker_processes", jobs.len());
    report.set("client_rss_mb", client_rss);
    report.set("sampled_subscribers", seen.sampled_ok);
    report.set("delivery_samples", lags.len());
    report.set("delivery_p50_ms", lag(50.0));
    report.set("delivery_p95_ms", lag(95.0));
    report.set("delivery_p99_ms", lag(99.0));
    report.set("delivery_max_ms", lags.last().copied().map(report::round2));
    report.set("events_total", seen.events_total);
    report.set("events_per_subscriber_min", seen.events_min);
    report.set("event_mb_total", seen.bytes_total as f64 / 1_048_576.0);
    report.set("resyncs", seen.resyncs);
    report.set("cpu", cpu);
    report.set("missed_deliveries", seen.missed);
    report.set("server_pid", pid);
    report.set("server_rss_idle_mb", rss_idle);
    report.set("server_rss_subscribed_mb", rss_subscribed);
    report.set("server_rss_mb", rss.as_ref().and_then(server::RssWatch::peak_mb));
    report.set("schedule_id", show.schedule_id);
    if seen.missed > 0 {
        report.violations.push(format!(
            "{} seat changes never reached a sampled subscriber that was not told to resync",
            seen.missed
        ));
    }
    if !seen.failures.is_empty() {
        let n: u64 = seen.failures.values().sum();
        report.errors.insert("WS_SUBSCRIBER_FAILED".into(), n);
    }
    ctx.check_sale(&mut report, show.schedule_id, &res).await?;
    let p99 = lag(99.0);
    report.target("delivery_p99_ms", p99, 250.0, true);
    let peak = rss.as_ref().and_then(server::RssWatch::peak_mb);
    report.target("server_rss_mb", peak, 600.0, true);
    Ok(report)
}

const ENTER: &str = "mutation($s: ID!) { enterQueue(scheduleId: $s) { state position ahead } }";
const STATUS: &str = "query($s: ID!) { queueStatus(scheduleId: $s) { state position admitted } }";

/// queue: `--users` (default 50,000) enter a schedule's waiting queue as fast as the
/// clients can; then for `--seconds` (default 10) the clients read positions while the
/// admitted count is sampled in Redis, to compare the admission rate with the setting.
pub async fn queue(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let rate = ctx.admit_per_second;
    let show = ctx.show(100, Some((rate, 100_000))).await?;
    let users = Arc::new(ctx.buyers("queue", ctx.users.unwrap_or(50_000)).await?);
    let endpoint = ctx.endpoint().to_owned();
    let schedule = show.schedule_id.to_string();
    let mut report = Report::new("queue", ctx.clients);

    // Phase 1: everyone enters, once.
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(120);
    let mut tasks = Vec::new();
    for _ in 0..ctx.clients {
        let (gql, endpoint, users, next) = (ctx.gql.clone(), endpoint.clone(), users.clone(), next.clone());
        let body = client::body(ENTER, json!({ "s": schedule }));
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut entered = 0u64;
            while Instant::now() < stop_at {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(u) = users.get(i) else { break };
                let (answer, ms) = gql.post(&endpoint, Some(&u.token), body.clone()).await;
                tally.latencies_ms.push(ms);
                match answer {
                    Answer::Data(d) => match d["enterQueue"]["state"].as_str() {
                        Some("WAITING" | "ADMITTED") => entered += 1,
                        other => tally.error(&format!("BENCH_STATE_{}", other.unwrap_or("NONE"))),
                    },
                    Answer::Error(code) => tally.error(&code),
                }
            }
            (tally, entered)
        }));
    }
    let mut enter = Tally::default();
    let mut entered = 0u64;
    for t in tasks {
        let (t, n) = t.await.context("a queue client panicked")?;
        enter.merge(t);
        entered += n;
    }
    let enter_s = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!("bench: queue: {entered} entered in {enter_s:.1} s; reading positions");

    // Phase 2: position reads, and the admitted count sampled in Redis.
    let redis = redis::Client::open(ctx.redis_url.as_str()).context("--redis-url")?;
    let mut kv = redis
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;
    let active_key = format!("{}{{s:{}}}:active", ctx.redis_prefix, show.schedule_id);
    let waiting_key = format!("{}{{s:{}}}:waiting", ctx.redis_prefix, show.schedule_id);
    let window = ctx.seconds_or(10);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = {
        let mut kv = kv.clone();
        let key = active_key.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut samples: Vec<(Instant, i64)> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let n: redis::RedisResult<i64> = redis::cmd("ZCARD").arg(&key).query_async(&mut kv).await;
                if let Ok(n) = n {
                    samples.push((Instant::now(), n));
                }
            }
            samples
        })
    };
    let started = Instant::now();
    let stop_at = started + window;
    let entered_users = next.load(Ordering::Relaxed).min(users.len());
    let mut tasks = Vec::new();
    for c in 0..ctx.clients {
        let (gql, endpoint, users) = (ctx.gql.clone(), endpoint.clone(), users.clone());
        let body = client::body(STATUS, json!({ "s": schedule }));
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(c as u64);
            let mut tally = Tally::default();
            while Instant::now() < stop_at && entered_users > 0 {
                let u = &users[rng.random_range(0..entered_users)];
                let (answer, ms) = gql.post(&endpoint, Some(&u.token), body.clone()).await;
                tally.latencies_ms.push(ms);
                match answer {
                    Answer::Data(d) if d["queueStatus"]["state"].is_string() => {}
                    Answer::Data(_) => tally.error("BENCH_NO_STATE"),
                    Answer::Error(code) => tally.error(&code),
                }
            }
            tally
        }));
    }
    let mut reads = Tally::default();
    for t in tasks {
        reads.merge(t.await.context("a queue client panicked")?);
    }
    let reads_s = started.elapsed().as_secs_f64().max(1e-9);
    stop_tx.send_replace(true);
    let samples = sampler.await.context("the Redis sampler panicked")?;
    let waiting_left: i64 = redis::cmd("ZCARD")
        .arg(&waiting_key)
        .query_async(&mut kv)
        .await
        .context("reading the waiting count")?;

    let admitted_per_s = match (samples.first(), samples.last()) {
        (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
            Some((n1 - n0) as f64 / t1.duration_since(*t0).as_secs_f64())
        }
        _ => None,
    };
    let error_pct = admitted_per_s.map(|a| (a - f64::from(rate)).abs() / f64::from(rate) * 100.0);

    report::sort(&mut reads.latencies_ms);
    let read_errors: u64 = reads.errors.values().sum();
    let reads_n = reads.latencies_ms.len();
    report.attempts_per_s = enter.latencies_ms.len() as f64 / enter_s;
    report.latencies_ms = std::mem::take(&mut enter.latencies_ms);
    report.errors = std::mem::take(&mut enter.errors);
    for (code, n) in &reads.errors {
        *report.errors.entry(format!("status:{code}")).or_default() += n;
    }
    report.finish();
    report.set("users", users.len());
    report.set("entered", entered);
    report.set("enter_s", enter_s);
    report.set("enters_per_s", entered as f64 / enter_s);
    report.set("reads", reads_n);
    report.set("reads_per_s", (reads_n as u64 - read_errors) as f64 / reads_s);
    report.set("read_p50_ms", report::percentile(&reads.latencies_ms, 50.0));
    report.set("read_p99_ms", report::percentile(&reads.latencies_ms, 99.0));
    report.set("configured_rate", rate);
    report.set("admitted_per_s", admitted_per_s);
    report.set(
        "admitted_per_s_sampled_over_s",
        match (samples.first(), samples.last()) {
            (Some((t0, _)), Some((t1, _))) => t1.duration_since(*t0).as_secs_f64(),
            _ => 0.0,
        },
    );
    report.set("admitted_total", samples.last().map(|s| s.1));
    report.set("admission_error_pct", error_pct);
    report.set("waiting_at_end", waiting_left);
    report.set("schedule_id", show.schedule_id);
    if waiting_left == 0 {
        report
            .targets
            .push("the queue ran dry during the window: the admission rate is a lower bound".into());
    }
    ctx.check(&mut report).await?;
    let eps = Some(entered as f64 / enter_s);
    report.target("enters_per_s", eps, 10_000.0, false);
    report.target("admission_error_pct", error_pct, 5.0, true);
    Ok(report)
}
