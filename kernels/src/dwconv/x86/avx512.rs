//! AVX-512F depthwise 3x3 row kernels, stride 1 and stride 2, channel tile 16 (one `zmm`).
//!
//! Loop order per row: column chunks outside, 16-channel blocks inside, columns innermost. For one
//! block the bias and the nine taps stay in registers (10 `zmm` of the 32), and the interior
//! computes `U` (4) output pixels per iteration from scratch (no accumulator carried from one
//! iteration to the next, so out-of-order execution overlaps iterations and the 9-FMA chain of
//! each output is hidden). Each input column of the iteration is loaded once (three rows) and feeds
//! every output of the iteration whose window holds it:
//!
//! * stride 1: `U + 2` columns, `3 (U + 2)` loads for `9 U` FMAs (0.5 loads per FMA at `U = 4`);
//! * stride 2: `2 U + 1` columns, `3 (2 U + 1)` loads for `9 U` FMAs (0.75 loads per FMA).
//!
//! Each row splits into a left border, a branch-free interior (all three input columns of every
//! output in range) and a right border; border outputs (and the last `< U` interior outputs) are
//! computed one by one, and border outputs skip padding columns, which are never read. The channel
//! tail (`channels % 16`) runs the same code with `__mmask16` lane masks
//! (`_mm512_maskz_loadu_ps` / `_mm512_mask_storeu_ps`, which neither read nor write, nor fault on,
//! masked-off lanes), so nothing past the last channel of a pixel is touched.

use std::arch::x86_64::*;

use crate::dwconv::ukernel::{DwKernel, DwRow};
use crate::Isa;

/// Channel tile of the packed weights (one `zmm` of `f32`).
pub const C_TILE: usize = 16;

/// Output columns per chunk: the three input rows of a chunk stay in L1/L2 while the channel
/// blocks walk it.
const CHUNK: usize = 64;

/// Output pixels per interior iteration.
const U: usize = 4;

/// `dwconv3x3_f32_c16_avx512`: stride 1.
pub static DWCONV3X3_F32_C16_AVX512: DwKernel = DwKernel {
    name: "dwconv3x3_f32_c16_avx512",
    isa: Isa::Avx512,
    stride: 1,
    c_tile: C_TILE,
    func: dwconv3x3_f32_c16_avx512,
};

/// `dwconv3x3s2_f32_c16_avx512`: stride 2.
pub static DWCONV3X3S2_F32_C16_AVX512: DwKernel = DwKernel {
    name: "dwconv3x3s2_f32_c16_avx512",
    isa: Isa::Avx512,
    stride: 2,
    c_tile: C_TILE,
    func: dwconv3x3s2_f32_c16_avx512,
};

/// Depthwise 3x3, stride 1, one output row (see [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 16`; the CPU has AVX-512F, AVX2 and FMA.
pub unsafe fn dwconv3x3_f32_c16_avx512(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, AVX-512F available).
    unsafe { row::<1>(r) }
}

/// Depthwise 3x3, stride 2, one output row (see [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 16`; the CPU has AVX-512F, AVX2 and FMA.
pub unsafe fn dwconv3x3s2_f32_c16_avx512(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, AVX-512F available).
    unsafe { row::<2>(r) }
}

