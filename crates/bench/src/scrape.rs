//! The server's own histograms, read from its `/metrics` (Prometheus text) before and after
//! a measured phase: what the server says of its share, next to what the clients saw.

/// One histogram without labels: cumulative counts per upper bound, ascending, and the
/// number of samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub count: f64,
    pub sum: f64,
}

impl Histogram {
    /// `name`'s histogram in a Prometheus text exposition; None if it has no samples yet.
    pub fn parse(text: &str, name: &str) -> Option<Self> {
        let bucket = format!("{name}_bucket{{le=\"");
        let mut h = Self::default();
        let mut seen = false;
        for line in text.lines() {
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if let Some(le) = key.strip_prefix(&bucket).and_then(|r| r.strip_suffix("\"}")) {
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                h.buckets.push((le, value));
                seen = true;
            } else if key == format!("{name}_count") {
                h.count = value;
            } else if key == format!("{name}_sum") {
                h.sum = value;
            }
        }
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        seen.then_some(h)
    }

    /// The samples recorded after `before` was read (the same histogram, read earlier).
    pub fn since(&self, before: Option<&Self>) -> Self {
        let Some(before) = before else {
            return self.clone();
        };
        let earlier = |le: f64| before.buckets.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1);
        Self {
            buckets: self
                .buckets
                .iter()
                .map(|&(le, n)| (le, n - earlier(le)))
                .collect(),
            count: self.count - before.count,
            sum: self.sum - before.sum,
        }
    }

    /// The `q` quantile (0-1), interpolated within its bucket as Prometheus's
    /// `histogram_quantile` does; the highest finite bound if it lies beyond it.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        let mut lower = (0.0, 0.0);
        for &(le, n) in &self.buckets {
            if n >= rank {
                if le.is_infinite() {
                    return Some(lower.0);
                }
                let within = n - lower.1;
                let share = if within > 0.0 {
                    (rank - lower.1) / within
                } else {
                    1.0
                };
                return Some(lower.0 + (le - lower.0) * share);
            }
            lower = (le, n);
        }
        Some(lower.0)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE live_delivery_seconds histogram
live_delivery_seconds_bucket{le=\"0.1\"} 50
live_delivery_seconds_bucket{le=\"0.25\"} 90
live_delivery_seconds_bucket{le=\"0.5\"} 100
live_delivery_seconds_bucket{le=\"+Inf\"} 100
live_delivery_seconds_sum 12.5
live_delivery_seconds_count 100
other_bucket{le=\"0.1\"} 7
";

    #[test]
    fn reads_a_histogram_and_its_quantiles() {
        let h = Histogram::parse(TEXT, "live_delivery_seconds").unwrap();
        assert_eq!(h.count, 100.0);
        assert_eq!(h.buckets.len(), 4);
        assert_eq!(h.quantile(0.5), Some(0.1));
        // The 99th sample is 9/10 of the way through the 0.25-0.5 bucket.
        assert!((h.quantile(0.99).unwrap() - 0.475).abs() < 1e-9);
        assert_eq!(h.mean(), Some(0.125));
        assert_eq!(Histogram::parse(TEXT, "absent"), None);
    }

    #[test]
    fn the_difference_of_two_readings_holds_only_the_new_samples() {
        let before = Histogram::parse(TEXT, "live_delivery_seconds").unwrap();
        let later = TEXT
            .replace("} 50", "} 150")
            .replace("} 90", "} 190")
            .replace("} 100", "} 200")
            .replace("_count 100", "_count 200")
            .replace("_sum 12.5", "_sum 17.5");
        let after = Histogram::parse(&later, "live_delivery_seconds").unwrap();
        let new = after.since(Some(&before));
        assert_eq!(new.count, 100.0);
        assert_eq!(new.buckets[0], (0.1, 100.0));
        assert!((new.quantile(0.99).unwrap() - 0.099).abs() < 1e-9);
        assert_eq!(new.mean(), Some(0.05));
    }
}
