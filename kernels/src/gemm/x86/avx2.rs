//! `gemm_f32_6x16_avx2`: the AVX2 + FMA3 GEMM micro-kernel, a 6 x 16 register tile of C.
//!
//! Register plan (16 ymm): 12 accumulators (6 rows x 2 vectors of 8 columns), 2 vectors of the
//! packed B row, 1-2 broadcasts of A. Per step of depth: 2 loads of B, 6 broadcast loads of A
//! (`vbroadcastss` straight from the A row, used in place at stride `lda`), 12 FMAs: Zen3's two FMA
//! pipes need 6 cycles, the 8 loads fit its 2-3 loads per cycle, and 12 independent accumulators
//! cover the 4-cycle FMA latency (8 needed).
//!
//! Edge tiles use the same body instantiated for fewer rows (`M < 6`, const generic: rows `>= m`
//! of A and C are never touched) and one vector of columns when `n <= 8`; columns `>= n` of C are
//! never read or written (`vmaskmovps`). B and the bias are zero-padded to 16 columns, so they
//! are always read whole. Tiles with fewer than 8 accumulators (m <= 3, or n <= 8) split the depth
//! over 2 or 4 chains of accumulators so they are not bound by the FMA latency.
//!
//! The C tile is prefetched when the tile starts, so its stores (NHWC outputs are usually far
//! bigger than L2) do not wait on the cache misses. Measured on MobileNet v1 shapes this was worth
//! 5-15% on the large-M layers; prefetching B ahead in the depth loop measured no clear gain.
//!
//! Full tiles of a whole 16-column panel in a call that is its GEMM's only KC block (every
//! MobileNet layer) run in a lean loop (`full_tiles`): one moving base pointer per operand, bias
//! and bounds held across tiles, no per-tile branches on flags. At shallow depths the per-tile
//! set-up is what separates the kernel from peak: the general tile spent about 36 cycles per tile
//! on it (with its arrays of row pointers spilled), i.e. 16% at K = 32. Depths 9 (a 3x3
//! convolution over RGB, per kernel row) and 32 are also compile-time constants there, fully
//! unrolled. Measured on Zen 3 (probe, best of run, % of peak), with K = 64 also a constant then:
//! K = 32 in L1 83-87 -> 92, pw01 (112x112, 32 -> 64) 86 -> 93, K = 64 90-94 -> 93-96; the
//! stem, 8 output rows in L2, 18.8 -> 17.1 us. With the depth steps in assembly (below), K = 64
//! unrolled ran 5% slower than looped on a Cascade Lake core (pw02, 84-85 -> 77-79% of peak: 8
//! blocks of 165 instructions per tile), K = 32 3-4% faster (pw01 76-77 -> 79-80); on an
//! Emerald Rapids core K = 64 unrolled is 4-6% faster (see [`GEMM_F32_6X16U32_AVX2`]), so the
//! production kernel unrolls 32 and 64, and Intel cores with an 8-way L1d get the variant that
//! unrolls only 32. Measured there too and not kept (old and new kernels in one process,
//! alternating, 50-60 pairs): K = 128 unrolled as well, pw03 / pw04 0.97-0.98x the time, but a
//! tile loop of ~2600 instructions (16 KiB), which Zen 3's 4K-op cache may not hold beside the
//! rest (its legacy decoder fetches 16 bytes a cycle: too few for this loop); without the next
//! panel's prefetches at K = 128 instead, level; the general loop at 16 steps per iteration (one
//! `asm!` block, half the loop overhead), level to 1.05x on pw03-pw13.
//!
//! The lean loop's depth steps are inline assembly, 8 per `asm!` block (`eight_steps`): the
//! same FMAs in the same order as the intrinsics (the same bits), with each A row addressed as
//! one of two base registers plus the row stride scaled (`a0`, `a0 + lda`, `a0 + 2 lda`, then
//! from `a3`). LLVM's code for the same steps (a chain of `lea`s for the row addresses, index
//! registers in every broadcast) modelled at the FMA bound in llvm-mca on znver3 and skylake
//! alike, but on a Cascade Lake core it ran at 82-85% of the FMA peak with A and B in L1 where
//! the assembly runs at 90-97% (kernel alone, 24-96 rows, K = 64-512). Whole layers there
//! (`report avx2/mbv1_a100_r224_`, builds alternating, three runs, median % of peak): pw03-pw11
//! 80-85 -> 89-93, pw12/pw13 76-80 -> 87-89, pw02 82 -> 83-84; the stem (RGB, not this loop)
//! level. Not measured on Zen 3 (no such machine since this change). A segment of 9 (RGB) is
//! one block of nine steps (`nine_steps`): with its ninth step LLVM's, between blocks, the stem
//! took 2-4% longer (Cascade Lake, the two alternating in one process: medians 0.96-0.98x);
//! level on an Emerald Rapids VM (the report's stem row, builds alternating: best samples
//! 61.5-77.5 GFLOP/s before, 63.2-76.8 after).
//!
//! The full tiles of a GEMM deeper than KC (a standard 3x3 convolution over 128+ channels, the
//! Conv MobileNet baseline) take the lean loop too, block by block (`lean_tiles` with the block
//! flags read from the call; the general tile did them before): Cascade Lake, the same kind of
//! runs, std03-std05 (K = 1152-2304) 77-80 -> 83-89% of peak, std06-std11 66-69 -> 70-72; the
//! single-block layers (std01, std02, the pointwise ones) level.
//!
//! The general tile's depth loop (unrolled by 4, 93 instructions, no spills) runs at 24.0 cycles
//! per 48 FMAs in `llvm-mca -mcpu=znver3`: the FMA bound.
//!
//! KC = 1024 puts every MobileNet layer in the lean loop, though from K = 512 up a 16-column B
//! sliver (32-64 KiB) no longer fits L1 and streams from L2 for every tile. KC = 256 keeps it in
//! L1 and was tried for the medians on this shared machine, where L2 bandwidth wanders: 14x14,
//! 512 -> 512 (probe, builds alternating) median 87-91 -> 79-83% of peak, best 96 -> 94-95.
//! A software prefetch of the next B panel in the one-row tile (the classifier, batch 1, whose
//! 4 MiB of weights come from DRAM inside the network) measured slower: 0.26-0.29 -> 0.29-0.33 ms.
//! Four panels read at once did pay (`row_panels_avx2` in `row.rs`, the kernel's one-row path:
//! four sequential streams for the prefetchers instead of one).
//! Prefetching the classifier's weights instead during the last pointwise layer (pw13: one line
//! of them per 8 depth steps beside the next panel's, in this lean loop, through a `GemmTile`
//! side stream) did speed the classifier up inside the network, but pw13 paid for it (Emerald
//! Rapids VM, NetRunners with and without alternating in one process, 12-30 rounds of 20
//! inferences, median per-layer times): all 4 MiB over all of pw13, classifier 388 -> 277 us
//! and pw13 +2.9%, whole inference 1.003x by per-round medians; the first 1.5 MB over pw13's
//! second half (two runs), classifier 0.77-0.81x and pw13 0.98-1.005x, whole inference
//! 0.993-0.994x by medians, 0.995-0.997x by minima. Within the noise, so not kept.

