//! `gemm_f32_12x32_avx512`: the 8 x 32 AVX-512 kernel (`avx512_8x32.rs`) with taller, 12 x 32
//! register tiles for deep calls, the production tile on cores with an 8-way 32 KiB L1d and a
//! 1 MiB L2 (Skylake-SP, Cascade Lake; see `dispatch.rs`).
//!
//! Why taller tiles there. A tile streams the `K x 32` sliver of packed B once per tile; with
//! K = 512 or 1024 the sliver (64-128 KiB) does not fit L1 and comes from L2 for every tile. On a
//! Cascade Lake core the 8 x 32 tile's steps run at 99.9% of the FMA peak with B in L1 and at
//! 64-72% with the sliver streaming from L2 (see `avx512_8x32.rs`); twelve rows read the same
//! sliver for 1.5x the FMAs: 2 B lines per 24 FMAs instead of per 16.
//!
//! Register plan (32 zmm): 24 accumulators (12 rows x 2 vectors of 16 columns), 2 vectors of the
//! packed B row, 1 broadcast of A (`vbroadcastss zmm, m32`: a load-port uop). Per step of depth:
//! 2 B loads, 12 broadcasts, 24 FMAs: 14 loads per 24 FMAs (0.58; 8 x 32: 0.63).
//!
//! Why inline assembly. Written with intrinsics, as every other kernel here, the 12-row step
//! compiles to a loop that keeps 27 vectors live out of 32, and LLVM's scheduler hoists the
//! step's 12 broadcasts above the FMAs that consume them: 110 zmm spills and reloads per 8 steps
//! (also with the bias and bounds reloaded per tile to free registers, and with the rows written
//! out one by one). One `asm!` block per 8 steps fixes the order (broadcast, its two FMAs, the
//! next row), and the register allocator only has to hold the 24 accumulators across blocks: the
//! loop is 324 instructions per 192 FMAs (1.69 per FMA; the 8 x 32 loop 1.80), no stack access.
//!
//! When the tall tiles run (`gemm_f32_12x32_avx512`): in a call that covers a whole 32-column
//! panel, is its GEMM's only KC block (the lean loop's conditions, `avx512_8x32.rs`), whose
//! segment depth is at least `DEEP` (256) and a multiple of 8, and whose A rows are not a
//! multiple of 4 KiB apart (`ALIASED_ROWS`); every other call runs the 8 x 32
//! kernel unchanged. Measured on a Cascade Lake core (pointwise layers over the public API,
//! activations laid out as `Shape::padded_strides`, the kernels alternating in one process, 100
//! rounds, median of the per-round time ratios, 12 x 32 / 8 x 32): K = 256 -> 256 (28x28) 0.93,
//! 256 -> 512 (14x14) 0.95, 512 -> 512 (14x14) 0.93, 512 -> 1024 (7x7) 0.93, 1024 -> 1024 (7x7)
//! 0.90; with 12-row tiles at every depth, K = 32, 64 and 128 ran level (0.98-1.03), so below
//! 256 the 8 x 32 kernel stays. A dense 1024-channel input (rows 4 KiB apart: twelve A rows in
//! one set of the 8-way L1) ran 1.08x, so rows a multiple of 4 KiB apart run the 8 x 32 kernel
//! too (`Shape::padded_strides` lays such activations out 4160 bytes apart). Inside MobileNet v1
//! 1.0-224 (`sepconv-bench mobilenet --isa avx512 --runs 300` against the same with
//! `--gemm-kernel gemm_f32_8x32_avx512`, four alternating pairs, FMA peak 152.5 GFLOP/s in
//! each): pointwise layers 5-13 6.48-6.71 ms against 7.20-7.28, conv_pw_7 81-84% of peak
//! against 76-77, conv_pw_13 77-80% against 69-70; end to end 10.64-11.00 ms median against
//! 11.44-11.55. llvm-mca (`scripts/mca-x86.sh`, skylake-avx512) models the loop at 92.3% of
//! the FMA peak, the 8 x 32 loop at 87.0%.
//!
//! Rows. The tall tiles take the call's first rows in pairs (24 rows), as many as fit; the 8 x 32
//! kernel runs the rest: whole 8-row tiles, then the call's last `m % 8` rows in its edge tile,
//! as it would alone. Every full tile, 12 or 8 rows, computes a row the same way (bias, then one
//! FMA per depth step in order), so a row's result does not depend on which tile it fell in nor
//! on the thread count, and the kernel's row granularity for the driver stays 8 (`mr`).

