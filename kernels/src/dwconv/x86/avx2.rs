//! AVX2+FMA depthwise 3x3 row kernels, stride 1 and stride 2, channel tile 16 (two `ymm`).
//!
//! # Loop order
//!
//! One call computes one output row. The row is cut into groups of `G` consecutive output pixels
//! (`G` = 4, or 2 for power-of-two pixel strides, below); for each group the kernel walks every
//! 16-channel tile, and for each tile it keeps the `G x 16` outputs in `2G` `ymm` accumulators
//! while it sweeps the group's input window one kernel row (`ky`) at a time:
//!
//! ```text
//!  for group of G outputs (ox .. ox+G):          input columns c0 .. c0 + (G-1)S+3
//!    for tile of 16 channels:                    acc[G][2] = bias
//!      for ky in 0..3:                           load the 3 taps of this row (6 ymm)
//!        for each input column j of the window:  load x (2 ymm, one 64-byte line)
//!          acc[o] += x * w[ky][j - S*o]          for the (1..3) outputs o that use column j
//! ```
//!
//! Every input vector is loaded once per group and feeds all the outputs that need it (up to 3
//! at stride 1, up to 2 at stride 2); the 9 taps are loaded once per group and tile, 3 at a time
//! (6 `ymm`), and each feeds all `G` outputs. Register budget at `G` = 4: 8 accumulators, 6 taps,
//! 1-2 inputs. Per group and tile (72 FMAs) stride 1 needs 36 input + 20 weight loads (0.78 per
//! FMA), stride 2 needs 54 + 20 (1.03); the 8 accumulators are 8 independent FMA chains, enough
//! to cover the 4-cycle FMA latency of two pipes.
//!
//! Why groups outside and channel tiles inside: both halves of each 64-byte line are loaded back
//! to back, so a line is used whole as soon as it arrives, and consecutive tiles read consecutive
//! lines of each pixel, which the hardware prefetchers follow. (Walking the whole row per tile
//! instead keeps weights in registers longer but strides across pages; it measured slower.)
//!
//! # What bounds it
//!
//! For 128 channels and more, three input rows exceed L1, so every call streams its three rows
//! from L2: about 0.7 byte per FLOP at stride 1 and 1.3 at stride 2, against ~25 B/cycle of L2
//! bandwidth and 32 FLOP/cycle of FMA peak. A loads-only copy of this kernel's access pattern runs
//! at about the speed of the whole kernel on the stride-2 and 512/1024-channel layers.
//!
//! Pixel strides of 2 or 4 KiB (512 or 1024 channels) put all the lines of one group and tile
//! into one or two of L1's 64 sets. Up to about twice its 8 ways per set, groups of 4 still win
//! (each line is read whole, back to back), except at stride 2 where groups of 2 fit the ways;
//! beyond that (1024 channels at stride 2: 27 lines per set) `row` uses `G` = 2 (`lines_per_set`,
//! `ALIASED_LINES_OK`).
//!
//! # Borders and tails
//!
//! A group whose window reaches into the left/right zero padding, or which has fewer than `G`
//! outputs (the end of the row), runs the same code with the out-of-range columns skipped (never
//! read) and the missing outputs neither computed nor stored. The channel tail (`channels % 16`)
//! runs with one `ymm` per pixel when it is at most 8 channels, and its last `ymm` uses masked
//! loads and stores (`vmaskmovps`), so nothing past the last channel of a pixel is touched.

use std::arch::x86_64::*;

use super::{lines_per_set, L1_WAYS};
use crate::dwconv::ukernel::{DwKernel, DwRow};
use crate::Isa;

/// Channel tile of the packed weights (two `ymm` of `f32`).
pub const C_TILE: usize = 16;

/// `dwconv3x3_f32_c16_avx2`: stride 1.
pub static DWCONV3X3_F32_C16_AVX2: DwKernel = DwKernel {
    name: "dwconv3x3_f32_c16_avx2",
    isa: Isa::Avx2,
    stride: 1,
    c_tile: C_TILE,
    func: dwconv3x3_f32_c16_avx2,
};

