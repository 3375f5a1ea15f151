//! A server nobody scrapes keeps its memory: histogram samples are folded into their
//! buckets by the telemetry's upkeep, not kept until the next `/metrics` read (issue 28's
//! soak grew by every request's samples).
//!
//! Its own test binary: it counts the bytes the process holds with a global allocator of
//! its own (dhat's), which other tests running alongside would disturb.

use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const MB: u64 = 1024 * 1024;

fn held() -> u64 {
    dhat::HeapStats::get().curr_bytes as u64
}

/// The most the process has held since the profiler started.
fn peak() -> u64 {
    dhat::HeapStats::get().max_bytes as u64
}

#[test]
fn histogram_samples_do_not_pile_up_without_a_scrape() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let _handle = boxoffice::telemetry::metrics();
    let histogram = metrics::histogram!("http_request_duration_seconds", "path" => "/graphql");
    histogram.record(0.001);
    let before = held();
    // Two million requests' worth: 16 MB of samples if they were kept.
    for i in 0..2_000_000u32 {
        histogram.record(f64::from(i % 100) / 1000.0);
    }
    // The peak, not what is held now: the upkeep's first tick (5 s after the recorder was
    // installed) may already have folded part of them in while a slow build still records.
    let grown = peak().saturating_sub(before);
    assert!(
        grown > 8 * MB,
        "recording should queue the samples first (grew {grown} bytes)"
    );
    // No render, no scrape: only the upkeep may fold them in. Recording a little on the way
    // lets the queue's blocks be reclaimed (they are freed once no reader can see them).
    let patience = boxoffice::telemetry::METRICS_UPKEEP * 4;
    let deadline = Instant::now() + patience;
    loop {
        let now_held = held().saturating_sub(before);
        if now_held < MB {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{now_held} bytes of histogram samples still held {patience:?} after recording"
        );
        histogram.record(0.001);
        std::thread::sleep(Duration::from_millis(50));
    }
}
