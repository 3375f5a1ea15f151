//! abuse: a flash sale while attackers work against the server, compared with the same
//! sale on a quiet server in the same run.
//!
//! The attack, for the whole second sale:
//! - `ATTACKERS` signed-in clients (so the anonymous rate limit does not stop them) send,
//!   back to back, the costliest query the default limits accept: the full `seats` list
//!   of the sale's schedule and its compact seat map (estimated cost about 8,500 of
//!   50,000, seats read 4 × 20,000 + 20,000 = the whole budget of 100,000);
//! - `STALLED` TCP connections send half a request's headers and stop, and as many send
//!   headers announcing a body they never finish; each is reopened as soon as the server
//!   drops it;
//! - `SILENT` WebSockets connect and never send `connection_init`, reopened when closed.
//!
//! Reported: the legitimate p99 of both sales and their ratio (target <= 2), the server's
//! peak RSS (target <= 500 MB), what the attackers got back by code, and how many stalled
//! connections and silent sockets the server cut off.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::{
    client::{self, Answer},
    report::Report,
    sale::{self, Sale},
    scenarios::Ctx,
    server,
};

const ATTACKERS: usize = 16;
const STALLED: usize = 300;
const SILENT: usize = 200;

/// The costliest query the default limits accept, against the sale's own schedule.
const COSTLY: &str = "query($s: ID!) { a: schedule(id: $s) { seats { id section row number grade price status } } b: schedule(id: $s) { availability { grade available held sold } seatMap { version grades { name price color } rows { section row seats grade } idRuns statuses } } }";

pub async fn abuse(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let seconds = ctx.seconds.unwrap_or(20);
    let endpoint = ctx.endpoint().to_owned();
    let port = url::Url::parse(&endpoint)?.port_or_known_default().unwrap_or(80);
    let pid = ctx.server_pid.or_else(|| server::pid_listening_on(port));
    let rss_idle = pid.and_then(server::rss_mb);

    // The quiet sale.
    let quiet_show = ctx.show(ctx.seats, None).await?;
    let quiet_users = ctx.buyers("abuse-quiet", ctx.users.unwrap_or(ctx.seats)).await?;
    eprintln!("bench: abuse: quiet sale for {seconds} s");
    let quiet = sale::run(
        &ctx.gql,
        sale_of(
            ctx,
            quiet_show.schedule_id,
            quiet_show.seats,
            quiet_users,
            seconds,
        ),
    )
    .await;
    let mut quiet_report = Report::new("abuse-quiet", ctx.clients);
    quiet_report.latencies_ms = quiet.tally.latencies_ms.clone();
    quiet_report.finish();

    // The attacked sale, with accounts of its own (a new tag: the host's email is made
    // from it).
    ctx.tag = format!("{}-attacked", ctx.tag);
    let show = ctx.show(ctx.seats, None).await?;
    let users = ctx.buyers("abuse-sale", ctx.users.unwrap_or(ctx.seats)).await?;
    let attackers = ctx.buyers("abuse-attacker", ATTACKERS).await?;
    let rss = pid.map(server::RssWatch::start);
    let stop = Arc::new(AtomicBool::new(false));
    let codes: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let cut = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let body = client::body(COSTLY, json!({ "s": show.schedule_id.to_string() }));
    for attacker in attackers {
        let (gql, endpoint, body, stop, codes) = (
            ctx.gql.clone(),
            endpoint.clone(),
            body.clone(),
            stop.clone(),
            codes.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (answer, _) = gql.post(&endpoint, Some(&attacker.token), body.clone()).await;
                let code = match answer {
                    Answer::Data(_) => "ok".to_owned(),
                    Answer::Error(code) => code,
                };
                *codes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(code)
                    .or_default() += 1;
            }
        }));
    }
    let addr = format!("127.0.0.1:{port}");
    for i in 0..STALLED * 2 {
        // Half stall in the headers, half in the body.
        let partial: &'static [u8] = if i % 2 == 0 {
            b"POST /graphql HTTP/1.1\r\nHost: x\r\n"
        } else {
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"query\":"
        };
        tasks.push(tokio::spawn(hold(
            addr.clone(),
            partial,
            stop.clone(),
            cut.clone(),
        )));
    }
    for _ in 0..SILENT {
        tasks.push(tokio::spawn(hold(
            addr.clone(),
            b"GET /graphql HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n",
            stop.clone(),
            cut.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!(
        "bench: abuse: attacked sale for {seconds} s ({ATTACKERS} costly-query clients, {} stalled connections, {SILENT} silent sockets)",
        STALLED * 2
    );
    let attacked = sale::run(
        &ctx.gql,
        sale_of(ctx, show.schedule_id, show.seats.clone(), users, seconds),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }

    let mut report = Report::new("abuse", ctx.clients);
    let attacked = crate::scenarios::sale_report(&mut report, attacked);
    let quiet_p99 = quiet_report.p(99.0);
    let p99 = report.p(99.0);
    report.set("quiet_p99_ms", quiet_p99);
    report.set("quiet_attempts", quiet.attempts);
    let ratio = match (p99, quiet_p99) {
        (Some(a), Some(q)) if q > 0.0 => Some(a / q),
        _ => None,
    };
    report.set("p99_ratio", ratio);
    report.set(
        "attacker_answers",
        json!(*codes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)),
    );
    report.set("attacker_connections_cut", cut.load(Ordering::Relaxed));
    report.set("rss_idle_mb", rss_idle);
    let peak = rss.as_ref().and_then(server::RssWatch::peak_mb);
    report.set("rss_peak_mb", peak);
    report.set("server_pid", pid);
    ctx.check_sale(&mut report, show.schedule_id, &attacked).await?;
    report.target("p99_ratio", ratio, 2.0, true);
    report.target("rss_peak_mb", peak, 500.0, true);
    Ok(report)
}

fn sale_of(
    ctx: &Ctx,
    schedule_id: i64,
    seats: Vec<i64>,
    users: Vec<crate::setup::User>,
    seconds: u64,
) -> Sale {
    Sale {
        endpoints: ctx.endpoints.clone(),
        clients: ctx.clients,
        schedule_id,
        groups: vec![seats],
        users,
        per_user_limit: ctx.per_user_limit,
        deadline: Duration::from_secs(seconds),
        record_acks: false,
        best_available: false,
    }
}

/// Keeps one stalled connection open: sends `partial` and waits; when the server drops
/// it, counts the cut and opens another.
async fn hold(addr: String, partial: &'static [u8], stop: Arc<AtomicBool>, cut: Arc<AtomicU64>) {
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if stream.write_all(partial).await.is_err() {
            continue;
        }
        // Read until the server closes: whatever it answers, we never go on.
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        cut.fetch_add(1, Ordering::Relaxed);
    }
}
