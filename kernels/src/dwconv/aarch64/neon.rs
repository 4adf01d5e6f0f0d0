//! NEON (AArch64 Advanced SIMD + FMA) depthwise 3x3 row kernels, stride 1 and stride 2, channel
//! tile 4 (one q register).
//!
//! Loop order per row: column chunks outside, 4-channel blocks inside, columns innermost. For one
//! block the bias and the nine taps stay in registers (10 q), and the kernel slides along the row
//! so that every input vector it loads feeds all the outputs that need it:
//!
//! * stride 1: input column `x` feeds outputs `x-1`, `x`, `x+1` (taps `kx` = 2, 1, 0). Three
//!   rolling accumulators; per output 3 loads, 9 FMAs, 1 store (1/3 load per FMA). The loop is
//!   unrolled by three with the accumulators' roles rotated, so no register copies remain.
//! * stride 2: the even column shared by two outputs feeds both (taps `kx` = 2 and 0), the odd
//!   column feeds one (`kx` = 1). Two rolling accumulators; per output 6 loads, 9 FMAs, 1 store
//!   (2/3 load per FMA); unrolled by two.
//!
//! With 10 weight registers, 3 accumulators and 3 input vectors a block uses 16 of the 32 q
//! registers. Every load is addressed `[column pointer, offset]` with one offset register shared
//! by all loads (and one by all stores), so the loop has two adds, not one per access.
//!
//! `scripts/mca-neon.sh` predicts (llvm-mca-22, Neoverse N1 model) about 9 cycles per output at
//! stride 1 and 11.5 at stride 2: the model dispatches 3 micro-ops per cycle and counts a q load
//! as 2 and a q store as 4, so the loop is dispatch-bound at 50% (stride 1) and 39% (stride 2)
//! of the two FMA pipes; its Neoverse N2 and V1 models predict 56-69%.
//!
//! Each row splits into a left border, a branch-free interior (all three input columns of every
//! output in range) and a right border; border outputs are computed one by one, skipping padding
//! columns, which are never read. The channel tail (`channels % 4`) runs the same code
//! instantiated for 1, 2 or 3 lanes, loading and storing only those lanes (lane and 64-bit
//! accesses), so nothing past the last channel of a pixel is touched.
//!
//! Column chunks of [`CHUNK`] outputs keep the three input rows of a chunk in L1 while all channel
//! blocks walk it: a block reads a quarter of each 64-byte line, and the next blocks read the rest
//! before the line is evicted.

use core::arch::aarch64::*;

use crate::dwconv::ukernel::{DwKernel, DwRow};
use crate::Isa;

/// Channel tile of the packed weights (one q register of `f32`).
pub const C_TILE: usize = 4;

/// Output columns per chunk (see the module docs).
const CHUNK: usize = 64;

/// `dwconv3x3_f32_c4_neon`: stride 1.
pub static DWCONV3X3_F32_C4_NEON: DwKernel = DwKernel {
    name: "dwconv3x3_f32_c4_neon",
    isa: Isa::Neon,
    stride: 1,
    c_tile: C_TILE,
    func: dwconv3x3_f32_c4_neon,
};

/// `dwconv3x3s2_f32_c4_neon`: stride 2.
pub static DWCONV3X3S2_F32_C4_NEON: DwKernel = DwKernel {
    name: "dwconv3x3s2_f32_c4_neon",
    isa: Isa::Neon,
    stride: 2,
    c_tile: C_TILE,
    func: dwconv3x3s2_f32_c4_neon,
};

/// Depthwise 3x3, stride 1, one output row (see [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 4`; the CPU has NEON (every AArch64 CPU does).
#[target_feature(enable = "neon")]
pub unsafe fn dwconv3x3_f32_c4_neon(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, NEON available).
    unsafe { row::<1>(r) }
}

/// Depthwise 3x3, stride 2, one output row (see [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 4`; the CPU has NEON (every AArch64 CPU does).
#[target_feature(enable = "neon")]
pub unsafe fn dwconv3x3s2_f32_c4_neon(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, NEON available).
    unsafe { row::<2>(r) }
}

