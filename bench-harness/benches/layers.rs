//! `cargo bench -p sepconv-bench`: every op x ISA (and registered kernel variant) x layer, with
//! criterion. Ids are `<tier>.<op>/<isa-or-kernel>/<layer-id>`, e.g.
//! `layer.pointwise/avx2/mbv1_a100_r224_pw02`; throughput is the layer's FLOP count, so
//! criterion's `elem/s` reads as FLOP/s.
//!
//! Baselines side by side: the `gemm` and `matrixmultiply` crates on the pointwise shapes (plain
//! `C = A * B`, no bias or ReLU), and the naive f64 `reference` on the depthwise shapes. (Each
//! id is timed after the other, seconds apart: on a shared machine compare sepconv with the
//! crates with the `versus` bench instead, which interleaves them round by round.)
//!
//! Filter as with any criterion bench: `cargo bench -p sepconv-bench -- avx2`,
//! `-- 'layer.pointwise/.*/mbv1_a100_r224_pw1'`. Environment:
//! `SEPCONV_BENCH_THREADS` (default 1), `SEPCONV_BENCH_SET=full` (every v1 width and resolution,
//! not just 1.0-224, plus v2).

#![deny(unsafe_code)]

use std::collections::BTreeSet;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sepconv::{registry, Kernels};
use sepconv_bench::cases::{random_vec, Case};
use sepconv_bench::workloads::{
    conv_mobilenet_v1, mobilenet_v1, mobilenet_v2, Layer, Op, V1_ALPHAS, V1_RESOLUTIONS,
};

mod baselines;

fn threads() -> usize {
    std::env::var("SEPCONV_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&t| t >= 1)
        .unwrap_or(1)
}

/// The layers to bench: MobileNet v1 1.0-224 with its Conv MobileNet standard convs, and (with
/// `SEPCONV_BENCH_SET=full`) every width and resolution plus MobileNet v2.
fn layers() -> Vec<Layer> {
    let full = std::env::var("SEPCONV_BENCH_SET").is_ok_and(|v| v == "full");
    let v1: Vec<(u32, usize)> = if full {
        V1_ALPHAS
            .iter()
            .flat_map(|&a| V1_RESOLUTIONS.iter().map(move |&r| (a, r)))
            .collect()
    } else {
        vec![(100, 224)]
    };
    let mut out: Vec<Layer> = v1
        .iter()
        .flat_map(|&(a, r)| {
            mobilenet_v1(a, r)
                .layers
                .into_iter()
                .chain(conv_mobilenet_v1(a, r).layers)
        })
        .collect();
    if full {
        out.extend(mobilenet_v2().layers);
    }
    let mut seen = BTreeSet::new();
    out.retain(|l| seen.insert(l.id.clone()));
    out
}

/// The production kernels of every ISA, then every other registered variant (labelled by the
/// kernel's name) for the op of `layer`.
fn kernel_sets(layer: &Layer, threads: usize) -> Vec<(String, Kernels)> {
    let mut sets = Vec::new();
    for k in Kernels::available() {
        let Ok(k) = k.with_threads(threads) else {
            continue;
        };
        sets.push((k.isa().name().to_string(), k));
        match layer.op {
            Op::Pointwise | Op::Conv3x3 | Op::FullyConnected => {
                for g in registry::gemm_kernels(k.isa()) {
                    if g.name != k.gemm_kernel().name {
                        if let Ok(v) = k.with_gemm_kernel(g) {
                            sets.push((g.name.to_string(), v));
                        }
                    }
                }
            }
            Op::Depthwise3x3 => {
                for d in registry::dw_kernels(k.isa(), layer.stride) {
                    if d.name != k.dw_kernel(layer.stride).name {
                        if let Ok(v) = k.with_dw_kernel(d) {
                            sets.push((d.name.to_string(), v));
                        }
                    }
                }
            }
            Op::AvgPool => {}
        }
    }
    sets
}

fn bench_layers(c: &mut Criterion) {
    let threads = threads();
    for layer in layers() {
        let mut g = c.benchmark_group(format!("layer.{}", layer.op.name()));
        g.throughput(Throughput::Elements(layer.flops()));
        for (label, k) in kernel_sets(&layer, threads) {
            match Case::new(k, &layer, 1) {
                Ok(mut case) => {
                    g.bench_function(BenchmarkId::new(label, &layer.id), |b| {
                        b.iter(|| case.run())
                    });
                }
                Err(e) => eprintln!("skipping {label} on {}: {e}", layer.id),
            }
        }
        match layer.op {
            Op::Depthwise3x3 => {
                if let Some(mut case) = Case::reference(&layer, 1) {
                    g.bench_function(BenchmarkId::new("reference", &layer.id), |b| {
                        b.iter(|| case.run())
                    });
                }
            }
            Op::Pointwise => {
                let (m, k, n) = (layer.h * layer.w, layer.cin, layer.cout);
                let (lda, ldc) = baselines::pointwise_strides(layer.h, layer.w, k, n);
                let mut rng = StdRng::seed_from_u64(1);
                let a = random_vec(&mut rng, m * lda, 1.0);
                let w = random_vec(&mut rng, k * n, 0.1);
                let mut out = vec![0.0f32; m * ldc];
                g.bench_function(BenchmarkId::new("gemm-crate", &layer.id), |b| {
                    b.iter(|| baselines::gemm(m, k, n, &a, lda, &w, &mut out, ldc, threads))
                });
                if threads == 1 {
                    g.bench_function(BenchmarkId::new("matrixmultiply", &layer.id), |b| {
                        b.iter(|| baselines::matrixmultiply(m, k, n, &a, lda, &w, &mut out, ldc))
                    });
                }
            }
            _ => {}
        }
        g.finish();
    }
}

fn main() {
    // Short runs: there are hundreds of ids; filter to go deeper on a few.
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
        .configure_from_args();
    bench_layers(&mut c);
    c.final_summary();
}
