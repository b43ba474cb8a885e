//! Histograms of fixed buckets, updated with relaxed atomics (no lock and no allocation on the
//! paths they measure), and the Prometheus text exposition (format 0.0.4) they are read out in.
//!
//! A histogram's buckets are fixed when it is made, so its series never grow with traffic; a
//! scrape reads each bucket once and accumulates them, so the `le` counts it shows are monotone
//! and the `+Inf` bucket equals `_count` even while observations land meanwhile.

use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of request and commit latency buckets, in microseconds: 1 ms to 10 s.
pub const LATENCY_BOUNDS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Upper bounds of the commands-per-batch buckets: powers of two up to the largest batch the
/// configuration allows (`WALLET_BATCH_SIZE_MAX` at most 10 000).
pub const BATCH_COMMANDS_BOUNDS: [u64; 15] =
    [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024, 2_048, 4_096, 8_192, 10_000];

/// A histogram over fixed upper bounds (in the unit observed), plus the sum of what it saw.
pub struct Histogram {
    bounds: &'static [u64],
    /// One count per bound, then one for values above every bound (not cumulative).
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

/// A histogram as read at one moment: cumulative counts per bound, then `+Inf`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub bounds: &'static [u64],
    pub cumulative: Vec<u64>,
    pub sum: u64,
}

impl HistogramSnapshot {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Histogram {
        assert!(bounds.windows(2).all(|pair| pair[0] < pair[1]), "histogram bounds must increase");
        Histogram { bounds, buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum: AtomicU64::new(0) }
    }

    pub fn observe(&self, value: u64) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|bucket| {
                total += bucket.load(Ordering::Relaxed);
                total
            })
            .collect();
        HistogramSnapshot { bounds: self.bounds, cumulative, sum: self.sum.load(Ordering::Relaxed) }
    }
}

/// Builds the text of a scrape. Each family is announced once with its help and type, then its
/// samples; label values are escaped as the format requires.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {value}");
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram; bounds and sum are divided
    /// by `unit` (1 000 000 shows microseconds as seconds).
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], snapshot: &HistogramSnapshot, unit: u64) {
        let scaled = |value: u64| -> String {
            if unit == 1 {
                value.to_string()
            } else {
                (value as f64 / unit as f64).to_string()
            }
        };
        for (index, count) in snapshot.cumulative.iter().enumerate() {
            let le = snapshot.bounds.get(index).map_or_else(|| "+Inf".to_owned(), |bound| scaled(*bound));
            let _ = write!(self.text, "{name}_bucket");
            write_labels(&mut self.text, labels, Some(&le));
            let _ = writeln!(self.text, " {count}");
        }
        let _ = write!(self.text, "{name}_sum");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", scaled(snapshot.sum));
        let _ = write!(self.text, "{name}_count");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", snapshot.count());
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        for character in value.chars() {
            match character {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                other => out.push(other),
            }
        }
        out.push('"');
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_lands_in_the_first_bucket_whose_bound_it_does_not_pass() {
        let histogram = Histogram::new(&[1, 2, 4]);
        for value in [0, 1, 2, 3, 4, 5, 100] {
            histogram.observe(value);
        }
        let snapshot = histogram.snapshot();
        // le=1: 0 and 1; le=2: + 2; le=4: + 3 and 4; +Inf: + 5 and 100.
        assert_eq!(snapshot.cumulative, vec![2, 3, 5, 7]);
        assert_eq!(snapshot.count(), 7);
        assert_eq!(snapshot.sum, 115);
    }

    #[test]
    fn exposition_scales_bounds_and_escapes_label_values() {
        let histogram = Histogram::new(&LATENCY_BOUNDS_US);
        histogram.observe(1_500);
        let mut exposition = Exposition::default();
        exposition.family("x_seconds", "histogram", "Test.");
        exposition.histogram("x_seconds", &[("route", "/a/{id}\"")], &histogram.snapshot(), 1_000_000);
        let text = exposition.finish();
        assert!(text.contains("x_seconds_bucket{route=\"/a/{id}\\\"\",le=\"0.001\"} 0\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{route=\"/a/{id}\\\"\",le=\"0.0025\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{route=\"/a/{id}\\\"\",le=\"+Inf\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_sum{route=\"/a/{id}\\\"\"} 0.0015\n"), "{text}");
        assert!(text.contains("x_seconds_count{route=\"/a/{id}\\\"\"} 1\n"), "{text}");
    }
}
