//! Machine ceilings: the f32 FMA peak and the read bandwidth this CPU reaches, per ISA.
//!
//! The benchmark suite measures these in the same run as the kernels, so that every kernel's
//! GFLOP/s can be set against a roofline of *this* machine *now* (a shared, noisy machine drifts;
//! ratios measured side by side do not).
//!
//! * [`fma_peak_gflops`]: `>= 10` independent FMA accumulator chains on the ISA's widest vectors,
//!   enough to hide the FMA latency on every core we know (4 cycles x 2 pipes on Zen/Skylake,
//!   4 x 4 on Apple/Neoverse), so the loop is bound by FMA throughput only.
//! * [`read_bandwidth_gbs`]: sums a buffer of a given size with the ISA's widest loads and several
//!   independent adds; sized to fit L1, L2, L3 or not at all, it gives each level's bandwidth.
//!
//! Both run on `threads` OS threads at once (each with its own accumulators or buffer), in many
//! short trials over a wall-clock budget, and report the best trial: a ceiling is the most the
//! machine did, not the typical (on a shared machine, a short trial often runs alone). Both return
//! `None` for an ISA the CPU (or this build) lacks. [`fma_peak_stats`] and
//! [`read_bandwidth_stats`] also give the median trial: median / best says how steady the machine
//! was during the probe (on a shared VM the cache bandwidths can wander far more than the FMA
//! peak, and every kernel that loads from cache wanders with them).
//!
//! The portable "ISA" runs plain Rust: its FMA loop is `acc * m + a` on fixed-size arrays, which
//! the compiler turns into the baseline target's vector multiply and add (SSE2 on x86_64) — the
//! ceiling the portable kernels can reach, not the machine's.
//!
//! ```
//! use sepconv::{probe, Isa};
//! use std::time::Duration;
//!
//! let peak = probe::fma_peak_gflops_for(Isa::Portable, 1, Duration::from_millis(20)).unwrap();
//! let l1 = probe::read_bandwidth_gbs_for(Isa::Portable, 16 << 10, 1, Duration::from_millis(20)).unwrap();
//! assert!(peak > 0.0 && l1 > 0.0);
//! ```

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::Isa;

/// Default wall-clock budget of one probe (all trials together).
pub const DEFAULT_DURATION: Duration = Duration::from_millis(300);

/// Length of one trial; a probe runs many and reports the best.
const TRIAL: Duration = Duration::from_millis(4);
/// Trials per probe, at least.
const MIN_TRIALS: usize = 5;

/// Iterations of the FMA loop per call (each iteration is one FMA on every chain).
const FMA_ITERS_PER_CALL: usize = 1 << 16;

/// Independent FMA accumulator chains of the ISA's FMA loop, or `None` if this build has none.
pub fn fma_chains(isa: Isa) -> Option<usize> {
    Some(fma_loop(isa)?.chains)
}

/// `f32` lanes of the vectors the ISA's probe loops use, or `None` if this build has none.
pub fn vector_lanes(isa: Isa) -> Option<usize> {
    Some(fma_loop(isa)?.lanes)
}

/// The f32 FMA peak of `isa` on `threads` threads, in GFLOP/s (an FMA counts as 2 FLOPs), over
/// [`DEFAULT_DURATION`]. `None` when the CPU or build lacks the ISA, or `threads == 0`.
pub fn fma_peak_gflops(isa: Isa, threads: usize) -> Option<f64> {
    fma_peak_gflops_for(isa, threads, DEFAULT_DURATION)
}

/// As [`fma_peak_gflops`], measured over about `duration` of wall-clock time.
pub fn fma_peak_gflops_for(isa: Isa, threads: usize, duration: Duration) -> Option<f64> {
    Some(fma_peak_stats(isa, threads, duration)?.best)
}

