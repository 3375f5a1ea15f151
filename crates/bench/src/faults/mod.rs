//! faults: a flash sale on two instances while, in turn, one instance is frozen (SIGSTOP),
//! the servers' database connections are killed, PostgreSQL restarts and Redis stops
//! (issue 11). For each fault it reports how long bookings stalled (the longest time
//! without a successful hold on either instance), the answers given meanwhile, and how many
//! clients were told a failure that then took effect (a reservation exists for a request
//! answered with an error: each request carries its own idempotency key, so the database
//! says which ones took effect). Invariants are checked afterwards.
//!
//! Besides the holds (every third of which is paid at once, each payment with its own key),
//! `placeOrder` runs on a schedule of its own and `enterQueue` on a queued one, at a few a
//! second, with the queued users polling `queueStatus` as their pages would (`side`). After
//! the sale every order answered with a job must reach DONE or FAILED (an accepted order
//! that is gone or never decided is lost), everyone answered with a place must still have
//! it, and no payment or order answered with an error may have taken effect.
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
//! switchover, then the primary killed; on a Redis Cluster also a master killed), on as
//! many instances as `--url`s; the bench then stops and restarts nothing itself, and
//! reconnects through `--database-url`. The commands find the run's schedules in
//! `FAULTS_ORDER_SCHEDULE`, `FAULTS_QUEUE_SCHEDULE` and `FAULTS_HOLD_SCHEDULE`.

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

mod applied;
mod injection;
mod side;

use applied::{Applied, keys_taken, paid};

use injection::{FaultEnv, ha_commands, inject, inject_commands};

const RESERVE: &str = "mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }";
const PAY: &str =
    "mutation($r: ID!, $k: String!) { payReservation(reservationId: $r, idempotencyKey: $k) { id } }";
/// Every this many successful holds a client pays the last one.
const PAY_EVERY: u64 = 3;
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

/// What a request was.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `reserveSeats`: the paced sale the stalls are measured on.
    Hold,
    /// `payReservation` of a hold just made.
    Pay,
    /// `placeOrder` (kept in Redis until a worker applies it).
    Order,
    /// `enterQueue` (a place kept in Redis).
    Enter,
}

/// One request and its answer.
struct Attempt {
    kind: Kind,
    /// Since the start of the sale.
    started: Duration,
    ended: Duration,
    endpoint: usize,
    user_id: i64,
    /// The idempotency key sent (empty for `enterQueue`, which takes none).
    key: String,
    /// The reservation a payment was for.
    reference: Option<i64>,
    /// `None` for success, else the code (ours for what never became an answer).
    error: Option<String>,
}

