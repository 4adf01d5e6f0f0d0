//! `gemm_f32_8x32_avx512`: an AVX-512F GEMM micro-kernel with an 8 x 32 register tile of C, the
//! production tile on Intel CPUs (see `dispatch.rs`).
//!
//! Register plan (32 zmm): 16 accumulators (8 rows x 2 vectors of 16 columns), 2 vectors of the
//! packed B row, 1 broadcast of A. Per step of depth: 2 loads of B, 8 broadcasts of A
//! (`vbroadcastss zmm, dword ptr [a]`: a load-port uop on Intel, no shuffle on port 5, which the
//! second FMA unit shares) and 16 FMAs: 10 loads per 16 FMAs, against 15 per 14 for the 14 x 16
//! tile, and 16 independent accumulators cover the 8 FMAs two 4-cycle FMA units keep in flight.
//! The shape of BLIS' `skx` sgemm kernel (32 x 12, column-major C) and of oneDNN's AVX-512
//! tiles.
//!
//! Loop structure. Full 8-row tiles of a call that covers a whole 32-column panel and is its
//! GEMM's only KC block (K <= KC = 1024: every MobileNet v1 layer) run in a lean loop
//! (`full_tiles`), as the AVX2 tile does: one moving base pointer per operand (A and C rows at
//! `base + i * ld`, no arrays of row pointers), the bias and clamp bounds held in registers
//! across tiles, the clamp always applied (the identity with infinite bounds, NaN
//! included), whole-vector stores, no per-tile branch on a flag. Depth 9 (a 3x3 convolution over
//! RGB, per kernel row) is a compile-time constant there and fully unrolled; every other depth
//! runs 8 steps per iteration (then 1 per iteration for `k_seg % 8`), and each tile
//! prefetches (T1, into L2) its share of the next column panel of packed B, two 2-line B rows per
//! 8 steps, so the next call does not stream its B from L3/DRAM. (One row per 8 steps covered
//! the share only when a call has 8 or more full tiles; the 7x7 layers have 6, so a quarter of
//! each next panel arrived on demand. Two rows: on a Cascade Lake core inside MobileNet, three
//! runs alternating, conv_pw_12 and conv_pw_13 6-9% faster against conv_pw_7, about 0.1 ms of
//! the 11.4-12.1 ms network.) Each tile also prefetches its C
//! rows when it starts (3 lines per 128-byte row: an unaligned row touches 3). Everything else
//! (the `m % 8` rows, `n < 32`, several KC blocks) goes through the general tile (`tile`: arrays
//! of row pointers, flags tested per tile, masked loads and stores), full tiles out of line.
//!
//! Static counts of the release build (`--emit asm`; no zmm spills anywhere in `full_tiles`, no
//! stack access in any of its depth loops; the C row pointers of a tile live on the stack between
//! its prefetches and its stores): the general-depth loop is 231 instructions per 8 steps (128
//! FMAs, 64 broadcasts, 16 B loads, 4 prefetches, 19 scalar), 1.80 instructions and 0.66 loads per
//! FMA; the general tile's loop was 117 per 4 steps (1.83 per FMA).
//!
//! Depths 32 and 64 are fully unrolled constants too, as in the AVX2 tile, except in the calls of
//! the 12 x 32 kernel (`gemm_f32_8x32_looped_avx512`), which runs on Cascade Lake. There:
//! a step is 26 instructions of 6-10 bytes, so the K = 64 tile is about 12 KiB of straight-line
//! code (the K = 32 one 6 KiB), more than Skylake-derived cores' decoded-instruction cache (1.5 K
//! uops) holds, and the legacy decoders (16 bytes per cycle) cannot feed 16 FMAs per 8 cycles.
//! Measured on a Cascade Lake core (two kernels in one process, calls alternating, 400 trials,
//! median of the per-trial time ratios; data in L1/L2 as in MobileNet's row pipeline) while the
//! VM's other core compiled and ran tests: the 8-step loop took 0.85-0.87x the time of the
//! unrolled K = 64 tile (2x112x64 -> 64, 2x56x64 -> 128, 56x56x64 -> 128), 0.93x at K = 32
//! (2x112x32 -> 64), level at 112x112x32 -> 64 (memory-bound there); MobileNet v1 1.0-224 0.98x.
//! In this VM's slow phases (every kernel at about 60% of its usual speed) the two ran closer:
//! 0.98-0.99x at K = 64, 1.02x at K = 32, the network 0.99x.
//! On an Emerald Rapids core (Golden Cove: a 4K-uop decoded cache) the unrolled tiles are faster
//! (session 22, the VM, old and new kernels alternating in one process, 50 pairs, median ratio):
//! pw01 0.952x the time, pw02 0.965, 96 x 32 -> 64 in L1 0.939, 96 x 64 -> 128 0.950, pw03
//! (K = 128, unchanged) 0.994.
//!
//! Modelled (`scripts/mca-x86.sh`, llvm-mca 22): the general-depth loop at 73.5 cycles per
//! 128 FMAs on `skylake-avx512` (87.0% of the model's FMA peak; the general tile's loop
//! 37.8 per 64, 84.7%) and 128.0 on `icelake-server` (100%, both; that model issues one 512-bit
//! FMA per cycle). The Skylake model gives every zmm load and broadcast a second uop on ports
//! 0/1/5, which is what keeps it under 100% there. Measured on a Cascade Lake core (a Skylake
//! server derivative), pointwise layers alone over the public API (best of 200 trials, % of the
//! AVX-512 FMA peak of 152.5 GFLOP/s): 8x16x128 -> 128 (in L1/L2) 92, 14x14x512 -> 512 86,
//! 28x28x256 -> 256 86, 7x7x1024 -> 1024 79, 112x112x32 -> 64 64: close to the model. But the
//! model's reason is not the core's: a bare loop of this tile's steps (8 broadcasts from memory,
//! 2 B loads, 16 FMAs per step) runs at 99.9% of the peak there with A and B in L1, and at
//! 64-72% with a 32-128 KiB B sliver streaming from L2; this kernel gets 79-86% from L2. Tried
//! there and dropped (probe over the public API, builds alternating, best of 150 trials): the
//! lean loop over several KC blocks (C reloaded between them) with KC = 128 / 256 / 512, so the
//! sliver fits L1 — no shape better than KC = 1024 beyond noise (7x7x1024: 77-79 -> 66-73), and
//! the standard convolutions (K up to 9216) 0-6% slower; software prefetch (T0) of the sliver 16
//! or 32 rows ahead — 84-86 -> 74-78 on 14x14x512 and 28x28x256 (the loads ports pay for it).
//!
//! Measured on a Sapphire Rapids core before the lean loop (`report`-style single-layer timing,
//! median % of the measured AVX-512 FMA peak, this kernel vs `gemm_f32_14x16_avx512`): 14x14x512
//! -> 512 91 vs 72, 28x28x256 -> 256 91 vs 73, 56x56x128 -> 128 84 vs 58, 7x7x1024 -> 1024 80 vs
//! 66, 112x112x32 -> 64 62 vs 34. Twelve rows (24 accumulators) written with intrinsics spilled
//! accumulators to the stack (`avx512_12x32.rs` runs them in inline assembly, for deep calls on
//! cores with a 32 KiB L1d); ten rows ran the K = 1024 layer at 58% (ten A rows 4 KiB apart share
//! one L1 set; `Shape::padded_strides` now separates them). llvm-mca models this loop on Zen 4
//! at about two thirds of its FMA rate (there a `vbroadcastss zmm` from memory takes an FP
//! pipe), where it models the 14 x 16 tile with embedded broadcasts at ~100%: so AMD CPUs keep
//! the 14 x 16 tile.
//!
//! Edge tiles use the general body instantiated for fewer rows (`M < 8`); columns `>= n` of C are
//! never read or written (two `__mmask16` lane masks). B and the bias are zero-padded to 32
//! columns, so they are always read whole.