use core::arch::x86_64::*;

use super::RGB_SEGMENT;
use crate::gemm::ukernel::{Blocking, GemmKernel, GemmTile};
use crate::Isa;

/// Register tile rows.
const MR: usize = 6;
/// Register tile columns (two ymm vectors).
const NR: usize = 16;

/// One step of depth `p` of a register tile, the step every loop below is made of: `NV` vectors
/// of the B row `p` after `b`, then for each row `i` of `acc` the A element at `elem(i, p)`
/// broadcast and `NV` FMAs into `acc[i]`. (A macro, not a function or closure, so the
/// accumulators stay in registers.) The user guarantees, in its `SAFETY` comment, that
/// `b + p * NR` is readable for `8 * NV` floats and `elem(i, p)` for every row `i` of `acc`.
macro_rules! depth_step {
    ($acc:ident, $nv:expr, $b:expr, $p:expr, |$i:ident, $pp:ident| $elem:expr) => {{
        let p = $p;
        let mut bv = [_mm256_setzero_ps(); $nv];
        for (v, bv) in bv.iter_mut().enumerate() {
            // SAFETY: B row `p` is readable for `NR >= 8 * NV` floats (the user's guarantee).
            *bv = unsafe { _mm256_loadu_ps($b.add(p * NR + 8 * v)) };
        }
        for ($i, acc_row) in $acc.iter_mut().enumerate() {
            let $pp = p;
            // SAFETY: `elem(i, p)` is readable (the user's guarantee).
            let av = unsafe { _mm256_broadcast_ss(&*$elem) };
            for v in 0..$nv {
                acc_row[v] = _mm256_fmadd_ps(av, bv[v], acc_row[v]);
            }
        }
    }};
}

