//! Every operator on every ISA (and every registered kernel variant) against `sepconv-reference`:
//! proptest over random shapes, hand-written edges around every tile, NaN/Inf propagation, and
//! bit-identical results for any thread count. Buffers end at a guard page.

mod common;

use common::cases::{self, Case};
use common::{dw_variants, gemm_variants, variants};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sepconv::{
    Activation, Conv3x3Params, Kernels, Padding, Shape, Strides, TensorView, TensorViewMut,
    WeightLayout,
};

/// Cases per proptest run: `PROPTEST_CASES` when set (emulators use few), else `default`.
fn case_count(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(default: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: case_count(default),
        failure_persistence: None,
        ..Config::default()
    })
}

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Same),
        Just(Padding::Valid),
        (0..=2usize, 0..=2usize, 0..=2usize, 0..=2usize).prop_map(|(top, bottom, left, right)| {
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            }
        }),
    ]
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::None),
        Just(Activation::Relu),
        Just(Activation::Relu6),
        (-1.0f32..0.5, 0.0f32..1.0).prop_map(|(min, d)| Activation::Clamp { min, max: min + d }),
    ]
}

fn layout() -> impl Strategy<Value = WeightLayout> {
    prop_oneof![Just(WeightLayout::Hwio), Just(WeightLayout::Oihw)]
}

/// Random cases: batch 1-2, spatial `1..=max_hw`, channels `1..=max_c`, both strides, every
/// padding and activation, optional bias, both layouts, pixel-stride gaps, row and image gaps
/// (a third of the cases), threads 1-4.
fn case(max_hw: usize, max_c: usize) -> impl Strategy<Value = (Case, usize)> {
    (
        (1..=2usize, 1..=max_hw, 1..=max_hw, 1..=max_c, 1..=max_c),
        (1..=2usize, padding(), activation(), any::<bool>(), layout()),
        (
            0..=3usize,
            0..=3usize,
            prop_oneof![Just(0usize), Just(0), 1..=5usize],
        ),
        (any::<u64>(), 1..=4usize),
    )
        .prop_map(
            |(
                (n, h, w, cin, cout),
                (stride, padding, act, bias, layout),
                (ig, og, rg),
                (seed, t),
            )| {
                let case = Case {
                    stride,
                    padding,
                    act,
                    bias,
                    layout,
                    in_gap: ig,
                    out_gap: og,
                    row_gap: rg,
                    seed,
                    ..Case::new(n, h, w, cin, cout)
                };
                (case, t)
            },
        )
}

type CaseFn = fn(Kernels, &Case) -> Result<Vec<f32>, String>;

/// Runs `op` on random cases for each handle of `kernels` (the variants of `k`'s ISA that
/// `op` can reach: [`gemm_variants`], [`dw_variants`], or the production set).
fn proptest_op(kernels: Vec<Kernels>, op: CaseFn, default_cases: u32, max_hw: usize, max_c: usize) {
    for kv in kernels {
        runner(default_cases)
            .run(&case(max_hw, max_c), |(c, threads)| {
                let kt = kv.with_threads(threads).unwrap();
                op(kt, &c).map(|_| ()).map_err(TestCaseError::fail)
            })
            .unwrap_or_else(|e| {
                panic!(
                    "{} / {} / {}: {e}",
                    kv.gemm_kernel().name,
                    kv.dw_kernel(1).name,
                    kv.dw_kernel(2).name
                )
            });
    }
}

fn dw_random(k: Kernels) {
    proptest_op(dw_variants(k), cases::depthwise, 1500, 33, 70);
}
fn pw_random(k: Kernels) {
    proptest_op(gemm_variants(k), cases::pointwise, 1000, 20, 70);
}
fn conv_random(k: Kernels) {
    proptest_op(gemm_variants(k), cases::conv3x3, 300, 17, 24);
}
fn fc_random(k: Kernels) {
    proptest_op(gemm_variants(k), cases::fully_connected, 300, 4, 40);
}
fn pool_random(k: Kernels) {
    // Pooling uses neither micro-kernel.
    proptest_op(vec![k], cases::global_avg_pool, 300, 33, 70);
}

