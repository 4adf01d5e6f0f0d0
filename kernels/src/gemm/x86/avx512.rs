//! `gemm_f32_14x16_avx512`: the AVX-512F GEMM micro-kernel, a 14 x 16 register tile of C.
//!
//! Register plan (32 zmm): 14 accumulators (14 rows x 1 vector of 16 columns), 1 vector of the
//! packed B row. Per step of depth: 1 load of B and 14 FMAs whose A operand is an embedded
//! broadcast straight from the A row (`vfmadd231ps zmm, zmm, dword ptr [a]{1to16}`: the broadcast
//! rides on the FMA's load, no separate `vbroadcastss`). That matters on Zen 4, where a separate
//! `vbroadcastss zmm` competes with the FMAs for an FP pipe: the 7 x 32 tile (7 broadcasts feeding
//! 14 FMAs) was modelled at 68% of FMA peak on `znver4`, this tile at ~100%. On Skylake-SP /
//! Ice Lake-SP (two 512-bit FMA ports, 4-cycle latency, 2 loads per cycle) the 14 FMAs take 7
//! cycles and the 15 loads 7.5, and 14 independent accumulators cover the 8 FMAs that must be in
//! flight. The depth loop is unrolled by 8 so its few scalar address updates stay off the FMA
//! ports. Same class as XNNPACK's `7x16` broadcast kernels and MLAS' AVX-512 kernel (embedded
//! broadcasts); BLIS' 32x12 (column-major C) is the transposed idea. `scripts/mca-x86.sh` models
//! the loop with llvm-mca.
//!
//! Full 14-row tiles of a call that covers a whole 16-column panel and is its GEMM's only KC
//! block (K <= KC = 256: MobileNet's stem and pw01-pw06) run in a lean loop (`full_tiles`), as
//! in the AVX2 tile: one moving base pointer per operand, bias and clamp bounds held across
//! tiles, the clamp always applied (identity with infinite bounds, NaN included), whole-vector
//! stores, no per-tile branch on a flag, the C rows prefetched when a tile starts. Depth 9 (a
//! 3x3 convolution over RGB, per kernel row) is a constant there, fully unrolled; other depths
//! run 8 steps per loop iteration (32 and 64 too: spelled out completely, LLVM hoisted all their
//! B loads to the top and spilled them), and in the general depth each tile prefetches (T1) its
//! share of the next B panel, one line per 8 steps. Static counts (`--emit asm`, no zmm spills,
//! no stack access in the depth loops): the general-depth loop is 142 instructions per 112 FMAs
//! (the general tile's: 139); llvm-mca 22 models it at 60.6 cycles on `skylake-avx512` (92.5%;
//! the general tile's 60.1, 93.2%) and at the FMA bound (112.0) on `icelake-server` and
//! `znver4`. Not measured on hardware yet: whether the lean loop (tiles back to back in one
//! function) keeps clear of the slowdown measured on Sapphire Rapids for an inlined loop over
//! tiles (see `one_tile`; the K = 512 layers measured there have 2 KC blocks and do not take it).
//!
//! Edge tiles use the same body instantiated for fewer rows (`M < 14`, const generic: rows `>= m`
//! of A and C are never touched); columns `>= n` of C are never read or written: C is loaded and
//! stored through a `__mmask16` lane mask (`_mm512_maskz_loadu_ps` / `_mm512_mask_storeu_ps`, which
//! do not fault on masked-off lanes). B and the bias are zero-padded to 16 columns, so they are
//! always read whole.

use core::arch::x86_64::*;

use super::RGB_SEGMENT;
use crate::gemm::ukernel::{Blocking, GemmKernel, GemmTile};
use crate::Isa;

/// Register tile rows.
const MR: usize = 14;
/// Register tile columns (one zmm vector).
const NR: usize = 16;

