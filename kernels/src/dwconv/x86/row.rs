//! The x86 depthwise 3x3 row kernel, written once for both vector widths: [`Lanes`] is what it
//! needs of a vector ISA (`Ymm` in `avx2.rs`, `Zmm` in `avx512.rs`). Each ISA file calls
//! [`row_groups`] from its own `#[target_feature]` function, where everything here is inlined,
//! and chooses the group size there (the rule differs by ISA and was measured for each).
//!
//! # Loop order
//!
//! One call computes one output row. The row is cut into groups of `G` consecutive output pixels
//! (`G` = 4, or 2 for some power-of-two pixel strides); for each group the kernel walks every
//! channel tile (two vectors: 16 channels in `ymm`, 32 in `zmm`), and for each tile it keeps the
//! `G x C_TILE` outputs in `2G` vector accumulators while it sweeps the group's input window one
//! kernel row (`ky`) at a time:
//!
//! ```text
//!  for group of G outputs (ox .. ox+G):          input columns c0 .. c0 + (G-1)S+3
//!    for tile of C_TILE channels:                acc[G][2] = bias
//!      for ky in 0..3:                           load the 3 taps of this row (6 vectors)
//!        for each input column j of the window:  load x (2 vectors)
//!          acc[o] += x * w[ky][j - S*o]          for the (1..3) outputs o that use column j
//! ```
//!
//! Every input vector is loaded once per group and feeds all the outputs that need it (up to 3
//! at stride 1, up to 2 at stride 2); the 9 taps are loaded once per group and tile, 3 at a time
//! (6 vectors), and each feeds all `G` outputs. Register budget at `G` = 4: 8 accumulators, 6
//! taps, 1-2 inputs (of 16 `ymm`; `zmm` has 32 but the same plan). Per group and tile (72 FMAs)
//! stride 1 needs 36 input + 20 weight loads (0.78 per FMA), stride 2 needs 54 + 20 (1.03); the 8
//! accumulators are 8 independent FMA chains, enough to cover the 4-cycle FMA latency of two pipes.
//!
//! Why groups outside and channel tiles inside: the two vectors of a pixel's tile are loaded back
//! to back, so a line is used whole as soon as it arrives, and consecutive tiles read consecutive
//! lines of each pixel, which the hardware prefetchers follow. (Walking the whole row per tile
//! instead keeps weights in registers longer but strides across pages; it measured slower. Tried
//! again for 512+ channels, where a tile's lines sit in two L1 sets and the row walk would read
//! each input line once per row instead of 1.5 times: Zen 3, `report dwconv3x3/avx2` alternating,
//! dw07-dw11 best 45-46 -> 43-45% of peak, dw12 28-31 -> 24-25, dw13 level; and it stalls when
//! the output sits at the input's offset modulo the 2 KiB pixel stride (probe, 14x14x512: 33%
//! against 44%), as each group's loads follow the previous group's stores of the same tile.)
//!
//! Also measured slower: groups of 8 outputs with one vector per pixel (a tile's two vectors
//! in turn): 8 accumulators, 3 taps and an input in 12 registers, and per 72 FMAs 30 input + 10
//! weight loads at stride 1 (0.56 per FMA) and 51 + 10 at stride 2 (0.85), against 0.78 and
//! 1.03 here. Same bits, but slower (Emerald Rapids VM, AVX2, interior groups only, each layer
//! hot, the two alternating in one process on the same buffers, medians of 30 rounds, with the
//! window's 17 columns unrolled by hand: left to LLVM they ran 1.5-2.5x slower still): dw01
//! 1.33x the time, dw03 1.47, dw05 1.36, dw07 1.26 at stride 1; dw02 1.23, dw04 1.32, dw06 1.17
//! at stride 2. Half-line loads, and each tile's lines read in two passes, cost more than the
//! loads saved.
//!
//! # Register allocation
//!
//! Inlined into the row loop beside the edge groups' code, the AVX2 stride-2 interior loop was
//! 221-237 instructions per tile (16 registers for 8 accumulators, 6 taps and the inputs): LLVM
//! spilled the pixel stride and reloaded it from the stack about 50 times per iteration while
//! three callee-saved registers stayed unused; and a change to the edge code alone could move
//! the stride-1 loop from 169 to 204 instructions (spills). Session 17 tried the interior run as
//! a function of its own and measured it level on an Emerald Rapids VM; since session 22 both
//! pieces are (see [`RowLanes`]), with the edges' columns as constants: `scripts/mca-x86.sh`
//! puts the stride-1 loop at 166 instructions and 58 loads per 72 FMAs, the stride-2 one at 175
//! and 79 (it was 221 and 127): llvm-mca 71.9 / 70.5% of the FMA peak on znver3 (stride 2 was
//! 62.4%), 68.7 / 58.9% on sapphirerapids (64.2 / 58.7).
//!
//! # Borders and tails
//!
//! A group whose window reaches into the left/right zero padding, or which has fewer than `G`
//! outputs (the end of the row), runs the same code with the out-of-range columns skipped (never
//! read) and the missing outputs neither computed nor stored. In groups of 4 the output count
//! of such a group is a constant of its instance (1-4): at 14 and 7 pixels per row half or all
//! of the groups are edge groups, and testing the count at every FMA had cost the 14x14x512
//! layers 3-5 points of peak (Zen 3, `report dwconv3x3/avx2`, builds alternating: dw07-dw11
//! best 43-44 -> 46-47%, median 29-33 -> 34-39%; dw13 best 40-41 -> 42%). So are the skipped
//! columns in the two usual cases, a row's first group in a one-column left padding and a last
//! group in a one-column right padding; other edges test each column against `lo .. hi`.
//!
//! Runs of interior groups and the edge groups are separate functions of each ISA file (see
//! [`RowLanes`]). Together, against one function with the columns tested (session 22, Emerald
//! Rapids VM, AVX2, each layer hot, old and new kernels alternating in one process, 60 pairs,
//! median per-pair time ratio, outputs bit-identical): dw13 (7x7x1024) 0.935, dw12 0.956, dw05
//! 0.923, dw03 0.943, dw04 0.947, dw07 0.983, dw01 0.978, dw02 / dw06 level; callgrind: 21%
//! fewer instructions on dw13, 12-14% on the 14x14x512 layers, 4-7% elsewhere. The channel tail
//! (`channels % C_TILE`) runs with one vector per pixel when it is at most `LANES` channels, and
//! its last vector uses masked loads and stores ([`Lanes::load_masked`] /
//! [`Lanes::store_masked`], which neither read, write nor fault on disabled lanes), so nothing
//! past the last channel of a pixel is touched.