use core::arch::x86_64::*;

use super::avx512_8x32::{gemm_f32_8x32_looped_avx512, prefetch_c_rows, store_clamped, NextPanel};
use crate::gemm::ukernel::{Blocking, GemmKernel, GemmTile};
use crate::Isa;

/// Rows of the tall register tile.
const TALL: usize = 12;
/// Register tile columns (two zmm vectors), the packed panel width of B (as the 8 x 32 kernel's).
const NR: usize = 32;
/// The least segment depth that runs tall tiles (see the module docs).
const DEEP: usize = 256;
/// A rows a multiple of this many bytes apart all fall into one set of an 8-way L1 (64 sets of
/// 64 bytes): twelve rows then evict each other, eight fit. Such calls run the 8 x 32 kernel.
const ALIASED_ROWS: usize = 4096;

/// `gemm_f32_12x32_avx512`.
///
/// Row granularity 8 (the 8 x 32 kernel's tiles; tall tiles come in pairs, 24 rows, within a
/// call), and that kernel's blocking except MC = 168 (14 tall tiles or 21 short ones).
pub static GEMM_F32_12X32_AVX512: GemmKernel = GemmKernel {
    name: "gemm_f32_12x32_avx512",
    isa: Isa::Avx512,
    mr: 8,
    nr: NR,
    blocking: Blocking {
        mc: 168,
        kc: 1024,
        nc: 4096,
    },
    func: gemm_f32_12x32_avx512,
    row_panels: Some(super::row::row_panels_avx512::<2>),
};

/// `m` rows of one 32-column panel of `C = act(A * B + bias)` for one KC block: tall 12-row tiles
/// for a deep call's first rows, the 8 x 32 kernel for the rest and for every other call.
///
/// # Safety
///
/// The [`GemmUkernelFn`](crate::gemm::ukernel::GemmUkernelFn) contract with `NR = 32`, and the
/// CPU supports AVX-512F, AVX2 and FMA3.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn gemm_f32_12x32_avx512(call: &GemmTile) {
    let deep = call.n == NR
        && call.first_k_block
        && call.last_k_block
        && call.k_seg >= DEEP
        && call.k_seg.is_multiple_of(8)
        && !(call.lda * 4).is_multiple_of(ALIASED_ROWS);
    let tall = if deep { tall_tiles(call.m) } else { 0 };
    if tall > 0 {
        // SAFETY: the caller's contract for this call, whose rows `0 .. 12 * tall <= m` these
        // tiles are; the call covers a whole panel, is its only KC block, and its segment depth
        // is a multiple of 8 (`deep`).
        unsafe { tall_full_tiles(call, tall) };
    }
    let done = tall * TALL;
    if done < call.m {
        // SAFETY: the caller's contract covers rows `done .. m` of the call (`GemmTile::rows`),
        // and the 8 x 32 kernel takes the same packed B (NR = 32) on the same CPU features.
        unsafe { gemm_f32_8x32_looped_avx512(&call.rows(done, call.m - done)) };
    }
}

/// How many tall tiles a deep call of `m` rows runs: an even number (24 rows per pair), as many
/// as fit. The rows left, fewer than 24, are then whole 8-row tiles and the call's last `m % 8`
/// rows, exactly the rows the 8 x 32 kernel alone would give its edge tile; as the driver starts
/// every call at a multiple of 8 rows, those are the GEMM's last `m % 8` rows whatever the thread
/// split, so results do not depend on the thread count.
fn tall_tiles(m: usize) -> usize {
    m / (2 * TALL) * 2
}

