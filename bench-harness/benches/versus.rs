//! `cargo bench -p sepconv-bench --bench versus`: sepconv's pointwise convolution beside the
//! `gemm` and `matrixmultiply` crates on MobileNet v1 1.0-224's 13 pointwise shapes, interleaved.
//!
//! criterion's `layers` bench times one id after another, a few seconds each; on a shared VM
//! whose speed wanders over seconds, two ids of the same shape measured a minute apart can differ
//! by 20% either way. Here each round times every implementation once per shape, back to back
//! and in a rotating order, so a slow phase hits all three alike; the table gives each one's
//! median GFLOP/s over the rounds, the median of the per-round time ratios (sepconv's time over
//! the crate's: below 1 is faster), their range, and in how many rounds sepconv was faster. The
//! FMA peak is measured before and after, in the same run.
//!
//! The same work as the `layers` bench: sepconv with bias and ReLU on its ISA's production GEMM
//! kernel, the crates a plain `C = A * B`, one thread; all buffers start on a cache line.
//!
//! Options (after `--`): `--isa avx2` (sepconv's ISA; default: the best this CPU has),
//! `--rounds N` (default 15), `--ms M` (time per timing, default 20), and a filter on the layer
//! id (`pw1`). The `gemm` crate picks its own kernels from CPUID: on an AVX-512 CPU it runs
//! AVX-512, so `scripts/compare-gemm-crates.sh` runs this bench's binary under
//! `scripts/hide-avx512.c` for the AVX2 comparison (and as it is for AVX-512).

#![deny(unsafe_code)]

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use sepconv::{probe, AlignedBuf, Isa, Kernels};
use sepconv_bench::cases::{random_vec, Case};
use sepconv_bench::workloads::{mobilenet_v1, Layer, Op};

mod baselines;

/// The three implementations, in table order.
const NAMES: [&str; 3] = ["sepconv", "gemm", "matrixmultiply"];

struct Options {
    isa: Option<Isa>,
    rounds: usize,
    ms: f64,
    filter: String,
}

fn options() -> Options {
    let mut o = Options {
        isa: None,
        rounds: 15,
        ms: 20.0,
        filter: String::new(),
    };
    // cargo passes `--bench`; anything else unknown is the filter.
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(a) = args.next() {
        let mut value = |what: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{a} needs {what}"))
                .to_string()
        };
        match a.as_str() {
            "--isa" => {
                let v = value("an ISA name");
                o.isa = Some(Isa::from_name(&v).unwrap_or_else(|| panic!("unknown ISA {v}")));
            }
            "--rounds" => o.rounds = value("a count").parse().expect("--rounds N"),
            "--ms" => o.ms = value("milliseconds").parse().expect("--ms M"),
            _ => o.filter = a,
        }
    }
    o
}

/// One shape's three runs: each runs the layer once.
struct Contest {
    layer: Layer,
    runs: Vec<Box<dyn FnMut()>>,
    /// Calls per timing, per implementation (about `--ms` each).
    reps: Vec<usize>,
    /// Seconds per call, per implementation and round.
    times: Vec<Vec<f64>>,
}

impl Contest {
    fn new(k: Kernels, layer: Layer) -> Contest {
        let (m, kk, n) = (layer.h * layer.w, layer.cin, layer.cout);
        // The same activation layout as sepconv's `Case` (padded pixels at 512+ channels).
        let (lda, ldc) = baselines::pointwise_strides(layer.h, layer.w, kk, n);
        let mut rng = StdRng::seed_from_u64(1);
        let a = AlignedBuf::from_slice(&random_vec(&mut rng, m * lda, 1.0));
        let b = AlignedBuf::from_slice(&random_vec(&mut rng, kk * n, 0.1));
        let (a2, b2) = (a.clone(), b.clone());
        let (mut c, mut c2) = (AlignedBuf::zeroed(m * ldc), AlignedBuf::zeroed(m * ldc));
        let mut case = Case::new(k, &layer, 1).expect("a MobileNet pointwise layer");
        let runs: Vec<Box<dyn FnMut()>> = vec![
            Box::new(move || case.run()),
            Box::new(move || baselines::gemm(m, kk, n, &a, lda, &b, &mut c, ldc, 1)),
            Box::new(move || baselines::matrixmultiply(m, kk, n, &a2, lda, &b2, &mut c2, ldc)),
        ];
        Contest {
            layer,
            runs,
            reps: vec![1; NAMES.len()],
            times: vec![Vec::new(); NAMES.len()],
        }
    }