/// `gemm_f32_6x16_avx2`, the production GEMM micro-kernel on AVX2 + FMA3 CPUs.
///
/// Blocking for Zen3 (L1d 32 KiB, L2 512 KiB per core), measured on MobileNet v1 shapes:
/// KC = 1024 covers every MobileNet depth in one block, so C is written once and never re-read.
/// The `KC x 16` sliver of B (up to 64 KiB) then streams from L2, which Zen3 feeds fast enough
/// (11 B/cycle needed at FMA peak, 32 B/cycle available); KC = 256 (sliver in L1) measured 5-12%
/// slower on the K = 512 / 1024 layers because C made 2-4 trips. MC = 72 keeps the `MC x KC`
/// block of A (<= 288 KiB) in L2 beside the sliver while the column panels change. (MC = 36,
/// 48 and 96, whole networks alternating in one process on an Emerald Rapids VM, 12 rounds:
/// 1.025, 1.013 and 1.000x; 48 gained ~1% on most layers but split pw12 and pw13's 49 rows into
/// two blocks, each streaming their 2-4 MiB of B, +7-11%. MC = 198, the 14x14 layers' 196 rows
/// in one block so their B streams once, with a run of the production setting beside it as a
/// control: 1.004x, the control 1.008-1.018x.)
pub static GEMM_F32_6X16_AVX2: GemmKernel = GemmKernel {
    name: "gemm_f32_6x16_avx2",
    isa: Isa::Avx2,
    mr: MR,
    nr: NR,
    blocking: Blocking {
        mc: 72,
        kc: 1024,
        nc: 4096,
    },
    func: gemm_f32_6x16_avx2,
    row_panels: Some(super::row::row_panels_avx2),
};

/// `gemm_f32_6x16u32_avx2`: [`GEMM_F32_6X16_AVX2`] with only depth 32 of the lean loop unrolled
/// (depth 64 runs as a loop of `eight_steps` blocks), for cores whose decoded-instruction cache
/// holds 1.5K micro-ops (Intel before Ice Lake: Skylake-SP, Cascade Lake), where a depth-64 tile
/// unrolled (8 blocks of 165 instructions) ran 5% slower than looped (Cascade Lake, pw02 84-85
/// -> 77-79% of peak). Where the cache holds 4K (Zen 3, Golden Cove) the unrolled tile is faster
/// (Emerald Rapids VM, both kernels alternating in one process, 60 pairs: pw02 0.942x the time,
/// 96 x 64 -> 128 in L1 0.963x; K = 32 and 128 level). `dispatch.rs` picks it on Intel cores with
/// an 8-way L1d, the same generation.
pub static GEMM_F32_6X16U32_AVX2: GemmKernel = GemmKernel {
    name: "gemm_f32_6x16u32_avx2",
    func: gemm_f32_6x16u32_avx2,
    ..GEMM_F32_6X16_AVX2
};

/// `m` rows (any count) of one 16-column panel of `C = act(A * B + bias)` for one KC block of
/// depth `k`, in tiles of 6 rows.
///
/// The full 6-row tiles run back to back in one loop over a single instance of the register tile
/// (no call, no dispatch between them); the rest (`m % 6` rows) is dispatched on its row count to
/// an instance with exactly those rows. Each instance uses one vector of columns when `n <= 8`.
///
/// # Safety
///
/// The [`GemmUkernelFn`](crate::gemm::ukernel::GemmUkernelFn) contract with `MR = 6`, `NR = 16`,
/// and the CPU supports AVX2 and FMA3.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gemm_f32_6x16_avx2(call: &GemmTile) {
    // SAFETY: forwarded (the same contract).
    unsafe { panel::<true>(call) }
}

/// [`gemm_f32_6x16_avx2`] with depth 64 looped (see [`GEMM_F32_6X16U32_AVX2`]).
///
/// # Safety
///
/// As [`gemm_f32_6x16_avx2`].
#[target_feature(enable = "avx2,fma")]
pub unsafe fn gemm_f32_6x16u32_avx2(call: &GemmTile) {
    // SAFETY: forwarded (the same contract).
    unsafe { panel::<false>(call) }
}