use crate::dwconv::ukernel::DwRow;
use crate::lanes::Lanes;

/// A vector width the row kernel runs on: the [`Lanes`] operations, the llvm-mca markers of its
/// interior loop, and its two out-of-line pieces of a row.
///
/// A row is cut into runs of interior groups and single edge groups, and each ISA compiles the
/// two as functions of their own (`#[target_feature]`, never inlined: one call per run or edge
/// group), so that LLVM allocates the interior loop's registers without the edge code around
/// it. Inlined into one function, a change to the edge groups' code had moved the stride-1
/// interior loop from 169 to 204 instructions (58 to 93 loads per 72 FMAs: spills) and the
/// stride-2 one the other way, from 221 to 172 (`scripts/mca-x86.sh`).
pub(super) trait RowLanes: Lanes {
    /// An assembler comment for llvm-mca around the interior loop (`scripts/mca-*.sh`), `begin`
    /// or end, stride `s`; nothing unless the ISA marks its loops.
    #[inline(always)]
    fn mca_mark(_begin: bool, _s: usize) {}

    /// [`interior_run`] on this ISA, out of line.
    ///
    /// # Safety
    ///
    /// As [`interior_run`]; the CPU has this ISA.
    unsafe fn interior<const S: usize, const GROUP: usize>(r: &DwRow, ox: usize, groups: usize);

    /// [`edge_group`] on this ISA, out of line.
    ///
    /// # Safety
    ///
    /// As [`edge_group`]; the CPU has this ISA.
    unsafe fn edge<const S: usize, const GROUP: usize>(r: &DwRow, g: Group);
}

/// Row-wide constants.
#[derive(Clone, Copy)]
struct Ctx<X: RowLanes> {
    vmin: X::V,
    vmax: X::V,
    /// Lanes `0 .. channels % LANES` (all lanes when that is 0; then unused).
    mask: X::Mask,
}

impl<X: RowLanes> Ctx<X> {
    /// # Safety
    ///
    /// `X`'s ISA is available, and the caller is compiled for it.
    #[inline(always)]
    unsafe fn new(r: &DwRow) -> Ctx<X> {
        let tail = r.channels % X::LANES;
        // SAFETY: `X`'s ISA is available (the caller's contract); `1 <= n <= LANES`.
        unsafe {
            Ctx {
                vmin: X::splat(r.min),
                vmax: X::splat(r.max),
                mask: X::first_lanes(if tail == 0 { X::LANES } else { tail }),
            }
        }
    }
}

