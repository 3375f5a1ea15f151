//! multi-sale: `--schedules` (20) schedules of `--seats` (2,000) seats each on sale at the
//! same time, the `--clients` (64) spread over them (the first `clients % schedules`
//! schedules get one more). Each schedule's batches hold its own lock, so batches of
//! different schedules can run in parallel: the total holds/s against the single
//! flash-sale of the same run tells how far they do.

use std::time::Instant;

use futures_util::future::join_all;

use super::{Ctx, sale_report};
use crate::{
    cpu,
    report::Report,
    sale::{self, Sale, SaleResult},
};

pub const DEFAULT_SEATS: usize = 2_000;

pub async fn multi_sale(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let schedules = ctx.schedules;
    if ctx.clients < schedules {
        anyhow::bail!("multi-sale needs at least one client per schedule (--clients >= --schedules)");
    }
    let seats = ctx.seats;
    let started = Instant::now();
    // One host for all of them (a host account per show would collide by name).
    let host = ctx.host().await?;
    let endpoint = ctx.endpoint().to_owned();
    let mut shows = Vec::with_capacity(schedules);
    for _ in 0..schedules {
        let spec = crate::setup::ShowSpec {
            seats,
            per_user_limit: ctx.per_user_limit,
            queue: None,
            hold_seconds: 3600,
        };
        shows.push(crate::setup::show(&ctx.gql, &endpoint, &host.token, &spec).await?);
    }
    eprintln!(
        "bench: multi-sale: {schedules} schedules of {seats} seats made in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut users = ctx
        .buyers("multi-sale", ctx.users.unwrap_or(seats * schedules))
        .await?;
    let per_schedule = users.len() / schedules;
    let mut sales = Vec::with_capacity(schedules);
    for (i, show) in shows.iter().enumerate() {
        let rest = users.split_off(per_schedule.min(users.len()));
        let mine = std::mem::replace(&mut users, rest);
        sales.push(Sale {
            endpoints: ctx.endpoints.clone(),
            clients: ctx.clients / schedules + usize::from(i < ctx.clients % schedules),
            schedule_id: show.schedule_id,
            groups: vec![show.seats.clone()],
            users: mine,
            per_user_limit: ctx.per_user_limit,
            deadline: ctx.seconds_or(60),
            record_acks: false,
            best_available: ctx.best_available,
        });
    }
    eprintln!(
        "bench: multi-sale: {} clients over {schedules} schedules",
        ctx.clients
    );
    let servers = ctx.server_pids();
    let cpu_before = cpu::Snapshot::take(&servers);
    let results = join_all(sales.into_iter().map(|s| sale::run(&ctx.gql, s))).await;
    let mut total = SaleResult {
        tally: Default::default(),
        attempts: 0,
        successes: 0,
        seats_held: 0,
        elapsed: Default::default(),
        all_held_at: Some(Default::default()),
        groups_done: 0,
        double_holds: Vec::new(),
        acks: Vec::new(),
        attempts_per_endpoint: vec![0; ctx.endpoints.len()],
    };
    let mut held_per_schedule = Vec::with_capacity(schedules);
    for r in results {
        held_per_schedule.push(r.seats_held);
        total.tally.merge(r.tally);
        total.attempts += r.attempts;
        total.successes += r.successes;
        total.seats_held += r.seats_held;
        total.elapsed = total.elapsed.max(r.elapsed);
        // Sold out when the last schedule is.
        total.all_held_at = match (total.all_held_at, r.all_held_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        total.groups_done += r.groups_done;
        total.double_holds.extend(r.double_holds);
    }
    let cpu = cpu_before.until(&cpu::Snapshot::take(&servers), total.seats_held, "seat");
    let mut report = Report::new("multi-sale", ctx.clients);
    let res = sale_report(&mut report, total);
    report.set("cpu", cpu);
    report.set("schedules", schedules);
    report.set("seats_per_schedule", seats);
    report.set("schedules_sold_out", res.groups_done);
    report.set("sold_out_s", res.all_held_at.map(|d| d.as_secs_f64()));
    // Every schedule's count against what its answers said, then I1-I7 once.
    for (show, held) in shows.iter().zip(&held_per_schedule) {
        let booked = crate::setup::booked_count(&mut ctx.db, show.schedule_id).await?;
        if u64::try_from(booked).ok() != Some(*held) {
            report.violations.push(format!(
                "schedule {}: seats held by successful answers ({held}) differ from its booking count ({booked})",
                show.schedule_id
            ));
        }
    }
    if !res.double_holds.is_empty() {
        report.violations.push(format!(
            "{} seats were held by two successful answers (e.g. seat {})",
            res.double_holds.len(),
            res.double_holds[0]
        ));
    }
    ctx.check(&mut report).await?;
    let p99 = report.p(99.0);
    report.target("p99_ms", p99, 100.0, true);
    // The 1.3x against flash-sale needs both in one run: scripts/bench prints the ratio.
    Ok(report)
}
