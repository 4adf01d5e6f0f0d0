//! Probe (not a CI bench): single-threaded GFLOP/s of the pointwise 1x1 convolution on the
//! MobileNet v1 224 shapes with the AVX2 kernels, next to this machine's FMA peak measured in the
//! same run (so that the ratio survives a noisy, shared machine).
//!
//! `cargo run --release -p sepconv --example gemm_avx2_probe [samples] [all|ukernel|shapes] [filter]`

use std::hint::black_box;
use std::time::Instant;

use sepconv::{Activation, Isa, Kernels, Shape, TensorView, TensorViewMut, WeightLayout};

/// `(label, M pixels, K in channels, N out channels)`.
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("pw01 112x112 32->64", 112 * 112, 32, 64),
    ("pw02 56x56 64->128", 56 * 56, 64, 128),
    ("pw03 56x56 128->128", 56 * 56, 128, 128),
    ("pw04 28x28 128->256", 28 * 28, 128, 256),
    ("pw05 28x28 256->256", 28 * 28, 256, 256),
    ("pw06 14x14 256->512", 14 * 14, 256, 512),
    ("pw07 14x14 512->512", 14 * 14, 512, 512),
    ("pw12 7x7 512->1024", 7 * 7, 512, 1024),
    ("pw13 7x7 1024->1024", 7 * 7, 1024, 1024),
    ("hot 96 32->64", 96, 32, 64),
    ("hot 96 64->128", 96, 64, 128),
    ("hot 96 128->128", 96, 128, 128),
    ("hot 120 256->16", 120, 256, 16),
    ("hot 48 1024->64", 48, 1024, 64),
];

#[cfg(target_arch = "x86_64")]
mod peak {
    use core::arch::x86_64::*;

    /// 12 independent chains of `vfmadd231ps` (3x the 4 needed in flight per pipe): the FMA peak.
    /// Returns a value derived from every accumulator so nothing is optimised away.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2 and FMA3.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_loop(iters: usize, x: f32) -> f32 {
        let (m, a) = (_mm256_set1_ps(x), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(0.5); 12];
        for _ in 0..iters {
            for r in acc.iter_mut() {
                *r = _mm256_fmadd_ps(*r, m, a);
            }
        }
        let mut s = _mm256_setzero_ps();
        for r in acc {
            s = _mm256_add_ps(s, r);
        }
        _mm256_cvtss_f32(s)
    }
}