/// The body of both entry points: `UNROLL_64` unrolls the lean loop at depth 64 too.
///
/// # Safety
///
/// As [`gemm_f32_6x16_avx2`].
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn panel<const UNROLL_64: bool>(call: &GemmTile) {
    debug_assert!(call.m >= 1 && (1..=NR).contains(&call.n) && call.k >= 1);
    let full = call.m - call.m % MR;
    let wide = call.n > 8;
    // `CH` independent accumulator sets (chains over k) keep >= 8 FMAs in flight when the tile
    // has fewer than 8 accumulator vectors (the FMA latency is 4 cycles on 2 pipes).
    // SAFETY: the caller upholds the `GemmUkernelFn` contract for the call's rows; each tile below
    // is rows `r .. r + t.m` of them (`r + t.m <= call.m`), and each instance reads and writes
    // only rows `< M == t.m` and (masked) columns `< t.n`.
    unsafe {
        // Full tiles of a whole 16-column panel take the lean loop (any KC block); the other
        // tiles get the segment depth as a constant only for RGB (a 3x3 convolution
        // over 3 channels reads A in segments of 9 floats).
        let mut r = if call.n == NR && full > 0 && !(call.first_k_block && call.last_k_block) {
            // A GEMM deeper than KC (a standard 3x3 convolution over 128+ channels): its full
            // tiles take the lean loop too, starting from C after the first block.
            lean_tiles::<0, true>(call, full / MR);
            full
        } else if UNROLL_64 {
            lean_full_tiles!(call, MR, NR, full_tiles, [32, 64])
        } else {
            lean_full_tiles!(call, MR, NR, full_tiles, [32])
        };
        let rgb = call.k_seg == RGB_SEGMENT;
        while r < full {
            let t = &call.rows(r, MR);
            match (wide, call.k_seg) {
                (true, RGB_SEGMENT) => tile::<6, 2, 1, RGB_SEGMENT>(t),
                (true, _) => tile::<6, 2, 1, 0>(t),
                (false, RGB_SEGMENT) => tile::<6, 1, 2, RGB_SEGMENT>(t),
                (false, _) => tile::<6, 1, 2, 0>(t),
            }
            r += MR;
        }
        if full < call.m {
            let t = &call.rows(full, call.m - full);
            if rgb {
                rest::<RGB_SEGMENT>(t, wide);
            } else {
                rest::<0>(t, wide);
            }
        }
    }
}

/// `count` full 6 x 16 tiles (rows `0 .. 6 * count` of `t`) of a call that covers a whole
/// panel and is its GEMM's only KC block, with the segment depth `KS` a constant (or 0: read
/// from `t`): the lean loop (`lean_full_tiles!` calls it; [`lean_tiles`] has the loop).
///
/// # Safety
///
/// The `GemmUkernelFn` contract for `t` with `t.m >= 6 * count`, `t.n == 16`,
/// `KS == 0 || t.k_seg == KS`, `t.first_k_block` and `t.last_k_block`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn full_tiles<const KS: usize>(t: &GemmTile, count: usize) {
    // SAFETY: forwarded (the contract is `lean_tiles`'s with `t` its GEMM's only KC block).
    unsafe { lean_tiles::<KS, false>(t, count) }
}

