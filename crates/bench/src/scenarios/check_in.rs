//! check-in: the door of a sold-out show. `--seats` (20,000) tickets are bought through the
//! API (hold, then pay: payment issues the signed tickets), the show's doors are opened,
//! and `--gates` (8) gates scan every ticket once, plus a second scan of every 20th ticket
//! at the next gate (a fan trying twice, or two gates at once) and a forged code for every
//! 100th (one character altered: the signature fails). `--clients` lanes share the gates and
//! scan as fast as the server answers, for at most `--seconds` (120).
//!
//! What must hold: every ticket ADMITTED exactly once whatever gate or order, every repeat
//! ALREADY_USED, every forgery INVALID, the database agreeing (tickets USED, one admission
//! each) and the invariants. The signature check alone is timed here too, on the same codes,
//! with the keys the server publishes (`ticketKeys`): what a scan costs before any database.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use anyhow::Context as _;
use boxoffice::auth::Role;
use boxoffice_ticket_codes::{KeyId, KeyRing};
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Text},
};
use diesel_async::RunQueryDsl as _;
use rand::{SeedableRng as _, rngs::SmallRng, seq::SliceRandom as _};
use serde_json::{Value, json};

use super::Ctx;
use crate::{
    client::{self, Answer},
    cpu,
    report::{Report, Tally},
};

const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }";
const PAY: &str =
    "mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id } }";
const SCANNER: &str = "mutation($s: ID!, $n: String!) { createScanner(scheduleId: $s, name: $n) { token } }";
const CHECK_IN: &str = "mutation($i: CheckInInput!) { checkIn(input: $i) { status ticket { id } } }";
const KEYS: &str = "{ ticketKeys { keyId publicKey } }";

/// Every `REPEAT_EVERY`th ticket is scanned a second time, every `FORGE_EVERY`th forged.
const REPEAT_EVERY: usize = 20;
const FORGE_EVERY: usize = 100;
/// A stadium's entrance: 60,000 people through the doors in the 90 minutes before the show.
const STADIUM_SCANS_PER_S: f64 = 60_000.0 / (90.0 * 60.0);

#[derive(QueryableByName)]
struct TicketCode {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    code: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    First,
    Repeat,
    Forged,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::Repeat => "repeat",
            Self::Forged => "forged",
        }
    }
}

struct Scan {
    ticket_id: i64,
    code: String,
    gate: usize,
    kind: Kind,
}

