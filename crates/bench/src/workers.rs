//! fan-out's subscribers, spread over child processes.
//!
//! A process may hold at most 20,000 open files on these machines, and the limit cannot be
//! raised: 15,000 sockets in the bench's own process, next to its HTTP clients and the
//! database, would not fit (nor would 20,000 on the server's side be asked of it). So the
//! bench runs itself again with the hidden subcommand [`COMMAND`], once per
//! [`MAX_SOCKETS_PER_WORKER`] subscribers. Each worker is a one-thread runtime:
//!
//! 1. reads its [`Job`] (one JSON line on stdin), opens its sockets and subscribes them,
//!    then prints `ready <ok> <failed> <rss_mb>`;
//! 2. listens until stdin says `stop`;
//! 3. reads the sale's acknowledgements (`<seat> <unix ns>` lines, then `end`), works out
//!    the delivery lags of its sampled subscribers and prints its [`Outcome`] as one JSON line.
//!
//! Times cross the process boundary as wall-clock nanoseconds (one clock on one machine).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    process::{ExitCode, Stdio},
    sync::{Arc, OnceLock, atomic::Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
    sync::{Semaphore, watch},
};

use crate::ws;

/// The hidden subcommand of a worker (`bench __fan-out-worker`).
pub const COMMAND: &str = "__fan-out-worker";

/// Sockets per worker process: a quarter of the file limit, with room to spare.
pub const MAX_SOCKETS_PER_WORKER: usize = 5_000;

/// Handshakes in flight at once, over all workers.
const HANDSHAKES: usize = 100;

/// What one worker does.
#[derive(Serialize, Deserialize)]
pub struct Job {
    pub ws_url: String,
    pub schedule_id: i64,
    /// One token per socket.
    pub tokens: Vec<String>,
    /// Which of its sockets parse every event (indices into `tokens`).
    pub sampled: Vec<usize>,
    pub handshakes: usize,
}

/// What one worker saw.
#[derive(Serialize, Deserialize, Default)]
pub struct Outcome {
    pub ok: u64,
    /// Why sockets failed (first 120 characters), and how many.
    pub failures: BTreeMap<String, u64>,
    pub events_min: Option<u64>,
    pub events_total: u64,
    pub bytes_total: u64,
    pub resyncs: u64,
    pub sampled_ok: u64,
    /// Arrival at a sampled subscriber minus the acknowledgement, per (subscriber, seat).
    pub lags_ms: Vec<f64>,
    /// Seats a sampled subscriber never saw although it was not told to resync.
    pub missed: u64,
}