/// The lean loop over `count` full tiles of a call that covers a whole panel: row addresses
/// from one moving base per operand (no arrays of row pointers kept across the depth loop), the
/// bias and the bounds in registers across tiles, the depth in `eight_steps` blocks, and the
/// clamp always applied in the last KC block (with infinite bounds it is the identity, NaN
/// included). With `BLOCKS`, the call may be any KC block (flags read from `t`: a later block
/// starts from C, a block before the last stores its sums unclamped); without, it is the GEMM's
/// only block and the flags are constants (the shallow layers' tiles carry no branch on them).
///
/// # Safety
///
/// The `GemmUkernelFn` contract for `t` with `t.m >= 6 * count`, `t.n == 16` and
/// `KS == 0 || t.k_seg == KS`; when `BLOCKS` is false, `t.first_k_block` and `t.last_k_block`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn lean_tiles<const KS: usize, const BLOCKS: bool>(t: &GemmTile, count: usize) {
    let (lda, ldc) = (t.lda, t.ldc);
    let ks = if KS > 0 { KS } else { t.k_seg };
    // The same call with the segment depth as the compiler sees it (a constant when `KS > 0`; equal
    // to `t.k_seg` by the contract), so `segment` below folds to constant offsets.
    let t = &GemmTile { k_seg: ks, ..*t };
    let segments = t.k / ks;
    // The accumulators start from the bias in the first KC block, from C in the others; only
    // the last block clamps (branches on the call's flags, taken alike by every tile).
    let (first, last) = if BLOCKS {
        (t.first_k_block, t.last_k_block)
    } else {
        (true, true)
    };
    let bias = if first {
        // SAFETY: `bias` holds NR = 16 floats when `first_k_block`.
        unsafe { [_mm256_loadu_ps(t.bias), _mm256_loadu_ps(t.bias.add(8))] }
    } else {
        [_mm256_setzero_ps(); 2]
    };
    let (vmin, vmax) = (_mm256_set1_ps(t.min), _mm256_set1_ps(t.max));
    // The next column panel of packed B (`GemmTile::next_b`; its bias row, then `k` rows of 16
    // floats: one 64-byte line each). Each tile prefetches its share of it into L2, one line per
    // 8 steps, so the next call finds its B there instead of streaming it from L3 or DRAM (B of
    // a 1024 x 1024 layer is 4 MiB). Prefetches never fault.
    // Only for the general depths: with the constant ones (<= 64) B is a few KiB, and the
    // prefetches measured 2% slower on pw01 and the stem.
    let next = t.next_b;
    let share = (t.k + 1).div_ceil(count);
    let (mut a, mut c) = (t.a, t.c);
    for j in 0..count {
        // First line of each C row (see `tile`); prefetches never fault.
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc + NR - 1) as *const i8);
        }
        let (mut line, lines_end) = (j * share, (j + 1) * share);
        let mut acc = [bias; MR];
        if !first {
            for (i, row) in acc.iter_mut().enumerate() {
                for (v, y) in row.iter_mut().enumerate() {
                    // SAFETY: row `i` of this tile, columns `8v .. 8v + 8 <= n == 16` of C,
                    // readable (the partial sums of the blocks before).
                    *y = unsafe { _mm256_loadu_ps(c.add(i * ldc + 8 * v)) };
                }
            }
        }
        for s in 0..segments {
            // Segment `s` of this tile's rows: row `i` is `sa + i * lda` (`i < 6`), B after `sb`
            // (`GemmTile::segment`, `s < k / k_seg`), so each step below reads A element
            // `(i, s * k_seg + p)` and B row `s * k_seg + p`, both in bounds for `p < ks`.
            let ([sa], sb) = t.segment([a], s, NR);
            if KS == RGB_SEGMENT {
                // SAFETY: steps `0 .. 9 == ks` of segment `s` (see above).
                unsafe { nine_steps(&mut acc, sa, lda, sb) };
                continue;
            }
            for chunk in 0..ks / 8 {
                if KS == 0 && line < lines_end {
                    _mm_prefetch::<_MM_HINT_T1>(next.wrapping_add(line * NR) as *const i8);
                    line += 1;
                }
                // One iteration of the general depth loop, for llvm-mca (scripts/mca-x86.sh; the
                // prefetch above is a branch out of it that the model leaves out).
                #[cfg(feature = "mca-markers")]
                if KS == 0 {
                    mca_marker!("BEGIN gemm_f32_6x16_avx2");
                }
                // SAFETY: steps `8 chunk .. 8 chunk + 8 <= ks` of segment `s` (see above).
                unsafe {
                    eight_steps(
                        &mut acc,
                        sa.wrapping_add(chunk * 8),
                        lda,
                        sb.wrapping_add(chunk * 8 * NR),
                    )
                };
                #[cfg(feature = "mca-markers")]
                if KS == 0 {
                    mca_marker!("END gemm_f32_6x16_avx2");
                }
            }
            for p in ks / 8 * 8..ks {
                depth_step!(acc, 2, sb, p, |i, p| sa.add(i * lda + p));
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, &y) in row.iter().enumerate() {
                // `y` second: a NaN stays NaN (see `tile`).
                let y = if last {
                    _mm256_min_ps(vmax, _mm256_max_ps(vmin, y))
                } else {
                    y
                };
                // SAFETY: row `i` of this tile, columns `8v .. 8v + 8 <= n == 16` of C.
                unsafe { _mm256_storeu_ps(c.add(i * ldc + 8 * v), y) };
            }
        }
        a = a.wrapping_add(MR * lda);
        c = c.wrapping_add(MR * ldc);
    }
}

