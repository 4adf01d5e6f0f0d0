//! `gemm_f32_6x12_neon`: the AArch64 NEON (Advanced SIMD + FMA) GEMM micro-kernel, a 6 x 12
//! register tile of C.
//!
//! Register plan (32 q registers): 18 accumulators (6 rows x 3 vectors of 4 columns), 6 vectors of
//! A (4 consecutive depths of one row each, loaded straight from the A row at stride `lda`) and 3
//! vectors of the packed B row. Per 4 steps of depth: 6 loads of A, 12 loads of B, 72 FMAs, each
//! FMA broadcasting its A value by lane (`fmla v.4s, v.4s, v.s[j]`), so no broadcast costs a
//! load or an ALU op. On Neoverse N1 / Cortex-A76 (two 128-bit FMA pipes, 4-cycle latency: 8
//! independent accumulators needed, two load pipes) the 72 FMAs take 36 cycles and the 18 loads
//! fit in 9.
//!
//! `scripts/mca-neon.sh` (llvm-mca-22) predicts 38 cycles per 72 FMAs on the Neoverse N1 model
//! (95% of the FMA pipes) and 36 on Neoverse N2 (100%).
//!
//! An 8 x 12 tile with A broadcast by lane would need 24 + 8 + 3 = 35 registers when A is used in
//! place (unpacked): the lane trick needs one A vector per row live across 4 depths. 6 x 12 needs
//! 18 + 6 + 3 = 27, which leaves the compiler registers to load the next B row early.
//!
//! Edge tiles use the same body instantiated for fewer rows (`M < 6`, const generic: rows `>= m`
//! of A and C are never touched) and fewer vectors of columns (`NV = ceil(n / 4)`); in the last
//! vector only the columns `< n` of C are loaded and stored (lane and 64-bit accesses). B and the
//! bias are zero-padded to 12 columns, so they are always read whole.

use core::arch::aarch64::*;

use crate::gemm::ukernel::{Blocking, GemmKernel, GemmTile};
use crate::Isa;

/// Register tile rows.
const MR: usize = 6;
/// Register tile columns (three q vectors).
const NR: usize = 12;

/// `gemm_f32_6x12_neon`, the production GEMM micro-kernel on AArch64.
///
/// Blocking for a Neoverse N1 / Cortex-A76-class core (L1d 64 KiB, L2 1 MiB per core): a
/// `KC x 12` sliver of B is `KC * 48` bytes (24 KiB at KC = 512) and stays in L1 beside the 6 A
/// row segments being read (12 KiB); the `MC x KC` block of A (MC = 240: 480 KiB) stays in L2
/// while the slivers change.
pub static GEMM_F32_6X12_NEON: GemmKernel = GemmKernel {
    name: "gemm_f32_6x12_neon",
    isa: Isa::Neon,
    mr: MR,
    nr: NR,
    blocking: Blocking {
        mc: 240,
        kc: 512,
        nc: 4080,
    },
    func: gemm_f32_6x12_neon,
    row_panels: None,
};

