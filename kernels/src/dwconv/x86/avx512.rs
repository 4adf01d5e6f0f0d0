//! AVX-512F depthwise 3x3 row kernels, stride 1 and stride 2, channel tile 32 (two `zmm`): the
//! AVX2 kernels' design (`dwconv/x86/avx2.rs`, whose module docs explain it) on 16-lane vectors.
//!
//! # Loop order
//!
//! One call computes one output row. The row is cut into groups of `G` consecutive output pixels
//! (`G` = 4, or 2 for power-of-two pixel strides); for each group the kernel walks every 32-channel
//! tile, keeping the `G x 32` outputs in `2G` `zmm` accumulators while it sweeps the group's input
//! window one kernel row at a time. Every input vector is loaded once per group and feeds all the
//! outputs that need it (up to 3 at stride 1, up to 2 at stride 2); the 9 taps are loaded once per
//! group and tile, 3 at a time. Per group and tile (72 FMAs) stride 1 needs 36 input + 20 weight
//! loads (0.78 per FMA), stride 2 needs 54 + 20 (1.03).
//!
//! Measured on a Sapphire Rapids core (probe over the public API, 64-byte aligned NHWC tensors,
//! median GFLOP/s), this kernel / the previous 16-channel AVX-512 kernel (bias and taps held in
//! registers, a column chunk per 16-channel block) / the AVX2 kernel on the same core: 28x28x256
//! s1 92 / 48 / 66, s2 64 / 34 / 47; 14x14x512 s1 76 / 51 / 58, s2 37 / 39 / 40; 56x56x128 s1
//! 42 / 26 / 38; 112x112x32 s1 42 / 29 / 36; 7x7x1024 47 / 41 / 41. With tensors 16 bytes off a
//! line every `zmm` straddles two lines, and it loses a third (28x28x256 s1: 64 instead of 92).
//!
//! # Borders and tails
//!
//! A group whose window reaches into the left/right zero padding, or which has fewer than `G`
//! outputs, runs the same code with the out-of-range columns skipped (never read) and the missing
//! outputs neither computed nor stored. The channel tail (`channels % 32`) runs with one `zmm` per
//! pixel when it is at most 16 channels, and its last `zmm` uses `__mmask16` lane masks
//! (`_mm512_maskz_loadu_ps` / `_mm512_mask_storeu_ps`, which neither read, write nor fault on
//! masked-off lanes), so nothing past the last channel of a pixel is touched.

use std::arch::x86_64::*;

use super::{lines_per_set, L1_WAYS};
use crate::dwconv::ukernel::{DwKernel, DwRow};
use crate::Isa;

/// Channel tile of the packed weights (two `zmm` of `f32`).
pub const C_TILE: usize = 32;

/// `dwconv3x3_f32_c32_avx512`: stride 1.
pub static DWCONV3X3_F32_C32_AVX512: DwKernel = DwKernel {
    name: "dwconv3x3_f32_c32_avx512",
    isa: Isa::Avx512,
    stride: 1,
    c_tile: C_TILE,
    func: dwconv3x3_f32_c32_avx512,
};

/// `dwconv3x3s2_f32_c32_avx512`: stride 2.
pub static DWCONV3X3S2_F32_C32_AVX512: DwKernel = DwKernel {
    name: "dwconv3x3s2_f32_c32_avx512",
    isa: Isa::Avx512,
    stride: 2,
    c_tile: C_TILE,
    func: dwconv3x3s2_f32_c32_avx512,
};

/// Depthwise 3x3, stride 1, one output row (see [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 32`; the CPU has AVX-512F.
pub unsafe fn dwconv3x3_f32_c32_avx512(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, AVX-512F available).
    unsafe { row::<1>(r) }
}

/// Depthwise 3x3, stride 2, one output row (see [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 32`; the CPU has AVX-512F.
pub unsafe fn dwconv3x3s2_f32_c32_avx512(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, AVX-512F available).
    unsafe { row::<2>(r) }
}

/// Row-wide constants.
#[derive(Clone, Copy)]
struct Ctx {
    vmin: __m512,
    vmax: __m512,
    /// Lanes `0 .. channels % 16` (all lanes when that is 0; then unused).
    mask: __mmask16,
}

/// One group of output pixels `ox .. ox + n` (`n <=` the group size). Its input window starts
/// at column `c0 = ox * S - pad_left` (negative in the left padding); window columns `lo .. hi`
/// are inside `0 .. in_width`.
#[derive(Clone, Copy)]
struct Group {
    ox: usize,
    c0: isize,
    n: usize,
    lo: usize,
    hi: usize,
}