use core::arch::x86_64::*;

use crate::gemm::ukernel::{Blocking, GemmKernel, GemmTile};
use crate::Isa;

/// Register tile rows.
const MR: usize = 8;
/// Register tile columns (two zmm vectors).
const NR: usize = 32;

/// One step of depth `p` of the register tile, the step both loops below are made of: the two
/// vectors of the B row `p` after `b`, then for each row `i` of `lo` / `hi` the A element at
/// `elem(i, p)` broadcast and two FMAs. The broadcast is from memory (`vbroadcastss zmm, m32`: a
/// load-port uop), not from a register (a port-5 shuffle, the port the second FMA unit shares).
/// (A macro, not a function or closure, so the accumulators stay in registers.) The user
/// guarantees, in its `SAFETY` comment, that `b + p * NR` is readable for `NR` floats and
/// `elem(i, p)` for every row `i`.
macro_rules! depth_step {
    ($lo:ident, $hi:ident, $b:expr, $p:expr, |$i:ident, $pp:ident| $elem:expr) => {{
        let p = $p;
        // SAFETY: B row `p` is readable for `NR` floats (the user's guarantee).
        let (b0, b1) = unsafe {
            (
                _mm512_loadu_ps($b.add(p * NR)),
                _mm512_loadu_ps($b.add(p * NR + 16)),
            )
        };
        for $i in 0..$lo.len() {
            let $pp = p;
            // SAFETY: `elem(i, p)` is readable (the user's guarantee).
            let av = unsafe { _mm512_broadcastss_ps(_mm_load_ss($elem)) };
            $lo[$i] = _mm512_fmadd_ps(b0, av, $lo[$i]);
            $hi[$i] = _mm512_fmadd_ps(b1, av, $hi[$i]);
        }
    }};
}