/// One depth step of the tall tile in the asm template: the B row at `{b} + b_disp` bytes (two
/// vectors), then rows 0-11 of A at `a_disp` bytes into their rows. A row `3j + r` is
/// `{a<3j>} + r * {lda}` (`lda` in bytes, `r` 0-2).
macro_rules! asm_step {
    ($a_disp:literal, $b_disp:literal, $b_disp_hi:literal) => {
        concat!(
            "vmovups {b0}, zmmword ptr [{b} + ",
            $b_disp,
            "]\n",
            "vmovups {b1}, zmmword ptr [{b} + ",
            $b_disp_hi,
            "]\n",
            asm_row!("{a0}", "", $a_disp, "{l0}", "{h0}"),
            asm_row!("{a0}", " + {lda}", $a_disp, "{l1}", "{h1}"),
            asm_row!("{a0}", " + {lda}*2", $a_disp, "{l2}", "{h2}"),
            asm_row!("{a3}", "", $a_disp, "{l3}", "{h3}"),
            asm_row!("{a3}", " + {lda}", $a_disp, "{l4}", "{h4}"),
            asm_row!("{a3}", " + {lda}*2", $a_disp, "{l5}", "{h5}"),
            asm_row!("{a6}", "", $a_disp, "{l6}", "{h6}"),
            asm_row!("{a6}", " + {lda}", $a_disp, "{l7}", "{h7}"),
            asm_row!("{a6}", " + {lda}*2", $a_disp, "{l8}", "{h8}"),
            asm_row!("{a9}", "", $a_disp, "{l9}", "{h9}"),
            asm_row!("{a9}", " + {lda}", $a_disp, "{l10}", "{h10}"),
            asm_row!("{a9}", " + {lda}*2", $a_disp, "{l11}", "{h11}"),
        )
    };
}