/// `m` rows (any count) of one 12-column panel of `C = act(A * B + bias)` for one KC block of
/// depth `k`, in tiles of 6 rows.
///
/// Dispatches each tile on its rows and `ceil(n / 4)` to an instance of the register tile with
/// exactly the rows and vectors the tile needs.
///
/// # Safety
///
/// The [`GemmUkernelFn`](crate::gemm::ukernel::GemmUkernelFn) contract with `MR = 6`, `NR = 12`;
/// the CPU supports NEON (every AArch64 CPU does).
#[target_feature(enable = "neon")]
pub unsafe fn gemm_f32_6x12_neon(call: &GemmTile) {
    debug_assert!(call.m >= 1 && (1..=NR).contains(&call.n) && call.k >= 1);
    for r0 in (0..call.m).step_by(MR) {
        let t = &call.rows(r0, MR.min(call.m - r0));
        // SAFETY: (every arm) the caller upholds the `GemmUkernelFn` contract for the call's rows,
        // of which this tile is rows `r0 .. r0 + t.m`; each instance reads and writes only rows
        // `< M == t.m` and columns `< t.n` of C.
        unsafe {
            match (t.m, t.n.div_ceil(4)) {
                (6, 3) => tile::<6, 3>(t),
                (5, 3) => tile::<5, 3>(t),
                (4, 3) => tile::<4, 3>(t),
                (3, 3) => tile::<3, 3>(t),
                (2, 3) => tile::<2, 3>(t),
                (_, 3) => tile::<1, 3>(t),
                (6, 2) => tile::<6, 2>(t),
                (5, 2) => tile::<5, 2>(t),
                (4, 2) => tile::<4, 2>(t),
                (3, 2) => tile::<3, 2>(t),
                (2, 2) => tile::<2, 2>(t),
                (_, 2) => tile::<1, 2>(t),
                (6, _) => tile::<6, 1>(t),
                (5, _) => tile::<5, 1>(t),
                (4, _) => tile::<4, 1>(t),
                (3, _) => tile::<3, 1>(t),
                (2, _) => tile::<2, 1>(t),
                (_, _) => tile::<1, 1>(t),
            }
        }
    }
}

/// Loads lanes `0 .. n` (`1 ..= 4`) from `p`; the other lanes are zero and their memory is not
/// read.
///
/// # Safety
///
/// `p .. p + n` is readable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_partial(p: *const f32, n: usize) -> float32x4_t {
    // SAFETY: each arm reads exactly floats `0 .. n` of `p`.
    unsafe {
        match n {
            4 => vld1q_f32(p),
            3 => vcombine_f32(vld1_f32(p), vld1_lane_f32::<0>(p.add(2), vdup_n_f32(0.0))),
            2 => vcombine_f32(vld1_f32(p), vdup_n_f32(0.0)),
            _ => vld1q_lane_f32::<0>(p, vdupq_n_f32(0.0)),
        }
    }
}

/// Stores lanes `0 .. n` (`1 ..= 4`) of `v` to `p`; memory past `p + n` is not touched.
///
/// # Safety
///
/// `p .. p + n` is writable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn store_partial(p: *mut f32, v: float32x4_t, n: usize) {
    // SAFETY: each arm writes exactly floats `0 .. n` of `p`.
    unsafe {
        match n {
            4 => vst1q_f32(p, v),
            3 => {
                vst1_f32(p, vget_low_f32(v));
                vst1q_lane_f32::<2>(p.add(2), v);
            }
            2 => vst1_f32(p, vget_low_f32(v)),
            _ => vst1q_lane_f32::<0>(p, v),
        }
    }
}

