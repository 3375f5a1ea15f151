//! queue: a crowd entering a waiting queue, and the admission rate it sees.

use super::*;

pub(super) const ENTER: &str = "mutation($s: ID!) { enterQueue(scheduleId: $s) { state position ahead } }";
pub(super) const STATUS: &str = "query($s: ID!) { queueStatus(scheduleId: $s) { state position admitted } }";

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
