//! The one-row path of the x86 GEMM kernels ([`RowPanelsFn`]), written once over `Lanes`
//! (`crate::lanes`): up to [`ROW_PANELS`] column panels of packed B at once for a one-row GEMM
//! (the classifier at batch 1), each panel `NV` vectors wide (`NR = NV * LANES`), each column
//! one chain over the depth from its bias: per depth step one broadcast of A and `NV` loads per
//! panel.
//!
//! Why several panels at once: inside MobileNet the classifier's weights (1024 x 1000, 4 MiB
//! packed) come from memory, and four sequential streams keep the prefetchers busier than one.
//! Measured on an Emerald Rapids VM (`sepconv-bench mobilenet`, builds alternating, three runs
//! each), one panel after another (each kernel's one-row tile) against four at once: AVX2
//! 0.40-0.45 -> 0.28-0.33 ms, AVX-512 0.28-0.40 -> 0.22-0.30 ms; hot (the report's `fc` row)
//! level. Eight panels at once ran level with four (a scratch kernel timed after each inference
//! of a `NetRunner`, 40-60 rounds: 0.73-0.76x one panel).
//!
//! [`RowPanelsFn`]: crate::gemm::ukernel::RowPanelsFn
//! [`ROW_PANELS`]: crate::gemm::ukernel::ROW_PANELS

use crate::gemm::ukernel::GemmTile;
use crate::lanes::{Lanes, Ymm, Zmm};

/// `row_panels_avx2`, the one-row path of `gemm_f32_6x16_avx2`: 16-column panels (two `ymm`).
///
/// # Safety
///
/// The [`RowPanelsFn`](crate::gemm::ukernel::RowPanelsFn) contract with `NR = 16`, and the CPU
/// supports AVX2 and FMA3.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn row_panels_avx2(t: &GemmTile) {
    // SAFETY: forwarded; this is AVX2's `#[target_feature]` function.
    unsafe { row_panels::<Ymm, 2>(t) }
}

/// `row_panels_avx512::<NV>`, the one-row path of the AVX-512 kernels: panels of `16 * NV`
/// columns (`NV` `zmm`: 2 for the 32-column tiles, 1 for the 14 x 16 tile).
///
/// # Safety
///
/// The [`RowPanelsFn`](crate::gemm::ukernel::RowPanelsFn) contract with `NR = 16 * NV`, and the
/// CPU supports AVX-512F (with AVX2 and FMA3, which `Isa::Avx512` implies).
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn row_panels_avx512<const NV: usize>(t: &GemmTile) {
    // SAFETY: forwarded; this is AVX-512's `#[target_feature]` function.
    unsafe { row_panels::<Zmm, NV>(t) }
}

/// Columns `0 .. t.n` of a one-row GEMM over `t.n.div_ceil(NR)` panels of `NR = NV * LANES`
/// columns.
///
/// # Safety
///
/// The `RowPanelsFn` contract with `NR = NV * X::LANES`; the CPU has `X`'s ISA, and the caller
/// is that ISA's `#[target_feature]` function (this inlines into it).
#[inline(always)]
unsafe fn row_panels<X: Lanes, const NV: usize>(t: &GemmTile) {
    debug_assert!(t.m == 1 && t.k_seg == t.k && t.first_k_block && t.last_k_block);
    // SAFETY: forwarded; each instance reads exactly `t.n.div_ceil(NR)` panels.
    unsafe {
        match t.n.div_ceil(NV * X::LANES) {
            4 => panels::<X, NV, 4>(t),
            3 => panels::<X, NV, 3>(t),
            2 => panels::<X, NV, 2>(t),
            _ => panels::<X, NV, 1>(t),
        }
    }
}

/// [`row_panels`] over exactly `P` panels: `NV` accumulators per panel, from its bias row.
///
/// # Safety
///
/// As [`row_panels`], with `t.n.div_ceil(NV * X::LANES) == P`.
#[inline(always)]
unsafe fn panels<X: Lanes, const NV: usize, const P: usize>(t: &GemmTile) {
    let (lanes, nr) = (X::LANES, NV * X::LANES);
    let stride = (t.k + 1) * nr;
    // SAFETY: `X`'s ISA is available (the caller's contract); so for every intrinsic below.
    let zero = unsafe { X::splat(0.0) };
    let mut acc = [[zero; NV]; P];
    for (j, acc) in acc.iter_mut().enumerate() {
        for (v, y) in acc.iter_mut().enumerate() {
            // SAFETY: panel `j < P` starts with its bias row of `nr` floats (contract).
            *y = unsafe { X::load(t.bias.add(j * stride + lanes * v)) };
        }
    }
    for p in 0..t.k {
        // SAFETY: A element `(0, p)`, `p < k` (a plain row of `k` floats).
        let av = unsafe { X::splat(*t.a.add(p)) };
        for (j, acc) in acc.iter_mut().enumerate() {
            for (v, y) in acc.iter_mut().enumerate() {
                // SAFETY: B row `p < k` of panel `j < P`, floats `lanes v .. lanes (v + 1) <= nr`.
                *y = unsafe { X::fmadd(av, X::load(t.b.add(j * stride + p * nr + lanes * v)), *y) };
            }
        }
    }
    // SAFETY: as above.
    let (vmin, vmax) = unsafe { (X::splat(t.min), X::splat(t.max)) };
    for (j, acc) in acc.iter().enumerate() {
        for (v, &y) in acc.iter().enumerate() {
            let col = j * nr + lanes * v;
            if col >= t.n {
                break;
            }
            // SAFETY: columns `col .. col + lanes` of C's one row: whole when all are `< n`,
            // else the mask (`1 <= n - col < lanes` lanes) stores only those `< n`.
            unsafe {
                let y = X::clamp(y, vmin, vmax);
                if col + lanes <= t.n {
                    X::store(t.c.add(col), y);
                } else {
                    X::store_masked(t.c.add(col), X::first_lanes(t.n - col), y);
                }
            }
        }
    }
}
