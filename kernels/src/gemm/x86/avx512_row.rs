//! The one-row path of the AVX-512 GEMM kernels (`RowPanelsFn`): up to four column panels of
//! packed B at once for a one-row GEMM (the classifier at batch 1), as `row_panels_avx2` does
//! with ymm, for panels of `16 * NV` columns (`NV` zmm vectors: 2 for the 32-column tiles, 1
//! for the 14 x 16 tile). Inside MobileNet on an Emerald Rapids VM (`sepconv-bench mobilenet
//! --isa avx512`, builds alternating, three runs each) the classifier took 0.22-0.30 ms against
//! 0.28-0.40 one panel after another; hot (the report's `fc` row, seven pairs) level.

use core::arch::x86_64::*;

use crate::gemm::ukernel::GemmTile;

/// `row_panels_avx512::<NV>`: columns `0 .. t.n` of a one-row GEMM over `t.n.div_ceil(16 * NV)`
/// panels of `16 * NV` columns, each column one chain over the depth from its bias.
///
/// # Safety
///
/// The [`RowPanelsFn`](crate::gemm::ukernel::RowPanelsFn) contract with `NR = 16 * NV`, and the
/// CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn row_panels_avx512<const NV: usize>(t: &GemmTile) {
    debug_assert!(t.m == 1 && t.k_seg == t.k && t.first_k_block && t.last_k_block);
    // SAFETY: forwarded; each instance reads exactly `t.n.div_ceil(16 * NV)` panels.
    unsafe {
        match t.n.div_ceil(16 * NV) {
            4 => row_panels::<NV, 4>(t),
            3 => row_panels::<NV, 3>(t),
            2 => row_panels::<NV, 2>(t),
            _ => row_panels::<NV, 1>(t),
        }
    }
}

/// [`row_panels_avx512`] over exactly `P` panels.
///
/// # Safety
///
/// As [`row_panels_avx512`], with `t.n.div_ceil(16 * NV) == P`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn row_panels<const NV: usize, const P: usize>(t: &GemmTile) {
    let nr = 16 * NV;
    let stride = (t.k + 1) * nr;
    let mut acc = [[_mm512_setzero_ps(); NV]; P];
    for (j, acc) in acc.iter_mut().enumerate() {
        for (v, y) in acc.iter_mut().enumerate() {
            // SAFETY: panel `j < P` starts with its bias row of `nr` floats (contract).
            *y = unsafe { _mm512_loadu_ps(t.bias.add(j * stride + 16 * v)) };
        }
    }
    for p in 0..t.k {
        // SAFETY: A element `(0, p)`, `p < k` (a plain row of `k` floats).
        let av = _mm512_set1_ps(unsafe { *t.a.add(p) });
        for (j, acc) in acc.iter_mut().enumerate() {
            for (v, y) in acc.iter_mut().enumerate() {
                // SAFETY: B row `p < k` of panel `j < P`, floats `16v .. 16v + 16 <= nr`.
                let bv = unsafe { _mm512_loadu_ps(t.b.add(j * stride + p * nr + 16 * v)) };
                *y = _mm512_fmadd_ps(av, bv, *y);
            }
        }
    }
    let (vmin, vmax) = (_mm512_set1_ps(t.min), _mm512_set1_ps(t.max));
    for (j, acc) in acc.iter().enumerate() {
        for (v, &y) in acc.iter().enumerate() {
            // `y` second: a NaN stays NaN (the contract's clamp).
            let y = _mm512_min_ps(vmax, _mm512_max_ps(vmin, y));
            let col = j * nr + 16 * v;
            if col >= t.n {
                break;
            }
            let mask = ((1u32 << (t.n - col).min(16)) - 1) as __mmask16;
            // SAFETY: columns `col .. col + 16` of C's one row under `mask`, which enables
            // exactly those `< n`; masked-off lanes are not written.
            unsafe { _mm512_mask_storeu_ps(t.c.add(col), mask, y) };
        }
    }
}
