//! Edges of the NEON kernels (`gemm_f32_6x12_neon`, `dwconv3x3_f32_c4_neon`,
//! `dwconv3x3s2_f32_c4_neon`) that the generic tests in `ops_vs_reference.rs` do not reach: rows
//! wider than the depthwise column chunk (64 outputs), and GEMM depths over several KC blocks
//! with every M / N edge of the 6 x 12 tile. Buffers end at guard pages (see `common::cases`).
//!
//! Prints `SKIP` and passes where NEON is unavailable, unless `SEPCONV_REQUIRE_ISAS` names `neon`.

mod common;

use common::cases::{self, Case};
use sepconv::{Activation, Isa, Kernels, Padding};

/// The NEON kernels, or `None` (after printing `SKIP`) where they cannot run.
fn neon() -> Option<Kernels> {
    match Kernels::for_isa(Isa::Neon) {
        Some(k) => {
            assert_eq!(k.gemm_kernel().name, "gemm_f32_6x12_neon");
            assert_eq!(k.dw_kernel(1).name, "dwconv3x3_f32_c4_neon");
            assert_eq!(k.dw_kernel(2).name, "dwconv3x3s2_f32_c4_neon");
            Some(k)
        }
        None if common::required(Isa::Neon) => {
            panic!("neon is in SEPCONV_REQUIRE_ISAS but this CPU or build cannot run it")
        }
        None => {
            eprintln!("SKIP: neon is not available on this CPU or in this build");
            None
        }
    }
}

const ACTIVATIONS: [Activation; 3] = [
    Activation::None,
    Activation::Relu6,
    Activation::Clamp {
        min: -0.3,
        max: 0.4,
    },
];

#[test]
fn dwconv_rows_wider_than_a_chunk() {
    let Some(k) = neon() else { return };
    let paddings = [
        Padding::Same,
        Padding::Valid,
        Padding::Explicit {
            top: 2,
            bottom: 1,
            left: 2,
            right: 2,
        },
    ];
    let mut i = 0;
    for (w, c) in [(65, 5), (112, 8), (129, 3), (130, 4), (150, 9)] {
        for stride in [1, 2] {
            for padding in paddings {
                i += 1;
                let case = Case {
                    stride,
                    padding,
                    act: ACTIVATIONS[i % 3],
                    in_gap: i % 3,
                    out_gap: i % 2,
                    seed: i as u64,
                    ..Case::new(1, 3, w, c, c)
                };
                cases::depthwise(k, &case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
            }
        }
    }
}

#[test]
fn gemm_depth_over_kc_blocks() {
    let Some(k) = neon() else { return };
    let kc = k.gemm_kernel().blocking.kc;
    let mut i = 0;
    // M = pixels (rows of A), K = input channels, N = output channels.
    for m in [1, 5, 6, 7, 13] {
        for n in [1, 3, 4, 5, 11, 12, 13, 25] {
            for depth in [kc + 3, 2 * kc + 1] {
                i += 1;
                let case = Case {
                    act: ACTIVATIONS[i % 3],
                    bias: i % 4 != 0,
                    in_gap: i % 2,
                    out_gap: (i / 2) % 3,
                    seed: i as u64,
                    ..Case::new(1, 1, m, depth, n)
                };
                cases::pointwise(k, &case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
            }
        }
    }
}
