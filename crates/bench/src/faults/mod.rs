//! faults: a flash sale on two instances while, in turn, one instance is frozen (SIGSTOP),
//! the servers' database connections are killed, PostgreSQL restarts and Redis stops
//! (issue 11). For each fault it reports how long bookings stalled (the longest time
//! without a successful hold on either instance), the answers given meanwhile, and how many
//! clients were told a failure that then took effect (a reservation exists for a request
//! answered with an error: each request carries its own idempotency key, so the database
//! says which ones took effect). Invariants are checked afterwards.
//!
//! It restarts PostgreSQL and stops Redis, so it runs only against a private cluster and a
//! private Redis that it can prove are the ones the servers use: `FAULTS_DIR` must hold the
//! cluster's data directory (`pg/`) and Redis's configuration (`redis.conf`), the database
//! must report that data directory, and Redis that configuration file; neither may be on the
//! default ports. `scripts/faults` sets all of this up in a temporary directory.
//!
//! ```text
//! scripts/faults            # private PostgreSQL on 55432, Redis on 56379, two servers
//! ```
//!
//! With `FAULTS_HA_COMMANDS="name=command;name=command"` the faults are those commands
//! instead, run one after the other during the sale (`scripts/ha failover`: a Patroni
//! switchover, then the primary killed), on as many instances as `--url`s; the bench then
//! stops and restarts nothing itself, and reconnects through `--database-url`.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use diesel::{QueryableByName, sql_types::BigInt, sql_types::Nullable, sql_types::Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::{
    client::{self, Answer},
    report::{Report, round2},
    scenarios::Ctx,
    server, setup,
};

mod injection;

use injection::{FaultEnv, ha_commands, inject, inject_commands};

const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }";
/// Hold attempts per second over all clients: a steady sale, so that a stall shows as a gap
/// and the seats last through every fault.
const RATE: f64 = 100.0;
const WARM_UP: Duration = Duration::from_secs(3);
const FREEZE: Duration = Duration::from_secs(10);
const REDIS_DOWN: Duration = Duration::from_secs(5);
/// How long each fault's window goes on after the fault ended (recovery is measured in it).
const AFTER: Duration = Duration::from_secs(8);
/// "Seconds, not minutes" (issue 11): the longest a fault may stop every booking.
const STALL_TARGET_S: f64 = 10.0;

/// One hold request and its answer.
struct Attempt {
    /// Since the start of the sale.
    started: Duration,
    ended: Duration,
    endpoint: usize,
    user_id: i64,
    key: String,
    /// `None` for success, else the code (ours for what never became an answer).
    error: Option<String>,
}

/// Codes the bench gives requests that never got an answer (see `client`): the connection
/// failed or closed, so the client knows nothing and may retry with the same key. Every
/// other code, an HTTP status included, is a failure the client was told.
fn no_answer(code: &str) -> bool {
    matches!(code, "TIMEOUT" | "CONNECT" | "BODY" | "TRANSPORT")
}

/// A fault's window: from when it was injected until `AFTER` past its end.
struct Window {
    name: String,
    start: Duration,
    /// When the fault itself ended (the instance resumed, PostgreSQL or Redis was back).
    over: Duration,
    end: Duration,
    detail: String,
}