/// What the lanes saw: answers by kind and status, admissions per ticket.
#[derive(Default)]
struct Seen {
    statuses: HashMap<(&'static str, String), u64>,
    admitted: HashMap<i64, u32>,
}

pub async fn check_in(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let gates = ctx.gates.max(1);
    let show = ctx.show(ctx.seats, None).await?;
    let endpoint = ctx.endpoint().to_owned();
    let sold = Instant::now();
    let bought = buy_everything(ctx, show.schedule_id, &show.seats).await?;
    eprintln!(
        "bench: check-in: {bought} seats bought and ticketed in {:.1} s",
        sold.elapsed().as_secs_f64()
    );

    // The doors open: the show starts in an hour (as the test suite does it).
    diesel::sql_query(
        "UPDATE schedules SET starts_at = now() + interval '1 hour',
                sales_close_at = now() + interval '30 minutes' WHERE id = $1",
    )
    .bind::<BigInt, _>(show.schedule_id)
    .execute(&mut ctx.db)
    .await
    .context("opening the doors")?;
    let tickets: Vec<TicketCode> = diesel::sql_query(
        "SELECT id, code FROM tickets WHERE schedule_id = $1 AND status = 'valid' ORDER BY id",
    )
    .bind::<BigInt, _>(show.schedule_id)
    .load(&mut ctx.db)
    .await
    .context("reading the tickets")?;
    anyhow::ensure!(
        tickets.len() == show.seats.len(),
        "{} tickets for {} seats sold",
        tickets.len(),
        show.seats.len()
    );
    let verify_us = signature_check_alone(ctx, &endpoint, &tickets).await?;

    // An admin may create scanners for any show (a host only for their own).
    let admin = crate::setup::users(&mut ctx.db, &ctx.minter, &ctx.tag, "door", 1, Role::Admin)
        .await?
        .pop()
        .context("no admin was made")?;
    let host = admin.token;
    let mut scanners = Vec::with_capacity(gates);
    for g in 0..gates {
        let made = ctx
            .gql
            .ok(
                &endpoint,
                Some(&host),
                SCANNER,
                json!({ "s": show.schedule_id.to_string(), "n": format!("Gate {g}") }),
            )
            .await?;
        scanners.push(
            made["createScanner"]["token"]
                .as_str()
                .context("createScanner answered no token")?
                .to_owned(),
        );
    }

    let plan = Arc::new(plan(&tickets, gates));
    let (repeats, forged) = (
        plan.iter().filter(|s| s.kind == Kind::Repeat).count(),
        plan.iter().filter(|s| s.kind == Kind::Forged).count(),
    );
    eprintln!(
        "bench: check-in: {} scans ({} tickets, {repeats} repeats, {forged} forgeries) at {gates} gates by {} lanes",
        plan.len(),
        tickets.len(),
        ctx.clients
    );
    let next = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let scanners = Arc::new(scanners);
    let schedule = show.schedule_id.to_string();
    let stop_at = Instant::now() + ctx.seconds_or(120);
    let servers = ctx.server_pids();
    let cpu_before = cpu::Snapshot::take(&servers);
    let started = Instant::now();
    // Each gate is a device of its own: its own client address (127.0.0.10, .11, ...), so
    // the gates do not share one address's budget of token-less requests (a scanner
    // token is not an account's: the edge counts it with the anonymous requests of its
    // address, ANONYMOUS_RATE_PER_SECOND).
    let gate_clients = (0..gates)
        .map(|g| {
            let last = u8::try_from(10 + g).context("at most 245 gates")?;
            client::Gql::from(
                ctx.clients.div_ceil(gates),
                Some(std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, last))),
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let gate_clients = Arc::new(gate_clients);
    // Paced: scan i is due at start + i / rate, whichever lane takes it, so the lanes
    // together keep the rate and a slow answer does not delay the scans after it.
    let pace =
        (ctx.scan_rate > 0).then(|| std::time::Duration::from_secs_f64(1.0 / f64::from(ctx.scan_rate)));
    let mut lanes = Vec::with_capacity(ctx.clients);
    for _ in 0..ctx.clients {
        let (gql, endpoint, plan, next, seen, scanners, schedule) = (
            gate_clients.clone(),
            endpoint.clone(),
            plan.clone(),
            next.clone(),
            seen.clone(),
            scanners.clone(),
            schedule.clone(),
        );
        lanes.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < stop_at {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(scan) = plan.get(i) else { break };
                if let Some(pace) = pace {
                    let due = started + pace.mul_f64(i as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let body = client::body(
                    CHECK_IN,
                    json!({ "i": { "code": scan.code, "scheduleId": schedule,
                                   "gate": format!("Gate {}", scan.gate), "nonce": format!("bench-{i}") } }),
                );
                let (answer, ms) = gql[scan.gate]
                    .post(&endpoint, Some(&scanners[scan.gate]), body)
                    .await;
                tally.latencies_ms.push(ms);
                match answer {
                    Answer::Data(d) => record(&seen, scan, &d["checkIn"]),
                    Answer::Error(code) => tally.error(&code),
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for lane in lanes {
        tally.merge(lane.await.context("a check-in lane panicked")?);
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let scans = tally.latencies_ms.len();
    let cpu = cpu_before.until(&cpu::Snapshot::take(&servers), scans as u64, "scan");

    let mut report = Report::new("check-in", ctx.clients);
    report.attempts_per_s = scans as f64 / secs;
    report.latencies_ms = tally.latencies_ms;
    report.errors = tally.errors;
    report.finish();
    report.set("tickets", tickets.len());
    report.set("gates", gates);
    report.set("scans", scans);
    report.set("scans_per_s", scans as f64 / secs);
    // 0: flat out (no pacing).
    report.set("scan_rate_asked", ctx.scan_rate);
    report.set("stadium_scans_per_s", STADIUM_SCANS_PER_S);
    report.set("signature_check_us", verify_us);
    report.set("cpu", cpu);
    report.set("elapsed_s", secs);
    report.set("schedule_id", show.schedule_id);
    if scans < plan.len() {
        report.violations.push(format!(
            "only {scans} of {} scans were made in time: the door did not keep up",
            plan.len()
        ));
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
    judge(&mut report, &seen, &tickets, forged);
    let used = crate::setup::count(
        &mut ctx.db,
        &format!(
            "SELECT count(*) AS n FROM tickets WHERE schedule_id = {} AND status = 'used'",
            show.schedule_id
        ),
    )
    .await?;
    if usize::try_from(used).ok() != Some(tickets.len()) {
        report.violations.push(format!(
            "{used} tickets are USED in the database, {} were sold",
            tickets.len()
        ));
    }
    ctx.check(&mut report).await?;
    let p99 = report.p(99.0);
    report.target("p99_ms", p99, 50.0, true);
    report.target(
        "scans_per_s",
        Some(scans as f64 / secs),
        crate::report::round2(STADIUM_SCANS_PER_S),
        false,
    );
    Ok(report)
}

/// Every seat bought: users of `per_user_limit` seats each, given points with SQL (a ledger
/// adjustment, so I3 holds), then `reserveSeats` and `payReservation` through the API.
async fn buy_everything(ctx: &mut Ctx, schedule_id: i64, seats: &[i64]) -> anyhow::Result<usize> {
    let per = (ctx.per_user_limit as usize).max(1);
    let users = ctx.buyers("check-in", seats.len().div_ceil(per)).await?;
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    diesel::sql_query(
        "WITH credited AS (UPDATE users SET points = points + 1000000000 WHERE id = ANY($1) RETURNING id, points)
         INSERT INTO point_ledger (user_id, kind, amount, balance_after, reason)
         SELECT id, 'adjustment', 1000000000, points, 'bench check-in' FROM credited",
    )
    .bind::<diesel::sql_types::Array<BigInt>, _>(&ids)
    .execute(&mut ctx.db)
    .await
    .context("giving the buyers points")?;
    let orders: Arc<Vec<(String, Vec<String>)>> = Arc::new(
        users
            .iter()
            .zip(seats.chunks(per))
            .map(|(u, s)| (u.token.clone(), s.iter().map(ToString::to_string).collect()))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let endpoint = ctx.endpoint().to_owned();
    let schedule = schedule_id.to_string();
    let mut tasks = Vec::new();
    for _ in 0..ctx.clients {
        let (gql, endpoint, orders, next, schedule) = (
            ctx.gql.clone(),
            endpoint.clone(),
            orders.clone(),
            next.clone(),
            schedule.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut bought = 0;
            while let Some((token, seat_ids)) = orders.get(next.fetch_add(1, Ordering::Relaxed)) {
                let held = gql
                    .ok(
                        &endpoint,
                        Some(token),
                        RESERVE,
                        json!({ "i": { "scheduleId": schedule, "seatIds": seat_ids } }),
                    )
                    .await?;
                let id = held["reserveSeats"]["id"]
                    .as_str()
                    .context("reserveSeats answered no id")?;
                gql.ok(
                    &endpoint,
                    Some(token),
                    PAY,
                    json!({ "r": id, "k": format!("bench-pay-{id}") }),
                )
                .await?;
                bought += seat_ids.len();
            }
            anyhow::Ok(bought)
        }));
    }
    let mut bought = 0;
    for t in tasks {
        bought += t.await.context("a buyer panicked")??;
    }
    Ok(bought)
}

/// Microseconds to verify one code's signature with the published keys, on this thread.
async fn signature_check_alone(ctx: &Ctx, endpoint: &str, tickets: &[TicketCode]) -> anyhow::Result<f64> {
    let keys = ctx.gql.ok(endpoint, None, KEYS, json!({})).await?;
    let mut ring = KeyRing::new();
    for k in keys["ticketKeys"]
        .as_array()
        .context("ticketKeys is not a list")?
    {
        let id = k["keyId"].as_u64().context("a key without keyId")?;
        let public = k["publicKey"].as_str().context("a key without publicKey")?;
        ring.insert_text(KeyId(u32::try_from(id)?), public, None)
            .context("a published key does not parse")?;
    }
    let now = chrono::Utc::now();
    let started = Instant::now();
    for t in tickets {
        ring.verify(&t.code, now)
            .map_err(|e| anyhow::anyhow!("ticket {} does not verify with the published keys: {e:?}", t.id))?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / tickets.len().max(1) as f64)
}

/// The scans in the order the door sees them: every ticket once at a gate, the repeats at
/// the next gate and the forgeries, shuffled together (a fixed seed: runs are comparable).
fn plan(tickets: &[TicketCode], gates: usize) -> Vec<Scan> {
    let mut plan =
        Vec::with_capacity(tickets.len() + tickets.len() / REPEAT_EVERY + tickets.len() / FORGE_EVERY);
    for (i, t) in tickets.iter().enumerate() {
        let gate = i % gates;
        plan.push(Scan {
            ticket_id: t.id,
            code: t.code.clone(),
            gate,
            kind: Kind::First,
        });
        if i % REPEAT_EVERY == 0 {
            plan.push(Scan {
                ticket_id: t.id,
                code: t.code.clone(),
                gate: (gate + 1) % gates,
                kind: Kind::Repeat,
            });
        }
        if i % FORGE_EVERY == 0 {
            plan.push(Scan {
                ticket_id: t.id,
                code: forged(&t.code),
                gate,
                kind: Kind::Forged,
            });
        }
    }
    plan.shuffle(&mut SmallRng::seed_from_u64(23));
    plan
}

/// One character of the signature part changed: still well-formed, no longer signed.
fn forged(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    let at = chars.len().saturating_sub(5);
    if let Some(c) = chars.get_mut(at) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    chars.into_iter().collect()
}

fn record(seen: &Mutex<Seen>, scan: &Scan, answer: &Value) {
    let status = answer["status"].as_str().unwrap_or("NO_STATUS").to_owned();
    let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    if status == "ADMITTED" {
        *seen.admitted.entry(scan.ticket_id).or_default() += 1;
    }
    *seen.statuses.entry((scan.kind.name(), status)).or_default() += 1;
}

/// Exactly one admission per ticket; a forgery is never anything but INVALID; a repeat or
/// a first scan is ADMITTED or ALREADY_USED and nothing else.
fn judge(report: &mut Report, seen: &Seen, tickets: &[TicketCode], forged: usize) {
    let never = tickets
        .iter()
        .filter(|t| !seen.admitted.contains_key(&t.id))
        .count();
    let twice = seen.admitted.values().filter(|&&n| n > 1).count();
    if never > 0 {
        report
            .violations
            .push(format!("{never} tickets were never admitted"));
    }
    if twice > 0 {
        report
            .violations
            .push(format!("{twice} tickets were admitted more than once"));
    }
    let mut by_status = serde_json::Map::new();
    for ((kind, status), n) in &seen.statuses {
        by_status.insert(format!("{kind}:{status}"), json!(n));
        let expected = match *kind {
            "forged" => status == "INVALID",
            _ => status == "ADMITTED" || status == "ALREADY_USED",
        };
        if !expected {
            report
                .violations
                .push(format!("{n} {kind} scans answered {status}"));
        }
    }
    let invalid = seen
        .statuses
        .get(&(Kind::Forged.name(), "INVALID".to_owned()))
        .copied();
    if invalid.unwrap_or(0) != forged as u64 {
        report.violations.push(format!(
            "{} of {forged} forgeries were answered INVALID",
            invalid.unwrap_or(0)
        ));
    }
    report.set("answers", Value::Object(by_status));
}