/// The best and median trial of the FMA peak probe ([`fma_peak_gflops`]), GFLOP/s, over about
/// `duration`.
pub fn fma_peak_stats(isa: Isa, threads: usize, duration: Duration) -> Option<ProbeStats> {
    if threads == 0 || !isa.is_available() {
        return None;
    }
    let l = fma_loop(isa)?;
    let flops_per_call = (2 * l.chains * l.lanes * FMA_ITERS_PER_CALL) as f64;
    let seed = 1.0 + threads as f32 * 1e-7; // not a constant the compiler can fold
    let rates = trial_rates(threads, duration, |_| {
        // SAFETY: `fma_loop` returned the loop of `isa`, which `is_available` confirmed above;
        // the loop touches no memory.
        std::hint::black_box(unsafe { (l.run)(FMA_ITERS_PER_CALL, seed) });
        flops_per_call
    });
    Some(ProbeStats::of(rates, 1e-9))
}

/// The read bandwidth of `isa`'s widest loads on `threads` threads, in GB/s (10^9 bytes), each
/// thread summing its own buffer of `bytes_per_thread` bytes (rounded to whole vectors, at least
/// one KiB), over [`DEFAULT_DURATION`]. `None` when the CPU or build lacks the ISA, or
/// `threads == 0`.
pub fn read_bandwidth_gbs(isa: Isa, bytes_per_thread: usize, threads: usize) -> Option<f64> {
    read_bandwidth_gbs_for(isa, bytes_per_thread, threads, DEFAULT_DURATION)
}

/// As [`read_bandwidth_gbs`], measured over about `duration` of wall-clock time.
pub fn read_bandwidth_gbs_for(
    isa: Isa,
    bytes_per_thread: usize,
    threads: usize,
    duration: Duration,
) -> Option<f64> {
    Some(read_bandwidth_stats(isa, bytes_per_thread, threads, duration)?.best)
}

/// The best and median trial of the read bandwidth probe ([`read_bandwidth_gbs`]), GB/s, over
/// about `duration`.
pub fn read_bandwidth_stats(
    isa: Isa,
    bytes_per_thread: usize,
    threads: usize,
    duration: Duration,
) -> Option<ProbeStats> {
    if threads == 0 || !isa.is_available() {
        return None;
    }
    let l = read_loop(isa)?;
    // Whole blocks of the loop's unrolled step, at least 1 KiB.
    let floats = (bytes_per_thread / 4).max(256) / l.block * l.block;
    let buffers: Vec<AlignedBuf> = (0..threads).map(|t| AlignedBuf::new(floats, t)).collect();
    // Touch every page once so first-touch faults stay out of the timing.
    let read = |data: &[f32]| -> f32 {
        // SAFETY: `read_loop` returned the loop of `isa`, which `is_available` confirmed above;
        // the loop reads `data` through its slice bounds only.
        unsafe { (l.run)(data) }
    };
    for b in &buffers {
        std::hint::black_box(read(b.as_slice()));
    }
    let bytes_per_call = (floats * 4) as f64;
    // Small buffers: several passes per timed call, so the call overhead does not count.
    let passes = (256 * 1024 / (floats * 4)).max(1);
    let rates = trial_rates(threads, duration, |t| {
        let data = buffers[t].as_slice();
        for _ in 0..passes {
            std::hint::black_box(read(std::hint::black_box(data)));
        }
        bytes_per_call * passes as f64
    });
    Some(ProbeStats::of(rates, 1e-9))
}

/// The trials of one probe, in the probe's unit (GFLOP/s or GB/s).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeStats {
    /// The best trial: the ceiling.
    pub best: f64,
    /// The median trial: with `best`, how steady the machine was while probing.
    pub median: f64,
    /// Trials run.
    pub trials: usize,
}

