//! fan-out: many WebSocket subscribers of one schedule's seat changes during a sale.

use super::*;

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
    let metrics_url = format!("{}/metrics", endpoint.trim_end_matches("/graphql"));
    let server_before = server_histograms(&ctx.gql, &metrics_url).await;
    let cpu_before = cpu::Snapshot::take(&servers);
    let res = sale::run(&ctx.gql, sale).await;
    let cpu = cpu_before.until(&cpu::Snapshot::take(&servers), res.seats_held, "seat");
    // Let the last coalesced events reach everyone: at 15,000 sockets on a busy machine
    // delivery took up to 2.6 s, and a seat still on its way when the subscribers stop
    // would count as missed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let server_after = server_histograms(&ctx.gql, &metrics_url).await;

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
    // The server's share of a delivery (`live_delivery_seconds`: from a change reaching the
    // instance to its frame written to the socket) and how many frames each write carried,
    // from its own histograms: what the server controls, apart from the load generator's
    // reading on the same two cores.
    let [delivery, frames] = [0, 1].map(|i| {
        server_after[i]
            .as_ref()
            .map(|h| h.since(server_before[i].as_ref()))
    });
    let ms = |q: f64| {
        delivery
            .as_ref()
            .and_then(|h| h.quantile(q))
            .map(|s| report::round2(s * 1000.0))
    };
    report.set("server_delivery_frames", delivery.as_ref().map(|h| h.count));
    report.set("server_delivery_p50_ms", ms(0.5));
    report.set("server_delivery_p99_ms", ms(0.99));
    report.set(
        "frames_per_write",
        frames
            .as_ref()
            .and_then(scrape::Histogram::mean)
            .map(report::round2),
    );
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
    report.target("server_rss_mb", peak, 400.0, true);
    Ok(report)
}

/// `live_delivery_seconds` and `websocket_frames_per_write` as the server reports them now;
/// None for one it does not report (an older server, or `/metrics` not open to the bench).
async fn server_histograms(gql: &Gql, url: &str) -> [Option<scrape::Histogram>; 2] {
    let text = match gql.get(url, None).await.0 {
        Ok(got) if got.status == 200 => String::from_utf8_lossy(&got.body).into_owned(),
        _ => String::new(),
    };
    ["live_delivery_seconds", "websocket_frames_per_write"].map(|name| scrape::Histogram::parse(&text, name))
}