/// One step of depth `p` of the register tile, the step both loops below are made of: the B row
/// `p` after `b` (one vector), then for each row `i` of `acc` the A element at `elem(i, p)`,
/// broadcast (an embedded broadcast of the FMA's memory operand), and one FMA. (A macro, not a
/// function or closure, so the accumulators stay in registers.) The user guarantees, in its
/// `SAFETY` comment, that `b + p * NR` is readable for `NR` floats and `elem(i, p)` for every
/// row `i`.
macro_rules! depth_step {
    ($acc:ident, $b:expr, $p:expr, |$i:ident, $pp:ident| $elem:expr) => {{
        let p = $p;
        // SAFETY: B row `p` is readable for `NR` floats (the user's guarantee).
        let bv = unsafe { _mm512_loadu_ps($b.add(p * NR)) };
        for ($i, y) in $acc.iter_mut().enumerate() {
            let $pp = p;
            // SAFETY: `elem(i, p)` is readable (the user's guarantee).
            let av = unsafe { *$elem };
            *y = _mm512_fmadd_ps(bv, _mm512_set1_ps(av), *y);
        }
    }};
}

/// `gemm_f32_14x16_avx512`, the production GEMM micro-kernel on AMD AVX-512F CPUs (Zen 4; Intel
/// cores use `gemm_f32_8x32_avx512`, see `dispatch.rs`).
///
/// Blocking for Skylake-SP / Ice Lake-SP / Zen 4 (L1d 32-48 KiB, L2 1-2 MiB per core): a
/// `KC x 16` sliver of B is `KC * 64` bytes (16 KiB at KC = 256) and stays in L1 next to the
/// lines of the 14 A rows being broadcast (14 KiB); the `MC x KC` block of A (MC = 336: 336 KiB)
/// stays in L2 while the slivers stream past it. Not re-tuned for the lean loop, which only the
/// calls with K <= KC take: on Intel the 8 x 32 tile gained 12% on the whole network from
/// KC = 1024 (every MobileNet layer in one block, see `gemm_f32_8x32_avx512`); whether Zen 4
/// does too is unmeasured (no Zen 4 here).
pub static GEMM_F32_14X16_AVX512: GemmKernel = GemmKernel {
    name: "gemm_f32_14x16_avx512",
    isa: Isa::Avx512,
    mr: MR,
    nr: NR,
    blocking: Blocking {
        mc: 336,
        kc: 256,
        nc: 4096,
    },
    func: gemm_f32_14x16_avx512,
    row_panels: Some(super::row::row_panels_avx512::<1>),
};

/// `m` rows (any count) of one 16-column panel of `C = act(A * B + bias)` for one KC block of
/// depth `k`, in tiles of 14 rows.
///
/// In a call that covers a whole 16-column panel and is its GEMM's only KC block, the full
/// tiles run back to back in the lean loop `full_tiles`; otherwise each tile (and the last,
/// shorter one) is one out-of-line `one_tile` call.
///
/// # Safety
///
/// The [`GemmUkernelFn`](crate::gemm::ukernel::GemmUkernelFn) contract with `MR = 14`, `NR = 16`,
/// and the CPU supports AVX-512F, AVX2 and FMA3.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn gemm_f32_14x16_avx512(call: &GemmTile) {
    debug_assert!(call.m >= 1 && (1..=NR).contains(&call.n) && call.k >= 1);
    // SAFETY: the caller upholds the `GemmUkernelFn` contract for the call's rows; the lean loop
    // gets whole tiles of a call that covers a whole panel and is its GEMM's only KC block, with
    // `KS == 0` or `KS == call.k_seg` (`lean_full_tiles`).
    let start = unsafe { lean_full_tiles!(call, MR, NR, full_tiles, [32, 64]) };
    for r0 in (start..call.m).step_by(MR) {
        // SAFETY: the caller upholds the `GemmUkernelFn` contract for the call's rows, of which
        // this tile is rows `r0 .. r0 + t.m`.
        unsafe { one_tile(&call.rows(r0, MR.min(call.m - r0))) };
    }
}