impl ProbeStats {
    /// Best and median of per-trial rates, times `scale`; zeros for no trials.
    fn of(mut rates: Vec<f64>, scale: f64) -> ProbeStats {
        rates.sort_by(f64::total_cmp);
        let n = rates.len();
        let median = match n {
            0 => 0.0,
            _ if n % 2 == 1 => rates[n / 2],
            _ => 0.5 * (rates[n / 2 - 1] + rates[n / 2]),
        };
        ProbeStats {
            best: rates.last().copied().unwrap_or(0.0) * scale,
            median: median * scale,
            trials: n,
        }
    }
}

/// One ISA's FMA throughput loop: `run(iters, seed)` performs `iters * chains` vector FMAs of
/// `lanes` f32 lanes and returns a value that depends on all of them.
pub(crate) struct FmaLoop {
    pub chains: usize,
    pub lanes: usize,
    /// # Safety: the CPU must support the loop's ISA.
    pub run: unsafe fn(usize, f32) -> f32,
}

/// One ISA's read loop: `run(data)` reads every float of `data` (whose length is a multiple of
/// `block`) and returns their sum.
pub(crate) struct ReadLoop {
    pub block: usize,
    /// # Safety: the CPU must support the loop's ISA.
    pub run: unsafe fn(&[f32]) -> f32,
}