/// Prefetches (T0) the lines of `rows` rows of a tile of C (32 floats each, `ldc` floats apart;
/// an unaligned 128-byte row touches 3 lines), so the tile's stores do not wait on the misses:
/// pointwise outputs are usually larger than L2. Prefetches never fault.
#[inline(always)]
pub(super) fn prefetch_c_rows(c: *mut f32, ldc: usize, rows: usize) {
    for i in 0..rows {
        let row = c.wrapping_add(i * ldc);
        // SAFETY: SSE is part of x86_64's baseline; a prefetch never faults.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(row as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(16) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(NR - 1) as *const i8);
        }
    }
}

/// One tile's share of the next column panel of packed B (`GemmTile::next_b`: the current one
/// after the last), which it prefetches (T1, into L2) while it runs, so the next call finds its
/// B there instead of streaming it from L3 or DRAM. The panel (its bias row, then `k` rows of 32
/// floats: two 64-byte lines each) has `k + 1` rows, shared out among the call's `count` tiles;
/// a tile whose share is done repeats its last row (an L2 hit; no branch in the depth loop).
pub(super) struct NextPanel {
    next: *const f32,
    row: usize,
    last: usize,
}

impl NextPanel {
    /// Tile `j`'s share of the call `t`'s next panel, among `count` tiles.
    #[inline(always)]
    pub(super) fn share(t: &GemmTile, count: usize, j: usize) -> NextPanel {
        let rows = t.k + 1;
        let share = rows.div_ceil(count);
        NextPanel {
            next: t.next_b,
            row: j * share,
            last: ((j + 1) * share).min(rows) - 1,
        }
    }

    /// Prefetches the next two rows of the share (both lines of each): per 8 depth steps, a
    /// share of `k / 4` rows, enough from 4 full tiles up.
    #[inline(always)]
    pub(super) fn two_rows(&mut self) {
        for _ in 0..2 {
            let r = self.next.wrapping_add(self.row.min(self.last) * NR);
            // SAFETY: SSE is part of x86_64's baseline; a prefetch never faults.
            unsafe {
                _mm_prefetch::<_MM_HINT_T1>(r as *const i8);
                _mm_prefetch::<_MM_HINT_T1>(r.wrapping_add(16) as *const i8);
            }
            self.row += 1;
        }
    }
}

