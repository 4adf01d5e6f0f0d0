//! Edge cases of the AVX2 GEMM micro-kernels (MR = 6, NR = 16: `gemm_f32_6x16_avx2` and
//! `gemm_f32_6x16u32_avx2`, each test on both whichever this CPU runs) through the
//! public pointwise operator, against the f64 reference: every row remainder around MR and MC,
//! every column remainder around NR, depths around the unroll and around KC (several KC blocks,
//! so C is re-read), every activation, strided input and output (lda != K, ldc != N), 1-4
//! threads, and NaN propagation. Buffers end at a guard page; output gaps must stay untouched.
//!
//! Prints `SKIP` and passes when the CPU lacks AVX2 + FMA.

mod common;

use common::cases::{self, Case};
use sepconv::{Activation, Isa, Kernels, Shape, TensorView, TensorViewMut, WeightLayout};

const ACTIVATIONS: [Activation; 4] = [
    Activation::None,
    Activation::Relu,
    Activation::Relu6,
    Activation::Clamp {
        min: -0.3,
        max: 0.4,
    },
];

/// The AVX2 kernels (production first, then one handle per other registered AVX2 GEMM kernel),
/// or none (after printing `SKIP`) on a CPU without them.
fn avx2() -> Vec<Kernels> {
    if !Isa::Avx2.is_available() {
        println!("SKIP: this CPU has no AVX2 + FMA");
        assert!(
            !common::required(Isa::Avx2),
            "avx2 is in SEPCONV_REQUIRE_ISAS but this CPU cannot run it"
        );
        return Vec::new();
    }
    let k = Kernels::for_isa(Isa::Avx2).expect("AVX2 is available");
    let all = common::gemm_variants(k);
    let names: Vec<_> = all.iter().map(|k| k.gemm_kernel().name).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"gemm_f32_6x16_avx2") && names.contains(&"gemm_f32_6x16u32_avx2"));
    assert!(all
        .iter()
        .all(|k| (k.gemm_kernel().mr, k.gemm_kernel().nr) == (6, 16)));
    all
}

/// A pointwise case of `m` pixels (one row of an image), `kk` input and `n` output channels,
/// with input pixel stride `kk + 3` and output pixel stride `n + 5`.
fn case(m: usize, kk: usize, n: usize, act: Activation, seed: u64) -> Case {
    let mut c = Case::new(1, 1, m, kk, n);
    c.act = act;
    c.in_gap = 3;
    c.out_gap = 5;
    c.seed = seed;
    c
}

fn run(k: Kernels, c: &Case) -> Vec<f32> {
    cases::pointwise(k, c).unwrap_or_else(|e| {
        panic!(
            "M={} K={} N={} {:?} threads={}: {e}",
            c.w,
            c.cin,
            c.cout,
            c.act,
            k.threads()
        )
    })
}

/// Every row remainder 1..=13 (two tiles and a bit) x every column count 1..=33, 48, 65 x small
/// depths (below, at and around the unroll by 4), activations in rotation.
#[test]
fn tile_edges_small_depth() {
    for k in avx2() {
        let mut seed = 0;
        for m in 1..=13 {
            for n in (1..=33).chain([48, 65]) {
                for kk in [1, 2, 3, 4, 7, 17] {
                    seed += 1;
                    run(k, &case(m, kk, n, ACTIVATIONS[seed as usize % 4], seed));
                }
            }
        }
    }
}

/// Depths around KC (one block minus/plus one, two blocks and a tail): later KC blocks start from
/// the partial sums in C, and only the last one applies the activation.
#[test]
fn depth_around_kc() {
    for k in avx2() {
        let kc = k.gemm_kernel().blocking.kc;
        let mut seed = 1000;
        for kk in [kc - 1, kc, kc + 1, 2 * kc + 3] {
            for m in [1, 2, 3, 4, 5, 6, 7, 13] {
                for n in [1, 7, 8, 9, 16, 17, 33] {
                    for act in ACTIVATIONS {
                        seed += 1;
                        run(k, &case(m, kk, n, act, seed));
                    }
                }
            }
        }
    }
}

/// Rows around MC (the driver's row block) and across threads: results must match the reference
/// and be bit-identical for 1..=4 threads.
#[test]
fn rows_around_mc_and_threads() {
    for k in avx2() {
        let (mc, kc) = (k.gemm_kernel().blocking.mc, k.gemm_kernel().blocking.kc);
        let mut seed = 5000;
        for m in [mc - 1, mc, mc + 1, 2 * mc + 5] {
            for (kk, n) in [(7, 16), (17, 65), (kc + 1, 48), (64, 33)] {
                seed += 1;
                let c = case(m, kk, n, Activation::Relu6, seed);
                let one = run(k, &c);
                for t in 2..=4 {
                    let got = run(k.with_threads(t).expect("threads"), &c);
                    assert!(
                        one.iter()
                            .zip(&got)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "M={m} K={kk} N={n}: {t} threads differ from 1"
                    );
                }
            }
        }
    }
}

/// Larger, MobileNet-like shapes with several row blocks, column panels and KC blocks.
#[test]
fn mobilenet_like_shapes() {
    for k in avx2() {
        for (i, &(m, kk, n)) in [(7 * 7, 1024, 1000), (14 * 14, 512, 67), (300, 96, 130)]
            .iter()
            .enumerate()
        {
            run(k, &case(m, kk, n, Activation::Relu, 9000 + i as u64));
            run(
                k.with_threads(3).expect("threads"),
                &case(m, kk, n, Activation::None, 9100 + i as u64),
            );
        }
    }
}

/// A NaN in one input pixel makes exactly that pixel's outputs NaN, through every activation (the
/// clamp keeps NaN); infinities saturate through the clamps.
#[test]
fn nan_and_inf_propagate() {
    for k in avx2() {
        let (m, kk, n) = (13, 19, 21);
        let w: Vec<f32> = (0..kk * n).map(|i| 0.01 * (1 + i % 7) as f32).collect();
        let pw = k
            .pack_pointwise(&w, WeightLayout::Hwio, None, kk, n)
            .expect("pack");
        for act in ACTIVATIONS {
            let mut x = vec![0.5f32; m * kk];
            x[4 * kk + 3] = f32::NAN; // pixel 4
            x[7 * kk + 18] = f32::INFINITY; // pixel 7: +inf (all weights positive)
            let mut y = vec![0.0f32; m * n];
            let input = TensorView::new(&x, Shape::new(1, 1, m, kk)).expect("input");
            let mut out = TensorViewMut::new(&mut y, Shape::new(1, 1, m, n)).expect("output");
            k.pointwise(&input, &pw, act, &mut out).expect("pointwise");
            let (lo, hi) = act.bounds().expect("bounds");
            for p in 0..m {
                for j in 0..n {
                    let v = y[p * n + j];
                    match p {
                        4 => assert!(v.is_nan(), "{act:?}: pixel 4 col {j} = {v}"),
                        7 => assert_eq!(v, hi, "{act:?}: pixel 7 col {j}"),
                        _ => assert!(
                            v.is_finite() && v >= lo && v <= hi,
                            "{act:?}: {p},{j} = {v}"
                        ),
                    }
                }
            }
        }
    }
}
