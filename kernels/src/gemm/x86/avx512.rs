//! `gemm_f32_7x32_avx512`: the AVX-512F GEMM micro-kernel, a 7 x 32 register tile of C.
//!
//! Register plan (32 zmm): 14 accumulators (7 rows x 2 vectors of 16 columns), 2 vectors of the
//! packed B row, 1 broadcast of A. Per step of depth: 2 loads of B, 7 broadcast loads of A
//! (`vbroadcastss` straight from the A rows at stride `lda`), 14 FMAs. On Skylake-SP / Ice Lake-SP
//! (two 512-bit FMA ports, 4-cycle latency, 2 loads per cycle) the 14 FMAs take 7 cycles and the 9
//! loads 4.5, and 14 independent accumulators cover the 8 FMAs that must be in flight. The depth
//! loop is unrolled by 8 so its few scalar address updates stay off the FMA ports. The tile is the
//! XNNPACK `7x16`-class shape widened to two vectors; BLIS' 32x12 (column-major C) is its transpose.
//! `scripts/mca-avx512.sh` models the loop with llvm-mca.
//!
//! Edge tiles use the same body instantiated for fewer rows (`M < 7`, const generic: rows `>= m`
//! of A and C are never touched) and one vector of columns when `n <= 16`; columns `>= n` of C are
//! never read or written: C is loaded and stored through `__mmask16` lane masks
//! (`_mm512_maskz_loadu_ps` / `_mm512_mask_storeu_ps`, which do not fault on masked-off lanes).
//! B and the bias are zero-padded to 32 columns, so they are always read whole.

use core::arch::x86_64::*;

use crate::gemm::ukernel::{Blocking, GemmKernel, GemmTile};
use crate::Isa;

/// Register tile rows.
const MR: usize = 7;
/// Register tile columns (two zmm vectors).
const NR: usize = 32;

/// `gemm_f32_7x32_avx512`, the production GEMM micro-kernel on AVX-512F CPUs.
///
/// Blocking for Skylake-SP / Ice Lake-SP / Zen 4 (L1d 32-48 KiB, L2 1-2 MiB per core): a
/// `KC x 32` sliver of B is `KC * 128` bytes (24 KiB at KC = 192) and stays in L1 next to the 7 A
/// rows being broadcast (5.25 KiB); the `MC x KC` block of A (MC = 336: 252 KiB) stays in a
/// quarter of L2 while the slivers stream past it.
pub static GEMM_F32_7X32_AVX512: GemmKernel = GemmKernel {
    name: "gemm_f32_7x32_avx512",
    isa: Isa::Avx512,
    mr: MR,
    nr: NR,
    blocking: Blocking {
        mc: 336,
        kc: 192,
        nc: 4096,
    },
    func: gemm_f32_7x32_avx512,
};

/// One `m x n` tile (at most 7 x 32) of `C = act(A * B + bias)` for one KC block of depth `k`.
///
/// Dispatches on `m` and on whether `n > 16` to an instance of the register tile with exactly the
/// rows and vectors the tile needs.
///
/// # Safety
///
/// The [`GemmUkernelFn`](crate::gemm::ukernel::GemmUkernelFn) contract with `MR = 7`, `NR = 32`,
/// and the CPU supports AVX-512F, AVX2 and FMA3.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn gemm_f32_7x32_avx512(t: &GemmTile) {
    debug_assert!((1..=MR).contains(&t.m) && (1..=NR).contains(&t.n) && t.k >= 1);
    // SAFETY: (every arm) the caller upholds the `GemmUkernelFn` contract for this tile, and each
    // instance reads and writes only rows `< M == t.m` and (masked) columns `< t.n`.
    // `CH` independent accumulator sets (chains over k) keep >= 8 FMAs in flight when the tile
    // has fewer than 8 accumulator vectors (4-cycle FMA latency on 2 ports).
    unsafe {
        if t.n > 16 {
            match t.m {
                7 => tile::<7, 2, 1>(t),
                6 => tile::<6, 2, 1>(t),
                5 => tile::<5, 2, 1>(t),
                4 => tile::<4, 2, 1>(t),
                3 => tile::<3, 2, 2>(t),
                2 => tile::<2, 2, 2>(t),
                _ => tile::<1, 2, 4>(t),
            }
        } else {
            match t.m {
                7 => tile::<7, 1, 2>(t),
                6 => tile::<6, 1, 2>(t),
                5 => tile::<5, 1, 2>(t),
                4 => tile::<4, 1, 2>(t),
                3 => tile::<3, 1, 4>(t),
                2 => tile::<2, 1, 4>(t),
                _ => tile::<1, 1, 4>(t),
            }
        }
    }
}

/// Lane mask of the columns `< n` in vector `v` (columns `16v .. 16v+16`).
#[inline]
fn column_mask(n: usize, v: usize) -> __mmask16 {
    let left = n.saturating_sub(16 * v);
    if left >= 16 {
        0xffff
    } else {
        ((1u32 << left) - 1) as __mmask16
    }
}