/// Clamps the rows of a full tile (`lo[i]`, `hi[i]`: columns 0-15 and 16-31 of row `i`) to
/// `[vmin, vmax]` and stores them at `c + i * ldc`. `y` is the second operand of max/min, so a
/// NaN stays NaN (the contract's clamp; see `tile`).
///
/// # Safety
///
/// Rows `0 .. R` of C, 32 floats each at `c + i * ldc`, are writable; AVX-512F is available (the
/// caller is an AVX-512F function, into which this inlines).
#[inline(always)]
pub(super) unsafe fn store_clamped<const R: usize>(
    c: *mut f32,
    ldc: usize,
    lo: &[__m512; R],
    hi: &[__m512; R],
    vmin: __m512,
    vmax: __m512,
) {
    for i in 0..R {
        // SAFETY: AVX-512F (the caller's guarantee); row `i < R` of C is writable for 32 floats.
        unsafe {
            let y0 = _mm512_min_ps(vmax, _mm512_max_ps(vmin, lo[i]));
            let y1 = _mm512_min_ps(vmax, _mm512_max_ps(vmin, hi[i]));
            _mm512_storeu_ps(c.add(i * ldc), y0);
            _mm512_storeu_ps(c.add(i * ldc + 16), y1);
        }
    }
}

/// `gemm_f32_8x32_avx512`.
///
/// Blocking for Intel server cores (L1d 48 KiB, L2 2 MiB on Ice Lake-SP / Sapphire Rapids /
/// Emerald Rapids): KC = 1024 covers every MobileNet depth in one block, so every layer takes the
/// lean loop and C is written once; the `KC x 32` sliver of B (up to 128 KiB) streams from L2,
/// and the `MC x KC` block of A (MC = 160: up to 640 KiB) stays in L2 beside it. Measured on one
/// Emerald Rapids core (the device machine; `mobilenet` and `report` runs alternating builds, %
/// of the AVX-512 FMA peak of the same run): with the lean loop, KC = 1024 against 256 took
/// pw07-pw11 inside the whole network from 81 to 93% and MobileNet v1 1.0-224 from 8.9-9.5 to
/// 7.7-7.8 ms median; against the build before the lean loop (KC = 256, MC = 320), layers alone
/// (median / best): pw01 70-73 / 76 -> 83 / 90-91, pw12 86 / 89-91 -> 88-90 / 92-93, pw13 81 /
/// 83-86 -> 88-89 / 92-93, pw04-pw11 level (92-96 median). MC = 160 and 320 ran within noise of
/// each other (network 7.75-7.93 against 7.86-8.03 ms). With the old general tile, KC = 256 had
/// beaten 128, 192 and 384 on Sapphire Rapids.
pub static GEMM_F32_8X32_AVX512: GemmKernel = GemmKernel {
    name: "gemm_f32_8x32_avx512",
    isa: Isa::Avx512,
    mr: MR,
    nr: NR,
    blocking: Blocking {
        mc: 160,
        kc: 1024,
        nc: 4096,
    },
    func: gemm_f32_8x32_avx512,
    row_panels: Some(super::row::row_panels_avx512::<2>),
};

/// `m` rows (any count) of one 32-column panel of `C = act(A * B + bias)` for one KC block of
/// depth `k`, in tiles of 8 rows.
///
/// In a call that covers a whole 32-column panel and is its GEMM's only KC block (K <= 1024:
/// every MobileNet v1 layer), the full tiles run back to back in the lean loop `full_tiles`;
/// otherwise each full tile is one out-of-line instance of `tile`.
/// The rest (`m % 8` rows) is dispatched on its row count.
///
/// # Safety
///
/// The [`GemmUkernelFn`](crate::gemm::ukernel::GemmUkernelFn) contract with `MR = 8`, `NR = 32`,
/// and the CPU supports AVX-512F, AVX2 and FMA3.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn gemm_f32_8x32_avx512(call: &GemmTile) {
    // SAFETY: forwarded (the same contract).
    unsafe { panel::<true>(call) }
}

