//! The Prometheus text exposition format, written once for the daemon and the collector: a
//! writer that puts `# HELP`/`# TYPE` before each family's samples, label escaping, and a
//! fixed-bucket [`Histogram`] rendered with cumulative buckets, `+Inf`, `_sum` and `_count`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The kind of a metric family (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (names end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Quantiles of observations.
    Summary,
    /// Cumulative buckets of observations.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Summary => "summary",
            Self::Histogram => "histogram",
        }
    }
}

/// Prometheus text under construction; every name gets the writer's prefix.
pub struct Exposition {
    prefix: &'static str,
    out: String,
}

impl Exposition {
    /// An empty text whose metric names all start with `prefix` (e.g. `roentgen_web_`).
    pub fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            out: String::with_capacity(8192),
        }
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Self {
        let prefix = self.prefix;
        let _ = writeln!(self.out, "# HELP {prefix}{name} {help}");
        let _ = writeln!(self.out, "# TYPE {prefix}{name} {}", kind.as_str());
        self
    }

    /// One sample of the current family; `labels` are `(name, value)` pairs, values escaped here.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let prefix = self.prefix;
        let _ = write!(self.out, "{prefix}{name}");
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, value: impl std::fmt::Display) {
        self.family(name, help, kind).sample(name, &[], value);
    }

    /// A histogram's samples (the family must have been started with [`Kind::Histogram`]).
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        let snapshot = histogram.snapshot();
        let bucket = format!("{name}_bucket");
        let mut sample = |le: &str, value: u64| {
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", le));
            self.sample(&bucket, &with_le, value);
        };
        let mut cumulative = 0;
        for (bound, count) in histogram.bounds.iter().zip(&snapshot.counts) {
            cumulative += count;
            sample(&bound.to_string(), cumulative);
        }
        sample("+Inf", snapshot.count);
        self.sample(&format!("{name}_sum"), labels, snapshot.sum_seconds);
        self.sample(&format!("{name}_count"), labels, snapshot.count);
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Durations counted into fixed buckets (upper bounds in seconds), with their sum; lock-free.
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound plus one for larger values (not cumulative).
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

/// What a histogram held at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative), the last one above every bound.
    pub counts: Vec<u64>,
    /// Observations in all.
    pub count: u64,
    /// Sum of the observations, in seconds.
    pub sum_seconds: f64,
}

/// Bucket bounds for request and store latencies: 0.5 ms to 30 s.
pub const LATENCY_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Histogram {
    /// An empty histogram over `bounds` (ascending upper bounds, seconds).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let slot = self.bounds.partition_point(|b| *b < seconds);
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        HistogramSnapshot {
            count: counts.iter().sum(),
            counts,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new(LATENCY_BOUNDS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_and_type_before_their_samples() {
        let mut e = Exposition::new("x_");
        e.family("refused_total", "Refused, by reason.", Kind::Counter)
            .sample("refused_total", &[("reason", "bad \"id\"\n")], 3);
        e.single("up", "Up.", Kind::Gauge, 1);
        assert_eq!(
            e.finish(),
            "# HELP x_refused_total Refused, by reason.\n# TYPE x_refused_total counter\n\
             x_refused_total{reason=\"bad \\\"id\\\"\\n\"} 3\n\
             # HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        static BOUNDS: &[f64] = &[0.01, 0.1, 1.0];
        let h = Histogram::new(BOUNDS);
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(10)); // on a bound: counted in that bucket (le)
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_secs(3));
        let mut e = Exposition::new("x_");
        e.family("op_seconds", "Latency.", Kind::Histogram);
        e.histogram("op_seconds", &[("operation", "Get")], &h);
        let text = e.finish();
        let expected = [
            "x_op_seconds_bucket{operation=\"Get\",le=\"0.01\"} 2",
            "x_op_seconds_bucket{operation=\"Get\",le=\"0.1\"} 3",
            "x_op_seconds_bucket{operation=\"Get\",le=\"1\"} 3",
            "x_op_seconds_bucket{operation=\"Get\",le=\"+Inf\"} 4",
            "x_op_seconds_sum{operation=\"Get\"} 3.065",
            "x_op_seconds_count{operation=\"Get\"} 4",
        ];
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples, expected);
        assert!(text.starts_with("# HELP x_op_seconds Latency.\n# TYPE x_op_seconds histogram\n"));
    }

    #[test]
    fn an_empty_histogram_renders_zeros() {
        let h = Histogram::default();
        let s = h.snapshot();
        assert_eq!((s.count, s.sum_seconds), (0, 0.0));
        assert_eq!(s.counts.len(), LATENCY_BOUNDS.len() + 1);
    }
}