/// One depth step in the `asm!` template of `eight_steps`: the B row at `{b} + b_disp` bytes
/// (two vectors), then rows 0-5 of A at `a_disp` bytes into their accumulators. A row `3j + r`
/// is `{a<3j>} + r * {lda}` (`lda` in bytes, `r` 0-2).
macro_rules! asm_step {
    ($a_disp:literal, $b_disp:literal, $b_disp_hi:literal) => {
        concat!(
            "vmovups {b0}, ymmword ptr [{b} + ",
            $b_disp,
            "]\n",
            "vmovups {b1}, ymmword ptr [{b} + ",
            $b_disp_hi,
            "]\n",
            asm_row!("{a0}", "", $a_disp, "{l0}", "{h0}"),
            asm_row!("{a0}", " + {lda}", $a_disp, "{l1}", "{h1}"),
            asm_row!("{a0}", " + {lda}*2", $a_disp, "{l2}", "{h2}"),
            asm_row!("{a3}", "", $a_disp, "{l3}", "{h3}"),
            asm_row!("{a3}", " + {lda}", $a_disp, "{l4}", "{h4}"),
            asm_row!("{a3}", " + {lda}*2", $a_disp, "{l5}", "{h5}"),
        )
    };
}

/// The template of depth steps 0-7 (A at bytes 0-28 of each row, B rows 0-7 at 64 bytes each).
macro_rules! first_eight_steps {
    () => {
        concat!(
            asm_step!("0", "0", "32"),
            asm_step!("4", "64", "96"),
            asm_step!("8", "128", "160"),
            asm_step!("12", "192", "224"),
            asm_step!("16", "256", "288"),
            asm_step!("20", "320", "352"),
            asm_step!("24", "384", "416"),
            asm_step!("28", "448", "480"),
        )
    };
}

/// Depth steps of a full 6 x 16 tile in one `asm!` block, the templates given
/// (`asm_step!`s): binds the operands `eight_steps` and `nine_steps` share.
macro_rules! steps_block {
    ($acc:ident, $a:ident, $lda:ident, $b:ident; $($step:expr),+) => {{
        let (a0, lda_bytes) = ($a as usize, $lda * 4);
        let [[l0, h0], [l1, h1], [l2, h2], [l3, h3], [l4, h4], [l5, h5]] = $acc;
        // SAFETY: AVX2 + FMA (the caller's contract; `ymm_reg` operands). The block reads the
        // B rows at `b` (64 bytes per step) and A elements `(i, q)` at `a0 + i * lda + 4q` bytes
        // for rows `i < 6` and the block's steps `q`: readable by the contract. It writes only
        // its register operands, no flags, no stack.
        unsafe {
            core::arch::asm!(
                $($step),+,
                b = in(reg) $b,
                a0 = in(reg) a0,
                a3 = in(reg) a0 + 3 * lda_bytes,
                lda = in(reg) lda_bytes,
                b0 = out(ymm_reg) _,
                b1 = out(ymm_reg) _,
                av = out(ymm_reg) _,
                l0 = inout(ymm_reg) *l0, h0 = inout(ymm_reg) *h0,
                l1 = inout(ymm_reg) *l1, h1 = inout(ymm_reg) *h1,
                l2 = inout(ymm_reg) *l2, h2 = inout(ymm_reg) *h2,
                l3 = inout(ymm_reg) *l3, h3 = inout(ymm_reg) *h3,
                l4 = inout(ymm_reg) *l4, h4 = inout(ymm_reg) *h4,
                l5 = inout(ymm_reg) *l5, h5 = inout(ymm_reg) *h5,
                options(nostack, readonly, preserves_flags),
            );
        }
    }};
}

/// Eight depth steps of a full 6 x 16 tile in one `asm!` block: `acc[i] += A(i, q) * B(q)` for
/// `q < 8`, in order, the same FMAs as eight `depth_step!`s (so the same bits). A row `i` starts
/// at `a + i * lda`, the 8 B rows (16 floats each) at `b`.
///
/// Why assembly: LLVM's code for the same steps (8 steps, 170 instructions: row addresses in a
/// chain of `lea`s, index registers in the broadcasts) ran at 82-85% of the FMA peak with A and
/// B in L1 on a Cascade Lake core, where this block (one base register per 3 rows, the row
/// stride scaled in the address, 165 instructions per 8 steps with the loop) runs at 90-97%
/// (kernel-only probe); llvm-mca models both at the FMA bound on Zen 3 and Skylake.
///
/// # Safety
///
/// AVX2 and FMA are available; `a + i * lda + q` is readable for rows `i < 6` and `q < 8`, and
/// `b .. b + 8 * NR`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn eight_steps(acc: &mut [[__m256; 2]; MR], a: *const f32, lda: usize, b: *const f32) {
    steps_block!(acc, a, lda, b; first_eight_steps!())
}