/// `count` full 14 x 16 tiles (rows `0 .. 14 * count` of `t`) of a call that covers a whole
/// panel and is its GEMM's only KC block, with the segment depth `KS` a constant (or 0: read
/// from `t`).
///
/// The lean loop: A and C rows are addressed from one moving base pointer each (`a + i * lda`,
/// no arrays of row pointers), B from the call's `b`; the bias and the clamp bounds stay in
/// registers across tiles; the clamp is always applied (infinite bounds make it the identity,
/// NaN included) and the stores are whole vectors (`n == 16`), so a tile has no branch on a flag.
/// Depth steps are unrolled by 8, completely for a constant `KS`. In the general depth each
/// tile also prefetches its share of the next column panel of packed B into L2.
///
/// # Safety
///
/// The `GemmUkernelFn` contract for `t` with `t.m >= 14 * count`, `t.n == 16`,
/// `KS == 0 || t.k_seg == KS`, `t.first_k_block` and `t.last_k_block`; AVX-512F.
#[inline(never)]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn full_tiles<const KS: usize>(t: &GemmTile, count: usize) {
    let (lda, ldc) = (t.lda, t.ldc);
    let ks = if KS > 0 { KS } else { t.k_seg };
    let segments = t.k / ks;
    // SAFETY: `bias` holds NR = 16 floats (zero-padded).
    let bias = unsafe { _mm512_loadu_ps(t.bias) };
    let (vmin, vmax) = (_mm512_set1_ps(t.min), _mm512_set1_ps(t.max));
    // The next column panel of packed B (`GemmTile::next_b`; its bias row, then `k` rows of 16
    // floats: one 64-byte line each). Its `k + 1` lines are shared out among the tiles; each
    // tile prefetches one of its lines into L2 per 8 depth steps, so the next call finds its B
    // there. Once a tile's share is done it repeats its last line (an L2 hit; no branch in the
    // depth loop). Prefetches never fault.
    // Only in the general depth: at the constant depths (<= 64) a panel of B is at most 4 KiB.
    let next = t.next_b;
    let next_lines = t.k + 1;
    let share = next_lines.div_ceil(count);
    let (mut a, mut c) = (t.a, t.c);
    for j in 0..count {
        // Start fetching this tile of C (first and last column of each row: one or two lines),
        // so its stores do not wait on the misses: pointwise outputs are usually larger than L2.
        // Prefetches never fault.
        for i in 0..MR {
            let row = c.wrapping_add(i * ldc);
            _mm_prefetch::<_MM_HINT_T0>(row as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(NR - 1) as *const i8);
        }
        let mut next_line = j * share;
        let next_last = ((j + 1) * share).min(next_lines) - 1;
        let mut acc = [bias; MR];
        // `step!(sa, sb, p)`: depth `p < ks` of the segment whose A row 0 is at `sa` and whose
        // packed B rows start at `sb`: B row `s * ks + p < k` and A elements (row `14j + i < m`,
        // depth `s * ks + p < k`) at `sa + i * lda + p` (`sa == t.a + 14j * lda + s *
        // seg_stride`, `sb == t.b + s * ks * NR`), readable by the contract (`GemmTile::a`).
        // `set1` of a loaded float with a single use folds into the FMA as an embedded broadcast.
        macro_rules! step {
            ($sa:ident, $sb:ident, $p:expr) => {
                depth_step!(acc, $sb, $p, |i, p| $sa.add(i * lda + p))
            };
        }
        for s in 0..segments {
            let sa = a.wrapping_add(s * t.seg_stride);
            let sb = t.b.wrapping_add(s * ks * NR);
            // Depth steps `8c .. 8c + 8` of the segment (spelled out: LLVM leaves a loop of 8
            // steps of 14 FMAs unrolled by only 2).
            macro_rules! chunk {
                ($c:expr) => {
                    let c8 = $c * 8;
                    step!(sa, sb, c8);
                    step!(sa, sb, c8 + 1);
                    step!(sa, sb, c8 + 2);
                    step!(sa, sb, c8 + 3);
                    step!(sa, sb, c8 + 4);
                    step!(sa, sb, c8 + 5);
                    step!(sa, sb, c8 + 6);
                    step!(sa, sb, c8 + 7);
                };
            }
            match KS {
                // 9 steps: spelled out. (Depths 32 and 64 spelled out were scheduled with all
                // their B loads hoisted to the top and spilled; they keep the 8-step loop.)
                RGB_SEGMENT => {
                    chunk!(0);
                }
                _ => {
                    for c in 0..ks / 8 {
                        // One iteration of the general depth loop, for llvm-mca
                        // (scripts/mca-x86.sh).
                        #[cfg(feature = "mca-markers")]
                        if KS == 0 {
                            mca_marker!("BEGIN gemm_f32_14x16_avx512");
                        }
                        if KS == 0 {
                            let l = next.wrapping_add(next_line.min(next_last) * NR);
                            _mm_prefetch::<_MM_HINT_T1>(l as *const i8);
                            next_line += 1;
                        }
                        chunk!(c);
                        #[cfg(feature = "mca-markers")]
                        if KS == 0 {
                            mca_marker!("END gemm_f32_14x16_avx512");
                        }
                    }
                }
            }
            for p in ks / 8 * 8..ks {
                step!(sa, sb, p);
            }
        }
        for (i, &y) in acc.iter().enumerate() {
            // `y` second: a NaN stays NaN (see `tile`).
            let y = _mm512_min_ps(vmax, _mm512_max_ps(vmin, y));
            // SAFETY: row `14j + i < m` of C, columns `0 .. 16 == n`: writable by the contract.
            unsafe { _mm512_storeu_ps(c.add(i * ldc), y) };
        }
        a = a.wrapping_add(MR * lda);
        c = c.wrapping_add(MR * ldc);
    }
}