/// One group of output pixels `ox .. ox + n` (`n <=` the group size). Its input window starts
/// at column `c0 = ox * S - pad_left` (negative in the left padding); window columns `lo .. hi`
/// are inside `0 .. in_width`. Built only by [`Group::at`].
#[derive(Clone, Copy)]
pub(super) struct Group {
    ox: usize,
    c0: isize,
    n: usize,
    lo: usize,
    hi: usize,
}

/// Input columns a group of `group` outputs at stride `s` reads: `(group - 1) * s + 3`.
pub(super) const fn window(s: usize, group: usize) -> usize {
    (group - 1) * s + 3
}

impl Group {
    /// The group of up to `GROUP` outputs from `ox` (`< out_width`) of a stride-`S` row.
    #[inline(always)]
    fn at<const S: usize, const GROUP: usize>(r: &DwRow, ox: usize) -> Group {
        let window = window(S, GROUP);
        let n = (r.out_width - ox).min(GROUP);
        let c0 = (ox * S) as isize - r.pad_left as isize;
        let lo = (-c0).max(0) as usize;
        let hi = (r.in_width as isize - c0).clamp(0, window as isize) as usize;
        Group { ox, c0, n, lo, hi }
    }

    /// Full, with its whole window inside the row.
    #[inline(always)]
    fn is_interior<const S: usize, const GROUP: usize>(&self) -> bool {
        self.n == GROUP && self.lo == 0 && self.hi == window(S, GROUP)
    }
}

/// Which window columns a group's code skips (its `COLS` parameter): none (an interior group),
/// the columns outside `g.lo .. g.hi` (tested at run time), or, as constants, the first column
/// (the left padding of the row's first group) or the columns from the last one its outputs use
/// (the right padding of its last group). The constant cases compile to straight-line code; the
/// tested one costs two compares and branches per column, tile and kernel row (at 7 pixels per
/// row every group is an edge group, and those were 11% of a 7x7x1024 layer's instructions).
const ALL_IN: u8 = 0;
const SKIP_OUTSIDE: u8 = 1;
const SKIP_FIRST: u8 = 2;
const SKIP_LAST: u8 = 3;

/// One row in groups of `GROUP` output pixels (2 or 4), then channel tiles: runs of interior
/// groups through [`RowLanes::interior`], each edge group through [`RowLanes::edge`].
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 2 * X::LANES` and stride `S`; the CPU has `X`'s ISA.
#[inline(always)]
pub(super) unsafe fn row_groups<X: RowLanes, const S: usize, const GROUP: usize>(r: &DwRow) {
    let mut ox = 0;
    while ox < r.out_width {
        let g = Group::at::<S, GROUP>(r, ox);
        if g.is_interior::<S, GROUP>() {
            let mut groups = 1;
            while ox + groups * GROUP < r.out_width
                && Group::at::<S, GROUP>(r, ox + groups * GROUP).is_interior::<S, GROUP>()
            {
                groups += 1;
            }
            // SAFETY: forwarded; groups `ox + k * GROUP`, `k < groups`, are interior.
            unsafe { X::interior::<S, GROUP>(r, ox, groups) };
            ox += groups * GROUP;
        } else {
            // SAFETY: forwarded; `g` was built by `Group::at`.
            unsafe { X::edge::<S, GROUP>(r, g) };
            ox += g.n;
        }
    }
}

/// `groups` interior groups from output `ox`: full, their windows inside the row.
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 2 * X::LANES` and stride `S`; the CPU has `X`'s ISA,
/// and the caller is that ISA's `#[target_feature]` function (this inlines into it); the groups
/// at `ox + k * GROUP` for `k < groups` are interior ([`Group::is_interior`]).
#[inline(always)]
pub(super) unsafe fn interior_run<X: RowLanes, const S: usize, const GROUP: usize>(
    r: &DwRow,
    ox: usize,
    groups: usize,
) {
    // SAFETY: forwarded (the caller's contract).
    let cx = unsafe { Ctx::<X>::new(r) };
    for k in 0..groups {
        let g = Group::at::<S, GROUP>(r, ox + k * GROUP);
        // SAFETY: forwarded; `g` is interior.
        unsafe { tiles::<X, S, GROUP, GROUP, ALL_IN>(r, &cx, g) };
    }
}