/// Channels below, at, above and at multiples of every channel tile in use (4 .. 32).
const CHANNELS: &[usize] = &[
    1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 49, 64, 67,
];
const WIDTHS: &[usize] = &[1, 2, 3, 4, 5, 7, 8, 9, 16, 17];
const HEIGHTS: &[usize] = &[1, 2, 3, 5];

fn explicit(top: usize, bottom: usize, left: usize, right: usize) -> Padding {
    Padding::Explicit {
        top,
        bottom,
        left,
        right,
    }
}

const ACTIVATIONS: [Activation; 4] = [
    Activation::None,
    Activation::Relu,
    Activation::Relu6,
    Activation::Clamp {
        min: -0.25,
        max: 0.5,
    },
];

/// Every channel count x width x height x stride, cycling paddings, activations and gaps.
fn dw_edges(k: Kernels) {
    let paddings = [
        Padding::Same,
        Padding::Valid,
        explicit(1, 1, 1, 1),
        explicit(2, 2, 2, 2),
        explicit(0, 1, 1, 0),
        explicit(2, 0, 0, 2),
        explicit(1, 2, 2, 1),
    ];
    for kv in dw_variants(k) {
        let mut i = 0usize;
        for &c in CHANNELS {
            for &w in WIDTHS {
                for &h in HEIGHTS {
                    for stride in [1, 2] {
                        i += 1;
                        let case = Case {
                            stride,
                            padding: paddings[i % paddings.len()],
                            act: ACTIVATIONS[i % 4],
                            in_gap: i % 3,
                            out_gap: (i / 3) % 2,
                            seed: i as u64,
                            ..Case::new(1 + i % 2, h, w, c, c)
                        };
                        cases::depthwise(kv, &case).unwrap_or_else(|e| {
                            panic!("{}: {case:?}: {e}", kv.dw_kernel(stride).name)
                        });
                    }
                }
            }
        }
        // Every explicit padding combination at both strides, on odd and even sizes.
        for (t, b, l, r) in itertools(3) {
            for stride in [1, 2] {
                for (h, w) in [(5, 6), (6, 5), (1, 1), (2, 3)] {
                    let case = Case {
                        stride,
                        padding: explicit(t, b, l, r),
                        act: Activation::Relu6,
                        ..Case::new(1, h, w, 19, 19)
                    };
                    cases::depthwise(kv, &case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
                }
            }
        }
    }
}

/// All `(a, b, c, d)` with each in `0..n`.
fn itertools(n: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    (0..n * n * n * n).map(move |i| (i % n, (i / n) % n, (i / n / n) % n, i / n / n / n))
}

/// M, N and K around the register tile and the cache blocks of the GEMM kernel in use.
fn gemm_edges(k: Kernels) {
    for kv in gemm_variants(k) {
        let g = kv.gemm_kernel();
        let (mr, nr, bl) = (g.mr, g.nr, g.blocking);
        let ms = [
            1,
            mr - 1,
            mr,
            mr + 1,
            2 * mr + 1,
            bl.mc - 1,
            bl.mc + 1,
            bl.mc + mr + 2,
        ];
        let ns = [1, nr - 1, nr, nr + 1, 2 * nr + 3];
        let ks = [1, 2, 3, 7, bl.kc - 1, bl.kc, bl.kc + 1, 2 * bl.kc + 3];
        let mut i = 0;
        for &m in &ms {
            for &n in &ns {
                for &kk in &ks {
                    i += 1;
                    // Depths from KC on cross only the small M's and one M past MC: the M and K
                    // blocks are cut independently, and the full product (M ~ MC x K ~ 2 KC, for
                    // every N) costs minutes under the AVX-512 emulator once KC is 1024.
                    if kk + 1 >= bl.kc && m > 2 * mr + 1 && m != bl.mc + 1 {
                        continue;
                    }
                    let case = Case {
                        act: ACTIVATIONS[i % 4],
                        in_gap: i % 2,
                        out_gap: (i / 2) % 3,
                        bias: i % 5 != 0,
                        layout: if i % 2 == 0 {
                            WeightLayout::Hwio
                        } else {
                            WeightLayout::Oihw
                        },
                        seed: i as u64,
                        ..Case::new(1, 1, m.max(1), kk, n.max(1))
                    };
                    cases::pointwise(kv, &case)
                        .unwrap_or_else(|e| panic!("{}: {case:?}: {e}", g.name));
                }
            }
        }
        // Depths a kernel may unroll completely (AVX2: 9, 32, 64), on full and partial tiles.
        for (j, kk) in [9, 27, 32, 64].into_iter().enumerate() {
            for m in [mr, 2 * mr + 1, bl.mc + 1] {
                for n in [nr, nr + 1, 8] {
                    let case = Case {
                        act: ACTIVATIONS[(j + m) % 4],
                        seed: (j * 1000 + m * 10 + n) as u64,
                        ..Case::new(1, 1, m, kk, n)
                    };
                    cases::pointwise(kv, &case)
                        .unwrap_or_else(|e| panic!("{}: {case:?}: {e}", g.name));
                }
            }
        }
        // One row over several column panels (a kernel's one-row path takes `ROW_PANELS` = 4
        // at once): whole groups, a partial group, a partial last panel.
        for (j, n) in [4 * nr, 4 * nr + 1, 9 * nr - 1].into_iter().enumerate() {
            for kk in [1, 7, bl.kc] {
                let case = Case {
                    act: ACTIVATIONS[(j + kk) % 4],
                    seed: (j * 100 + kk) as u64,
                    ..Case::new(1, 1, 1, kk, n)
                };
                cases::pointwise(kv, &case).unwrap_or_else(|e| panic!("{}: {case:?}: {e}", g.name));
            }
        }
        // N past the NC block, with several threads.
        let case = Case::new(1, 3, 7, 5, bl.nc + nr + 1);
        cases::pointwise(kv.with_threads(3).unwrap(), &case).unwrap();
    }
}

/// The MobileNet stem shape (3 -> 32, stride 2) and a narrow RGB conv (3 -> 5: the AVX2 kernel's
/// constant-segment path, one vector wide) on a small image, channel edges of conv3x3, every
/// padding around in-place and copied windows, and input depths around the GEMM kernel's KC.
fn conv_edges(k: Kernels) {
    for kv in gemm_variants(k) {
        for (i, (cin, cout)) in [(3, 32), (3, 5), (1, 1), (2, 17), (8, 33), (17, 5)]
            .into_iter()
            .enumerate()
        {
            for stride in [1, 2] {
                let case = Case {
                    stride,
                    act: ACTIVATIONS[i % 4],
                    out_gap: i % 2,
                    ..Case::new(1, 9, 11, cin, cout)
                };
                cases::conv3x3(kv, &case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
            }
        }
        // Rows whose windows lie inside the image are read in place and their border pixels
        // through padded copies (when the three rows are wide against B: here from 64 pixels
        // on, and the MobileNet stem's width): every left/right padding, widths where the inside
        // run is empty, one pixel or longer than a tile, dense and gapped (copied) pixels.
        let stem = Case {
            stride: 2,
            act: Activation::Relu6,
            ..Case::new(1, 4, 224, 3, 32)
        };
        cases::conv3x3(kv, &stem).unwrap_or_else(|e| panic!("{stem:?}: {e}"));
        for (left, right) in (0..=2).flat_map(|l| (0..=2).map(move |r| (l, r))) {
            for w in [1, 2, 3, 6, 13, 64, 201] {
                for stride in [1, 2] {
                    let case = Case {
                        stride,
                        padding: explicit(right, left, left, right),
                        act: ACTIVATIONS[(w + left) % 4],
                        in_gap: usize::from(w == 6),
                        ..Case::new(2, 5, w, 3, 5)
                    };
                    cases::conv3x3(kv, &case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
                }
            }
        }
        // The implicit GEMM's depth is three segments (kernel rows) of `3 * cin`: two whole
        // segments per KC block, then one; and segments longer than KC, cut into pieces.
        let kc = kv.gemm_kernel().blocking.kc;
        for (i, cin) in [kc / 6, kc / 3 + 1].into_iter().enumerate() {
            for stride in [1, 2] {
                let case = Case {
                    stride,
                    act: ACTIVATIONS[i % 4],
                    in_gap: i,
                    ..Case::new(1, 3, 4, cin, 5)
                };
                cases::conv3x3(kv, &case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
            }
        }
        // B over 2 MiB (9 x 250 x 236 floats): rows through copies go panel-major (each NR
        // panel of B over all of a band's rows); two images in one band, the last panel
        // partial, the top/bottom padding rows and asymmetric padding.
        for (i, padding) in [Padding::Same, explicit(2, 0, 1, 2)]
            .into_iter()
            .enumerate()
        {
            for stride in [1, 2] {
                let case = Case {
                    stride,
                    padding,
                    act: ACTIVATIONS[(i + stride) % 4],
                    in_gap: i,
                    out_gap: stride - 1,
                    ..Case::new(2, 3, 3, 250, 236)
                };
                cases::conv3x3(kv, &case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
            }
        }
        // More rows than one panel-major run takes (16): two runs in one image.
        let tall = Case {
            act: Activation::Relu,
            ..Case::new(1, 18, 1, 250, 236)
        };
        cases::conv3x3(kv, &tall).unwrap_or_else(|e| panic!("{tall:?}: {e}"));
    }
}

/// 1x1 images, one channel, the largest padding.
fn tiny_images(k: Kernels) {
    for stride in [1, 2] {
        for padding in [Padding::Same, explicit(2, 2, 2, 2), explicit(1, 1, 1, 1)] {
            let case = Case {
                stride,
                padding,
                ..Case::new(1, 1, 1, 1, 1)
            };
            cases::depthwise(k, &case).unwrap();
            cases::conv3x3(k, &case).unwrap();
        }
    }
    cases::pointwise(k, &Case::new(1, 1, 1, 1, 1)).unwrap();
    cases::fully_connected(k, &Case::new(1, 1, 1, 1, 1)).unwrap();
    cases::global_avg_pool(k, &Case::new(1, 1, 1, 1, 1)).unwrap();
}

/// A NaN and an infinity in the input reach exactly the outputs whose window holds them.
fn nan_inf_propagate(k: Kernels) {
    for kv in variants(k) {
        for stride in [1, 2] {
            let c = Case {
                stride,
                act: Activation::Relu6,
                ..Case::new(1, 7, 9, 19, 19)
            };
            let mut g = common::rng(3);
            let mut x = common::random_vec(&mut g, 7 * 9 * 19);
            let w: Vec<f32> = common::random_vec(&mut g, 9 * 19)
                .into_iter()
                .map(|v| if v.abs() < 0.05 { 0.5 } else { v })
                .collect();
            let b = common::random_vec(&mut g, 19);
            x[(2 * 9 + 3) * 19 + 5] = f32::NAN;
            x[(5 * 9 + 8) * 19 + 18] = f32::INFINITY;
            x[17] = f32::NEG_INFINITY; // pixel (0, 0)
            let out = cases::depthwise_with(kv, &c, &x, &w, &b).unwrap();
            assert!(out.iter().any(|v| v.is_nan()), "the NaN did not propagate");
        }
        // GEMM: a NaN or infinite input pixel against the reference (NaN where it expects NaN),
        // in a full tile and in the last rows, on a whole and a partial column panel, for every
        // activation, at depths with their own code paths (constant, general).
        let (mr, nr) = (kv.gemm_kernel().mr, kv.gemm_kernel().nr);
        for (i, kk) in [32, 37, 64].into_iter().enumerate() {
            for act in ACTIVATIONS {
                let c = Case {
                    act,
                    ..Case::new(1, 1, 2 * mr + 1, kk, nr + 3)
                };
                let mut g = common::rng(i as u64);
                let mut x = common::random_vec(&mut g, c.w * kk);
                x[(mr + 1) * kk + 3] = f32::NAN;
                x[2 * mr * kk + 1] = f32::NAN;
                x[kk + 2] = f32::INFINITY;
                let out = cases::pointwise_with(kv, &c, x, &mut g)
                    .unwrap_or_else(|e| panic!("{c:?}: {e}"));
                assert!(out[(mr + 1) * c.cout].is_nan(), "the NaN did not propagate");
            }
        }
        // The stem's path (3 input channels, a whole row of 16-column panels).
        for act in ACTIVATIONS {
            let c = Case {
                stride: 2,
                act,
                ..Case::new(1, 9, 2 * mr + 9, 3, 2 * nr)
            };
            let mut g = common::rng(5);
            let mut x = common::random_vec(&mut g, c.h * c.w * 3);
            x[(4 * c.w + 7) * 3 + 1] = f32::NAN;
            let out =
                cases::conv3x3_with(kv, &c, x, &mut g).unwrap_or_else(|e| panic!("{c:?}: {e}"));
            assert!(out.iter().any(|v| v.is_nan()), "the NaN did not propagate");
        }
    }
}

/// Results are bit-identical for threads 1..=4 (each element is computed by one thread in one order).
fn threads_identical(k: Kernels) {
    let ops: [(CaseFn, Case); 12] = [
        (cases::depthwise, Case::new(2, 29, 31, 37, 37)),
        // One or two output rows per thread (a channel tail, padded pixels, stride 2, and 4 KiB
        // pixel strides read through skewed copies).
        (cases::depthwise, Case::new(1, 3, 9, 1027, 1027)),
        (
            cases::depthwise,
            Case {
                stride: 2,
                in_gap: 5,
                out_gap: 3,
                act: Activation::Relu6,
                ..Case::new(2, 5, 24, 600, 600)
            },
        ),
        (cases::depthwise, Case::new(1, 4, 7, 1024, 1024)),
        (cases::pointwise, Case::new(2, 13, 17, 45, 70)),
        // Rows not evenly strided: each image's rows one batched GEMM call, threads splitting
        // each row's problem alike.
        (
            cases::pointwise,
            Case {
                row_gap: 3,
                ..Case::new(2, 13, 17, 45, 70)
            },
        ),
        // Few rows, many columns: threads split the columns (the 7x7 layers' shape).
        (cases::pointwise, Case::new(1, 1, 7, 300, 1000)),
        (cases::fully_connected, Case::new(1, 1, 1, 1024, 1000)),
        (
            cases::conv3x3,
            Case {
                stride: 2,
                ..Case::new(2, 19, 23, 6, 40)
            },
        ),
        (
            cases::conv3x3,
            // The stem's shape on rows with gaps: inside pixels in place, border runs and the
            // bottom row through copies, bands split over the threads.
            Case {
                row_gap: 2,
                stride: 2,
                ..Case::new(1, 31, 12, 3, 32)
            },
        ),
        // B over 2 MiB: panel-major bands of rows.
        (cases::conv3x3, Case::new(2, 5, 3, 250, 236)),
        (cases::fully_connected, Case::new(5, 2, 2, 300, 130)),
    ];
    for (op, case) in ops {
        let one = op(k, &case).unwrap();
        for t in 2..=4 {
            let many = op(k.with_threads(t).unwrap(), &case).unwrap();
            assert!(
                one.iter()
                    .zip(&many)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "threads={t} changed the result of {case:?}"
            );
        }
    }
}

/// Subnormals are neither flushed nor treated as zero (no FTZ/DAZ; see the crate docs): subnormal
/// inputs sum to the exact normal result, and a normal input times a small weight gives the exact
/// subnormal result, for every operator and registered kernel. All values are powers of two (or
/// small multiples), so the expected results are exact.
fn subnormals_kept(k: Kernels) {
    let tiny = f32::MIN_POSITIVE / 2.0; // 2^-127, subnormal
    let small = f32::MIN_POSITIVE / 4.0; // 2^-128, subnormal
    assert!(tiny.is_subnormal() && small.is_subnormal());
    for kv in variants(k) {
        // Pointwise (GEMM) and fully connected: K = 8 subnormal inputs times 1 -> 8 * 2^-127.
        let s = Shape::new(1, 2, 3, 8);
        let x = vec![tiny; 6 * 8];
        let w = vec![1.0f32; 8 * 5];
        let pw = kv
            .pack_pointwise(&w, WeightLayout::Hwio, None, 8, 5)
            .unwrap();
        let mut y = vec![0.0f32; 6 * 5];
        kv.pointwise(
            &TensorView::new(&x, s).unwrap(),
            &pw,
            Activation::None,
            &mut TensorViewMut::new(&mut y, Shape::new(1, 2, 3, 5)).unwrap(),
        )
        .unwrap();
        assert!(y.iter().all(|&v| v == 8.0 * tiny), "pointwise DAZ: {y:?}");
        // A normal input times 1/4 -> the subnormal 2^-128 (K = 1).
        let x1 = vec![f32::MIN_POSITIVE; 6];
        let pw1 = kv
            .pack_pointwise(&[0.25; 3], WeightLayout::Hwio, None, 1, 3)
            .unwrap();
        let mut y1 = vec![0.0f32; 6 * 3];
        kv.pointwise(
            &TensorView::new(&x1, Shape::new(1, 2, 3, 1)).unwrap(),
            &pw1,
            Activation::None,
            &mut TensorViewMut::new(&mut y1, Shape::new(1, 2, 3, 3)).unwrap(),
        )
        .unwrap();
        assert!(y1.iter().all(|&v| v == small), "pointwise FTZ: {y1:?}");
        let fc = kv
            .pack_fully_connected(&w, WeightLayout::Hwio, None, 8, 5)
            .unwrap();
        let mut yf = vec![0.0f32; 5];
        kv.fully_connected(
            &TensorView::new(&x[..8], Shape::new(1, 1, 1, 8)).unwrap(),
            &fc,
            Activation::None,
            &mut TensorViewMut::new(&mut yf, Shape::new(1, 1, 1, 5)).unwrap(),
        )
        .unwrap();
        assert!(
            yf.iter().all(|&v| v == 8.0 * tiny),
            "fully connected DAZ: {yf:?}"
        );

        // Depthwise and standard 3x3 on a 3x3 image, valid padding: 9 (or 18) subnormal inputs
        // times 1, and a normal input times a centre tap of 1/4.
        let p = Conv3x3Params::new().padding(Padding::Valid);
        let s3 = Shape::new(1, 3, 3, 2);
        for (input, taps, want) in [
            (tiny, [1.0f32; 9], 9.0 * tiny),
            (f32::MIN_POSITIVE, centre(0.25), small),
        ] {
            let x = vec![input; 9 * 2];
            let w: Vec<f32> = taps.iter().flat_map(|&t| [t, t]).collect();
            let dw = kv
                .pack_depthwise3x3(&w, WeightLayout::Hwio, None, 2)
                .unwrap();
            let mut y = vec![0.0f32; 2];
            kv.depthwise3x3(
                &TensorView::new(&x, s3).unwrap(),
                &dw,
                &p,
                &mut TensorViewMut::new(&mut y, Shape::new(1, 1, 1, 2)).unwrap(),
            )
            .unwrap();
            assert!(
                y.iter().all(|&v| v == want),
                "depthwise: {y:?}, want {want:e}"
            );
            // Standard conv, 2 -> 1 channels: taps on input channel 0 only, so the sum is the
            // same as the depthwise one.
            let wc: Vec<f32> = taps.iter().flat_map(|&t| [t, 0.0]).collect();
            let cw = kv
                .pack_conv3x3(&wc, WeightLayout::Hwio, None, 2, 1)
                .unwrap();
            let mut yc = vec![0.0f32; 1];
            kv.conv3x3(
                &TensorView::new(&x, s3).unwrap(),
                &cw,
                &p,
                &mut TensorViewMut::new(&mut yc, Shape::new(1, 1, 1, 1)).unwrap(),
            )
            .unwrap();
            assert_eq!(yc[0], want, "conv3x3");
        }
    }
}

/// Pixel strides that are multiples of 4 KiB (1024 channels, or fewer channels with a gap) at
/// stride 1 go through the driver's skewed row copies (512 channels do not: checked alongside):
/// every padding, heights that make the ring of row slots wrap and reuse rows across images, and
/// several threads (each band refills its own ring).
fn dw_skewed_rows(k: Kernels) {
    let paddings = [
        Padding::Same,
        Padding::Valid,
        explicit(2, 0, 0, 2),
        explicit(0, 2, 2, 1),
    ];
    for kv in dw_variants(k) {
        for (i, &(n, h, w, c, gap)) in [
            (1, 7, 7, 1024, 0),
            (2, 5, 3, 1024, 0),
            (1, 6, 4, 1000, 24),
            (1, 1, 9, 1024, 0),
            (1, 4, 5, 512, 0),
        ]
        .iter()
        .enumerate()
        {
            for (j, &padding) in paddings.iter().enumerate() {
                for threads in [1, 3] {
                    let case = Case {
                        padding,
                        in_gap: gap,
                        act: ACTIVATIONS[(i + j) % 4],
                        seed: (100 * i + 10 * j + threads) as u64,
                        ..Case::new(n, h, w, c, c)
                    };
                    if h < 3 && matches!(padding, Padding::Valid) {
                        continue;
                    }
                    cases::depthwise(kv.with_threads(threads).unwrap(), &case)
                        .unwrap_or_else(|e| panic!("{}: {case:?}: {e}", kv.dw_kernel(1).name));
                }
            }
        }
    }
}

/// `(top, bottom, left, right)` zero rows/columns of `padding` for an `h x w` input at stride
/// `s` (TensorFlow `SAME`: the odd one at the bottom/right).
fn pads(padding: Padding, h: usize, w: usize, s: usize) -> (usize, usize, usize, usize) {
    let same = |n: usize| {
        let total = ((n.div_ceil(s) - 1) * s + 3).saturating_sub(n);
        (total / 2, total - total / 2)
    };
    match padding {
        Padding::Same => {
            let ((t, b), (l, r)) = (same(h), same(w));
            (t, b, l, r)
        }
        Padding::Valid => (0, 0, 0, 0),
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } => (top, bottom, left, right),
    }
}

/// A depthwise layer run in bands of output rows, each band one call on a view of the input rows
/// it needs with explicit padding where it touches the top or bottom border (what a depth-first
/// engine does), gives the same bits as one call: every padding and stride, bands of 1-5 rows,
/// channel tails, and the skewed-copy path (1024 channels). So does each output row alone from
/// `Kernels::depthwise3x3_row`, its input rows (pixel stride `c` or `c + 5`) and its output in
/// buffers of their own that end at guard pages.
fn dw_row_bands(k: Kernels) {
    let mut rng = common::rng(0xBA4D);
    let layers = [
        (11, 9, 37, 1, Padding::Same),
        (12, 10, 37, 2, Padding::Same),
        (11, 8, 20, 2, Padding::Same),
        (9, 6, 16, 1, Padding::Valid),
        (10, 7, 9, 2, Padding::Valid),
        (8, 5, 24, 1, explicit(2, 1, 1, 2)),
        (9, 7, 33, 2, explicit(0, 2, 2, 0)),
        (7, 7, 1024, 1, Padding::Same),
    ];
    for kv in dw_variants(k) {
        for (i, &(h, w, c, s, padding)) in layers.iter().enumerate() {
            let x = common::random_vec(&mut rng, h * w * c);
            let wt = common::random_vec(&mut rng, 9 * c);
            let bias = common::random_vec(&mut rng, c);
            let dw = kv
                .pack_depthwise3x3(&wt, WeightLayout::Hwio, Some(&bias), c)
                .unwrap();
            let p = Conv3x3Params::new()
                .stride(s)
                .padding(padding)
                .activation(ACTIVATIONS[i % 4]);
            let (oh, ow) = p.output_size(h, w).unwrap();
            let input = TensorView::new(&x, Shape::new(1, h, w, c)).unwrap();
            let mut whole = vec![0.0; oh * ow * c];
            let mut y = TensorViewMut::new(&mut whole, Shape::new(1, oh, ow, c)).unwrap();
            kv.depthwise3x3(&input, &dw, &p, &mut y).unwrap();
            let (top, _, left, right) = pads(padding, h, w, s);
            for rows in 1..=5 {
                let mut banded = vec![f32::NAN; oh * ow * c];
                for r0 in (0..oh).step_by(rows) {
                    let r1 = (r0 + rows).min(oh);
                    // Padded input rows lo .. hi feed output rows r0 .. r1.
                    let lo = (r0 * s) as isize - top as isize;
                    let hi = ((r1 - 1) * s + 3) as isize - top as isize;
                    let (y0, y1) = (lo.max(0) as usize, hi.min(h as isize) as usize);
                    let band = Padding::Explicit {
                        top: (y0 as isize - lo) as usize,
                        bottom: (hi - y1 as isize) as usize,
                        left,
                        right,
                    };
                    let view =
                        TensorView::new(&x[y0 * w * c..y1 * w * c], Shape::new(1, y1 - y0, w, c))
                            .unwrap();
                    let mut out = TensorViewMut::new(
                        &mut banded[r0 * ow * c..r1 * ow * c],
                        Shape::new(1, r1 - r0, ow, c),
                    )
                    .unwrap();
                    kv.depthwise3x3(&view, &dw, &p.padding(band), &mut out)
                        .unwrap();
                }
                assert!(
                    whole
                        .iter()
                        .zip(&banded)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{}: {h}x{w}x{c} s{s} {padding:?}, bands of {rows} rows differ from one call",
                    kv.dw_kernel(s).name
                );
            }
            // Row by row (`depthwise3x3_row`), each input and output row in a buffer of its own
            // that ends at a guard page, the input rows with a pixel stride of `c + gap`.
            for gap in [0, 5] {
                let ps = c + gap;
                let row_strides = Strides {
                    batch: w * ps,
                    row: w * ps,
                    pixel: ps,
                };
                let in_rows: Vec<common::guard::Guarded> = (0..h)
                    .map(|y| {
                        let mut r = common::guard::Guarded::new((w - 1) * ps + c);
                        for px in 0..w {
                            r[px * ps..][..c].copy_from_slice(&x[(y * w + px) * c..][..c]);
                        }
                        r
                    })
                    .collect();
                for oy in 0..oh {
                    let views: Vec<Option<TensorView>> = (0..3)
                        .map(|ky| {
                            let iy = (oy * s + ky).checked_sub(top).filter(|&iy| iy < h)?;
                            let shape = Shape::new(1, 1, w, c);
                            Some(
                                TensorView::with_strides(&in_rows[iy], shape, row_strides).unwrap(),
                            )
                        })
                        .collect();
                    let mut out = common::guard::Guarded::new(ow * c);
                    let mut y = TensorViewMut::new(&mut out, Shape::new(1, 1, ow, c)).unwrap();
                    let rows = [views[0].as_ref(), views[1].as_ref(), views[2].as_ref()];
                    let p_row = p.padding(Padding::Explicit {
                        top: 0,
                        bottom: 0,
                        left,
                        right,
                    });
                    kv.depthwise3x3_row(rows, &dw, &p_row, &mut y).unwrap();
                    let expect = &whole[oy * ow * c..][..ow * c];
                    assert!(
                        expect
                            .iter()
                            .zip(out.iter())
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{}: {h}x{w}x{c} s{s} {padding:?} gap {gap}: row {oy} alone differs",
                        kv.dw_kernel(s).name
                    );
                }
            }
        }
    }
}

/// Nine 3x3 taps, all zero but the centre.
fn centre(v: f32) -> [f32; 9] {
    let mut t = [0.0; 9];
    t[4] = v;
    t
}

isa_tests! {
    depthwise_matches_reference => dw_random;
    pointwise_matches_reference => pw_random;
    conv3x3_matches_reference => conv_random;
    fully_connected_matches_reference => fc_random;
    global_avg_pool_matches_reference => pool_random;
    depthwise_edges => dw_edges;
    depthwise_skewed_rows => dw_skewed_rows;
    depthwise_in_row_bands_gives_the_same_bits => dw_row_bands;
    gemm_tile_edges => gemm_edges;
    conv3x3_edges => conv_edges;
    tiny_images_and_padding => tiny_images;
    nan_and_inf_propagate => nan_inf_propagate;
    threads_give_identical_results => threads_identical;
    subnormals_are_kept => subnormals_kept;
}
