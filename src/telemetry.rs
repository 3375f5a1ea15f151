//! Logging (tracing) and Prometheus metrics.

use std::{sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the tracing subscriber: `RUST_LOG` filter (default `info`), text or JSON.
pub fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry.with(fmt::layer().json().flatten_event(true)).try_init()
    } else {
        registry.with(fmt::layer()).try_init()
    };
    // A second init (tests start many servers in one process) keeps the first subscriber.
    drop(result);
}

/// The process-wide metrics recorder, installed on first use. The server calls it before it
/// serves anything (`http::router`): until then the `metrics` macros record into nothing,
/// and a server scraped for the first time after a minute would report empty counters.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
                // Finer where a target sits: a delivery's p99 ≤ 250 ms (issue 28).
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("live_delivery_seconds".into()),
                        &[
                            0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("websocket_frames_per_write".into()),
                        &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("role_read_accounts".into()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
                    )
                })
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder is installed; our handle then renders nothing.
            drop(metrics::set_global_recorder(recorder));
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// How often histogram samples are folded into their buckets when nobody scrapes.
pub const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every [`METRICS_UPKEEP`].
///
/// A recorder built with `build_recorder` keeps every histogram sample in a queue until the
/// next scrape or upkeep (the exporter's own listener runs this loop; we serve `/metrics`
/// ourselves, so it is ours to run). Without it a server that nobody scrapes keeps every
/// request's samples, 16 bytes each: the soak (issue 28, 280 operations/s, 500 sockets)
/// grew by about 6 MB a minute, and stopped growing with this loop. A thread, not a task:
/// the recorder is process-wide and outlives any one runtime (the tests start many servers
/// in one process).
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(METRICS_UPKEEP);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "metrics upkeep thread not started: histogram samples pile up until scraped");
    }
}