/// The register tile with `M` rows (`1..=7`) and `NV` vectors of 16 columns (`1..=2`), summing
/// the depth in `CH` (1, 2 or 4) interleaved chains of accumulators.
///
/// # Safety
///
/// The `GemmUkernelFn` contract, with `t.m == M` and `16 * (NV - 1) < t.n <= 16 * NV`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile<const M: usize, const NV: usize, const CH: usize>(t: &GemmTile) {
    let (k, n) = (t.k, t.n);
    let mut masks = [0 as __mmask16; NV];
    for (v, mask) in masks.iter_mut().enumerate() {
        *mask = column_mask(n, v);
    }

    // Row pointers of A and C. Only rows `< M == t.m` are formed.
    let mut a = [t.a; M];
    let mut c = [t.c; M];
    for i in 1..M {
        // SAFETY: row `i < m` of A and of C lies inside their buffers (contract), so the offsets
        // stay within the same allocations.
        unsafe {
            a[i] = t.a.add(i * t.lda);
            c[i] = t.c.add(i * t.ldc);
        }
    }

    let mut acc = [[_mm512_setzero_ps(); NV]; M];
    if t.first_k_block {
        for v in 0..NV {
            // SAFETY: `bias` holds NR = 32 floats (zero-padded); `16 * v + 16 <= 32`.
            let bias = unsafe { _mm512_loadu_ps(t.bias.add(16 * v)) };
            for row in acc.iter_mut() {
                row[v] = bias;
            }
        }
    } else {
        for (i, row) in acc.iter_mut().enumerate() {
            for v in 0..NV {
                // SAFETY: row `i < m` of C is readable for columns `< n`; the mask enables exactly
                // the lanes of columns `< n` in this vector, and masked-off lanes are not accessed.
                row[v] = unsafe { _mm512_maskz_loadu_ps(masks[v], c[i].add(16 * v)) };
            }
        }
    }

    // The depth loop, unrolled by 8; step `p` goes to chain `p % CH`. `step!(acc, p)` reads A
    // column `p < k` of rows `< M` and B row `p` (`NR` floats), both in bounds by the contract.
    // (A macro rather than a closure over `&mut` chains, so every chain stays in registers.)
    let b = t.b;
    macro_rules! step {
        ($acc:ident, $p:expr) => {{
            let p = $p;
            let mut bv = [_mm512_setzero_ps(); NV];
            for (v, bv) in bv.iter_mut().enumerate() {
                // SAFETY: `b` holds `k * NR` floats and `p < k`, `16 * v + 16 <= NR`.
                *bv = unsafe { _mm512_loadu_ps(b.add(p * NR + 16 * v)) };
            }
            for (row, &ai) in $acc.iter_mut().zip(a.iter()) {
                // SAFETY: row `i < m` of A is readable for `k` floats and `p < k`.
                let av = _mm512_set1_ps(unsafe { *ai.add(p) });
                for v in 0..NV {
                    row[v] = _mm512_fmadd_ps(av, bv[v], row[v]);
                }
            }
        }};
    }
    // Chain 0 is `acc` (it holds the starting values); the others start from zero.
    let zero = [[_mm512_setzero_ps(); NV]; M];
    let (mut acc1, mut acc2, mut acc3) = (zero, zero, zero);
    let mut p = 0;
    while p + 8 <= k {
        // The inner loop, for llvm-mca (scripts/mca-avx512.sh): one iteration of the full tile.
        #[cfg(feature = "mca-markers")]
        if M == MR && NV == 2 {
            mca_marker!("BEGIN gemm_f32_7x32_avx512");
        }
        // Unrolled by 8: the few scalar address updates per iteration share ports with the FMAs.
        match CH {
            1 => {
                for q in 0..8 {
                    step!(acc, p + q);
                }
            }
            2 => {
                for q in (0..8).step_by(2) {
                    step!(acc, p + q);
                    step!(acc1, p + q + 1);
                }
            }
            _ => {
                for q in (0..8).step_by(4) {
                    step!(acc, p + q);
                    step!(acc1, p + q + 1);
                    step!(acc2, p + q + 2);
                    step!(acc3, p + q + 3);
                }
            }
        }
        p += 8;
        #[cfg(feature = "mca-markers")]
        if M == MR && NV == 2 {
            mca_marker!("END gemm_f32_7x32_avx512");
        }
    }
    while p < k {
        step!(acc, p);
        p += 1;
    }
    if CH > 1 {
        for i in 0..M {
            for v in 0..NV {
                let (s1, s2) = (
                    _mm512_add_ps(acc[i][v], acc1[i][v]),
                    _mm512_add_ps(acc2[i][v], acc3[i][v]),
                );
                acc[i][v] = _mm512_add_ps(s1, s2);
            }
        }
    }

    if t.last_k_block {
        // y = if y < min {min} else {y}; y = if y > max {max} else {y}: `max_ps`/`min_ps` return
        // their second operand when either is NaN, so a NaN `y` (second) stays NaN.
        // An infinite bound is the identity (NaN included) and is skipped: ReLU costs one op.
        let (vmin, vmax) = (_mm512_set1_ps(t.min), _mm512_set1_ps(t.max));
        if t.min != f32::NEG_INFINITY {
            for row in acc.iter_mut() {
                for y in row.iter_mut() {
                    *y = _mm512_max_ps(vmin, *y);
                }
            }
        }
        if t.max != f32::INFINITY {
            for row in acc.iter_mut() {
                for y in row.iter_mut() {
                    *y = _mm512_min_ps(vmax, *y);
                }
            }
        }
    }

    for (row, &ci) in acc.iter().zip(c.iter()) {
        for v in 0..NV {
            // SAFETY: row `i < m` of C is writable for columns `< n`; the mask enables exactly the
            // lanes of columns `< n` in this vector (all 16 for a full vector), and masked-off
            // lanes are not written.
            unsafe { _mm512_mask_storeu_ps(ci.add(16 * v), masks[v], row[v]) };
        }
    }
}