/// [`gemm_f32_8x32_avx512`] with depths 32 and 64 looped instead of unrolled, for the 12 x 32
/// kernel's calls (cores with the small decoded-instruction cache; see the module doc).
///
/// # Safety
///
/// As [`gemm_f32_8x32_avx512`].
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn gemm_f32_8x32_looped_avx512(call: &GemmTile) {
    // SAFETY: forwarded (the same contract).
    unsafe { panel::<false>(call) }
}

/// The body of both entry points: `UNROLL` unrolls the lean loop at depths 32 and 64.
///
/// # Safety
///
/// As [`gemm_f32_8x32_avx512`].
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn panel<const UNROLL: bool>(call: &GemmTile) {
    debug_assert!(call.m >= 1 && (1..=NR).contains(&call.n) && call.k >= 1);
    // SAFETY: the caller upholds the `GemmUkernelFn` contract for the call's rows; the lean loop
    // gets whole tiles of a call that covers a whole panel and is its GEMM's only KC block, with
    // `KS == 0` or `KS == call.k_seg` (`lean_full_tiles`).
    let start = unsafe {
        if UNROLL {
            lean_full_tiles!(call, MR, NR, full_tiles, [32, 64])
        } else {
            lean_full_tiles!(call, MR, NR, full_tiles, [])
        }
    };
    for r0 in (start..call.m).step_by(MR) {
        let t = call.rows(r0, MR.min(call.m - r0));
        // SAFETY: the caller upholds the `GemmUkernelFn` contract for the call's rows, of which
        // this tile is rows `r0 .. r0 + t.m`, and each instance touches only rows `< t.m`.
        unsafe {
            match t.m {
                8 => full_tile(&t),
                7 => tile::<7, 1>(&t),
                6 => tile::<6, 1>(&t),
                5 => tile::<5, 1>(&t),
                4 => tile::<4, 1>(&t),
                // Fewer than 4 rows sum the depth in 2 chains: at least 8 independent FMAs.
                3 => tile::<3, 2>(&t),
                2 => tile::<2, 2>(&t),
                _ => tile::<1, 2>(&t),
            }
        }
    }
}