impl Attempt {
    fn describe(&self) -> Value {
        json!({
            "kind": format!("{:?}", self.kind),
            "error": self.error,
            "endpoint": self.endpoint,
            "user_id": self.user_id,
            "key": self.key,
            "started_s": self.started.as_secs_f64(),
            "ended_s": self.ended.as_secs_f64(),
        })
    }
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
    // Enough points for a seat of any grade: every third hold is paid.
    setup::fund(&mut ctx.db, &users, 1000).await?;
    // Orders on a schedule of their own (so the holds' accounting stays theirs), and a
    // queued schedule that admits one a second (admissions last two hours: nobody's place
    // runs out during the run).
    let order_show = ctx.show(ORDER_SEATS, None).await?;
    let order_users = ctx.buyers("faults-orders", ORDER_SEATS).await?;
    let queue_show = ctx.show(100, Some((1, 1000))).await?;
    let queue_users = ctx.buyers("faults-queue", QUEUE_USERS).await?;
    eprintln!(
        "bench: faults: {} clients over {} instances, {RATE} holds/s (every {PAY_EVERY}rd paid), {} seats; \
         orders on schedule {}, the queue of schedule {}",
        ctx.clients,
        ctx.endpoints.len(),
        show.seats.len(),
        order_show.schedule_id,
        queue_show.schedule_id,
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
    let side = side::Side {
        gql: ctx.gql.clone(),
        endpoints: ctx.endpoints.clone(),
        order_schedule: order_show.schedule_id,
        order_seats: order_show.seats.clone(),
        order_users,
        queue_schedule: queue_show.schedule_id,
        queue_users,
    };
    let side_load = tokio::spawn(side::run(side.clone(), t0, stop.clone()));
    let targets = [
        ("FAULTS_ORDER_SCHEDULE", order_show.schedule_id),
        ("FAULTS_QUEUE_SCHEDULE", queue_show.schedule_id),
        ("FAULTS_HOLD_SCHEDULE", show.schedule_id),
    ];
    let windows = match (&env, &commands) {
        (Some(env), _) => inject(env, &ctx.endpoints, t0).await,
        (None, Some(commands)) => inject_commands(commands, &targets, t0).await,
        (None, None) => unreachable!("either the private services or the commands"),
    };
    stop.store(true, Ordering::Relaxed);
    let mut attempts = load.await.context("the load task panicked")?;
    let side_result = side_load.await.context("the order and queue load panicked")?;
    attempts.extend(side_result.attempts);
    let windows = windows?;
    let elapsed = t0.elapsed();
    let mut queued = side_result.queued;
    let outcome = side::settle(&side, &side_result.accepted, &mut queued, t0).await;

    // The database after the restart or failover: a connection of our own again.
    let database_url = match &env {
        Some(env) => env.database_url.clone(),
        None => std::env::var("DATABASE_URL").context("faults reconnects through DATABASE_URL")?,
    };
    ctx.db = setup::connect(&database_url).await?;
    let taken = keys_taken(&mut ctx.db, show.schedule_id).await?;
    let ordered = keys_taken(&mut ctx.db, order_show.schedule_id).await?;
    let paid = paid(&mut ctx.db, show.schedule_id).await?;
    let applied = Applied {
        holds: &taken,
        orders: &ordered,
        paid: &paid,
    };

    let mut report = Report::new("faults", ctx.clients);
    let secs = elapsed.as_secs_f64();
    let holds: Vec<&Attempt> = attempts.iter().filter(|a| a.kind == Kind::Hold).collect();
    let successes = holds.iter().filter(|a| a.error.is_none()).count();
    report.attempts_per_s = holds.len() as f64 / secs;
    report.holds_per_s = successes as f64 / secs;
    report.latencies_ms = holds
        .iter()
        .map(|a| (a.ended - a.started).as_secs_f64() * 1000.0)
        .collect();
    for a in &attempts {
        if let Some(code) = &a.error {
            let code = match a.kind {
                Kind::Hold => code.clone(),
                k => format!("{k:?}:{code}"),
            };
            *report.errors.entry(code).or_default() += 1;
        }
    }
    report.finish();

    let mut faults = Vec::new();
    for w in &windows {
        let s = window_stats(w, &attempts, &applied, ctx.endpoints.len());
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
    let lies_all = |kind: Kind| {
        attempts
            .iter()
            .filter(|a| {
                a.kind == kind && a.error.as_deref().is_some_and(|c| !no_answer(c)) && applied.took(a)
            })
            .count()
    };
    let unknown: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.error.as_deref().is_some_and(no_answer) && applied.took(a))
        .collect();
    let unknown_all = unknown.len();
    let (hold_lies, pay_lies, order_lies) =
        (lies_all(Kind::Hold), lies_all(Kind::Pay), lies_all(Kind::Order));
    report.set("attempts", holds.len());
    report.set("successful_holds", successes);
    report.set("elapsed_s", secs);
    report.set("schedule_id", show.schedule_id);
    report.set("faults", Value::Array(faults));
    report.set("told_failure_then_held", hold_lies);
    report.set("told_failure_then_paid", pay_lies);
    report.set("told_failure_then_ordered", order_lies);
    report.set("no_answer_then_applied", unknown_all);
    // Which ones, to find where an answer stayed away (the first few are enough).
    report.set(
        "no_answer_then_applied_examples",
        Value::Array(unknown.iter().take(5).map(|a| a.describe()).collect()),
    );
    let count = |kind: Kind, ok: bool| {
        attempts
            .iter()
            .filter(|a| a.kind == kind && a.error.is_none() == ok)
            .count()
    };
    report.set("payments", count(Kind::Pay, true));
    report.set("payments_failed", count(Kind::Pay, false));
    report.set("orders_accepted", side_result.accepted.len());
    report.set("orders_refused", count(Kind::Order, false));
    report.set("orders_done", outcome.done);
    report.set("orders_failed", json!(outcome.failed));
    let lost = outcome.unsettled.len() + outcome.vanished.len();
    report.set("orders_lost", lost);
    report.set("queue_entered", queued.len());
    report.set("queue_refused", count(Kind::Enter, false));
    report.set("queue_places_kept", outcome.places_kept);
    report.set("queue_places_lost", outcome.places_lost);
    report.set("queue_places_abandoned", outcome.places_abandoned);

    let reservations = taken.len();
    report.set("reservations", reservations);
    for (n, what) in [
        (hold_lies, "holds were answered with an error and then held"),
        (pay_lies, "payments were answered with an error and then paid"),
        (order_lies, "orders were answered with an error and then applied"),
    ] {
        if n > 0 {
            report.violations.push(format!("{n} {what}"));
        }
    }
    if !outcome.vanished.is_empty() {
        report.violations.push(format!(
            "{} accepted orders are gone (NOT_FOUND), e.g. {}",
            outcome.vanished.len(),
            outcome.vanished[0]
        ));
    }
    if !outcome.unsettled.is_empty() {
        report.violations.push(format!(
            "{} accepted orders never reached a final state within {} s, e.g. {}",
            outcome.unsettled.len(),
            side::SETTLE.as_secs(),
            outcome.unsettled[0]
        ));
    }
    if outcome.places_lost > 0 {
        report.violations.push(format!(
            "{} queue places answered were gone although their users kept polling",
            outcome.places_lost
        ));
    }
    let missing = attempts
        .iter()
        .filter(|a| a.error.is_none() && matches!(a.kind, Kind::Hold | Kind::Pay) && !applied.took(a))
        .count();
    if missing > 0 {
        report.violations.push(format!(
            "{missing} successful holds or payments did not take effect"
        ));
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

/// Seats on the orders' schedule (one order asks for one), and users entering the queue.
const ORDER_SEATS: usize = 3000;
const QUEUE_USERS: usize = 400;

/// Per fault: the longest gap between successful holds (over every instance, and per
/// instance), the answers, and the lies; the same for orders, payments and queue entries.
fn window_stats(w: &Window, attempts: &[Attempt], applied: &Applied<'_>, instances: usize) -> Value {
    let gap = |kind: Kind, only: Option<usize>| {
        let mut times: Vec<Duration> = attempts
            .iter()
            .filter(|a| a.kind == kind && a.error.is_none() && only.is_none_or(|e| a.endpoint == e))
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
    let inside = |kind: Kind| -> Vec<&Attempt> {
        attempts
            .iter()
            .filter(|a| a.kind == kind && a.ended >= w.start && a.ended < w.end)
            .collect()
    };
    let errors = |of: &[&Attempt]| {
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        for a in of {
            if let Some(code) = &a.error {
                *errors.entry(code.clone()).or_default() += 1;
            }
        }
        errors
    };
    let lies = |of: &[&Attempt]| {
        of.iter()
            .filter(|a| a.error.as_deref().is_some_and(|c| !no_answer(c)) && applied.took(a))
            .count()
    };
    let unknown = |of: &[&Attempt]| {
        of.iter()
            .filter(|a| a.error.as_deref().is_some_and(no_answer) && applied.took(a))
            .count()
    };
    let holds = inside(Kind::Hold);
    let first_after = attempts
        .iter()
        .filter(|a| a.kind == Kind::Hold && a.error.is_none() && a.ended >= w.over)
        .map(|a| a.ended)
        .min()
        .map(|t| round2((t - w.over).as_secs_f64()));
    let longest_wait = |of: &[&Attempt]| {
        of.iter()
            .map(|a| a.ended - a.started)
            .max()
            .map(|d| round2(d.as_secs_f64()))
    };
    let other = |kind: Kind| {
        let of = inside(kind);
        json!({
            "ok": of.iter().filter(|a| a.error.is_none()).count(),
            "errors": errors(&of),
            "stall_s": gap(kind, None),
            "longest_wait_s": longest_wait(&of),
            "told_failure_then_applied": lies(&of),
        })
    };
    json!({
        "fault": w.name,
        "detail": w.detail,
        "fault_s": round2((w.over - w.start).as_secs_f64()),
        "stall_s": gap(Kind::Hold, None),
        "stall_per_instance_s": (0..instances).map(|e| gap(Kind::Hold, Some(e))).collect::<Vec<_>>(),
        "first_hold_after_fault_s": first_after,
        "holds": holds.iter().filter(|a| a.error.is_none()).count(),
        "errors": errors(&holds),
        "longest_wait_s": longest_wait(&holds),
        "told_failure_then_held": lies(&holds),
        "no_answer_then_held": unknown(&holds),
        "payments": other(Kind::Pay),
        "orders": other(Kind::Order),
        "queue_entries": other(Kind::Enter),
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
            let mut held_count = 0u64;
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
                let (error, reservation) = match answer {
                    Answer::Data(d) => (None, d["reserveSeats"]["id"].as_str().and_then(|r| r.parse::<i64>().ok())),
                    Answer::Error(code) => (Some(code), None),
                };
                // A seat whose request failed is offered again (unless the answer says it
                // is taken: then a failed request took it, which the report counts).
                if error.as_deref().is_some_and(|c| c != "SEAT_UNAVAILABLE") {
                    seats.lock().unwrap_or_else(PoisonError::into_inner).insert(0, seat);
                }
                let held = error.is_none();
                out.push(Attempt {
                    kind: Kind::Hold,
                    started,
                    ended: t0.elapsed(),
                    endpoint,
                    user_id: user.id,
                    key,
                    reference: reservation,
                    error,
                });
                if held {
                    held_count += 1;
                }
                // Every third hold is paid at once, as a buyer would.
                if held
                    && held_count.is_multiple_of(PAY_EVERY)
                    && let Some(r) = reservation
                {
                    let key = format!("p{c}-{n}");
                    let body = client::body(PAY, json!({ "r": r.to_string(), "k": key }));
                    let started = t0.elapsed();
                    let error = match gql.post(&url, Some(&user.token), body).await.0 {
                        Answer::Data(_) => None,
                        Answer::Error(code) => Some(code),
                    };
                    out.push(Attempt {
                        kind: Kind::Pay,
                        started,
                        ended: t0.elapsed(),
                        endpoint,
                        user_id: user.id,
                        key,
                        reference: Some(r),
                        error,
                    });
                }
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