/// One edge group: in the left or right padding, or with fewer than `GROUP` outputs.
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 2 * X::LANES` and stride `S`; the CPU has `X`'s ISA,
/// and the caller is that ISA's `#[target_feature]` function (this inlines into it); `g` was
/// built by [`Group::at`] for this row.
#[inline(always)]
pub(super) unsafe fn edge_group<X: RowLanes, const S: usize, const GROUP: usize>(
    r: &DwRow,
    g: Group,
) {
    // SAFETY: forwarded (the caller's contract).
    let cx = unsafe { Ctx::<X>::new(r) };
    // Columns `0 .. window(S, n)` are the ones `n` outputs use.
    let first_only = g.lo == 1 && g.hi == window(S, GROUP);
    let last_only = g.lo == 0 && g.hi == window(S, g.n) - 1;
    // SAFETY: forwarded; each arm's `N` is 0 or `g.n`, and its `COLS` skips exactly the
    // columns outside `g.lo .. g.hi` that the group's outputs would read.
    unsafe {
        // Edge groups of 4 get their output count as a constant (`N`) too, so the FMAs of
        // the outputs past it are not compiled rather than tested; groups of 2 test `g.n`
        // (`N = 0`): the 4 copies cost more code than they save there.
        match g.n {
            _ if GROUP != 4 => tiles::<X, S, GROUP, 0, SKIP_OUTSIDE>(r, &cx, g),
            4 if first_only => tiles::<X, S, GROUP, 4, SKIP_FIRST>(r, &cx, g),
            1 if last_only => tiles::<X, S, GROUP, 1, SKIP_LAST>(r, &cx, g),
            2 if last_only => tiles::<X, S, GROUP, 2, SKIP_LAST>(r, &cx, g),
            3 if last_only => tiles::<X, S, GROUP, 3, SKIP_LAST>(r, &cx, g),
            4 if last_only => tiles::<X, S, GROUP, 4, SKIP_LAST>(r, &cx, g),
            1 => tiles::<X, S, GROUP, 1, SKIP_OUTSIDE>(r, &cx, g),
            2 => tiles::<X, S, GROUP, 2, SKIP_OUTSIDE>(r, &cx, g),
            3 => tiles::<X, S, GROUP, 3, SKIP_OUTSIDE>(r, &cx, g),
            _ => tiles::<X, S, GROUP, 4, SKIP_OUTSIDE>(r, &cx, g),
        }
    }
}

/// One group over every channel tile: full tiles with `H = 2` unmasked vectors, then the tail
/// with one or two vectors, the last one masked unless the tail is exactly `LANES` channels.
///
/// # Safety
///
/// As [`group`], for all channels of the row.
#[inline(always)]
unsafe fn tiles<X: RowLanes, const S: usize, const GROUP: usize, const N: usize, const COLS: u8>(
    r: &DwRow,
    cx: &Ctx<X>,
    g: Group,
) {
    let c_tile = 2 * X::LANES;
    let full = r.channels / c_tile;
    let rem = r.channels % c_tile;
    let ch = full * c_tile;
    for t in 0..full {
        if COLS == ALL_IN && GROUP == 4 {
            X::mca_mark(true, S);
        }
        // SAFETY: channels `t*C_TILE .. (t+1)*C_TILE <= channels`: a whole tile; `g` is valid.
        unsafe { group::<X, S, GROUP, N, 2, false, COLS>(r, cx, t * c_tile, g) };
        if COLS == ALL_IN && GROUP == 4 {
            X::mca_mark(false, S);
        }
    }
    // The tail tile at `ch`: `mask` enables exactly the lanes of the channels left in its last
    // vector when that vector is masked.
    if rem > X::LANES {
        // SAFETY: channels `ch .. ch+LANES` whole, `ch+LANES .. channels` under `mask`.
        unsafe { group::<X, S, GROUP, N, 2, true, COLS>(r, cx, ch, g) };
    } else if rem == X::LANES {
        // SAFETY: channels `ch .. ch+LANES == channels`, one whole vector.
        unsafe { group::<X, S, GROUP, N, 1, false, COLS>(r, cx, ch, g) };
    } else if rem > 0 {
        // SAFETY: channels `ch .. channels` under `mask`.
        unsafe { group::<X, S, GROUP, N, 1, true, COLS>(r, cx, ch, g) };
    }
}