/// Calls `$f::<S, GROUP, H, M, $edge>(r, cx, ch, g)` for every channel tile: full tiles with
/// `H = 2` unmasked `zmm`, then the tail with one or two `zmm`, the last one masked unless the
/// tail is exactly 16 channels.
macro_rules! each_tile {
    ($r:expr, $cx:expr, $g:expr, $f:ident, $edge:expr) => {{
        let full = $r.channels / C_TILE;
        let rem = $r.channels % C_TILE;
        let ch = full * C_TILE;
        for t in 0..full {
            // The inner loop for llvm-mca (scripts/mca-avx512.sh): one whole tile of a full group.
            #[cfg(feature = "mca-markers")]
            if !$edge && GROUP == 4 {
                if S == 1 {
                    mca_marker!("BEGIN dwconv3x3_f32_c32_avx512");
                } else {
                    mca_marker!("BEGIN dwconv3x3s2_f32_c32_avx512");
                }
            }
            // SAFETY: channels `32t .. 32t+32 <= channels`: a whole tile; `$g` is valid.
            unsafe { $f::<S, GROUP, 2, false, $edge>($r, &$cx, t * C_TILE, $g) };
            #[cfg(feature = "mca-markers")]
            if !$edge && GROUP == 4 {
                if S == 1 {
                    mca_marker!("END dwconv3x3_f32_c32_avx512");
                } else {
                    mca_marker!("END dwconv3x3s2_f32_c32_avx512");
                }
            }
        }
        if rem > 16 {
            // SAFETY: channels `ch .. ch+16` whole, `ch+16 .. channels` under `mask`.
            unsafe { $f::<S, GROUP, 2, true, $edge>($r, &$cx, ch, $g) };
        } else if rem == 16 {
            // SAFETY: channels `ch .. ch+16 == channels`, one whole `zmm`.
            unsafe { $f::<S, GROUP, 1, false, $edge>($r, &$cx, ch, $g) };
        } else if rem > 0 {
            // SAFETY: channels `ch .. channels` under `mask`.
            unsafe { $f::<S, GROUP, 1, true, $edge>($r, &$cx, ch, $g) };
        }
    }};
}

/// One row: picks the group size, then [`row_groups`]: groups of 2 once a group of 4 puts more
/// lines into one L1 set than it has ways (8), unlike the AVX2 kernel, which keeps groups of 4 up
/// to twice that. Measured on one Emerald Rapids core (`report dwconv3x3/avx512`, builds
/// alternating, median % of peak): the AVX2 rule took dw07-dw11 (14x14x512, stride 1) from 40-41
/// to 31-32 and dw05/dw06 from 45-53 / 33 to 32-39 / 24-25; groups of 4 everywhere 30-39 on
/// dw07-dw11. So this rule stays (`reports/2026-11-26_emr-avx512/run4-dw-groups/`).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 32` and stride `S`; the CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn row<const S: usize>(r: &DwRow) {
    let (g4, g2) = (lines_per_set(r, S, 4), lines_per_set(r, S, 2));
    if g4 <= L1_WAYS || g4 <= g2 {
        // SAFETY: forwarded.
        unsafe { row_groups::<S, 4>(r) }
    } else {
        // SAFETY: forwarded.
        unsafe { row_groups::<S, 2>(r) }
    }
}

