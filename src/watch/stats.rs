//! Latency percentiles in fixed memory, and the `stats` line.

use serde::Serialize;

/// Smallest and largest value a histogram resolves (ms); values outside are clamped.
const MIN_MS: f64 = 1e-3;
/// Bucket width as a ratio: percentiles are exact to within 1 %.
const RATIO: f64 = 1.01;
/// Buckets from 1 µs to about 10⁶ ms.
const BUCKETS: usize = 2083;

/// A log-bucketed histogram of milliseconds: fixed size, no allocation per value.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: Box::new([0; BUCKETS]), total: 0, max: 0.0 }
    }
}

impl Histogram {
    pub fn record(&mut self, ms: f64) {
        let ms = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
        let bucket = ((ms.max(MIN_MS) / MIN_MS).ln() / RATIO.ln()) as usize;
        self.counts[bucket.min(BUCKETS - 1)] += 1;
        self.total += 1;
        self.max = self.max.max(ms);
    }

    /// The `p`-quantile (0..=1): the middle of the bucket holding it, never above the maximum.
    pub fn quantile(&self, p: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((p * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return (MIN_MS * RATIO.powf(bucket as f64 + 0.5)).min(self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> Percentiles {
        let r = |v: f64| (v * 1000.0).round() / 1000.0;
        Percentiles {
            p50: r(self.quantile(0.5)),
            p90: r(self.quantile(0.9)),
            p99: r(self.quantile(0.99)),
            max: r(self.max),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// The stages a frame passes after capture.
#[derive(Default, Clone)]
pub struct StageTimes {
    pub preprocess: Histogram,
    pub infer: Histogram,
    pub decode: Histogram,
}

#[derive(Debug, Serialize)]
pub struct StagesLine {
    pub preprocess: Percentiles,
    pub infer: Percentiles,
    pub decode: Percentiles,
}

/// One source's counters in a stats line.
#[derive(Debug, Serialize)]
pub struct SourceLine {
    pub source: String,
    pub frames_captured: u64,
    pub frames_processed: u64,
    pub frames_dropped: u64,
    /// Received but unusable (a malformed ROS 2 image), skipped with a warning.
    pub frames_skipped: u64,
    pub reconnects: u64,
    pub fps: f64,
}

/// The `stats` line: every few seconds and at the end, since the start.
#[derive(Debug, Serialize)]
pub struct StatsLine {
    pub elapsed_s: f64,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub frames_captured: u64,
    pub frames_processed: u64,
    pub frames_dropped: u64,
    pub frames_skipped: u64,
    pub reconnects: u64,
    pub fps: f64,
    /// Capture (appsink) to result.
    pub latency_ms: Percentiles,
    pub stages_ms: StagesLine,
    pub sources: Vec<SourceLine>,
}

#[derive(Serialize)]
pub struct Stats<'a> {
    pub stats: &'a StatsLine,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_one_percent() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(f64::from(v) / 10.0);
        }
        for (p, want) in [(0.5, 50.0), (0.9, 90.0), (0.99, 99.0)] {
            let got = h.quantile(p);
            assert!((got - want).abs() / want < 0.01, "p{p}: {got} vs {want}");
        }
        assert_eq!(h.summary().max, 100.0);
        assert_eq!(h.total, 1000);
        h.record(f64::NAN);
        h.record(1e12);
        assert_eq!(h.total, 1002);
    }
}
