//! Edges of the AVX-512 kernels that the all-ISA tests (ops_vs_reference) reach only by chance:
//! every row count of each AVX-512 GEMM tile (14x16, 8x32) with every column-mask shape and a
//! depth past KC (the accumulate-from-C path with masked loads), the 12x32 kernel's tall tiles
//! (depths >= 256, which the random shapes never reach) at every split of rows between tall
//! tiles, 8-row tiles and the rest, and every channel tail of the
//! c32 depthwise kernels with groups of 1..=4 outputs. Through the public API on guard-paged buffers,
//! against the f64 reference. Runs under the emulator (scripts/test-avx512.sh); SKIP elsewhere.

mod common;

use common::cases::{self, Case};
use sepconv::{Activation, Isa, Kernels, Padding, WeightLayout};

const ACTIVATIONS: [Activation; 4] = [
    Activation::None,
    Activation::Relu,
    Activation::Relu6,
    Activation::Clamp {
        min: -0.25,
        max: 0.5,
    },
];

/// For each AVX-512 GEMM kernel: m = 1..=MR (each tile instance) and MR + m (a full tile then an
/// edge tile); n around NR (one or two panels, full or masked, both halves of a two-vector tile);
/// k around the unroll and past KC (two and three blocks).
fn gemm_tiles(k: Kernels) {
    let kernels: Vec<_> = sepconv::registry::gemm_kernels(Isa::Avx512).collect();
    let names: Vec<_> = kernels.iter().map(|g| g.name).collect();
    assert_eq!(
        names,
        [
            "gemm_f32_14x16_avx512",
            "gemm_f32_8x32_avx512",
            "gemm_f32_12x32_avx512"
        ]
    );
    let mut i = 0;
    // The 12x32 kernel runs the 8x32 one for every depth here (below its tall tiles' 256):
    // `tall_tiles` covers it.
    for g in kernels
        .into_iter()
        .filter(|g| g.name != "gemm_f32_12x32_avx512")
    {
        let k = k.with_gemm_kernel(g).unwrap();
        let (mr, nr, kc) = (g.mr, g.nr, g.blocking.kc);
        let mut ns = vec![1, 5, 15, 16, 17, nr - 1, nr, nr + 1, 2 * nr + 1];
        ns.sort_unstable();
        ns.dedup();
        for m in (1..=mr).chain([mr + 1, mr + mr / 2, 2 * mr]) {
            for &n in &ns {
                // Past KC: two blocks (the first from the bias, the last clamps), and three (a
                // middle block starts from C and stores unclamped).
                for depth in [1, 7, 8, 9, 17, kc + 9, 2 * kc + 3] {
                    if depth > kc && !(m == mr || m == mr + mr / 2 || m == 3) {
                        continue;
                    }
                    if depth > 2 * kc && m != mr + mr / 2 {
                        continue;
                    }
                    i += 1;
                    let case = Case {
                        act: ACTIVATIONS[i % 4],
                        in_gap: i % 3,
                        out_gap: i % 2,
                        bias: i % 5 != 0,
                        layout: if i % 2 == 0 {
                            WeightLayout::Hwio
                        } else {
                            WeightLayout::Oihw
                        },
                        seed: i as u64,
                        ..Case::new(1, 1, m, depth, n)
                    };
                    cases::pointwise(k, &case)
                        .unwrap_or_else(|e| panic!("{}: {case:?}: {e}", g.name));
                }
            }
        }
    }
}