/// `count` full 8 x 32 tiles (rows `0 .. 8 * count` of `t`) of a call that covers a whole panel
/// and is its GEMM's only KC block, with the segment depth `KS` a constant (or 0: read from `t`).
///
/// The lean loop: A and C rows are addressed from one moving base pointer each (`a + i * lda`,
/// no arrays of row pointers), B from the call's `b`; the bias and the clamp bounds stay in
/// registers across tiles; the clamp is always applied (infinite bounds make it the identity,
/// NaN included) and the stores are whole vectors (`n == 32`), so a tile has no branch on a flag.
/// Depth steps are unrolled by 8, completely for a constant `KS`. In the general depth each
/// tile also prefetches its share of the next column panel of packed B into L2.
///
/// # Safety
///
/// The `GemmUkernelFn` contract for `t` with `t.m >= 8 * count`, `t.n == 32`,
/// `KS == 0 || t.k_seg == KS`, `t.first_k_block` and `t.last_k_block`; AVX-512F.
#[inline(never)]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn full_tiles<const KS: usize>(t: &GemmTile, count: usize) {
    let (lda, ldc) = (t.lda, t.ldc);
    let ks = if KS > 0 { KS } else { t.k_seg };
    let segments = t.k / ks;
    // SAFETY: `bias` holds NR = 32 floats (zero-padded).
    let (b0, b1) = unsafe { (_mm512_loadu_ps(t.bias), _mm512_loadu_ps(t.bias.add(16))) };
    let (vmin, vmax) = (_mm512_set1_ps(t.min), _mm512_set1_ps(t.max));
    let (mut a, mut c) = (t.a, t.c);
    for j in 0..count {
        prefetch_c_rows(c, ldc, MR);
        // The next panel of B (only in the general depth: at the constant depth 9, the stem, a
        // panel of B is 3.5 KiB).
        let mut next = NextPanel::share(t, count, j);
        // Two arrays (not one `[[__m512; 2]; 8]`, which is copied with memcpy and kept in memory).
        let mut lo = [b0; MR];
        let mut hi = [b1; MR];
        // `step!(sa, sb, p)`: depth `p < ks` of the segment whose A row 0 is at `sa` and whose
        // packed B rows start at `sb`: B row `s * ks + p < k` (`sb == t.b + s * ks * NR`,
        // `s < k / ks`, `p < ks`; `k * NR` floats are readable) and A elements (row `8j + i < m`,
        // depth `s * ks + p < k`) of the contract (`GemmTile::a`): `sa + i * lda + p` with
        // `sa == t.a + 8j * lda + s * seg_stride`.
        macro_rules! step {
            ($sa:ident, $sb:ident, $p:expr) => {
                depth_step!(lo, hi, $sb, $p, |i, p| $sa.add(i * lda + p))
            };
        }
        for s in 0..segments {
            let sa = a.wrapping_add(s * t.seg_stride);
            let sb = t.b.wrapping_add(s * ks * NR);
            // Depth steps `8c .. 8c + 8` of the segment.
            macro_rules! chunk {
                ($c:expr) => {
                    for q in 0..8 {
                        step!(sa, sb, $c * 8 + q);
                    }
                };
            }
            for c in 0..ks / 8 {
                // One iteration of the general depth loop, for llvm-mca
                // (scripts/mca-x86.sh).
                #[cfg(feature = "mca-markers")]
                if KS == 0 {
                    mca_marker!("BEGIN gemm_f32_8x32_avx512");
                }
                if KS == 0 {
                    next.two_rows();
                }
                chunk!(c);
                #[cfg(feature = "mca-markers")]
                if KS == 0 {
                    mca_marker!("END gemm_f32_8x32_avx512");
                }
            }
            for p in ks / 8 * 8..ks {
                step!(sa, sb, p);
            }
        }
        // SAFETY: rows `8j .. 8j + 8 <= m` of C, columns `0 .. 32 == n`: writable by the
        // contract; AVX-512F (this function's target features).
        unsafe { store_clamped(c, ldc, &lo, &hi, vmin, vmax) };
        a = a.wrapping_add(MR * lda);
        c = c.wrapping_add(MR * ldc);
    }
}

/// A full tile of 8 rows, out of line (as for the 14 x 16 tile, whose inlined loop measured
/// slower on Sapphire Rapids).
///
/// # Safety
///
/// The `GemmUkernelFn` contract for `t` with `t.m == 8`; AVX-512F.
#[inline(never)]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn full_tile(t: &GemmTile) {
    // SAFETY: forwarded.
    unsafe { tile::<MR, 1>(t) }
}