/// One group of output pixels for the channel tile starting at `ch`, with `H` vectors per pixel
/// (the last one masked when `M`), computing and storing outputs `0 .. n`: `n = N`, or `g.n`
/// when `N` is 0. `COLS` says which window columns to skip (those outside `g.lo .. g.hi`, as
/// constants where it can); `ALL_IN`: the group is full (`N == GROUP`) and all its columns are
/// inside.
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 2 * X::LANES` and stride `S`; `X`'s ISA is available;
/// `ch` is a multiple of `C_TILE` below `channels`; channels `ch .. ch + LANES * H` exist, except
/// that when `M` the last vector covers only the lanes `cx.mask` enables, which are exactly the
/// channels left; `g` was built by [`Group::at`] (so `g.ox + g.n <= out_width`, and window
/// columns `g.lo .. g.hi` are in the row); `N` is 0 or `g.n`; `COLS` skips every column outside
/// `g.lo .. g.hi` that outputs `0 .. n` use (`ALL_IN`: `N == g.n == GROUP` and the whole window
/// is in the row); `GROUP` is 2 or 4.
#[inline(always)]
unsafe fn group<
    X: RowLanes,
    const S: usize,
    const GROUP: usize,
    const N: usize,
    const H: usize,
    const M: bool,
    const COLS: u8,
>(
    r: &DwRow,
    cx: &Ctx<X>,
    ch: usize,
    g: Group,
) {
    let (lanes, c_tile) = (X::LANES, 2 * X::LANES);
    let n = if N == 0 { g.n } else { N };
    // SAFETY: tile `ch / C_TILE` of the packed weights, inside the `ceil(channels / C_TILE)`
    // tiles; the bias is its first `C_TILE` floats and `LANES * h + LANES <= C_TILE`.
    let wp = unsafe { r.weights.add(ch / c_tile * 10 * c_tile) };
    // (Arrays start as `vmin` only to be overwritten.)
    let mut bias = [cx.vmin; H];
    for (h, b) in bias.iter_mut().enumerate() {
        // SAFETY: as above.
        *b = unsafe { X::load(wp.add(lanes * h)) };
    }
    let mut acc = [bias; GROUP];
    let is = r.in_stride;
    for ky in 0..3 {
        let mut w = [[cx.vmin; H]; 3];
        for (kx, w) in w.iter_mut().enumerate() {
            for (h, w) in w.iter_mut().enumerate() {
                // SAFETY: tap (ky, kx) of the tile, `C_TILE` floats; `LANES * h + LANES <= C_TILE`.
                *w = unsafe { X::load(wp.add((1 + 3 * ky + kx) * c_tile + lanes * h)) };
            }
        }
        for j in 0..window(S, GROUP) {
            let skip = match COLS {
                ALL_IN => false,
                SKIP_FIRST => j == 0,
                SKIP_LAST => j >= window(S, n) - 1,
                _ => j < g.lo || j >= g.hi,
            };
            if skip {
                continue;
            }
            // Window column j is input column `c0 + j`, in `0 .. in_width` (`lo <= j < hi`).
            let col = (g.c0 + j as isize) as usize;
            for h in 0..H {
                // SAFETY: pixel `col < in_width` of row `ky`, channels `ch + LANES h ..`: `LANES`
                // whole channels, or the masked tail lanes when this is the last, masked vector.
                let x = unsafe {
                    let p = r.rows[ky].add(col * is + ch + lanes * h);
                    if M && h == H - 1 {
                        X::load_masked(p, cx.mask)
                    } else {
                        X::load(p)
                    }
                };
                for (o, acc) in acc.iter_mut().enumerate() {
                    let kx = j.wrapping_sub(S * o);
                    if kx < 3 && o < n {
                        // SAFETY: register arithmetic.
                        acc[h] = unsafe { X::fmadd(x, w[kx][h], acc[h]) };
                    }
                }
            }
        }
    }
    for (o, acc) in acc.iter().enumerate() {
        if o >= n {
            break;
        }
        for h in 0..H {
            // SAFETY: output pixel `ox + o < out_width`, channels as for the loads above.
            unsafe {
                let p = r.out.add((g.ox + o) * r.out_stride + ch + lanes * h);
                let y = X::clamp(acc[h], cx.vmin, cx.vmax);
                if M && h == H - 1 {
                    X::store_masked(p, cx.mask, y);
                } else {
                    X::store(p, y);
                }
            }
        }
    }
}