pub async fn faults(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let commands = ha_commands()?;
    let env = match commands {
        Some(_) => None,
        None => Some(FaultEnv::check(ctx).await?),
    };
    let show = ctx.show(ctx.seats, None).await?;
    let users = ctx.buyers("faults", ctx.users.unwrap_or(ctx.seats)).await?;
    eprintln!(
        "bench: faults: {} clients over {} instances, {RATE} holds/s, {} seats",
        ctx.clients,
        ctx.endpoints.len(),
        show.seats.len()
    );

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(sale(
        Load {
            gql: ctx.gql.clone(),
            endpoints: ctx.endpoints.clone(),
            clients: ctx.clients,
            schedule_id: show.schedule_id,
            seats: show.seats.clone(),
            users,
        },
        t0,
        stop.clone(),
    ));
    let windows = match (&env, &commands) {
        (Some(env), _) => inject(env, &ctx.endpoints, t0).await,
        (None, Some(commands)) => inject_commands(commands, t0).await,
        (None, None) => unreachable!("either the private services or the commands"),
    };
    stop.store(true, Ordering::Relaxed);
    let attempts = load.await.context("the load task panicked")?;
    let windows = windows?;
    let elapsed = t0.elapsed();

    // The database after the restart or failover: a connection of our own again.
    let database_url = match &env {
        Some(env) => env.database_url.clone(),
        None => std::env::var("DATABASE_URL").context("faults reconnects through DATABASE_URL")?,
    };
    ctx.db = setup::connect(&database_url).await?;
    let taken = keys_taken(&mut ctx.db, show.schedule_id).await?;

    let mut report = Report::new("faults", ctx.clients);
    let secs = elapsed.as_secs_f64();
    let successes = attempts.iter().filter(|a| a.error.is_none()).count();
    report.attempts_per_s = attempts.len() as f64 / secs;
    report.holds_per_s = successes as f64 / secs;
    report.latencies_ms = attempts
        .iter()
        .map(|a| (a.ended - a.started).as_secs_f64() * 1000.0)
        .collect();
    for a in &attempts {
        if let Some(code) = &a.error {
            *report.errors.entry(code.clone()).or_default() += 1;
        }
    }
    report.finish();

    let mut faults = Vec::new();
    for w in &windows {
        let s = window_stats(w, &attempts, &taken, ctx.endpoints.len());
        eprintln!("bench: faults: {}: {s}", w.name);
        report.target(
            &format!("{}: longest stall s", w.name),
            s["stall_s"].as_f64(),
            STALL_TARGET_S,
            true,
        );
        faults.push(s);
    }
    // Over the whole run, inside the fault windows or not.
    let held = |a: &Attempt| taken.contains(&(a.user_id, a.key.clone()));
    let lies_all = attempts
        .iter()
        .filter(|a| a.error.as_deref().is_some_and(|c| !no_answer(c)) && held(a))
        .count();
    let unknown_all = attempts
        .iter()
        .filter(|a| a.error.as_deref().is_some_and(no_answer) && held(a))
        .count();
    report.set("attempts", attempts.len());
    report.set("successful_holds", successes);
    report.set("elapsed_s", secs);
    report.set("schedule_id", show.schedule_id);
    report.set("faults", Value::Array(faults));
    report.set("told_failure_then_held", lies_all);
    report.set("no_answer_then_held", unknown_all);

    let reservations = taken.len();
    report.set("reservations", reservations);
    if lies_all > 0 {
        report.violations.push(format!(
            "{lies_all} requests were answered with an error and then took effect"
        ));
    }
    let missing = attempts
        .iter()
        .filter(|a| a.error.is_none() && !taken.contains(&(a.user_id, a.key.clone())))
        .count();
    if missing > 0 {
        report
            .violations
            .push(format!("{missing} successful holds have no reservation"));
    }
    let booked = setup::booked_count(&mut ctx.db, show.schedule_id).await?;
    report.set("booked_count", booked);
    if usize::try_from(booked).ok() != Some(reservations) {
        report.violations.push(format!(
            "the booking count ({booked}) differs from the reservations of one seat each ({reservations})"
        ));
    }
    let found = setup::invariants(&mut ctx.db).await?;
    report.violations.extend(found);
    Ok(report)
}

/// Per fault: the longest gap between successful holds (over both instances, and per
/// instance), the answers, and the lies.
fn window_stats(w: &Window, attempts: &[Attempt], taken: &HashSet<(i64, String)>, instances: usize) -> Value {
    let gap = |only: Option<usize>| {
        let mut times: Vec<Duration> = attempts
            .iter()
            .filter(|a| a.error.is_none() && only.is_none_or(|e| a.endpoint == e))
            .map(|a| a.ended)
            .filter(|t| *t >= w.start && *t <= w.end)
            .collect();
        times.sort();
        let mut last = w.start;
        let mut longest = Duration::ZERO;
        for t in times.into_iter().chain(std::iter::once(w.end)) {
            longest = longest.max(t - last);
            last = t;
        }
        round2(longest.as_secs_f64())
    };
    let inside: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.ended >= w.start && a.ended < w.end)
        .collect();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for a in &inside {
        if let Some(code) = &a.error {
            *errors.entry(code.clone()).or_default() += 1;
        }
    }
    let held = |a: &&&Attempt| taken.contains(&(a.user_id, a.key.clone()));
    let lies = inside
        .iter()
        .filter(|a| a.error.as_deref().is_some_and(|c| !no_answer(c)))
        .filter(held)
        .count();
    let unknown = inside
        .iter()
        .filter(|a| a.error.as_deref().is_some_and(no_answer))
        .filter(held)
        .count();
    let first_after = attempts
        .iter()
        .filter(|a| a.error.is_none() && a.ended >= w.over)
        .map(|a| a.ended)
        .min()
        .map(|t| round2((t - w.over).as_secs_f64()));
    let longest_wait = inside
        .iter()
        .map(|a| a.ended - a.started)
        .max()
        .map(|d| round2(d.as_secs_f64()));
    json!({
        "fault": w.name,
        "detail": w.detail,
        "fault_s": round2((w.over - w.start).as_secs_f64()),
        "stall_s": gap(None),
        "stall_per_instance_s": (0..instances).map(|e| gap(Some(e))).collect::<Vec<_>>(),
        "first_hold_after_fault_s": first_after,
        "holds": inside.iter().filter(|a| a.error.is_none()).count(),
        "errors": errors,
        "longest_wait_s": longest_wait,
        "told_failure_then_held": lies,
        "no_answer_then_held": unknown,
    })
}