/// Nine depth steps in one `asm!` block, as [`eight_steps`]: one segment of a 3x3 convolution
/// over RGB ([`RGB_SEGMENT`]), whose ninth step would otherwise be LLVM's code between blocks.
///
/// # Safety
///
/// AVX2 and FMA are available; `a + i * lda + q` is readable for rows `i < 6` and `q < 9`, and
/// `b .. b + 9 * NR`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn nine_steps(acc: &mut [[__m256; 2]; MR], a: *const f32, lda: usize, b: *const f32) {
    steps_block!(acc, a, lda, b; first_eight_steps!(), asm_step!("32", "512", "544"))
}

/// The last `t.m < 6` rows of a call: the register tile instance with exactly that many rows
/// (`KS` as in [`tile`]).
///
/// # Safety
///
/// As [`tile`], with `1 <= t.m < 6` and `wide == (t.n > 8)`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn rest<const KS: usize>(t: &GemmTile, wide: bool) {
    // SAFETY: forwarded; each arm is the instance for `t.m` rows and `t.n`'s vector count.
    unsafe {
        if wide {
            match t.m {
                5 => tile::<5, 2, 1, KS>(t),
                4 => tile::<4, 2, 1, KS>(t),
                3 => tile::<3, 2, 2, KS>(t),
                2 => tile::<2, 2, 2, KS>(t),
                _ => tile::<1, 2, 4, KS>(t),
            }
        } else {
            match t.m {
                5 => tile::<5, 1, 2, KS>(t),
                4 => tile::<4, 1, 2, KS>(t),
                3 => tile::<3, 1, 2, KS>(t),
                2 => tile::<2, 1, 4, KS>(t),
                _ => tile::<1, 1, 4, KS>(t),
            }
        }
    }
}