impl Outcome {
    pub fn merge(&mut self, o: Outcome) {
        self.ok += o.ok;
        for (k, v) in o.failures {
            *self.failures.entry(k).or_default() += v;
        }
        self.events_min = match (self.events_min, o.events_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.events_total += o.events_total;
        self.bytes_total += o.bytes_total;
        self.resyncs += o.resyncs;
        self.sampled_ok += o.sampled_ok;
        self.lags_ms.extend(o.lags_ms);
        self.missed += o.missed;
    }
}

/// `at` as wall-clock nanoseconds since the epoch.
pub fn wall_ns(at: Instant) -> i128 {
    static BASE: OnceLock<(Instant, i128)> = OnceLock::new();
    let (i0, w0) = *BASE.get_or_init(|| {
        let w = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        (Instant::now(), w)
    });
    if at >= i0 {
        w0 + at.duration_since(i0).as_nanos() as i128
    } else {
        w0 - i0.duration_since(at).as_nanos() as i128
    }
}

/// A running worker, seen from the bench.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// The subscribers' tokens and sampling split over as few workers as fit.
pub fn jobs(ws_url: &str, schedule_id: i64, tokens: Vec<String>, sampled: &HashSet<usize>) -> Vec<Job> {
    let n = tokens.len().div_ceil(MAX_SOCKETS_PER_WORKER).max(1);
    let per = tokens.len().div_ceil(n).max(1);
    let mut jobs = Vec::new();
    let mut start = 0;
    let mut rest = tokens;
    while !rest.is_empty() {
        let tail = rest.split_off(per.min(rest.len()));
        let mine = std::mem::replace(&mut rest, tail);
        jobs.push(Job {
            ws_url: ws_url.to_owned(),
            schedule_id,
            sampled: (0..mine.len())
                .filter(|i| sampled.contains(&(start + i)))
                .collect(),
            tokens: mine,
            handshakes: HANDSHAKES.div_ceil(n),
        });
        start += per;
    }
    jobs
}

impl Worker {
    pub async fn spawn(job: &Job) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the bench's own executable")?;
        let mut child = Command::new(exe)
            .arg(COMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a fan-out worker")?;
        let mut stdin = child.stdin.take().context("the worker's stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("the worker's stdout")?).lines();
        let mut line = serde_json::to_string(job)?;
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .await
            .context("sending the worker its job")?;
        stdin.flush().await?;
        Ok(Self { child, stdin, stdout })
    }

    /// Waits until every socket of the worker has subscribed (or failed):
    /// (subscribed, failed, the worker's RSS in MB).
    pub async fn ready(&mut self) -> anyhow::Result<(u64, u64, f64)> {
        let line = tokio::time::timeout(Duration::from_secs(300), self.stdout.next_line())
            .await
            .context("a fan-out worker did not subscribe within 300 s")??
            .context("a fan-out worker ended before subscribing")?;
        let mut parts = line.split_whitespace();
        anyhow::ensure!(parts.next() == Some("ready"), "a fan-out worker said {line:?}");
        let mut num = || parts.next().and_then(|p| p.parse::<f64>().ok()).unwrap_or(0.0);
        Ok((num() as u64, num() as u64, num()))
    }

    /// Stops the worker's subscribers, hands it the acknowledgements, and takes its outcome.
    pub async fn finish(mut self, acks: &[(i64, i128)]) -> anyhow::Result<Outcome> {
        let mut text = String::with_capacity(acks.len() * 28 + 16);
        text.push_str("stop\n");
        for (seat, ns) in acks {
            text.push_str(&format!("{seat} {ns}\n"));
        }
        text.push_str("end\n");
        self.stdin
            .write_all(text.as_bytes())
            .await
            .context("stopping a fan-out worker")?;
        self.stdin.flush().await?;
        let line = tokio::time::timeout(Duration::from_secs(120), self.stdout.next_line())
            .await
            .context("a fan-out worker did not report within 120 s")??
            .context("a fan-out worker ended without its outcome")?;
        let outcome = serde_json::from_str(&line).context("a fan-out worker's outcome")?;
        let _ = self.child.wait().await;
        Ok(outcome)
    }
}

/// The worker process's `main`.
pub fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench worker: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(work()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench worker: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn work() -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    let job: Job =
        serde_json::from_str(&stdin.next_line().await?.context("no job on stdin")?).context("the job")?;
    let sampled: HashSet<usize> = job.sampled.iter().copied().collect();
    let counters = Arc::new(ws::Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(job.handshakes.max(1)));
    let mut listeners = Vec::with_capacity(job.tokens.len());
    for (i, token) in job.tokens.into_iter().enumerate() {
        let permit = gate.clone().acquire_owned().await?;
        let ws_url = job.ws_url.clone();
        let (counters, stop, schedule_id) = (counters.clone(), stop_rx.clone(), job.schedule_id);
        let sampled = sampled.contains(&i);
        listeners.push(tokio::spawn(async move {
            let socket = ws::subscribe(&ws_url, &token, schedule_id).await;
            drop(permit);
            match socket {
                Ok(s) => ws::listen(s, sampled, counters, stop).await,
                Err(e) => ws::Seen {
                    failure: Some(format!("subscribing: {e:#}")),
                    ..ws::Seen::default()
                },
            }
        }));
    }
    drop(gate.acquire_many(job.handshakes.max(1) as u32).await?);
    // Failures so far are the handshakes that failed: the rest are listening.
    let failed = listeners.iter().filter(|l| l.is_finished()).count();
    let rss = crate::server::rss_mb(std::process::id()).unwrap_or(0.0);
    stdout
        .write_all(format!("ready {} {failed} {rss:.1}\n", listeners.len() - failed).as_bytes())
        .await?;
    stdout.flush().await?;

    // Listen until told to stop (or the bench is gone).
    while let Some(line) = stdin.next_line().await? {
        if line == "stop" {
            break;
        }
    }
    stop_tx.send_replace(true);
    let mut acks: HashMap<i64, i128> = HashMap::new();
    while let Some(line) = stdin.next_line().await? {
        if line == "end" {
            break;
        }
        if let Some((seat, ns)) = line.split_once(' ')
            && let (Ok(seat), Ok(ns)) = (seat.parse(), ns.parse())
        {
            acks.insert(seat, ns);
        }
    }
    let mut out = Outcome::default();
    for l in listeners {
        let s = l.await.context("a subscriber task panicked")?;
        if let Some(f) = &s.failure {
            *out.failures.entry(f.chars().take(120).collect()).or_default() += 1;
            continue;
        }
        out.ok += 1;
        out.events_min = Some(out.events_min.map_or(s.events, |m| m.min(s.events)));
        out.resyncs += s.resyncs;
        if !s.sampled {
            continue;
        }
        out.sampled_ok += 1;
        let mut got = HashSet::with_capacity(s.arrivals.len());
        for (seat, at) in &s.arrivals {
            if let Some(ack) = acks.get(seat)
                && got.insert(*seat)
            {
                let lag = (wall_ns(*at) - ack).max(0) as f64 / 1e6;
                out.lags_ms.push((lag * 100.0).round() / 100.0);
            }
        }
        if s.resyncs == 0 {
            out.missed += (acks.len() - got.len()) as u64;
        }
    }
    out.events_total = counters.events.load(Ordering::Relaxed);
    out.bytes_total = counters.bytes.load(Ordering::Relaxed);
    let mut line = serde_json::to_string(&out)?;
    line.push('\n');
    stdout.write_all(line.as_bytes()).await?;
    stdout.flush().await?;
    Ok(())
}