/// `dwconv3x3s2_f32_c16_avx2`: stride 2.
pub static DWCONV3X3S2_F32_C16_AVX2: DwKernel = DwKernel {
    name: "dwconv3x3s2_f32_c16_avx2",
    isa: Isa::Avx2,
    stride: 2,
    c_tile: C_TILE,
    func: dwconv3x3s2_f32_c16_avx2,
};

/// Depthwise 3x3, stride 1, one output row (see [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 16`; the CPU has AVX2 and FMA.
pub unsafe fn dwconv3x3_f32_c16_avx2(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, AVX2 + FMA available).
    unsafe { row::<1>(r) }
}

/// Depthwise 3x3, stride 2, one output row (see [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 16`; the CPU has AVX2 and FMA.
pub unsafe fn dwconv3x3s2_f32_c16_avx2(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, AVX2 + FMA available).
    unsafe { row::<2>(r) }
}

/// Row-wide constants.
#[derive(Clone, Copy)]
struct Ctx {
    vmin: __m256,
    vmax: __m256,
    /// Lanes `0 .. channels % 8` (all lanes when that is 0; then unused).
    mask: __m256i,
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
/// `H = 2` unmasked `ymm`, then the tail with one or two `ymm`, the last one masked unless the
/// tail is exactly 8 channels.
macro_rules! each_tile {
    ($r:expr, $cx:expr, $g:expr, $f:ident, $edge:expr) => {{
        let full = $r.channels / C_TILE;
        let rem = $r.channels % C_TILE;
        let ch = full * C_TILE;
        for t in 0..full {
            // SAFETY: channels `16t .. 16t+16 <= channels`: a whole tile; `$g` is valid.
            unsafe { $f::<S, GROUP, 2, false, $edge>($r, &$cx, t * C_TILE, $g) };
        }
        if rem > 8 {
            // SAFETY: channels `ch .. ch+8` whole, `ch+8 .. channels` under `mask`.
            unsafe { $f::<S, GROUP, 2, true, $edge>($r, &$cx, ch, $g) };
        } else if rem == 8 {
            // SAFETY: channels `ch .. ch+8 == channels`, one whole `ymm`.
            unsafe { $f::<S, GROUP, 1, false, $edge>($r, &$cx, ch, $g) };
        } else if rem > 0 {
            // SAFETY: channels `ch .. channels` under `mask`.
            unsafe { $f::<S, GROUP, 1, true, $edge>($r, &$cx, ch, $g) };
        }
    }};
}

/// The most lines of one group-and-tile step in a single L1 set for which groups of 4 can still
/// win. Measured on Zen 3 with 64-byte-aligned rows (best of run, % of peak, groups of 4 vs 2):
/// 512 channels at stride 1 (9 lines per set against 6) 43 vs 36; at stride 2 (15 against 9)
/// 31-32 vs 28-30 on 14x14, level on 28x28; 1024 channels at stride 2 (27) 20 vs 22-23. Each line
/// of a step is read whole, back to back, so a set holding more lines than its ways costs little
/// until the lines in flight outnumber them about twice. At stride 2, though, groups of 2 win
/// when they fit the ways: 256 channels (9 lines against 6) 38 vs 33-34.
const ALIASED_LINES_OK: usize = 2 * L1_WAYS;

/// One row: picks the group size, then [`row_groups`].
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 16` and stride `S`; the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn row<const S: usize>(r: &DwRow) {
    let (g4, g2) = (lines_per_set(r, S, 4), lines_per_set(r, S, 2));
    // Past the ways, groups of 4 still win while their lines stay within twice the ways, except
    // at stride 2 where groups of 2 fit the ways (their input reuse is closer to that of 4).
    let four = g4 <= L1_WAYS || g4 <= g2 || (g4 <= ALIASED_LINES_OK && (S == 1 || g2 > L1_WAYS));
    if four {
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
/// The `DwRowFn` contract with `C_TILE = 16` and stride `S`; the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn row_groups<const S: usize, const GROUP: usize>(r: &DwRow) {
    let tail = r.channels % 8;
    let cx = Ctx {
        vmin: _mm256_set1_ps(r.min),
        vmax: _mm256_set1_ps(r.max),
        mask: _mm256_cmpgt_epi32(
            _mm256_set1_epi32(if tail == 0 { 8 } else { tail as i32 }),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        ),
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

/// Loads 8 channels at `p`, or (when `M`) the lanes `mask` enables, zeros elsewhere.
///
/// # Safety
///
/// `p .. p+8` is readable, or (when `M`) the lanes `mask` enables are.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load<const M: bool>(p: *const f32, mask: __m256i) -> __m256 {
    if M {
        // SAFETY: the caller guarantees the enabled lanes are readable; disabled lanes are not
        // accessed (no read, no fault).
        unsafe { _mm256_maskload_ps(p, mask) }
    } else {
        // SAFETY: the caller guarantees 8 readable floats at `p`.
        unsafe { _mm256_loadu_ps(p) }
    }
}

/// Clamps `y` to `[min, max]` (NaN stays NaN) and stores it at `p` (when `M`, the masked lanes).
///
/// # Safety
///
/// `p .. p+8` is writable, or (when `M`) the lanes `cx.mask` enables are.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store<const M: bool>(p: *mut f32, y: __m256, cx: &Ctx) {
    // `max`/`min` return their second operand when either is NaN: `y` goes second.
    let y = _mm256_min_ps(cx.vmax, _mm256_max_ps(cx.vmin, y));
    if M {
        // SAFETY: the caller guarantees the enabled lanes are writable; others are untouched.
        unsafe { _mm256_maskstore_ps(p, cx.mask, y) }
    } else {
        // SAFETY: the caller guarantees 8 writable floats at `p`.
        unsafe { _mm256_storeu_ps(p, y) }
    }
}

/// One group of output pixels for the channel tile starting at `ch`, with `H` `ymm` per pixel
/// (the last one masked when `M`). `E` (edge): skip the window columns outside `g.lo .. g.hi`
/// and the outputs from `g.n` on; without `E` the group is full and all its columns are inside.
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 16` and stride `S`; `ch` is a multiple of 16 below
/// `channels`; channels `ch .. ch + 8 * H` exist, except that when `M` the last `ymm` covers only
/// the lanes `cx.mask` enables, which are exactly the channels left; `g` was built by
/// [`row`] (so `g.ox + g.n <= out_width`, and window columns `g.lo .. g.hi` are in the row) and
/// when `E` is false, `g.n == GROUP` and the whole window is in the row; `GROUP` is 2 or 4.
#[target_feature(enable = "avx2,fma")]
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
    // SAFETY: the bias, 16 floats at the start of the tile.
    let bias: [__m256; H] = std::array::from_fn(|h| unsafe { _mm256_loadu_ps(wp.add(8 * h)) });
    let mut acc = [bias; GROUP];
    let is = r.in_stride;
    for ky in 0..3 {
        let w: [[__m256; H]; 3] = std::array::from_fn(|kx| {
            std::array::from_fn(|h| {
                // SAFETY: tap (ky, kx) of the tile, 16 floats; `8h + 8 <= 16`.
                unsafe { _mm256_loadu_ps(wp.add((1 + 3 * ky + kx) * 16 + 8 * h)) }
            })
        });
        for j in 0..(GROUP - 1) * S + 3 {
            if E && (j < g.lo || j >= g.hi) {
                continue;
            }
            // Window column j is input column `c0 + j`, in `0 .. in_width` (`lo <= j < hi`).
            let col = (g.c0 + j as isize) as usize;
            for h in 0..H {
                // SAFETY: pixel `col < in_width` of row `ky`, channels `ch + 8h ..`: 8 whole
                // channels, or the masked tail lanes when this is the last, masked `ymm`.
                let x = unsafe {
                    let p = r.rows[ky].add(col * is + ch + 8 * h);
                    if M && h == H - 1 {
                        load::<true>(p, cx.mask)
                    } else {
                        load::<false>(p, cx.mask)
                    }
                };
                for (o, acc) in acc.iter_mut().enumerate() {
                    let kx = j.wrapping_sub(S * o);
                    if kx < 3 && (!E || o < g.n) {
                        acc[h] = _mm256_fmadd_ps(x, w[kx][h], acc[h]);
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
                let p = r.out.add((g.ox + o) * r.out_stride + ch + 8 * h);
                if M && h == H - 1 {
                    store::<true>(p, acc[h], cx);
                } else {
                    store::<false>(p, acc[h], cx);
                }
            }
        }
    }
}