fn fma_loop(isa: Isa) -> Option<FmaLoop> {
    match isa {
        Isa::Portable => Some(portable::FMA_LOOP),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(x86::avx2::FMA_LOOP),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(x86::avx512::FMA_LOOP),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Some(aarch64::neon::FMA_LOOP),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn read_loop(isa: Isa) -> Option<ReadLoop> {
    match isa {
        Isa::Portable => Some(portable::READ_LOOP),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(x86::avx2::READ_LOOP),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(x86::avx512::READ_LOOP),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Some(aarch64::neon::READ_LOOP),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Runs `call(thread_index)` (which returns the work it did) on `threads` threads started
/// together, in short trials of about [`TRIAL`] (at least [`MIN_TRIALS`]) filling `duration`;
/// returns each trial's work per second (trials that measured no time are left out).
///
/// Short trials and the best of them: on a shared machine another process takes the core now
/// and then, and a trial shorter than a scheduler time slice often runs alone. A ceiling is what
/// the hardware can do, so the best trial is the measurement.
fn trial_rates(threads: usize, duration: Duration, call: impl Fn(usize) -> f64 + Sync) -> Vec<f64> {
    let trials = ((duration.as_secs_f64() / TRIAL.as_secs_f64()) as usize).max(MIN_TRIALS);
    let started = Instant::now();
    let mut rates = Vec::with_capacity(trials);
    for i in 0..trials {
        // Trials of one long call (DRAM-sized buffers) overrun `TRIAL`: stop at the budget.
        if i >= MIN_TRIALS && started.elapsed() > duration {
            break;
        }
        let barrier = Barrier::new(threads);
        let run = |t: usize| -> (f64, Instant, Instant) {
            if i == 0 {
                call(t); // warm up (clocks, caches, page tables)
            }
            barrier.wait();
            let start = Instant::now();
            let mut work = 0.0;
            loop {
                work += call(t);
                let now = Instant::now();
                if now - start >= TRIAL {
                    return (work, start, now);
                }
            }
        };
        let results: Vec<(f64, Instant, Instant)> = if threads == 1 {
            vec![run(0)]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads).map(|t| s.spawn(move || run(t))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("probe thread panicked"))
                    .collect()
            })
        };
        // Work of all threads over the span from the first start to the last end.
        let work: f64 = results.iter().map(|r| r.0).sum();
        let start = results.iter().map(|r| r.1).min().expect("threads >= 1");
        let end = results.iter().map(|r| r.2).max().expect("threads >= 1");
        let secs = (end - start).as_secs_f64();
        if secs > 0.0 {
            rates.push(work / secs);
        }
    }
    rates
}

/// A zeroed-then-filled `f32` buffer whose slice starts on a 64-byte boundary (a cache line), so
/// no vector load of the read loop straddles two lines.
struct AlignedBuf {
    data: Vec<f32>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize, seed: usize) -> AlignedBuf {
        let mut data = vec![0.0f32; len + 16];
        let misalign = (data.as_ptr() as usize) % 64;
        let start = ((64 - misalign) % 64) / 4;
        for (i, v) in data[start..start + len].iter_mut().enumerate() {
            *v = ((i + seed) % 7) as f32 * 0.25;
        }
        AlignedBuf { data, start, len }
    }

    fn as_slice(&self) -> &[f32] {
        &self.data[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(10);

    #[test]
    fn every_available_isa_has_probes() {
        for isa in Isa::available() {
            assert!(fma_peak_gflops_for(isa, 1, SHORT).unwrap() > 0.0, "{isa}");
            assert!(fma_peak_gflops_for(isa, 2, SHORT).unwrap() > 0.0, "{isa}");
            assert!(fma_chains(isa).unwrap() >= 10, "{isa}");
            for bytes in [1000, 16 << 10, 1 << 20] {
                assert!(read_bandwidth_gbs_for(isa, bytes, 1, SHORT).unwrap() > 0.0);
            }
        }
    }

    #[test]
    fn stats_give_best_and_median_of_the_trials() {
        let s = ProbeStats::of(vec![3e9, 1e9, 2e9], 1e-9);
        assert_eq!((s.best, s.median, s.trials), (3.0, 2.0, 3));
        let s = ProbeStats::of(vec![4.0, 1.0, 2.0, 3.0], 1.0);
        assert_eq!((s.best, s.median, s.trials), (4.0, 2.5, 4));
        assert_eq!(ProbeStats::of(vec![], 1.0).best, 0.0);
        for isa in Isa::available() {
            let s = fma_peak_stats(isa, 1, SHORT).unwrap();
            assert!(
                s.trials >= MIN_TRIALS && s.median > 0.0 && s.median <= s.best,
                "{isa}"
            );
            let s = read_bandwidth_stats(isa, 16 << 10, 1, SHORT).unwrap();
            assert!(
                s.trials >= MIN_TRIALS && s.median > 0.0 && s.median <= s.best,
                "{isa}"
            );
        }
    }

    #[test]
    fn unavailable_isa_gives_none() {
        for isa in Isa::ALL.into_iter().filter(|i| !i.is_available()) {
            assert_eq!(fma_peak_gflops_for(isa, 1, SHORT), None, "{isa}");
            assert_eq!(read_bandwidth_gbs_for(isa, 4096, 1, SHORT), None, "{isa}");
        }
        assert_eq!(fma_peak_gflops_for(Isa::Portable, 0, SHORT), None);
    }

    #[test]
    fn read_loops_sum_every_element() {
        for isa in Isa::available() {
            let l = read_loop(isa).unwrap();
            let n = l.block * 5;
            let data: Vec<f32> = (0..n).map(|i| (i % 4) as f32).collect();
            let want: f32 = data.iter().sum();
            // SAFETY: `isa` is available (from `Isa::available`).
            assert_eq!(unsafe { (l.run)(&data) }, want, "{isa}");
        }
    }

    #[test]
    fn fma_loops_compute_the_recurrence() {
        // acc <- acc * M + A for 100 steps on every chain (chain c from seed + c * CHAIN_STEP);
        // the result sums lane 0 of the chains.
        for isa in Isa::available() {
            let l = fma_loop(isa).unwrap();
            let want: f32 = (0..l.chains)
                .map(|c| {
                    let mut acc = 1.5 + c as f32 * portable::CHAIN_STEP;
                    for _ in 0..100 {
                        acc = acc.mul_add(portable::FMA_M, portable::FMA_A);
                    }
                    acc
                })
                .sum();
            // SAFETY: `isa` is available (from `Isa::available`).
            let got = unsafe { (l.run)(100, 1.5) };
            assert!(
                (got - want).abs() <= 1e-4 * want.abs(),
                "{isa}: {got} vs {want}"
            );
        }
    }
}