/// One row: column chunks, then channel blocks, then columns.
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 16` and stride `S`; the CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn row<const S: usize>(r: &DwRow) {
    let vmin = _mm512_set1_ps(r.min);
    let vmax = _mm512_set1_ps(r.max);
    let full = r.channels / C_TILE;
    let tail = r.channels % C_TILE;
    // Lanes `0 .. tail` (only used when `tail != 0`).
    let mask = ((1u32 << tail) - 1) as __mmask16;
    let g = Geom::new::<S>(r);
    let mut lo = 0;
    while lo < r.out_width {
        let hi = (lo + CHUNK).min(r.out_width);
        for t in 0..full {
            // SAFETY: block `t` covers channels `16t .. 16t+16 <= channels`; its packed tile is
            // at `weights + 160t`, inside the `ceil(channels / 16)` tiles the contract
            // guarantees; `lo < hi <= out_width`.
            unsafe { block::<S, false>(r, &g, t * C_TILE, mask, vmin, vmax, lo, hi) };
        }
        if tail != 0 {
            // SAFETY: the last block covers channels `16 * full .. channels`; `mask` enables
            // exactly those `tail` lanes, so its masked loads and stores stay inside each pixel;
            // its weight tile is the last packed one (zero-padded to 16, read whole).
            unsafe { block::<S, true>(r, &g, full * C_TILE, mask, vmin, vmax, lo, hi) };
        }
        lo = hi;
    }
}

/// The interior of a row: outputs `lo .. hi` whose three input columns are all in range.
struct Geom {
    lo: usize,
    hi: usize,
}

impl Geom {
    /// Output `ox` reads columns `ox*S - pad_left + (0..3)`: it is interior when the first is
    /// `>= 0` and the last `< in_width`.
    fn new<const S: usize>(r: &DwRow) -> Geom {
        let lo = r.pad_left.div_ceil(S).min(r.out_width);
        let hi = if r.in_width + r.pad_left >= 3 {
            ((r.in_width + r.pad_left - 3) / S + 1).min(r.out_width)
        } else {
            0
        };
        Geom { lo, hi: hi.max(lo) }
    }
}

/// Loads 16 channels (or the masked tail lanes) at `p`.
///
/// # Safety
///
/// `p .. p+16` is readable, or (when `M`) the lanes `mask` enables are.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn ld<const M: bool>(p: *const f32, mask: __mmask16) -> __m512 {
    if M {
        // SAFETY: the caller guarantees the enabled lanes are readable; masked-off lanes are
        // not accessed (no read, no fault).
        unsafe { _mm512_maskz_loadu_ps(mask, p) }
    } else {
        // SAFETY: the caller guarantees 16 readable floats at `p`.
        unsafe { _mm512_loadu_ps(p) }
    }
}

/// Clamps `y` to `[vmin, vmax]` (NaN stays NaN) and stores it at `p`.
///
/// # Safety
///
/// `p .. p+16` is writable, or (when `M`) the lanes `mask` enables are.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn st<const M: bool>(p: *mut f32, y: __m512, mask: __mmask16, vmin: __m512, vmax: __m512) {
    // `max`/`min` return their second operand when either is NaN: `y` goes second.
    let y = _mm512_min_ps(vmax, _mm512_max_ps(vmin, y));
    if M {
        // SAFETY: the caller guarantees the enabled lanes are writable; masked-off lanes are
        // not written.
        unsafe { _mm512_mask_storeu_ps(p, mask, y) }
    } else {
        // SAFETY: the caller guarantees 16 writable floats at `p`.
        unsafe { _mm512_storeu_ps(p, y) }
    }
}

/// `N` consecutive interior outputs: output `j` reads input columns `j*S .. j*S+3` from the
/// pointers `p` (column of output 0's first tap, channel `ch`) and is stored at `po + j*os`.
///
/// Input columns are loaded once each (three rows) and applied to every output that uses them;
/// each output sums kx-major, ky-minor from the bias, in the same order as a border output.
///
/// # Safety
///
/// For `x < (N-1)*S + 3`, `p[ky] + x*is` is readable (16 floats, or the lanes `mask` enables when
/// `M`); for `j < N`, `po + j*os` is writable likewise.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn outputs<const S: usize, const M: bool, const N: usize>(
    p: [*const f32; 3],
    is: usize,
    po: *mut f32,
    os: usize,
    w: &[__m512; 10],
    mask: __mmask16,
    vmin: __m512,
    vmax: __m512,
) {
    let mut acc = [w[0]; N];
    for x in 0..(N - 1) * S + 3 {
        let mut v = [w[0]; 3];
        for ky in 0..3 {
            // SAFETY: `x < (N-1)*S + 3` (see the contract above).
            v[ky] = unsafe { ld::<M>(p[ky].add(x * is), mask) };
        }
        for (j, acc) in acc.iter_mut().enumerate() {
            // Tap column of input column `x` for output `j` (skipped when outside 0..3).
            let kx = x.wrapping_sub(j * S);
            if kx < 3 {
                for ky in 0..3 {
                    *acc = _mm512_fmadd_ps(v[ky], w[1 + 3 * ky + kx], *acc);
                }
            }
        }
    }
    for (j, &y) in acc.iter().enumerate() {
        // SAFETY: `j < N` (see the contract above).
        unsafe { st::<M>(po.add(j * os), y, mask, vmin, vmax) };
    }
}

/// Outputs `lo .. hi` of one 16-channel block (channels `ch .. ch+16`, or the tail under `mask`).
///
/// # Safety
///
/// The `DwRowFn` contract with stride `S`; `ch` is a multiple of 16 below `channels`; when `M` is
/// false `ch + 16 <= channels`, when it is true `mask` enables lanes `0 .. channels - ch`;
/// `lo < hi <= out_width`; `g` is `Geom::new::<S>(r)`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const S: usize, const M: bool>(
    r: &DwRow,
    g: &Geom,
    ch: usize,
    mask: __mmask16,
    vmin: __m512,
    vmax: __m512,
    lo: usize,
    hi: usize,
) {
    // SAFETY: tile `ch / 16` of the packed weights: 160 floats, all inside the packed buffer.
    let wp = unsafe { r.weights.add(ch / C_TILE * 10 * C_TILE) };
    let mut w = [_mm512_setzero_ps(); 10];
    for (i, w) in w.iter_mut().enumerate() {
        // SAFETY: `wp + 16i` for i < 10 are the bias and nine taps of this tile, 16 floats each.
        *w = unsafe { _mm512_loadu_ps(wp.add(i * C_TILE)) };
    }

    let a = g.lo.clamp(lo, hi);
    let b = g.hi.clamp(a, hi);

    // Borders: one output at a time, skipping padding columns.
    for ox in (lo..a).chain(b..hi) {
        let mut acc = w[0];
        for kx in 0..3 {
            let col = (ox * S + kx).wrapping_sub(r.pad_left);
            if col >= r.in_width {
                continue;
            }
            for ky in 0..3 {
                // SAFETY: `col < in_width` and the channels `ch ..` are in range (see `ld`'s
                // mask), so the row is readable there.
                let x = unsafe { ld::<M>(r.rows[ky].add(col * r.in_stride + ch), mask) };
                acc = _mm512_fmadd_ps(x, w[1 + 3 * ky + kx], acc);
            }
        }
        // SAFETY: `ox < out_width`; the channels `ch ..` are in range (see `st`'s mask).
        unsafe { st::<M>(r.out.add(ox * r.out_stride + ch), acc, mask, vmin, vmax) };
    }

    // Interior: outputs a .. b, every input column in range: output `ox` reads columns
    // `ox*S - pad_left .. ox*S - pad_left + 3`, with `ox*S >= pad_left` because `ox >= g.lo` and
    // `(b-1)*S - pad_left + 2 < in_width` because `b <= g.hi`.
    let (is, os) = (r.in_stride, r.out_stride);
    // Pointers for the interior output `ox`.
    let at = |ox: usize| {
        let c0 = (ox * S - r.pad_left) * is + ch;
        // SAFETY: `ox` is an interior output, so column `ox*S - pad_left` of each row and output
        // column `ox` are in range (channel `ch` below `channels`).
        unsafe {
            (
                [r.rows[0].add(c0), r.rows[1].add(c0), r.rows[2].add(c0)],
                r.out.add(ox * os + ch),
            )
        }
    };
    let mut ox = a;
    while ox + U <= b {
        #[cfg(feature = "mca-markers")]
        mca_begin::<S, M>();
        let (p, po) = at(ox);
        // SAFETY: outputs `ox .. ox+U <= b` are interior: their input columns
        // `ox*S - pad_left .. (ox+U-1)*S - pad_left + 3` and output columns are in range.
        unsafe { outputs::<S, M, U>(p, is, po, os, &w, mask, vmin, vmax) };
        ox += U;
        #[cfg(feature = "mca-markers")]
        mca_end::<S, M>();
    }
    while ox < b {
        let (p, po) = at(ox);
        // SAFETY: output `ox < b` is interior (as above, with one output).
        unsafe { outputs::<S, M, 1>(p, is, po, os, &w, mask, vmin, vmax) };
        ox += 1;
    }
}

/// Start of the interior loop body for llvm-mca (`scripts/mca-avx512.sh`); full blocks only.
#[cfg(feature = "mca-markers")]
#[inline(always)]
fn mca_begin<const S: usize, const M: bool>() {
    if !M {
        if S == 1 {
            mca_marker!("BEGIN dwconv3x3_f32_c16_avx512");
        } else {
            mca_marker!("BEGIN dwconv3x3s2_f32_c16_avx512");
        }
    }
}

/// End of the interior loop body for llvm-mca; full blocks only.
#[cfg(feature = "mca-markers")]
#[inline(always)]
fn mca_end<const S: usize, const M: bool>() {
    if !M {
        if S == 1 {
            mca_marker!("END dwconv3x3_f32_c16_avx512");
        } else {
            mca_marker!("END dwconv3x3s2_f32_c16_avx512");
        }
    }
}