/// The register tile with `M` rows (`1..=6`) and `NV` vectors of 4 columns (`1..=3`).
///
/// # Safety
///
/// The `GemmUkernelFn` contract, with `t.m == M` and `4 * (NV - 1) < t.n <= 4 * NV`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn tile<const M: usize, const NV: usize>(t: &GemmTile) {
    let k = t.k;
    // Valid columns of the last vector, 1..=4.
    let last = t.n - 4 * (NV - 1);

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

    let mut acc = [[vdupq_n_f32(0.0); NV]; M];
    if t.first_k_block {
        for v in 0..NV {
            // SAFETY: `bias` holds NR = 12 floats (zero-padded); `4 * v + 4 <= 12`.
            let bias = unsafe { vld1q_f32(t.bias.add(4 * v)) };
            for row in acc.iter_mut() {
                row[v] = bias;
            }
        }
    } else {
        for (row, &ci) in acc.iter_mut().zip(c.iter()) {
            for v in 0..NV {
                let cnt = if v + 1 == NV { last } else { 4 };
                // SAFETY: row `i < m` of C is readable for columns `< n`; vector `v` covers
                // columns `4v .. 4v + cnt <= n`.
                row[v] = unsafe { load_partial(ci.add(4 * v), cnt) };
            }
        }
    }

    // One step of depth `p` of the segment whose B rows start at `$b`, for every row, A lane
    // `$lane` of the vectors in `$av`. (A macro so that the lane index is a constant.)
    macro_rules! step {
        ($av:ident, $b:ident, $p:expr, $lane:literal) => {{
            let p = $p;
            let mut bv = [vdupq_n_f32(0.0); NV];
            for (v, bv) in bv.iter_mut().enumerate() {
                // SAFETY: `b` is a segment's B from `GemmTile::segment`, readable for
                // `k_seg * NR` floats (its contract); `p < k_seg` and `4 * v + 4 <= NR`.
                *bv = unsafe { vld1q_f32($b.add(p * NR + 4 * v)) };
            }
            for (row, av) in acc.iter_mut().zip($av.iter()) {
                for v in 0..NV {
                    row[v] = vfmaq_laneq_f32::<$lane>(row[v], bv[v], *av);
                }
            }
        }};
    }

    // The depth loop, segment by segment (one segment for a plain A), 4 steps per iteration:
    // one A vector per row feeds 4 steps by lane.
    let ks = t.k_seg;
    for s in 0..k / ks {
        // `s < k / k_seg` and `a` holds the starts of rows `< M == m`, so `sa` and `sb` are in
        // bounds as `GemmTile::segment` documents (the loads below rely on it).
        let (sa, sb) = t.segment(a, s, NR);
        let mut p = 0;
        while p + 4 <= ks {
            mca_marker!("BEGIN gemm_f32_6x12_neon");
            let mut av = [vdupq_n_f32(0.0); M];
            for (av, &ai) in av.iter_mut().zip(sa.iter()) {
                // SAFETY: `ai` is row `i < m` of a segment from `GemmTile::segment`, readable
                // for `k_seg` floats (its contract); `p + 4 <= k_seg`.
                *av = unsafe { vld1q_f32(ai.add(p)) };
            }
            step!(av, sb, p, 0);
            step!(av, sb, p + 1, 1);
            step!(av, sb, p + 2, 2);
            step!(av, sb, p + 3, 3);
            mca_marker!("END gemm_f32_6x12_neon");
            p += 4;
        }
        // The last `k_seg % 4` steps: A loaded one float at a time (into every lane).
        while p < ks {
            let mut av = [vdupq_n_f32(0.0); M];
            for (av, &ai) in av.iter_mut().zip(sa.iter()) {
                // SAFETY: `ai` is row `i < m` of a segment from `GemmTile::segment`, readable
                // for `k_seg` floats (its contract); `p < k_seg`.
                *av = unsafe { vld1q_dup_f32(ai.add(p)) };
            }
            step!(av, sb, p, 0);
            p += 1;
        }
    }

    if t.last_k_block {
        // y = if y < min {min} else {y}; y = if y > max {max} else {y}: `fmax`/`fmin` return NaN
        // when an operand is NaN, and the bounds never are, so a NaN `y` stays NaN.
        // An infinite bound is the identity (NaN included) and is skipped: ReLU costs one op.
        let (vmin, vmax) = (vdupq_n_f32(t.min), vdupq_n_f32(t.max));
        if t.min != f32::NEG_INFINITY {
            for row in acc.iter_mut() {
                for y in row.iter_mut() {
                    *y = vmaxq_f32(vmin, *y);
                }
            }
        }
        if t.max != f32::INFINITY {
            for row in acc.iter_mut() {
                for y in row.iter_mut() {
                    *y = vminq_f32(vmax, *y);
                }
            }
        }
    }

    for (row, &ci) in acc.iter().zip(c.iter()) {
        for v in 0..NV {
            let cnt = if v + 1 == NV { last } else { 4 };
            // SAFETY: row `i < m` of C is writable for columns `< n`; vector `v` covers columns
            // `4v .. 4v + cnt <= n`.
            unsafe { store_partial(ci.add(4 * v), row[v], cnt) };
        }
    }
}