/// One row: column chunks, then channel blocks, then columns.
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 4` and stride `S`; the CPU has NEON.
#[target_feature(enable = "neon")]
unsafe fn row<const S: usize>(r: &DwRow) {
    let vmin = vdupq_n_f32(r.min);
    let vmax = vdupq_n_f32(r.max);
    let full = r.channels / C_TILE;
    let tail = r.channels % C_TILE;
    let g = Geom::new::<S>(r);
    let mut lo = 0;
    while lo < r.out_width {
        let hi = (lo + CHUNK).min(r.out_width);
        for t in 0..full {
            // SAFETY: block `t` covers channels `4t .. 4t+4 <= channels`; its packed tile is
            // at `weights + 40t`, inside the `ceil(channels / 4)` tiles the contract guarantees;
            // `lo < hi <= out_width`.
            unsafe { block::<S, 4>(r, &g, t * C_TILE, vmin, vmax, lo, hi) };
        }
        let ch = full * C_TILE;
        // SAFETY: the last block covers channels `ch .. ch + tail == channels`; the instance for
        // `tail` lanes reads and writes only those lanes of each pixel; its weight tile is the
        // last packed one (zero-padded to 4, read whole).
        unsafe {
            match tail {
                1 => block::<S, 1>(r, &g, ch, vmin, vmax, lo, hi),
                2 => block::<S, 2>(r, &g, ch, vmin, vmax, lo, hi),
                3 => block::<S, 3>(r, &g, ch, vmin, vmax, lo, hi),
                _ => {}
            }
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

/// `p`, hidden from the optimiser: an empty `asm!` that takes and returns it in a register.
#[inline]
// The asm never dereferences `p` (it is a comment), so `nomem` is exact.
#[allow(clippy::pointers_in_nomem_asm_block)]
fn opaque<P>(mut p: *mut P) -> *mut P {
    // SAFETY: an assembler comment: no instruction, no memory access, `p` is unchanged.
    unsafe {
        core::arch::asm!("/* {0} */", inout(reg) p, options(pure, nomem, nostack, preserves_flags))
    };
    p
}

/// Loads channels `0 .. L` (`1 ..= 4`) at `p`; the other lanes are zero and not read.
///
/// # Safety
///
/// `p .. p + L` is readable.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn ld<const L: usize>(p: *const f32) -> float32x4_t {
    // SAFETY: each arm reads exactly floats `0 .. L` of `p`.
    unsafe {
        match L {
            4 => vld1q_f32(p),
            3 => vcombine_f32(vld1_f32(p), vld1_lane_f32::<0>(p.add(2), vdup_n_f32(0.0))),
            2 => vcombine_f32(vld1_f32(p), vdup_n_f32(0.0)),
            _ => vld1q_lane_f32::<0>(p, vdupq_n_f32(0.0)),
        }
    }
}

/// Clamps `y` to `[vmin, vmax]` (NaN stays NaN) and stores its lanes `0 .. L` at `p`.
///
/// # Safety
///
/// `p .. p + L` is writable.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn st<const L: usize>(p: *mut f32, y: float32x4_t, vmin: float32x4_t, vmax: float32x4_t) {
    // `fmax`/`fmin` return NaN when an operand is NaN; the bounds never are, so a NaN `y` stays
    // NaN, as `if y < min {min} else {y}` then `if y > max {max} else {y}` keep it.
    let y = vminq_f32(vmax, vmaxq_f32(vmin, y));
    // SAFETY: each arm writes exactly floats `0 .. L` of `p`.
    unsafe {
        match L {
            4 => vst1q_f32(p, y),
            3 => {
                vst1_f32(p, vget_low_f32(y));
                vst1q_lane_f32::<2>(p.add(2), y);
            }
            2 => vst1_f32(p, vget_low_f32(y)),
            _ => vst1q_lane_f32::<0>(p, y),
        }
    }
}

/// Outputs `lo .. hi` of one 4-channel block (channels `ch .. ch + L`).
///
/// # Safety
///
/// The `DwRowFn` contract with stride `S`; `ch` is a multiple of 4 and `ch + L <= channels`
/// (`L < 4` only for the last block); `lo < hi <= out_width`; `g` is `Geom::new::<S>(r)`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn block<const S: usize, const L: usize>(
    r: &DwRow,
    g: &Geom,
    ch: usize,
    vmin: float32x4_t,
    vmax: float32x4_t,
    lo: usize,
    hi: usize,
) {
    // SAFETY: tile `ch / 4` of the packed weights: 40 floats, all inside the packed buffer.
    let wp = unsafe { r.weights.add(ch / C_TILE * 10 * C_TILE) };
    // SAFETY: `wp + 4i` for i < 10 are the bias and nine taps of this tile, 4 floats each.
    let w: [float32x4_t; 10] = std::array::from_fn(|i| unsafe { vld1q_f32(wp.add(i * C_TILE)) });
    let bias = w[0];
    // Tap (ky, kx) is w[1 + 3 * ky + kx].
    let (w00, w01, w02) = (w[1], w[2], w[3]);
    let (w10, w11, w12) = (w[4], w[5], w[6]);
    let (w20, w21, w22) = (w[7], w[8], w[9]);

    let a = g.lo.clamp(lo, hi);
    let b = g.hi.clamp(a, hi);

    // Borders: one output at a time, skipping padding columns.
    for ox in (lo..a).chain(b..hi) {
        let mut acc = bias;
        for kx in 0..3 {
            let col = (ox * S + kx).wrapping_sub(r.pad_left);
            if col >= r.in_width {
                continue;
            }
            for ky in 0..3 {
                // SAFETY: `col < in_width` and the channels `ch .. ch + L` are in range, so the
                // row is readable there.
                let x = unsafe { ld::<L>(r.rows[ky].add(col * r.in_stride + ch)) };
                acc = vfmaq_f32(acc, x, w[1 + 3 * ky + kx]);
            }
        }
        // SAFETY: `ox < out_width`; the channels `ch .. ch + L` are in range.
        unsafe { st::<L>(r.out.add(ox * r.out_stride + ch), acc, vmin, vmax) };
    }
    if a == b {
        return;
    }

    // Interior: outputs a .. b, every input column in range. Pointers to column `a*S - pad_left`
    // (>= 0 because `a >= g.lo`); the last column read is `(b-1)*S - pad_left + 2 < in_width`.
    let is = r.in_stride;
    let c0 = a * S - r.pad_left;
    // SAFETY: column `c0` of each row, channel `ch`: in range (see above).
    let (p0, p1, p2) = unsafe {
        (
            r.rows[0].add(c0 * is + ch),
            r.rows[1].add(c0 * is + ch),
            r.rows[2].add(c0 * is + ch),
        )
    };
    // SAFETY: output column `a < out_width`, channel `ch`.
    let po = unsafe { r.out.add(a * r.out_stride + ch) };
    // The loops advance two offsets (in floats) from fixed pointers: one for the inputs,
    // `off = k * S * is` after `k` steps, and one for the outputs, `oo = k * os`.
    let (mut off, mut oo) = (0usize, 0usize);
    let os = r.out_stride;
    let n = b - a;

    // Columns `k` (0 ..= 4) right of the first step's first column, per row, and the first three
    // outputs, as pointers hidden from the optimiser (`opaque`): the loops then address every
    // load as `[column pointer, off]` and every store as `[output pointer, oo]`, with one offset
    // register for all loads and one for all stores (otherwise LLVM's loop strength reduction
    // keeps one pointer and one add per access). `wrapping_add`: a pointer past the row is
    // never used.
    let cols: [[*const f32; 3]; 5] = std::array::from_fn(|k| {
        [p0, p1, p2].map(|p| opaque(p.wrapping_add(k * is).cast_mut()).cast_const())
    });
    let pos: [*mut f32; 3] = std::array::from_fn(|j| opaque(po.wrapping_add(j * os)));
    // Loads the three rows of column `k` right of the current step's first column.
    macro_rules! col {
        ($k:expr) => {
            // SAFETY: `cols[k] + off` is column `c0 + off / is + k` of the interior (`c0 ..=
            // (b-1)*S - pad_left + 2`) for every step that is made, channels `ch .. ch + L`.
            unsafe {
                (
                    ld::<L>(cols[$k][0].add(off)),
                    ld::<L>(cols[$k][1].add(off)),
                    ld::<L>(cols[$k][2].add(off)),
                )
            }
        };
    }
    macro_rules! fma3 {
        ($acc:expr, $x:expr, $wa:expr, $wb:expr, $wc:expr) => {{
            let t = vfmaq_f32($acc, $x.0, $wa);
            let t = vfmaq_f32(t, $x.1, $wb);
            vfmaq_f32(t, $x.2, $wc)
        }};
    }

    if S == 1 {
        // acc_a: output ox (columns ox-pl, ox-pl+1 done); acc_b: output ox+1 (column ox-pl+1
        // done); acc_c: output ox+2, started by each step.
        let x = col!(0);
        let mut acc_a = fma3!(bias, x, w00, w10, w20);
        let x = col!(1);
        acc_a = fma3!(acc_a, x, w01, w11, w21);
        let mut acc_b = fma3!(bias, x, w00, w10, w20);
        let mut acc_c;
        // Step `j` from the offsets: column `2 + j` finishes `$a` (stored as output `j`),
        // advances `$b` and starts `$c`.
        macro_rules! step {
            ($a:ident, $b:ident, $c:ident, $j:literal) => {{
                let x = col!(2 + $j);
                $a = fma3!($a, x, w02, w12, w22);
                $b = fma3!($b, x, w01, w11, w21);
                $c = fma3!(bias, x, w00, w10, w20);
                // SAFETY: `pos[j] + oo` is output `a + k + j < b - 1` where `k = oo / os` steps
                // are done (`k + j < n - 1`).
                unsafe { st::<L>(pos[$j].add(oo), $a, vmin, vmax) };
            }};
        }
        // n - 1 steps: by three, rotating the accumulators' roles (no register copies), then
        // one by one.
        let mut steps = n - 1;
        while steps >= 3 {
            mca_marker!("BEGIN dwconv3x3_f32_c4_neon");
            step!(acc_a, acc_b, acc_c, 0);
            step!(acc_b, acc_c, acc_a, 1);
            step!(acc_c, acc_a, acc_b, 2);
            off += 3 * is;
            oo += 3 * os;
            steps -= 3;
            mca_marker!("END dwconv3x3_f32_c4_neon");
        }
        // The offsets after the `n - 1 - steps` steps made, recomputed (as below).
        (off, oo) = ((n - 1 - steps) * is, (n - 1 - steps) * os);
        for _ in 0..steps {
            step!(acc_a, acc_b, acc_c, 0);
            acc_a = acc_b;
            acc_b = acc_c;
            off += is;
            oo += os;
        }
        // The same values, recomputed, so that the loops keep only their address registers live.
        (off, oo) = ((n - 1) * is, (n - 1) * os);
        let x = col!(2);
        acc_a = fma3!(acc_a, x, w02, w12, w22);
        // SAFETY: `pos[0] + oo` is output `b - 1` after the `n - 1` steps.
        unsafe { st::<L>(pos[0].add(oo), acc_a, vmin, vmax) };
    } else {
        // acc_a: output ox (column 2ox-pl done); acc_b: output ox+1, started by each step.
        let x = col!(0);
        let mut acc_a = fma3!(bias, x, w00, w10, w20);
        let mut acc_b;
        // Step `j` from the offsets: columns `1 + 2j`, `2 + 2j` finish `$a` (stored as output
        // `j`) and start `$b`.
        macro_rules! step {
            ($a:ident, $b:ident, $j:literal) => {{
                let x = col!(1 + 2 * $j);
                $a = fma3!($a, x, w01, w11, w21);
                let x = col!(2 + 2 * $j);
                $a = fma3!($a, x, w02, w12, w22);
                $b = fma3!(bias, x, w00, w10, w20);
                // SAFETY: `pos[j] + oo` is output `a + k + j < b - 1` where `k = oo / os` steps
                // are done (`k + j < n - 1`).
                unsafe { st::<L>(pos[$j].add(oo), $a, vmin, vmax) };
            }};
        }
        // n - 1 steps: by two, swapping the accumulators' roles, then one.
        let mut steps = n - 1;
        while steps >= 2 {
            mca_marker!("BEGIN dwconv3x3s2_f32_c4_neon");
            step!(acc_a, acc_b, 0);
            step!(acc_b, acc_a, 1);
            off += 4 * is;
            oo += 2 * os;
            steps -= 2;
            mca_marker!("END dwconv3x3s2_f32_c4_neon");
        }
        // The offsets after the `n - 1 - steps` steps made, recomputed (as below).
        (off, oo) = ((n - 1 - steps) * 2 * is, (n - 1 - steps) * os);
        if steps == 1 {
            step!(acc_a, acc_b, 0);
            acc_a = acc_b;
        }
        // The same values, recomputed, so that the loops keep only their address registers live.
        (off, oo) = ((n - 1) * 2 * is, (n - 1) * os);
        let x = col!(1);
        acc_a = fma3!(acc_a, x, w01, w11, w21);
        let x = col!(2);
        acc_a = fma3!(acc_a, x, w02, w12, w22);
        // SAFETY: `pos[0] + oo` is output `b - 1` after the `n - 1` steps.
        unsafe { st::<L>(pos[0].add(oo), acc_a, vmin, vmax) };
    }
}
