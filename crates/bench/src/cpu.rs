//! Where the CPU went during a scenario, per kind of process, read from /proc before and
//! after: the server(s), PostgreSQL, Redis, the bench itself (with its worker processes),
//! everything else, and idle. Throughput on this shared 2-core machine moves by ±10 % from
//! run to run; CPU time per seat held moves far less, so it is what tells two builds apart.
//! Linux only; elsewhere the report says nothing about CPU.

use std::{collections::BTreeMap, time::Instant};

use serde_json::{Value, json};

/// Kernel ticks per second in /proc (USER_HZ): fixed at 100 by the Linux ABI on every
/// architecture this bench runs on.
const TICKS_PER_S: f64 = 100.0;

/// CPU ticks by kind of process, and the machine's idle and total ticks.
pub struct Snapshot {
    at: Instant,
    by_kind: BTreeMap<&'static str, u64>,
    idle: u64,
    total: u64,
}

impl Snapshot {
    /// Reads every process now. `servers` are the server processes' pids.
    pub fn take(servers: &[u32]) -> Self {
        let me = std::process::id();
        let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Some((comm, ppid, ticks)) = stat(pid) else {
                continue;
            };
            let kind = if servers.contains(&pid) {
                "server"
            } else if comm == "postgres" {
                "postgres"
            } else if comm.starts_with("redis-server") {
                "redis"
            } else if pid == me || ppid == me {
                "bench"
            } else {
                "other"
            };
            *by_kind.entry(kind).or_default() += ticks;
        }
        let (idle, total) = machine().unwrap_or((0, 0));
        Self {
            at: Instant::now(),
            by_kind,
            idle,
            total,
        }
    }

    /// From `self` to `later`: each kind's share of all cores in percent, and its CPU time
    /// per `per` unit of work (e.g. per seat held) in microseconds. Processes that ended in
    /// between are not counted (their ticks went with them).
    pub fn until(&self, later: &Snapshot, per: u64, unit: &str) -> Value {
        let total = later.total.saturating_sub(self.total).max(1) as f64;
        let secs = later.at.duration_since(self.at).as_secs_f64();
        let mut out = serde_json::Map::new();
        out.insert("seconds".into(), json!(round1(secs)));
        for (kind, after) in &later.by_kind {
            let used = after.saturating_sub(self.by_kind.get(kind).copied().unwrap_or(0)) as f64;
            out.insert(format!("{kind}_pct"), json!(round1(100.0 * used / total)));
            if per > 0 && matches!(*kind, "server" | "postgres" | "redis") {
                let us = used / TICKS_PER_S * 1e6 / per as f64;
                out.insert(format!("{kind}_us_per_{unit}"), json!(round1(us)));
            }
        }
        let idle = later.idle.saturating_sub(self.idle) as f64;
        out.insert("idle_pct".into(), json!(round1(100.0 * idle / total)));
        Value::Object(out)
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A process's name, parent and user+system ticks, from /proc/PID/stat.
fn stat(pid: u32) -> Option<(String, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may hold spaces: split after the last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 2..)?.split(' ').collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let ppid = rest.get(1)?.parse().ok()?;
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, ppid, utime + stime))
}

/// The machine's idle (idle + iowait) and total ticks over all cores, from /proc/stat.
fn machine() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let n: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total = n.iter().take(8).sum();
    let idle = n.get(3).copied().unwrap_or(0) + n.get(4).copied().unwrap_or(0);
    Some((idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_counted_as_the_bench() {
        let before = Snapshot::take(&[]);
        // Burn a little CPU so the bench's share is above zero.
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed().as_millis() < 60 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = Snapshot::take(&[]);
        let v = before.until(&after, 1, "op");
        assert!(v["bench_pct"].as_f64().unwrap_or(0.0) > 0.0, "{v}");
        assert!(v.get("server_pct").is_none(), "{v}");
    }
}