/// One tile of at most 14 rows, dispatched on its row count to an instance of the register tile
/// with exactly those rows. Kept out of line: measured on a Sapphire Rapids core, the loop over
/// tiles with the 14-row instance inlined into it ran the K = 512 layers 15% slower than calling
/// this per tile (the depth loop itself is the same 140 instructions either way).
///
/// # Safety
///
/// The `GemmUkernelFn` contract for `t` with `t.m <= 14`, and the CPU supports AVX-512F.
#[inline(never)]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn one_tile(t: &GemmTile) {
    // SAFETY: (every arm) the caller upholds the contract for this tile, and each instance reads
    // and writes only rows `< M == t.m` and (masked) columns `< t.n`.
    // `CH` independent accumulator sets (chains over k) keep >= 8 FMAs in flight when the tile
    // has fewer than 8 rows (4-cycle FMA latency on 2 ports).
    unsafe {
        match t.m {
            14 => tile::<14, 1>(t),
            13 => tile::<13, 1>(t),
            12 => tile::<12, 1>(t),
            11 => tile::<11, 1>(t),
            10 => tile::<10, 1>(t),
            9 => tile::<9, 1>(t),
            8 => tile::<8, 1>(t),
            7 => tile::<7, 2>(t),
            6 => tile::<6, 2>(t),
            5 => tile::<5, 2>(t),
            4 => tile::<4, 2>(t),
            3 => tile::<3, 4>(t),
            2 => tile::<2, 4>(t),
            _ => tile::<1, 4>(t),
        }
    }
}