    /// Warms each implementation up and sets its calls per timing to about `ms`.
    fn calibrate(&mut self, ms: f64) {
        for (run, reps) in self.runs.iter_mut().zip(&mut self.reps) {
            run();
            let t = Instant::now();
            run();
            let once = t.elapsed().as_secs_f64() * 1e3;
            *reps = ((ms / once.max(1e-6)) as usize).clamp(1, 100_000);
        }
    }

    /// One round: every implementation timed once, starting with number `first`.
    fn round(&mut self, first: usize) {
        for i in (0..NAMES.len()).map(|j| (first + j) % NAMES.len()) {
            let t = Instant::now();
            for _ in 0..self.reps[i] {
                (self.runs[i])();
            }
            self.times[i].push(t.elapsed().as_secs_f64() / self.reps[i] as f64);
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn main() {
    let o = options();
    let k = match o.isa {
        Some(isa) => Kernels::for_isa(isa).unwrap_or_else(|| panic!("{} unavailable", isa.name())),
        None => Kernels::best(),
    };
    let isa = k.isa();
    let peak_probe = || probe::fma_peak_gflops_for(isa, 1, Duration::from_millis(300));
    let peak_before = peak_probe().unwrap_or(f64::NAN);
    let mut contests: Vec<Contest> = mobilenet_v1(100, 224)
        .layers
        .into_iter()
        .filter(|l| l.op == Op::Pointwise && l.id.contains(&o.filter))
        .map(|l| Contest::new(k, l))
        .collect();
    assert!(
        !contests.is_empty(),
        "no pointwise layer matches {:?}",
        o.filter
    );
    for c in &mut contests {
        c.calibrate(o.ms);
    }
    for r in 0..o.rounds {
        for c in &mut contests {
            c.round(r);
        }
    }
    let peak = peak_before.max(peak_probe().unwrap_or(f64::NAN));
    println!(
        "sepconv {} ({}) beside the gemm and matrixmultiply crates, 1 thread, {} interleaved \
         rounds, all three on the same activation layout (`Shape::padded_strides`); FMA peak \
         {peak:.1} GFLOP/s ({}, measured in this run); {}",
        isa.name(),
        k.gemm_kernel().name,
        o.rounds,
        isa.name(),
        avx512_note(),
    );
    println!();
    println!(
        "| layer | M x K x N | sepconv GFLOP/s (% peak) | gemm | matrixmultiply | \
         sepconv / gemm time | faster in | sepconv / matrixmultiply time | faster in |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for c in &contests {
        let l = &c.layer;
        let flop = l.flops() as f64;
        let gflops = |i: usize| flop / median(&c.times[i]) / 1e9;
        let versus = |i: usize| {
            let ratios: Vec<f64> = c.times[0]
                .iter()
                .zip(&c.times[i])
                .map(|(s, o)| s / o)
                .collect();
            let (lo, hi) = ratios
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &r| (a.min(r), b.max(r)));
            let wins = ratios.iter().filter(|&&r| r < 1.0).count();
            format!(
                "{:.3} ({lo:.2}-{hi:.2}) | {wins}/{}",
                median(&ratios),
                ratios.len()
            )
        };
        println!(
            "| {} | {} x {} x {} | {:.1} ({:.1}) | {:.1} | {:.1} | {} | {} |",
            l.id,
            l.h * l.w,
            l.cin,
            l.cout,
            gflops(0),
            100.0 * gflops(0) / peak,
            gflops(1),
            gflops(2),
            versus(1),
            versus(2),
        );
    }
}

/// Which kernels the `gemm` crate can see: it picks them from CPUID.
fn avx512_note() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return "the crates see AVX-512 in CPUID";
    }
    "the crates see no AVX-512 in CPUID"
}
