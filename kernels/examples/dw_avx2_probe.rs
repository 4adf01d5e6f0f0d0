//! Probe (not a CI bench): single-threaded GFLOP/s of the depthwise 3x3 convolution on the 13
//! MobileNet v1 224 layers, AVX2 kernels vs the portable ones, next to this machine's FMA peak
//! measured in the same run (each timing sample is paired with a peak sample taken just before
//! it, so the ratio survives a noisy, shared machine).
//!
//! `cargo run --release -p sepconv --example dw_avx2_probe [samples] [layer-filter]`
//!
//! FLOPs = 2 * 9 * C * OH * OW. Activation ReLU6, SAME padding, batch 1.

use std::hint::black_box;
use std::time::Instant;

use sepconv::{
    Activation, Conv3x3Params, DepthwiseWeights, Isa, Kernels, Shape, TensorView, TensorViewMut,
    WeightLayout,
};

/// `(label, input h = w, channels, stride)`.
const LAYERS: &[(&str, usize, usize, usize)] = &[
    ("dw01 112x112x32 s1", 112, 32, 1),
    ("dw02 112x112x64 s2", 112, 64, 2),
    ("dw03 56x56x128 s1", 56, 128, 1),
    ("dw04 56x56x128 s2", 56, 128, 2),
    ("dw05 28x28x256 s1", 28, 256, 1),
    ("dw06 28x28x256 s2", 28, 256, 2),
    ("dw07 14x14x512 s1", 14, 512, 1),
    ("dw08 14x14x512 s1", 14, 512, 1),
    ("dw09 14x14x512 s1", 14, 512, 1),
    ("dw10 14x14x512 s1", 14, 512, 1),
    ("dw11 14x14x512 s1", 14, 512, 1),
    ("dw12 14x14x512 s2", 14, 512, 2),
    ("dw13 7x7x1024 s1", 7, 1024, 1),
];

#[cfg(target_arch = "x86_64")]
mod peak {
    use core::arch::x86_64::*;

    /// 12 independent chains of `vfmadd231ps` (3x the 4 in flight each of the 2 pipes needs):
    /// the FMA peak. Returns a value derived from every accumulator so nothing is optimised away.
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
    // SAFETY: `clock_gettime` writes one `struct timespec` (two 64-bit fields on x86_64 Linux)
    // to the valid, exclusively borrowed `ts`.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

/// FLOP/s of the FMA loop for ~`secs` seconds of CPU time.
fn fma_peak(secs: f64) -> f64 {
    let iters = 1 << 14;
    let start = cpu_time();
    let mut calls = 0usize;
    let mut sink = 0.0f32;
    while cpu_time() - start < secs {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `main` measures the peak only after checking that AVX2 (with FMA) is
            // available.
            sink += unsafe { peak::fma_loop(black_box(iters), black_box(0.999_999_9)) };
        }
        calls += 1;
    }
    black_box(sink);
    (calls * iters * 12 * 16) as f64 / (cpu_time() - start)
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

/// One layer, prepared for one ISA.
struct Layer<'a> {
    k: Kernels,
    x: &'a [f32],
    packed: DepthwiseWeights,
    h: usize,
    w: usize,
    c: usize,
    params: Conv3x3Params,
    y: Vec<f32>,
    oh: usize,
    ow: usize,
}

impl<'a> Layer<'a> {
    fn new(
        k: Kernels,
        x: &'a [f32],
        wt: &[f32],
        b: &[f32],
        hw: (usize, usize),
        c: usize,
        s: usize,
    ) -> Self {
        let (h, w) = hw;
        let params = Conv3x3Params::new().stride(s).activation(Activation::Relu6);
        let (oh, ow) = params.output_size(h, w).expect("output size");
        let packed = k
            .pack_depthwise3x3(wt, WeightLayout::Hwio, Some(b), c)
            .expect("pack");
        Layer {
            k,
            x,
            packed,
            h,
            w,
            c,
            params,
            y: vec![0.0; oh * ow * c],
            oh,
            ow,
        }
    }

    fn run(&mut self) {
        let input = TensorView::new(self.x, Shape::new(1, self.h, self.w, self.c)).expect("in");
        let mut out =
            TensorViewMut::new(&mut self.y, Shape::new(1, self.oh, self.ow, self.c)).expect("out");
        self.k
            .depthwise3x3(&input, &self.packed, &self.params, &mut out)
            .expect("depthwise3x3");
    }

