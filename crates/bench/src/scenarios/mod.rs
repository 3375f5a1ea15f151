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
    receiver::Receiver,
    report::{self, Report, Tally},
    sale::{self, Sale, SaleResult},
    scrape, server,
    setup::{self, Minter, Show, ShowSpec, User},
    workers,
};

mod check_in;
mod fan_out;
pub mod multi_sale;
mod queue;
mod seat_map_http;
mod soak;

pub use check_in::check_in;
pub use fan_out::fan_out;
pub use multi_sale::multi_sale;
pub use queue::queue;
pub use seat_map_http::seat_map_http;
pub use soak::soak;

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
    /// multi-sale: schedules on sale at once.
    pub schedules: usize,
    /// soak: length in minutes, operations per second, and the figures' window.
    pub minutes: u64,
    pub rate: u32,
    pub window_seconds: u64,
    pub sampled_subscribers: usize,
    pub server_pid: Option<u32>,
    pub redis_url: String,
    pub redis_prefix: String,
    pub admit_per_second: u32,
    /// check-in: gates, each with its own scanner.
    pub gates: usize,
    /// check-in: scans per second over all gates (0: flat out).
    pub scan_rate: u32,
    /// flash-sale: a webhook receiver subscribed to `reservation.held` during the sale.
    pub webhook: bool,
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

    /// A new host account (each call its own: a run may make several shows).
    async fn host(&mut self) -> anyhow::Result<User> {
        static HOSTS: AtomicUsize = AtomicUsize::new(0);
        let kind = match HOSTS.fetch_add(1, Ordering::Relaxed) {
            0 => "host".to_owned(),
            n => format!("host{n}"),
        };
        let mut hosts = setup::users(&mut self.db, &self.minter, &self.tag, &kind, 1, Role::Host).await?;
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
                hold_seconds: 3600,
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

    /// A webhook receiver subscribed, as an admin, to every concert's `reservation.held`.
    async fn webhook_receiver(&mut self) -> anyhow::Result<Receiver> {
        let admin = setup::users(&mut self.db, &self.minter, &self.tag, "hooks", 1, Role::Admin)
            .await?
            .pop()
            .context("no admin was made")?;
        let receiver = Receiver::start().await?;
        let endpoint = self.endpoint().to_owned();
        receiver
            .subscribe(&self.gql, &endpoint, &admin.token, &["reservation.held"])
            .await?;
        eprintln!("bench: webhook receiver at {}", receiver.url);
        Ok(receiver)
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
    let receiver = match ctx.webhook {
        true => Some(ctx.webhook_receiver().await?),
        false => None,
    };
    let servers = ctx.server_pids();
    let cpu_before = cpu::Snapshot::take(&servers);
    let res = sale::run(&ctx.gql, sale).await;
    let cpu = cpu_before.until(&cpu::Snapshot::take(&servers), res.seats_held, "seat");
    let mut report = Report::new(name, ctx.clients);
    let res = sale_report(&mut report, res);
    report.set("cpu", cpu);
    report.set("webhook", ctx.webhook);
    if let Some(receiver) = receiver {
        receiver
            .settle(&mut report, res.successes, Duration::from_secs(120))
            .await;
    }
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