/// `count` full 12 x 32 tiles (rows `0 .. 12 * count` of `t`), the lean loop of the 8 x 32
/// kernel at 12 rows: A and C rows from one moving base pointer each, the clamp always applied,
/// whole-vector stores; 8 depth steps per `asm!` block; each tile prefetches (T1, into L2) its
/// share of the next column panel of packed B, two rows per 8 steps, and its C rows when it
/// starts.
///
/// # Safety
///
/// The `GemmUkernelFn` contract for `t` with `t.m >= 12 * count`, `t.n == 32`,
/// `t.first_k_block`, `t.last_k_block` and `t.k_seg` a multiple of 8; AVX-512F.
#[inline(never)]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tall_full_tiles(t: &GemmTile, count: usize) {
    let (lda, ldc, ks) = (t.lda, t.ldc, t.k_seg);
    let segments = t.k / ks;
    let (mut a, mut c) = (t.a, t.c);
    for j in 0..count {
        prefetch_c_rows(c, ldc, TALL);
        let mut next = NextPanel::share(t, count, j);
        // The bias is loaded per tile, not held across tiles: 24 accumulators + 3 working
        // vectors leave too few registers to keep it (and the bounds) live.
        // SAFETY: `bias` holds NR = 32 floats (zero-padded).
        let (b0, b1) = unsafe { (_mm512_loadu_ps(t.bias), _mm512_loadu_ps(t.bias.add(16))) };
        let mut lo = [b0; TALL];
        let mut hi = [b1; TALL];
        for s in 0..segments {
            // Segment `s`: A row 0 at `sa` (`t.a + 12j * lda + s * seg_stride`), B rows after
            // `sb` (`t.b + s * ks * NR`), as `GemmTile::segment` forms them.
            let sa = a.wrapping_add(s * t.seg_stride);
            let sb = t.b.wrapping_add(s * ks * NR);
            for chunk in 0..ks / 8 {
                next.two_rows();
                #[cfg(feature = "mca-markers")]
                mca_marker!("BEGIN gemm_f32_12x32_avx512");
                let a0 = sa.wrapping_add(chunk * 8) as usize;
                let lda_bytes = lda * 4;
                // SAFETY: AVX-512F is available (this function's target features; `zmm_reg`
                // operands). The block reads B rows `8 chunk .. 8 chunk + 8` of the segment
                // (`b` + 0 .. 1024 bytes: 8 rows of 32 floats, inside the segment's `ks * NR`
                // floats as `8 chunk + 8 <= ks`) and A elements `(i, 8 chunk + q)` for rows
                // `i < 12` of this tile (`a0 + i * lda + 4q` bytes, `q < 8`; rows `12j + i < m`,
                // depth `8 chunk + q < ks` of the segment: readable by the contract, as
                // `GemmTile::segment` says); it writes only its register operands and no flags,
                // and touches no stack.
                unsafe {
                    core::arch::asm!(
                        asm_step!("0", "0", "64"),
                        asm_step!("4", "128", "192"),
                        asm_step!("8", "256", "320"),
                        asm_step!("12", "384", "448"),
                        asm_step!("16", "512", "576"),
                        asm_step!("20", "640", "704"),
                        asm_step!("24", "768", "832"),
                        asm_step!("28", "896", "960"),
                        b = in(reg) sb.wrapping_add(chunk * 8 * NR),
                        a0 = in(reg) a0,
                        a3 = in(reg) a0 + 3 * lda_bytes,
                        a6 = in(reg) a0 + 6 * lda_bytes,
                        a9 = in(reg) a0 + 9 * lda_bytes,
                        lda = in(reg) lda_bytes,
                        b0 = out(zmm_reg) _,
                        b1 = out(zmm_reg) _,
                        av = out(zmm_reg) _,
                        l0 = inout(zmm_reg) lo[0], h0 = inout(zmm_reg) hi[0],
                        l1 = inout(zmm_reg) lo[1], h1 = inout(zmm_reg) hi[1],
                        l2 = inout(zmm_reg) lo[2], h2 = inout(zmm_reg) hi[2],
                        l3 = inout(zmm_reg) lo[3], h3 = inout(zmm_reg) hi[3],
                        l4 = inout(zmm_reg) lo[4], h4 = inout(zmm_reg) hi[4],
                        l5 = inout(zmm_reg) lo[5], h5 = inout(zmm_reg) hi[5],
                        l6 = inout(zmm_reg) lo[6], h6 = inout(zmm_reg) hi[6],
                        l7 = inout(zmm_reg) lo[7], h7 = inout(zmm_reg) hi[7],
                        l8 = inout(zmm_reg) lo[8], h8 = inout(zmm_reg) hi[8],
                        l9 = inout(zmm_reg) lo[9], h9 = inout(zmm_reg) hi[9],
                        l10 = inout(zmm_reg) lo[10], h10 = inout(zmm_reg) hi[10],
                        l11 = inout(zmm_reg) lo[11], h11 = inout(zmm_reg) hi[11],
                        options(nostack, readonly, preserves_flags),
                    );
                }
                #[cfg(feature = "mca-markers")]
                mca_marker!("END gemm_f32_12x32_avx512");
            }
        }
        let (vmin, vmax) = (_mm512_set1_ps(t.min), _mm512_set1_ps(t.max));
        // SAFETY: rows `12j .. 12j + 12 <= m` of C, columns `0 .. 32 == n`: writable by the
        // contract; AVX-512F (this function's target features).
        unsafe { store_clamped(c, ldc, &lo, &hi, vmin, vmax) };
        a = a.wrapping_add(TALL * lda);
        c = c.wrapping_add(TALL * ldc);
    }
}

#[cfg(test)]
mod tests {
    use super::tall_tiles;

    #[test]
    fn tall_tiles_leave_the_8x32_kernels_edge_rows() {
        for m in 0..400 {
            let t = tall_tiles(m);
            let rest = m - 12 * t;
            // Whole 8-row tiles, then the same `m % 8` edge rows, and fewer than 24 rows in all.
            assert!(
                t.is_multiple_of(2) && rest % 8 == m % 8 && rest < 24,
                "m {m}: {t} tiles"
            );
        }
        assert_eq!(
            (tall_tiles(196), tall_tiles(49), tall_tiles(23)),
            (16, 4, 0)
        );
    }
}