    /// Repetitions that take about `secs`.
    fn reps_for(&mut self, secs: f64) -> usize {
        self.run();
        let t0 = Instant::now();
        self.run();
        let once = t0.elapsed().as_secs_f64().max(1e-7);
        ((secs / once) as usize).max(1)
    }

    /// FLOP/s of `reps` runs, in CPU time.
    fn rate(&mut self, reps: usize) -> f64 {
        let t = cpu_time();
        for _ in 0..reps {
            self.run();
        }
        let flop = 18.0 * (self.c * self.oh * self.ow) as f64;
        flop * reps as f64 / (cpu_time() - t)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let samples: usize = args.next().map_or(15, |s| s.parse().expect("samples"));
    let filter = args.next().unwrap_or_default();
    let (Some(avx2), Some(portable)) =
        (Kernels::for_isa(Isa::Avx2), Kernels::for_isa(Isa::Portable))
    else {
        println!("SKIP: AVX2 + FMA is not available on this CPU");
        return;
    };
    println!(
        "kernels {} / {}, portable {} / {}; {samples} samples per layer, single thread",
        avx2.dw_kernel(1).name,
        avx2.dw_kernel(2).name,
        portable.dw_kernel(1).name,
        portable.dw_kernel(2).name,
    );
    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "layer", "avx2 GF/s", "%peak", "best%pk", "port GF/s", "speedup"
    );
    let mut all_peaks = Vec::new();
    let (mut flop_total, mut t_avx2, mut t_port) = (0.0, 0.0, 0.0);
    // The 13 layers, then the same rows with few enough of them that input and output stay in
    // L2 across repetitions ("hot"): the kernel's speed without the trip to L3/DRAM.
    let hot = LAYERS.iter().map(|&(label, hw, c, s)| {
        let h = (160 * 1024 / (hw * c * 4)).clamp(3, hw);
        (label, h, hw, c, s, true)
    });
    let all = LAYERS
        .iter()
        .map(|&(label, hw, c, s)| (label, hw, hw, c, s, false))
        .chain(hot);
    for (label, h, wd, c, s, is_hot) in all {
        if !label.contains(filter.as_str()) {
            continue;
        }
        let x = fill(h * wd * c, 1);
        let w = fill(9 * c, 2);
        let b = fill(c, 3);
        let mut fast = Layer::new(avx2, &x, &w, &b, (h, wd), c, s);
        let mut slow = Layer::new(portable, &x, &w, &b, (h, wd), c, s);
        let (rf, rs) = (fast.reps_for(0.004), slow.reps_for(0.004));
        let (mut rates, mut ratios, mut port) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..samples {
            let pk = fma_peak(0.002);
            let r = fast.rate(rf);
            rates.push(r);
            ratios.push(r / pk);
            all_peaks.push(pk);
            port.push(slow.rate(rs));
        }
        let best_ratio = ratios.iter().copied().fold(0.0, f64::max);
        let (rate, ratio, prate) = (median(&mut rates), median(&mut ratios), median(&mut port));
        let flop = 18.0 * (c * fast.oh * fast.ow) as f64;
        if !is_hot {
            flop_total += flop;
            t_avx2 += flop / rate;
            t_port += flop / prate;
        }
        let label = if is_hot {
            format!("hot {} h={h}", &label[..4])
        } else {
            label.to_string()
        };
        println!(
            "{label:<20} {:>9.1} {:>8.1}% {:>8.1}% {:>9.2} {:>7.1}x",
            rate / 1e9,
            100.0 * ratio,
            100.0 * best_ratio,
            prate / 1e9,
            rate / prate
        );
        black_box((&fast.y, &slow.y));
    }
    let pk = median(&mut all_peaks);
    println!(
        "FMA peak (12 ymm chains): median {:.1} GFLOP/s over {} samples",
        pk / 1e9,
        all_peaks.len()
    );
    println!(
        "all 13 layers (sum of median times): avx2 {:.1} GFLOP/s = {:.1}% of peak; \
         portable {:.2} GFLOP/s",
        flop_total / t_avx2 / 1e9,
        100.0 * flop_total / t_avx2 / pk,
        flop_total / t_port / 1e9
    );
}
