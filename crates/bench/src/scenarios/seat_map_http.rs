//! seat-map-http: `GET /schedules/{id}/seat-map` of a `--seats` (20,000) schedule, in two
//! phases of `--seconds` (10) each, so each kind of answer is measured alone:
//!
//! 1. revalidation: every client sends `If-None-Match` with the tag it holds, as a CDN or a
//!    browser does once its copy is a second old; the version does not move, so every
//!    answer should be a 304 (no body, no query);
//! 2. full reads: no validator, so every answer is the whole map (from the instance's
//!    cache of built maps: one build per version).
//!
//! Reported: 304s/s and full reads/s, the p99 of each, and the server's CPU per answer.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::Ctx;
use crate::{
    cpu,
    report::{self, Report, Tally},
};

struct Phase {
    tally: Tally,
    /// Answers by status.
    not_modified: u64,
    full: u64,
    bytes: u64,
    secs: f64,
    cpu: serde_json::Value,
}

pub async fn seat_map_http(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let show = ctx.show(ctx.seats, None).await?;
    let base = ctx.endpoint().trim_end_matches("/graphql").to_owned();
    let url = format!("{base}/schedules/{}/seat-map", show.schedule_id);
    let mut report = Report::new("seat-map-http", ctx.clients);

    // One full read, checked, before the load: its tag is what the revalidators send.
    let (first, _) = ctx.gql.get(&url, None).await;
    let first = first.map_err(|code| anyhow::anyhow!("GET {url}: {code}"))?;
    if first.status != 200 {
        anyhow::bail!("GET {url} answered {}", first.status);
    }
    let map: serde_json::Value = serde_json::from_slice(&first.body).context("the seat map is not JSON")?;
    let n = map["statuses"].as_str().map_or(0, str::len);
    if n != show.seats.len() {
        report.violations.push(format!(
            "the HTTP seat map lists {n} seats, the layout has {}",
            show.seats.len()
        ));
    }
    let tag = first.etag.context("the seat map has no ETag")?;

    let revalidate = run(ctx, &url, Some(tag), ctx.seconds_or(10)).await?;
    let full = run(ctx, &url, None, ctx.seconds_or(10)).await?;

    report.attempts_per_s = (revalidate.tally.latencies_ms.len() + full.tally.latencies_ms.len()) as f64
        / (revalidate.secs + full.secs).max(1e-9);
    let (mut revalidate, mut full) = (revalidate, full);
    let p99_304 = p99(&mut revalidate);
    let p99_full = p99(&mut full);
    report.set("seats", show.seats.len());
    report.set(
        "not_modified_per_s",
        revalidate.not_modified as f64 / revalidate.secs,
    );
    report.set("not_modified_p99_ms", p99_304);
    report.set("unexpected_full_in_revalidation", revalidate.full);
    report.set("cpu_revalidation", revalidate.cpu);
    report.set("full_reads_per_s", full.full as f64 / full.secs);
    report.set("full_p99_ms", p99_full);
    report.set(
        "kb_per_full_read",
        if full.full > 0 {
            full.bytes as f64 / full.full as f64 / 1024.0
        } else {
            0.0
        },
    );
    report.set("cpu_full", full.cpu);
    report.set("schedule_id", show.schedule_id);
    report.latencies_ms = std::mem::take(&mut revalidate.tally.latencies_ms);
    report.latencies_ms.append(&mut full.tally.latencies_ms);
    report.errors = std::mem::take(&mut revalidate.tally.errors);
    for (code, n) in std::mem::take(&mut full.tally.errors) {
        *report.errors.entry(code).or_default() += n;
    }
    report.finish();
    ctx.check(&mut report).await?;
    report.target("full_p99_ms", p99_full, 100.0, true);
    Ok(report)
}

fn p99(phase: &mut Phase) -> Option<f64> {
    report::sort(&mut phase.tally.latencies_ms);
    report::percentile(&phase.tally.latencies_ms, 99.0).map(report::round2)
}

/// `ctx.clients` readers for `length`, all with `tag` (revalidation) or none (full reads).
async fn run(ctx: &Ctx, url: &str, tag: Option<String>, length: Duration) -> anyhow::Result<Phase> {
    let servers = ctx.server_pids();
    let cpu_before = cpu::Snapshot::take(&servers);
    let started = Instant::now();
    let stop_at = started + length;
    let mut tasks = Vec::with_capacity(ctx.clients);
    for _ in 0..ctx.clients {
        let gql = ctx.gql.clone();
        let url = url.to_owned();
        let tag = tag.clone();
        tasks.push(tokio::spawn(async move {
            let mut phase = Phase {
                tally: Tally::default(),
                not_modified: 0,
                full: 0,
                bytes: 0,
                secs: 0.0,
                cpu: serde_json::Value::Null,
            };
            while Instant::now() < stop_at {
                let (res, ms) = gql.get(&url, tag.as_deref()).await;
                phase.tally.latencies_ms.push(ms);
                match res {
                    Ok(got) if got.status == 304 => phase.not_modified += 1,
                    Ok(got) if got.status == 200 => {
                        phase.full += 1;
                        phase.bytes += got.body.len() as u64;
                    }
                    Ok(got) => phase.tally.error(&format!("HTTP_{}", got.status)),
                    Err(code) => {
                        phase.tally.error(&code);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            phase
        }));
    }
    let mut out = Phase {
        tally: Tally::default(),
        not_modified: 0,
        full: 0,
        bytes: 0,
        secs: 0.0,
        cpu: serde_json::Value::Null,
    };
    for t in tasks {
        let p = t.await.context("a seat-map reader panicked")?;
        out.tally.merge(p.tally);
        out.not_modified += p.not_modified;
        out.full += p.full;
        out.bytes += p.bytes;
    }
    out.secs = started.elapsed().as_secs_f64().max(1e-9);
    out.cpu = cpu_before.until(
        &cpu::Snapshot::take(&servers),
        out.not_modified + out.full,
        "request",
    );
    Ok(out)
}