/// Lane mask of the columns `< n` in vector `v` (columns `8v .. 8v+8`), for `vmaskmovps`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn column_mask(n: usize, v: usize) -> __m256i {
    let left = n as i32 - 8 * v as i32;
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(left),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// The register tile with `M` rows (`1..=6`) and `NV` vectors of 8 columns (`1..=2`), summing
/// the depth in `CH` (1, 2 or 4) interleaved chains of accumulators. `KS`: the segment depth as a
/// constant (`t.k_seg == KS`), or 0 to read it from `t`.
///
/// # Safety
///
/// The `GemmUkernelFn` contract, with `t.m == M`, `8 * (NV - 1) < t.n <= 8 * NV`, and
/// `KS == 0 || t.k_seg == KS`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const M: usize, const NV: usize, const CH: usize, const KS: usize>(t: &GemmTile) {
    let (k, n) = (t.k, t.n);
    let full = n == 8 * NV;

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

    // Start fetching the tile of C now (first and last column of each row: one or two lines), so
    // the final stores (or the loads of a later KC block) do not wait for it; pointwise outputs
    // are large and usually not in L1/L2. Prefetches never fault.
    for &ci in c.iter() {
        _mm_prefetch::<_MM_HINT_T0>(ci as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(ci.wrapping_add(n - 1) as *const i8);
    }
    let mut acc = [[_mm256_setzero_ps(); NV]; M];
    if t.first_k_block {
        for v in 0..NV {
            // SAFETY: `bias` holds NR = 16 floats (zero-padded); `8 * v + 8 <= 16`.
            let bias = unsafe { _mm256_loadu_ps(t.bias.add(8 * v)) };
            for row in acc.iter_mut() {
                row[v] = bias;
            }
        }
    } else {
        for (i, row) in acc.iter_mut().enumerate() {
            for v in 0..NV {
                // SAFETY: row `i < m` of C is readable for columns `< n`: whole vectors are loaded
                // only when `n == 8 * NV`, otherwise the mask limits the load to columns `< n`.
                row[v] = unsafe {
                    if full {
                        _mm256_loadu_ps(c[i].add(8 * v))
                    } else {
                        _mm256_maskload_ps(c[i].add(8 * v), column_mask(n, v))
                    }
                };
            }
        }
    }

    // The depth loop, segment by segment (one segment for a plain A), unrolled by 4; step `p`
    // goes to chain `p % CH`. `step!(acc, p)` is `depth_step!` over the segment's rows `sa` (rows
    // `< M`) and B `sb`, both from `GemmTile::segment` and in bounds for `p < k_seg` as it
    // documents.
    macro_rules! step {
        ($acc:ident, $sa:ident, $sb:ident, $p:expr) => {
            depth_step!($acc, NV, $sb, $p, |i, p| $sa[i].add(p))
        };
    }
    // Chain 0 is `acc` (it holds the starting values); the others start from zero.
    let zero = [[_mm256_setzero_ps(); NV]; M];
    let (mut acc1, mut acc2, mut acc3) = (zero, zero, zero);
    let ks = if KS > 0 { KS } else { t.k_seg };
    for s in 0..k / ks {
        // `s < k / k_seg` and `a` holds the starts of rows `< M == m`, so `sa` and `sb` are in
        // bounds as `GemmTile::segment` documents (the loads below rely on it).
        let (sa, sb) = t.segment(a, s, NR);
        let mut p = 0;
        while p + 4 <= ks {
            match CH {
                1 => {
                    step!(acc, sa, sb, p);
                    step!(acc, sa, sb, p + 1);
                    step!(acc, sa, sb, p + 2);
                    step!(acc, sa, sb, p + 3);
                }
                2 => {
                    step!(acc, sa, sb, p);
                    step!(acc1, sa, sb, p + 1);
                    step!(acc, sa, sb, p + 2);
                    step!(acc1, sa, sb, p + 3);
                }
                _ => {
                    step!(acc, sa, sb, p);
                    step!(acc1, sa, sb, p + 1);
                    step!(acc2, sa, sb, p + 2);
                    step!(acc3, sa, sb, p + 3);
                }
            }
            p += 4;
        }
        while p < ks {
            step!(acc, sa, sb, p);
            p += 1;
        }
    }
    // Fold the chains into `acc` (only the chains in use: adding a zero chain is not free).
    for i in 0..M {
        for v in 0..NV {
            match CH {
                1 => {}
                2 => acc[i][v] = _mm256_add_ps(acc[i][v], acc1[i][v]),
                _ => {
                    let (s01, s23) = (
                        _mm256_add_ps(acc[i][v], acc1[i][v]),
                        _mm256_add_ps(acc2[i][v], acc3[i][v]),
                    );
                    acc[i][v] = _mm256_add_ps(s01, s23);
                }
            }
        }
    }

    if t.last_k_block {
        // y = if y < min {min} else {y}; y = if y > max {max} else {y}: `max_ps`/`min_ps` return
        // their second operand when either is NaN, so a NaN `y` (second) stays NaN.
        // An infinite bound is the identity (NaN included) and is skipped: ReLU costs one op.
        let (vmin, vmax) = (_mm256_set1_ps(t.min), _mm256_set1_ps(t.max));
        if t.min != f32::NEG_INFINITY {
            for row in acc.iter_mut() {
                for y in row.iter_mut() {
                    *y = _mm256_max_ps(vmin, *y);
                }
            }
        }
        if t.max != f32::INFINITY {
            for row in acc.iter_mut() {
                for y in row.iter_mut() {
                    *y = _mm256_min_ps(vmax, *y);
                }
            }
        }
    }

    // The masks are formed only here (and for the C loads), so they take no register in the loop.
    let mut masks = [_mm256_setzero_si256(); NV];
    for (v, mask) in masks.iter_mut().enumerate() {
        *mask = column_mask(n, v);
    }
    for (row, &ci) in acc.iter().zip(c.iter()) {
        for v in 0..NV {
            // SAFETY: row `i < m` of C is writable for columns `< n`: whole vectors are stored
            // only when `n == 8 * NV`, otherwise the mask limits the store to columns `< n`.
            unsafe {
                if full {
                    _mm256_storeu_ps(ci.add(8 * v), row[v]);
                } else {
                    _mm256_maskstore_ps(ci.add(8 * v), masks[v], row[v]);
                }
            }
        }
    }
}