/// The load: `clients` tasks, client `i` on instance `i % 2`, one seat per request, a
/// fresh user and a fresh idempotency key per request, paced to `RATE` in all.
struct Load {
    gql: client::Gql,
    endpoints: Vec<String>,
    clients: usize,
    schedule_id: i64,
    seats: Vec<i64>,
    users: Vec<setup::User>,
}

async fn sale(load: Load, t0: Instant, stop: Arc<AtomicBool>) -> Vec<Attempt> {
    let Load {
        gql,
        endpoints,
        clients,
        schedule_id,
        mut seats,
        users,
    } = load;
    {
        use rand::seq::SliceRandom as _;
        seats.shuffle(&mut rand::rng());
    }
    let seats = Arc::new(Mutex::new(seats));
    let users = Arc::new(users);
    let next_user = Arc::new(AtomicUsize::new(0));
    let every = Duration::from_secs_f64(clients as f64 / RATE);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let gql = gql.clone();
        let endpoint = c % endpoints.len();
        let url = endpoints[endpoint].clone();
        let (seats, users, next_user, stop) = (seats.clone(), users.clone(), next_user.clone(), stop.clone());
        let schedule = schedule_id.to_string();
        tasks.push(tokio::spawn(async move {
            // The clients spread over one interval.
            tokio::time::sleep(every.mul_f64(c as f64 / clients as f64)).await;
            let mut out = Vec::new();
            let mut n = 0u64;
            while !AtomicBool::load(&stop, Ordering::Relaxed) {
                let tick = Instant::now();
                let Some(seat) = seats.lock().unwrap_or_else(PoisonError::into_inner).pop() else {
                    break;
                };
                let u = next_user.fetch_add(1, Ordering::Relaxed);
                let Some(user) = users.get(u) else { break };
                n += 1;
                let key = format!("f{c}-{n}");
                let body = client::body(
                    RESERVE,
                    json!({ "i": { "scheduleId": schedule, "seatIds": [seat.to_string()], "idempotencyKey": key } }),
                );
                let started = t0.elapsed();
                let (answer, _) = gql.post(&url, Some(&user.token), body).await;
                let error = match answer {
                    Answer::Data(_) => None,
                    Answer::Error(code) => Some(code),
                };
                // A seat whose request failed is offered again (unless the answer says it
                // is taken: then a failed request took it, which the report counts).
                if error.as_deref().is_some_and(|c| c != "SEAT_UNAVAILABLE") {
                    seats.lock().unwrap_or_else(PoisonError::into_inner).insert(0, seat);
                }
                out.push(Attempt {
                    started,
                    ended: t0.elapsed(),
                    endpoint,
                    user_id: user.id,
                    key,
                    error,
                });
                tokio::time::sleep(every.saturating_sub(tick.elapsed())).await;
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(v) = t.await {
            all.extend(v);
        }
    }
    all
}

/// (user, idempotency key) of every reservation of the schedule.
async fn keys_taken(
    conn: &mut AsyncPgConnection,
    schedule_id: i64,
) -> anyhow::Result<HashSet<(i64, String)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        user_id: i64,
        #[diesel(sql_type = Nullable<Text>)]
        idempotency_key: Option<String>,
    }
    let rows: Vec<Row> =
        diesel::sql_query("SELECT user_id, idempotency_key FROM reservations WHERE schedule_id = $1")
            .bind::<BigInt, _>(schedule_id)
            .load(conn)
            .await
            .context("reading the reservations")?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.user_id, r.idempotency_key?)))
        .collect())
}