/// One row in groups of `GROUP` output pixels, then channel tiles.
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 32` and stride `S`; the CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn row_groups<const S: usize, const GROUP: usize>(r: &DwRow) {
    let tail = r.channels % 16;
    let cx = Ctx {
        vmin: _mm512_set1_ps(r.min),
        vmax: _mm512_set1_ps(r.max),
        mask: if tail == 0 {
            !0
        } else {
            ((1u32 << tail) - 1) as __mmask16
        },
    };
    let window = (GROUP - 1) * S + 3;
    let mut ox = 0;
    while ox < r.out_width {
        let n = (r.out_width - ox).min(GROUP);
        let c0 = (ox * S) as isize - r.pad_left as isize;
        let lo = (-c0).max(0) as usize;
        let hi = (r.in_width as isize - c0).clamp(0, window as isize) as usize;
        let g = Group { ox, c0, n, lo, hi };
        if n == GROUP && lo == 0 && hi == window {
            each_tile!(r, cx, g, group, false);
        } else {
            each_tile!(r, cx, g, group, true);
        }
        ox += n;
    }
}

/// Loads 16 channels at `p`, or (when `M`) the lanes `mask` enables, zeros elsewhere.
///
/// # Safety
///
/// `p .. p+16` is readable, or (when `M`) the lanes `mask` enables are.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn load<const M: bool>(p: *const f32, mask: __mmask16) -> __m512 {
    if M {
        // SAFETY: the caller guarantees the enabled lanes are readable; disabled lanes are not
        // accessed (no read, no fault).
        unsafe { _mm512_maskz_loadu_ps(mask, p) }
    } else {
        // SAFETY: the caller guarantees 16 readable floats at `p`.
        unsafe { _mm512_loadu_ps(p) }
    }
}

/// Clamps `y` to `[min, max]` (NaN stays NaN) and stores it at `p` (when `M`, the masked lanes).
///
/// # Safety
///
/// `p .. p+16` is writable, or (when `M`) the lanes `cx.mask` enables are.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn store<const M: bool>(p: *mut f32, y: __m512, cx: &Ctx) {
    // `max`/`min` return their second operand when either is NaN: `y` goes second.
    let y = _mm512_min_ps(cx.vmax, _mm512_max_ps(cx.vmin, y));
    if M {
        // SAFETY: the caller guarantees the enabled lanes are writable; others are untouched.
        unsafe { _mm512_mask_storeu_ps(p, cx.mask, y) }
    } else {
        // SAFETY: the caller guarantees 16 writable floats at `p`.
        unsafe { _mm512_storeu_ps(p, y) }
    }
}

/// One group of output pixels for the channel tile starting at `ch`, with `H` `zmm` per pixel
/// (the last one masked when `M`). `E` (edge): skip the window columns outside `g.lo .. g.hi`
/// and the outputs from `g.n` on; without `E` the group is full and all its columns are inside.
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 32` and stride `S`; `ch` is a multiple of 32 below
/// `channels`; channels `ch .. ch + 16 * H` exist, except that when `M` the last `zmm` covers only
/// the lanes `cx.mask` enables, which are exactly the channels left; `g` was built by
/// [`row`] (so `g.ox + g.n <= out_width`, and window columns `g.lo .. g.hi` are in the row) and
/// when `E` is false, `g.n == GROUP` and the whole window is in the row; `GROUP` is 2 or 4.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn group<
    const S: usize,
    const GROUP: usize,
    const H: usize,
    const M: bool,
    const E: bool,
>(
    r: &DwRow,
    cx: &Ctx,
    ch: usize,
    g: Group,
) {
    // SAFETY: tile `ch / 16` of the packed weights, inside the `ceil(channels / 16)` tiles.
    let wp = unsafe { r.weights.add(ch / C_TILE * 10 * C_TILE) };
    // SAFETY: the bias, 32 floats at the start of the tile; `16h + 16 <= 32`.
    let bias: [__m512; H] = std::array::from_fn(|h| unsafe { _mm512_loadu_ps(wp.add(16 * h)) });
    let mut acc = [bias; GROUP];
    let is = r.in_stride;
    for ky in 0..3 {
        let w: [[__m512; H]; 3] = std::array::from_fn(|kx| {
            std::array::from_fn(|h| {
                // SAFETY: tap (ky, kx) of the tile, 32 floats; `16h + 16 <= 32`.
                unsafe { _mm512_loadu_ps(wp.add((1 + 3 * ky + kx) * C_TILE + 16 * h)) }
            })
        });
        for j in 0..(GROUP - 1) * S + 3 {
            if E && (j < g.lo || j >= g.hi) {
                continue;
            }
            // Window column j is input column `c0 + j`, in `0 .. in_width` (`lo <= j < hi`).
            let col = (g.c0 + j as isize) as usize;
            for h in 0..H {
                // SAFETY: pixel `col < in_width` of row `ky`, channels `ch + 16h ..`: 16 whole
                // channels, or the masked tail lanes when this is the last, masked `zmm`.
                let x = unsafe {
                    let p = r.rows[ky].add(col * is + ch + 16 * h);
                    if M && h == H - 1 {
                        load::<true>(p, cx.mask)
                    } else {
                        load::<false>(p, cx.mask)
                    }
                };
                for (o, acc) in acc.iter_mut().enumerate() {
                    let kx = j.wrapping_sub(S * o);
                    if kx < 3 && (!E || o < g.n) {
                        acc[h] = _mm512_fmadd_ps(x, w[kx][h], acc[h]);
                    }
                }
            }
        }
    }
    for (o, acc) in acc.iter().enumerate() {
        if E && o >= g.n {
            break;
        }
        for h in 0..H {
            // SAFETY: output pixel `ox + o < out_width`, channels as for the loads above.
            unsafe {
                let p = r.out.add((g.ox + o) * r.out_stride + ch + 16 * h);
                if M && h == H - 1 {
                    store::<true>(p, acc[h], cx);
                } else {
                    store::<false>(p, acc[h], cx);
                }
            }
        }
    }
}