/// The 12x32 kernel's tall tiles: pointwise calls of row counts that split differently between
/// pairs of 12-row tiles, whole 8-row tiles and the edge rows, one or two panels with a
/// masked one (the tall tiles take whole panels only), at depths 256 and 264 (tall tiles), 260
/// (not a multiple of 8: the 8x32 kernel) and KC = 1024 (the deepest single block); and 3x3
/// convolutions over 96 channels (segments of 288 floats, three per row of A: the tall tiles'
/// segment walk), in place and at the borders; the same bits on 1-4 threads.
fn tall_tiles(k: Kernels) {
    let g = sepconv::registry::gemm_kernels(Isa::Avx512)
        .find(|g| g.name == "gemm_f32_12x32_avx512")
        .expect("registered");
    let k = k.with_gemm_kernel(g).unwrap();
    let mut i = 0;
    // Row counts: below a pair of tall tiles; one pair with 0-7 and 8-15 rows left; two pairs.
    for m in [1, 3, 8, 11, 23, 24, 25, 28, 31, 32, 35, 36, 44, 47, 48, 57] {
        for (n, depths) in [(32, &[256, 264, 260, 1024][..]), (70, &[264][..])] {
            for &depth in depths {
                i += 1;
                let case = Case {
                    act: ACTIVATIONS[i % 4],
                    in_gap: i % 3 * 8,
                    out_gap: i % 2,
                    bias: i % 5 != 0,
                    seed: 1000 + i as u64,
                    ..Case::new(1, 1, m, depth, n)
                };
                cases::pointwise(k, &case).unwrap_or_else(|e| panic!("{}: {case:?}: {e}", g.name));
            }
        }
    }
    // The same bits on 1-4 threads, with row counts whose split between threads moves the
    // tall tiles (each thread's rows start at a multiple of 8).
    for (m, depth, n) in [(13, 1024, 128), (205, 256, 32)] {
        let case = Case {
            act: Activation::Relu6,
            ..Case::new(1, 1, m, depth, n)
        };
        let one = cases::pointwise(k, &case).unwrap();
        for threads in 2..=4 {
            let kt = k.with_threads(threads).unwrap();
            let out = cases::pointwise(kt, &case).unwrap();
            assert!(
                one.iter()
                    .zip(&out)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{m} rows on {threads} threads differ from one thread"
            );
        }
    }
    for (w, cout) in [(13, 32), (26, 64), (29, 40)] {
        i += 1;
        let case = Case {
            act: ACTIVATIONS[i % 4],
            seed: 1000 + i as u64,
            ..Case::new(1, 3, w, 96, cout)
        };
        cases::conv3x3(k, &case).unwrap_or_else(|e| panic!("{}: {case:?}: {e}", g.name));
    }
}

/// Every channel count 1..=33 (each tail mask of the 32-channel tile: one masked `zmm`, one whole
/// `zmm`, a whole and a masked one) and 47, 48, 49, 64, 65 (a whole tile, then each tail kind) at
/// both strides, with widths giving groups of 1..=4 outputs at and away from both borders; for
/// every registered AVX-512 depthwise kernel (the group rules for 12-way and 8-way L1s).
fn dw_tails(k: Kernels) {
    let names: Vec<_> = [1, 2]
        .iter()
        .flat_map(|&s| sepconv::registry::dw_kernels(Isa::Avx512, s))
        .map(|d| d.name)
        .collect();
    assert_eq!(
        names,
        [
            "dwconv3x3_f32_c32_avx512",
            "dwconv3x3_f32_c32w8_avx512",
            "dwconv3x3s2_f32_c32_avx512",
            "dwconv3x3s2_f32_c32w8_avx512"
        ]
    );
    for stride in [1, 2] {
        for d in sepconv::registry::dw_kernels(Isa::Avx512, stride) {
            let k = k.with_dw_kernel(d).unwrap();
            assert_eq!(k.dw_kernel(stride).name, d.name);
            dw_tails_at(k, stride);
        }
    }
}

fn dw_tails_at(k: Kernels, stride: usize) {
    let mut i = 0;
    for c in (1..=33).chain([47, 48, 49, 64, 65]) {
        for w in [1, 3, 4, 6, 7, 10, 13] {
            i += 1;
            let case = Case {
                stride,
                padding: if i % 3 == 0 {
                    Padding::Valid
                } else {
                    Padding::Same
                },
                act: ACTIVATIONS[i % 4],
                in_gap: i % 2,
                out_gap: (i / 2) % 2,
                seed: i as u64,
                ..Case::new(1, 3, w, c, c)
            };
            cases::depthwise(k, &case)
                .unwrap_or_else(|e| panic!("{}: {case:?}: {e}", k.dw_kernel(stride).name));
        }
    }
}

#[test]
fn gemm_edge_tiles_avx512() {
    common::run_isa(Isa::Avx512, gemm_tiles);
}

#[test]
fn gemm_tall_tiles_avx512() {
    common::run_isa(Isa::Avx512, tall_tiles);
}

#[test]
fn dwconv3x3_c32_channel_tails_avx512() {
    common::run_isa(Isa::Avx512, dw_tails);
}
