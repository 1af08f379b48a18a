//! A small timing harness for `cargo bench` targets with `harness = false`:
//! a warm-up that finds how many iterations fill a sample, then samples
//! timed alike, reported as the median time per iteration with the range,
//! and a rate when the work per iteration is known.
//!
//! It replaces criterion for wshub's micro-benchmarks, so that building the
//! examples and tests does not build a statistics and plotting toolkit.
//!
//! ```no_run
//! use testkit::bench::{Bench, Throughput};
//!
//! let bench = Bench::from_args();
//! let data = vec![1u8; 1024];
//! bench.iter("sum/1KiB", Throughput::Bytes(1024), || data.iter().map(|&b| u64::from(b)).sum::<u64>());
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

/// What one iteration processes, for the rate printed next to the time.
#[derive(Debug, Clone, Copy)]
pub enum Throughput {
    /// Bytes per iteration: printed as MiB/s or GiB/s.
    Bytes(u64),
    /// Items per iteration (messages, deliveries): printed as items/s.
    Elements(u64),
    /// Nothing to count: the time alone.
    None,
}

/// How long to warm up and measure, and which benchmarks to run.
#[derive(Debug, Clone)]
pub struct Bench {
    filter: Option<String>,
    warm_up: Duration,
    measure: Duration,
    samples: usize,
}

impl Bench {
    /// From the command line `cargo bench --bench NAME -- [FILTER]` gives:
    /// only benchmarks whose name contains FILTER run. 1 s of warm-up, 3 s
    /// of measurement in 20 samples.
    pub fn from_args() -> Self {
        let filter = std::env::args().skip(1).find(|arg| !arg.starts_with("--"));
        Self {
            filter,
            warm_up: Duration::from_secs(1),
            measure: Duration::from_secs(3),
            samples: 20,
        }
    }

    /// The same, with `warm_up`, `measure` and `samples` instead.
    pub fn with_times(mut self, warm_up: Duration, measure: Duration, samples: usize) -> Self {
        self.warm_up = warm_up;
        self.measure = measure;
        self.samples = samples.max(1);
        self
    }

    /// Whether `name` passes the filter.
    pub fn wants(&self, name: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| name.contains(f))
    }

    /// Times `routine`, called over and over.
    pub fn iter<R>(&self, name: &str, throughput: Throughput, mut routine: impl FnMut() -> R) {
        self.custom(name, throughput, |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(routine());
            }
            start.elapsed()
        });
    }

    /// Times `routine` on a fresh input from `setup` each call; `setup`,
    /// and dropping what `routine` returns, are not timed.
    pub fn iter_batched<I, R>(
        &self,
        name: &str,
        throughput: Throughput,
        mut setup: impl FnMut() -> I,
        mut routine: impl FnMut(I) -> R,
    ) {
        self.custom(name, throughput, |iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let input = setup();
                let start = Instant::now();
                let output = routine(input);
                timed += start.elapsed();
                drop(black_box(output));
            }
            timed
        });
    }

    /// Times what `run(iters)` says `iters` iterations took: for work that
    /// times only part of itself.
    pub fn custom(&self, name: &str, throughput: Throughput, mut run: impl FnMut(u64) -> Duration) {
        if !self.wants(name) {
            return;
        }
        // Warm-up: double the iterations until a round takes a while, and
        // keep going until the warm-up time is spent.
        let started = Instant::now();
        let mut iters = 1u64;
        let mut per_iter = Duration::ZERO;
        while started.elapsed() < self.warm_up {
            let took = run(iters);
            per_iter = took / u32::try_from(iters).unwrap_or(u32::MAX);
            if took < self.warm_up / 10 {
                iters = iters.saturating_mul(2);
            }
        }
        let per_sample = self.measure / u32::try_from(self.samples).unwrap_or(u32::MAX);
        let iters = match per_iter.as_nanos() {
            0 => iters,
            nanos => (per_sample.as_nanos() / nanos).clamp(1, u128::from(u32::MAX)) as u64,
        };
        let mut times: Vec<f64> = (0..self.samples)
            .map(|_| run(iters).as_secs_f64() / iters as f64)
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let (low, high) = (times[0], times[times.len() - 1]);
        println!(
            "{name:<40} {:>10}/iter ({}–{}){}",
            duration(median),
            duration(low),
            duration(high),
            rate(throughput, median),
        );
    }
}

/// Seconds as ns, µs, ms or s.
fn duration(secs: f64) -> String {
    match secs {
        s if s < 1e-6 => format!("{:.1} ns", s * 1e9),
        s if s < 1e-3 => format!("{:.2} µs", s * 1e6),
        s if s < 1.0 => format!("{:.2} ms", s * 1e3),
        s => format!("{s:.2} s"),
    }
}

/// The rate of `throughput` at `secs` per iteration, with a leading comma.
fn rate(throughput: Throughput, secs: f64) -> String {
    match throughput {
        Throughput::None => String::new(),
        Throughput::Bytes(bytes) => {
            let per_sec = bytes as f64 / secs;
            if per_sec >= f64::from(1 << 30) {
                format!(", {:.2} GiB/s", per_sec / f64::from(1 << 30))
            } else {
                format!(", {:.1} MiB/s", per_sec / f64::from(1 << 20))
            }
        }
        Throughput::Elements(n) => {
            let per_sec = n as f64 / secs;
            if per_sec >= 1e6 {
                format!(", {:.2}M/s", per_sec / 1e6)
            } else {
                format!(", {:.1}k/s", per_sec / 1e3)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_substring() {
        let bench = Bench {
            filter: Some("mask".into()),
            ..Bench::from_args()
        };
        assert!(bench.wants("mask/apply_mask/16B"));
        assert!(!bench.wants("decode/server/16B_text"));
    }

    #[test]
    fn formats_times_and_rates() {
        assert_eq!(duration(12.3e-9), "12.3 ns");
        assert_eq!(duration(4.5e-3), "4.50 ms");
        assert_eq!(rate(Throughput::Bytes(1 << 30), 1.0), ", 1.00 GiB/s");
        assert_eq!(rate(Throughput::Elements(2_000_000), 1.0), ", 2.00M/s");
        assert_eq!(rate(Throughput::None, 1.0), "");
    }
}