/// The register tile with `M` rows (`1..=8`) of two 16-column vectors, summing the depth in `CH`
/// (1 or 2) interleaved chains of accumulators.
///
/// # Safety
///
/// The `GemmUkernelFn` contract, with `t.m == M` and `1 <= t.n <= 32`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile<const M: usize, const CH: usize>(t: &GemmTile) {
    let k = t.k;
    // Lanes of the columns `< n` in each of the two vectors.
    // (Plain loops and no closures here: a closure does not inherit `target_feature`, and an
    // out-of-line one would pull the accumulators into memory.)
    let mask = [
        ((1u32 << t.n.min(16)) - 1) as __mmask16,
        ((1u32 << t.n.saturating_sub(16)) - 1) as __mmask16,
    ];

    // Row pointers of A and C (`wrapping_add`: rows `< M == t.m` are inside the buffers by the
    // contract, and only those are dereferenced).
    let mut a = [t.a; M];
    let mut c = [t.c; M];
    for i in 1..M {
        a[i] = t.a.wrapping_add(i * t.lda);
        c[i] = t.c.wrapping_add(i * t.ldc);
    }

    // The two column vectors' accumulators in two arrays: one `[[__m512; 2]; M]` is initialised
    // and copied with memset/memcpy calls, which keeps it in memory.
    let mut lo = [_mm512_setzero_ps(); M];
    let mut hi = [_mm512_setzero_ps(); M];
    if t.first_k_block {
        // SAFETY: `bias` holds NR = 32 floats (zero-padded).
        let (b0, b1) = unsafe { (_mm512_loadu_ps(t.bias), _mm512_loadu_ps(t.bias.add(16))) };
        for i in 0..M {
            lo[i] = b0;
            hi[i] = b1;
        }
    } else {
        for i in 0..M {
            // SAFETY: row `i < m` of C is readable for columns `< n`; the masks enable exactly
            // the lanes of columns `< n`, and masked-off lanes are not accessed.
            unsafe {
                lo[i] = _mm512_maskz_loadu_ps(mask[0], c[i]);
                hi[i] = _mm512_maskz_loadu_ps(mask[1], c[i].wrapping_add(16));
            }
        }
    }

    // `step!(lo, hi, a, b, p)`: depth `p < k_seg` of the segment rows `a` (rows `< M`) and B row
    // `p` after `b` (`NR` floats), both in bounds by the contract.
    macro_rules! step {
        ($lo:ident, $hi:ident, $a:ident, $b:ident, $p:expr) => {
            // `b` is row `p < k_seg` of this segment's packed B (`NR` floats) and `a[i]` row
            // `i < M == m` of the segment, readable for `k_seg` floats (`GemmTile::segment`).
            depth_step!($lo, $hi, $b, $p, |i, p| $a[i].add(p))
        };
    }
    let mut lo1 = [_mm512_setzero_ps(); M];
    let mut hi1 = [_mm512_setzero_ps(); M];
    let ks = t.k_seg;
    for s in 0..k / ks {
        // Segment `s` of the depth: `sa[i] + p` is A element `(i, s * k_seg + p)` and `sb + p * NR`
        // is row `s * k_seg + p` of packed B, both readable for `p < k_seg`
        // ([`GemmTile::segment`]: `a[i] == t.a + i * lda`, `M == t.m`, `s < k / k_seg`).
        let (sa, sb) = t.segment(a, s, NR);
        let mut p = 0;
        while p + 4 <= ks {
            if CH == 1 {
                step!(lo, hi, sa, sb, p);
                step!(lo, hi, sa, sb, p + 1);
                step!(lo, hi, sa, sb, p + 2);
                step!(lo, hi, sa, sb, p + 3);
            } else {
                step!(lo, hi, sa, sb, p);
                step!(lo1, hi1, sa, sb, p + 1);
                step!(lo, hi, sa, sb, p + 2);
                step!(lo1, hi1, sa, sb, p + 3);
            }
            p += 4;
        }
        while p < ks {
            step!(lo, hi, sa, sb, p);
            p += 1;
        }
    }
    if CH > 1 {
        for i in 0..M {
            lo[i] = _mm512_add_ps(lo[i], lo1[i]);
            hi[i] = _mm512_add_ps(hi[i], hi1[i]);
        }
    }

    if t.last_k_block {
        // y = if y < min {min} else {y}; y = if y > max {max} else {y}: `max_ps`/`min_ps` return
        // their second operand when either is NaN, so a NaN `y` (second) stays NaN. An infinite
        // bound is the identity (NaN included) and is skipped.
        let (vmin, vmax) = (_mm512_set1_ps(t.min), _mm512_set1_ps(t.max));
        if t.min != f32::NEG_INFINITY {
            for i in 0..M {
                lo[i] = _mm512_max_ps(vmin, lo[i]);
                hi[i] = _mm512_max_ps(vmin, hi[i]);
            }
        }
        if t.max != f32::INFINITY {
            for i in 0..M {
                lo[i] = _mm512_min_ps(vmax, lo[i]);
                hi[i] = _mm512_min_ps(vmax, hi[i]);
            }
        }
    }

    for i in 0..M {
        // SAFETY: row `i < m` of C is writable for columns `< n`; the masks enable exactly the
        // lanes of columns `< n` in each vector, and masked-off lanes are not written.
        unsafe {
            _mm512_mask_storeu_ps(c[i], mask[0], lo[i]);
            _mm512_mask_storeu_ps(c[i].wrapping_add(16), mask[1], hi[i]);
        }
    }
}