/// `struct timespec` of the C library on 64-bit Linux.
#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CPU time this thread has run, in seconds (`CLOCK_THREAD_CPUTIME_ID`, Linux): unlike wall time
/// it excludes the time other processes held the core.
fn cpu_time() -> f64 {
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `clock_gettime` writes one `struct timespec` (two 64-bit fields on x86_64 and
    // aarch64 Linux) to the valid, exclusively borrowed `ts`.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

/// A stopwatch of this thread's CPU time.
struct Watch(f64);

impl Watch {
    fn start() -> Watch {
        Watch(cpu_time())
    }
    fn secs(&self) -> f64 {
        cpu_time() - self.0
    }
}

/// FLOP/s of the FMA loop for ~`secs` seconds.
fn fma_peak(secs: f64) -> f64 {
    let iters = 1 << 14;
    let start = Watch::start();
    let mut calls = 0usize;
    let mut sink = 0.0f32;
    while start.secs() < secs {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `main` only measures the peak after checking that AVX2 (with FMA) is available.
            sink += unsafe { peak::fma_loop(black_box(iters), black_box(0.999_999_9)) };
        }
        calls += 1;
    }
    black_box(sink);
    (calls * iters * 12 * 16) as f64 / start.secs()
}

/// Deterministic pseudo-random floats in [-1, 1).
fn fill(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN timings"));
    v[v.len() / 2]
}

/// Best-of-bursts timing of the micro-kernel alone on a hot `96 x 16` strip of C (16 tiles of
/// m x n, A rows at stride `k`, one packed B sliver), against the best-of-bursts FMA loop. Short
/// bursts timed with the wall clock; the minimum discards those that were interrupted.
#[cfg(target_arch = "x86_64")]
fn ukernel_probe(bursts: usize) {
    use sepconv::gemm::ukernel::GemmTile;
    use sepconv::gemm::x86::avx2::gemm_f32_6x16_avx2;
    let best_rate = |f: &mut dyn FnMut(), flop: f64| {
        let mut best = f64::INFINITY;
        for _ in 0..bursts {
            let t = Instant::now();
            f();
            best = best.min(t.elapsed().as_secs_f64());
        }
        flop / best
    };
    let peak_iters = 4096;
    let peak = best_rate(
        &mut || {
            // SAFETY: `main` checked that AVX2 and FMA are available.
            black_box(unsafe { peak::fma_loop(black_box(peak_iters), 0.999_999_9) });
        },
        (peak_iters * 12 * 16) as f64,
    );
    println!("ukernel, 16 tiles of m x n down a hot 96x16 strip of C, best of {bursts} bursts:");
    println!("  FMA peak {:.1} GFLOP/s", peak / 1e9);
    for (mr, nr, kk) in [
        (6, 16, 8),
        (6, 16, 16),
        (6, 16, 32),
        (6, 16, 64),
        (6, 16, 128),
        (6, 16, 256),
        (6, 16, 512),
        (5, 16, 256),
        (4, 16, 256),
        (3, 16, 256),
        (2, 16, 256),
        (1, 16, 256),
        (6, 8, 256),
        (5, 8, 256),
        (3, 8, 256),
        (1, 8, 256),
    ] {
        let rows = 96;
        let a = fill(rows * kk, 1);
        // B 64-byte aligned, as the library packs it (misaligned B costs the 1-2 row tiles ~30%).
        let bb = fill((kk + 1) * 16 + 16, 2);
        let b = &bb[(16 - (bb.as_ptr() as usize / 4) % 16) % 16..];
        let mut c = vec![0.0f32; rows * 16];
        let mut run = || {
            for ir in (0..rows).step_by(6) {
                let tile = GemmTile {
                    m: mr,
                    n: nr,
                    k: kk,
                    a: a[ir * kk..].as_ptr(),
                    lda: kk,
                    b: b[16..].as_ptr(),
                    bias: b.as_ptr(),
                    c: c[ir * 16..].as_mut_ptr(),
                    ldc: 16,
                    first_k_block: true,
                    last_k_block: true,
                    min: 0.0,
                    max: f32::INFINITY,
                };
                // SAFETY: AVX2 + FMA are available (checked in `main`); rows ir..ir+6 of A hold
                // `kk` floats each, B holds bias + kk rows of 16, C rows ir..ir+6 hold 16 floats.
                unsafe { gemm_f32_6x16_avx2(&tile) };
            }
            black_box(&mut c);
        };
        let rate = best_rate(&mut run, 2.0 * (rows / 6 * mr * kk * nr) as f64);
        println!(
            "  {mr}x{nr:<2} k={kk:<4} {:>6.1} GFLOP/s {:>6.1}% of peak",
            rate / 1e9,
            100.0 * rate / peak
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let samples: usize = args.next().map_or(40, |s| s.parse().expect("samples"));
    let mode = args.next().unwrap_or_else(|| "all".into());
    let filter = args.next().unwrap_or_default();
    let isa = Isa::Avx2;
    let Some(k) = Kernels::for_isa(isa) else {
        println!("SKIP: {isa} is not available on this CPU");
        return;
    };
    if !Isa::Avx2.is_available() {
        println!("SKIP: the FMA peak loop needs AVX2");
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if mode != "shapes" {
        ukernel_probe(samples * 100);
    }
    if mode == "ukernel" {
        return;
    }
    println!(
        "kernel {} {:?}",
        k.gemm_kernel().name,
        k.gemm_kernel().blocking
    );
    // Short samples, each paired with a peak sample taken just before it: on a shared machine
    // some samples escape preemption, so the best (max) and the median of the paired ratios are
    // both printed.
    let mut all_peaks = Vec::new();
    println!(
        "{:<24} {:>9} {:>9} {:>12} {:>12}",
        "shape", "best GF/s", "med GF/s", "best/bestpk", "med(ratio)"
    );
    let (mut total_flop, mut total_time) = (0.0, 0.0);
    for &(label, m, kk, n) in SHAPES.iter().filter(|s| s.0.contains(&filter)) {
        let x = fill(m * kk, 1);
        let w = fill(kk * n, 2);
        let bias = fill(n, 3);
        let pw = k
            .pack_pointwise(&w, WeightLayout::Hwio, Some(&bias), kk, n)
            .expect("pack");
        let mut y = vec![0.0f32; m * n];
        let input = TensorView::new(&x, Shape::new(1, 1, m, kk)).expect("input");
        let flop = 2.0 * (m * kk * n) as f64;
        let run = |y: &mut [f32]| {
            let mut out = TensorViewMut::new(y, Shape::new(1, 1, m, n)).expect("output");
            k.pointwise(&input, &pw, Activation::Relu, &mut out)
                .expect("pointwise");
        };
        // Repetitions per sample: ~3 ms.
        run(&mut y);
        let t0 = Instant::now();
        run(&mut y);
        let once = t0.elapsed().as_secs_f64().max(1e-7);
        let reps = ((0.003 / once) as usize).max(1);
        let (mut rates, mut peaks, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..samples {
            let pk = fma_peak(0.002);
            let t = Watch::start();
            for _ in 0..reps {
                run(&mut y);
            }
            let rate = flop * reps as f64 / t.secs();
            rates.push(rate);
            peaks.push(pk);
            ratios.push(rate / pk);
        }
        black_box(&y);
        let best = rates.iter().copied().fold(0.0, f64::max);
        let best_peak = peaks.iter().copied().fold(0.0, f64::max);
        let med = median(&mut rates);
        if !label.starts_with("hot") {
            total_flop += flop;
            total_time += flop / best;
        }
        println!(
            "{label:<24} {:>9.1} {:>9.1} {:>11.1}% {:>11.1}%",
            best / 1e9,
            med / 1e9,
            100.0 * best / best_peak,
            100.0 * median(&mut ratios)
        );
        all_peaks.extend(peaks);
    }
    let best_peak = all_peaks.iter().copied().fold(0.0, f64::max);
    println!(
        "FMA peak: best {:.1} GFLOP/s, median {:.1} GFLOP/s ({} samples)",
        best_peak / 1e9,
        median(&mut all_peaks) / 1e9,
        all_peaks.len()
    );
    let agg = total_flop / total_time;
    println!(
        "MobileNet pw layers, best times: {:.1} GFLOP/s = {:.1}% of best peak",
        agg / 1e9,
        100.0 * agg / best_peak
    );
}
