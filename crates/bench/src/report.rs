//! What a scenario measured, and how it is shown: a table for people, one JSON line for
//! scripts. Latency percentiles come from a sorted `Vec<f64>` (nearest rank): the runs are
//! bounded, so keeping every sample is cheap and exact.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Latencies and error codes gathered by one client task, merged after the run.
#[derive(Default)]
pub struct Tally {
    pub latencies_ms: Vec<f64>,
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    pub fn error(&mut self, code: &str) {
        *self.errors.entry(code.to_owned()).or_default() += 1;
    }

    pub fn merge(&mut self, other: Tally) {
        self.latencies_ms.extend(other.latencies_ms);
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
    }
}

/// Nearest-rank percentile of ascending samples; `None` without samples.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

pub fn sort(samples: &mut [f64]) {
    samples.sort_by(f64::total_cmp);
}

/// Rounds for display and JSON: two decimals are plenty for ms and rates.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub struct Report {
    pub scenario: &'static str,
    pub clients: usize,
    pub attempts_per_s: f64,
    pub holds_per_s: f64,
    /// Latencies of the measured operation, in ms (sorted by `finish`).
    pub latencies_ms: Vec<f64>,
    pub errors: BTreeMap<String, u64>,
    pub violations: Vec<String>,
    /// Scenario-specific fields, in the order the table shows them.
    pub extra: Vec<(&'static str, Value)>,
    /// Targets of BENCH.md that the run can judge alone, as readable lines.
    pub targets: Vec<String>,
}

impl Report {
    pub fn new(scenario: &'static str, clients: usize) -> Self {
        Self {
            scenario,
            clients,
            attempts_per_s: 0.0,
            holds_per_s: 0.0,
            latencies_ms: Vec::new(),
            errors: BTreeMap::new(),
            violations: Vec::new(),
            extra: Vec::new(),
            targets: Vec::new(),
        }
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        let value = match value.into() {
            Value::Number(n) if n.is_f64() => n.as_f64().map_or(Value::Null, |f| json!(round2(f))),
            v => v,
        };
        self.extra.push((key, value));
    }

    pub fn p(&self, p: f64) -> Option<f64> {
        percentile(&self.latencies_ms, p).map(round2)
    }

    /// Records a target as met or missed (never a violation: only invariants are).
    pub fn target(&mut self, what: &str, value: Option<f64>, limit: f64, at_most: bool) {
        let line = match value {
            Some(v) => {
                let met = if at_most { v <= limit } else { v >= limit };
                let op = if at_most { "<=" } else { ">=" };
                format!(
                    "{what} {op} {limit}: {} ({})",
                    if met { "met" } else { "MISSED" },
                    round2(v)
                )
            }
            None => format!("{what}: not measured"),
        };
        self.targets.push(line);
    }

    pub fn finish(&mut self) {
        sort(&mut self.latencies_ms);
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("scenario".into(), json!(self.scenario));
        m.insert("clients".into(), json!(self.clients));
        m.insert("attempts_per_s".into(), json!(round2(self.attempts_per_s)));
        m.insert("holds_per_s".into(), json!(round2(self.holds_per_s)));
        m.insert("p50_ms".into(), json!(self.p(50.0)));
        m.insert("p95_ms".into(), json!(self.p(95.0)));
        m.insert("p99_ms".into(), json!(self.p(99.0)));
        m.insert(
            "max_ms".into(),
            json!(self.latencies_ms.last().copied().map(round2)),
        );
        m.insert("samples".into(), json!(self.latencies_ms.len()));
        m.insert("errors".into(), json!(self.errors));
        m.insert("violations".into(), json!(self.violations));
        m.insert("targets".into(), json!(self.targets));
        for (k, v) in &self.extra {
            m.insert((*k).into(), v.clone());
        }
        Value::Object(m)
    }

    /// The human-readable table. No line starts with `{`, so the JSON line is easy to grep.
    pub fn table(&self) -> String {
        let fmt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        let mut rows: Vec<(String, String)> = vec![
            ("clients".into(), self.clients.to_string()),
            ("attempts/s".into(), format!("{:.1}", self.attempts_per_s)),
            ("seat holds/s".into(), format!("{:.1}", self.holds_per_s)),
            ("latency p50 ms".into(), fmt(self.p(50.0))),
            ("latency p95 ms".into(), fmt(self.p(95.0))),
            ("latency p99 ms".into(), fmt(self.p(99.0))),
            ("latency max ms".into(), fmt(self.latencies_ms.last().copied())),
            ("samples".into(), self.latencies_ms.len().to_string()),
        ];
        for (k, v) in &self.extra {
            let shown = match v {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            rows.push(((*k).to_owned(), shown));
        }
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        rows.push(("errors".into(), errors));
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = format!("== bench {} ==\n", self.scenario);
        for (k, v) in rows {
            out.push_str(&format!("  {k:<width$}  {v}\n"));
        }
        for t in &self.targets {
            out.push_str(&format!("  target: {t}\n"));
        }
        if self.violations.is_empty() {
            out.push_str("  invariants: all hold\n");
        } else {
            for v in &self.violations {
                out.push_str(&format!("  VIOLATION: {v}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), Some(50.0));
        assert_eq!(percentile(&s, 99.0), Some(99.0));
        assert_eq!(percentile(&s, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
