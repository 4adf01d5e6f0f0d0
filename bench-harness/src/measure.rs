//! Timing by budget: repeat a call until a wall-clock budget is spent, report the median.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

/// How long to measure one row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Wall-clock time to spend on samples (after one warm-up call).
    pub time: Duration,
    /// At least this many samples, even past the time budget.
    pub min_samples: usize,
    /// At most this many samples.
    pub max_samples: usize,
    /// A sample batches enough calls to last at least this long (short calls are otherwise
    /// dominated by timer overhead).
    pub min_sample_time: Duration,
}

impl Budget {
    /// `time` per row, 3 to 1000 samples of at least 1 ms.
    pub fn new(time: Duration) -> Budget {
        Budget {
            time,
            min_samples: 3,
            max_samples: 1000,
            min_sample_time: Duration::from_millis(1),
        }
    }
}

/// Per-call timing statistics of one row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Median seconds per call over the samples.
    pub median_s: f64,
    /// Fastest sample, seconds per call.
    pub min_s: f64,
    /// Median absolute deviation of the samples, seconds per call.
    pub mad_s: f64,
    /// Samples taken.
    pub samples: usize,
    /// Calls per sample.
    pub calls_per_sample: usize,
}

/// Times `f`: one warm-up call, then samples of `calls_per_sample` calls until the budget is
/// spent. Returns the per-call median.
pub fn time_it(budget: &Budget, f: impl FnMut()) -> Timing {
    let (samples, calls) = sample(budget, f);
    Timing::from_samples(samples, calls)
}

/// As [`time_it`], returning the per-call seconds of every sample and the calls per sample.
pub fn sample(budget: &Budget, mut f: impl FnMut()) -> (Vec<f64>, usize) {
    let t0 = Instant::now();
    f();
    let first = t0.elapsed().max(Duration::from_nanos(1));
    // Calls per sample so that a sample lasts at least `min_sample_time`.
    let calls = (budget.min_sample_time.as_secs_f64() / first.as_secs_f64()).ceil() as usize;
    let calls = calls.clamp(1, 1 << 20);
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < budget.min_samples
        || (start.elapsed() < budget.time && samples.len() < budget.max_samples)
    {
        let t = Instant::now();
        for _ in 0..calls {
            f();
        }
        samples.push(t.elapsed().as_secs_f64() / calls as f64);
    }
    (samples, calls)
}

impl Timing {
    /// Statistics of per-call sample times (e.g. pooled from several rounds).
    pub fn from_samples(mut samples: Vec<f64>, calls_per_sample: usize) -> Timing {
        let median_s = median(&mut samples);
        let mut dev: Vec<f64> = samples.iter().map(|s| (s - median_s).abs()).collect();
        Timing {
            median_s,
            min_s: samples.iter().copied().fold(f64::INFINITY, f64::min),
            mad_s: median(&mut dev),
            samples: samples.len(),
            calls_per_sample,
        }
    }
}

/// The median of `v` (sorts it); 0 for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn takes_at_least_min_samples() {
        let mut calls = 0;
        let b = Budget {
            time: Duration::ZERO,
            min_samples: 5,
            max_samples: 10,
            min_sample_time: Duration::ZERO,
        };
        let t = time_it(&b, || calls += 1);
        assert_eq!(t.samples, 5);
        assert_eq!(calls, 1 + 5 * t.calls_per_sample);
        assert!(t.median_s >= 0.0 && t.min_s <= t.median_s);
    }
}