/// The register tile with `M` rows (`1..=14`) of one 16-column vector, summing the depth in `CH`
/// (1, 2 or 4) interleaved chains of accumulators.
///
/// # Safety
///
/// The `GemmUkernelFn` contract, with `t.m == M` and `1 <= t.n <= 16`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile<const M: usize, const CH: usize>(t: &GemmTile) {
    let k = t.k;
    // Lanes of the columns `< n`.
    let mask = ((1u32 << t.n) - 1) as __mmask16;

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

    let mut acc = [_mm512_setzero_ps(); M];
    if t.first_k_block {
        // SAFETY: `bias` holds NR = 16 floats (zero-padded).
        let bias = unsafe { _mm512_loadu_ps(t.bias) };
        acc = [bias; M];
    } else {
        for (y, &ci) in acc.iter_mut().zip(c.iter()) {
            // SAFETY: row `i < m` of C is readable for columns `< n`; the mask enables exactly
            // the lanes of columns `< n`, and masked-off lanes are not accessed.
            *y = unsafe { _mm512_maskz_loadu_ps(mask, ci) };
        }
    }

    // The depth loop, segment by segment (one segment for a plain A), unrolled by 8; step `p`
    // goes to chain `p % CH`. `step!(acc, a, b, p)` reads depth `p < k_seg` of the segment rows
    // `a` (rows `< M`) and B row `p` after `b` (`NR` floats), both from `GemmTile::segment` and
    // in bounds as it documents.
    // `set1` of a loaded float with a single use folds into the FMA as an embedded broadcast.
    // (A macro rather than a closure over `&mut` chains, so every chain stays in registers.)
    macro_rules! step {
        ($acc:ident, $a:ident, $b:ident, $p:expr) => {
            // `b` is a segment's B from `GemmTile::segment`, readable for `k_seg * NR` floats,
            // and `a[i]` row `i < m` of that segment, readable for `k_seg` floats (its
            // contract); `p < k_seg`.
            depth_step!($acc, $b, $p, |i, p| $a[i].add(p))
        };
    }
    // Chain 0 is `acc` (it holds the starting values); the others start from zero.
    let zero = [_mm512_setzero_ps(); M];
    let (mut acc1, mut acc2, mut acc3) = (zero, zero, zero);
    let ks = t.k_seg;
    for s in 0..k / ks {
        // `s < k / k_seg` and `a` holds the starts of rows `< M == m`, so `sa` and `sb` are in
        // bounds as `GemmTile::segment` documents (the loads below rely on it).
        let (sa, sb) = t.segment(a, s, NR);
        let mut p = 0;
        while p + 8 <= ks {
            // Unrolled by 8: the few scalar address updates per iteration share ports with the
            // FMAs.
            match CH {
                1 => {
                    step!(acc, sa, sb, p);
                    step!(acc, sa, sb, p + 1);
                    step!(acc, sa, sb, p + 2);
                    step!(acc, sa, sb, p + 3);
                    step!(acc, sa, sb, p + 4);
                    step!(acc, sa, sb, p + 5);
                    step!(acc, sa, sb, p + 6);
                    step!(acc, sa, sb, p + 7);
                }
                2 => {
                    for q in (0..8).step_by(2) {
                        step!(acc, sa, sb, p + q);
                        step!(acc1, sa, sb, p + q + 1);
                    }
                }
                _ => {
                    for q in (0..8).step_by(4) {
                        step!(acc, sa, sb, p + q);
                        step!(acc1, sa, sb, p + q + 1);
                        step!(acc2, sa, sb, p + q + 2);
                        step!(acc3, sa, sb, p + q + 3);
                    }
                }
            }
            p += 8;
        }
        while p < ks {
            step!(acc, sa, sb, p);
            p += 1;
        }
    }
    if CH > 1 {
        for i in 0..M {
            let (s1, s2) = (
                _mm512_add_ps(acc[i], acc1[i]),
                _mm512_add_ps(acc2[i], acc3[i]),
            );
            acc[i] = _mm512_add_ps(s1, s2);
        }
    }

    if t.last_k_block {
        // y = if y < min {min} else {y}; y = if y > max {max} else {y}: `max_ps`/`min_ps` return
        // their second operand when either is NaN, so a NaN `y` (second) stays NaN.
        // An infinite bound is the identity (NaN included) and is skipped: ReLU costs one op.
        let (vmin, vmax) = (_mm512_set1_ps(t.min), _mm512_set1_ps(t.max));
        if t.min != f32::NEG_INFINITY {
            for y in acc.iter_mut() {
                *y = _mm512_max_ps(vmin, *y);
            }
        }
        if t.max != f32::INFINITY {
            for y in acc.iter_mut() {
                *y = _mm512_min_ps(vmax, *y);
            }
        }
    }

    for (y, &ci) in acc.iter().zip(c.iter()) {
        // SAFETY: row `i < m` of C is writable for columns `< n`; the mask enables exactly the
        // lanes of columns `< n` (all 16 for a full tile), and masked-off lanes are not written.
        unsafe { _mm512_mask_storeu_ps(ci, mask, *y) };
    }
}
