//! Portable GEMM micro-kernel: plain Rust over slices, written so the compiler vectorises it
//! (fixed-size arrays for the MR x NR accumulator tile). The fallback on every CPU and the baseline
//! the SIMD kernels must beat.
//!
//! The accumulator tile must only ever be indexed by constants: one access by a run-time index
//! (the `n` columns of an edge tile, read from or stored to C) keeps the whole tile in memory, and
//! then LLVM vectorised one row and left the others scalar, each step loading and storing every
//! accumulator. With the edge columns through copies of a row instead, the tile stays in
//! registers: baseline x86_64 (SSE2), the MobileNet pointwise shapes, old and new kernels
//! alternating in one process on an Emerald Rapids VM (same bits): 3.1-3.9 -> 13.5-23.8 GFLOP/s
//! (pw01 0.24x the time, pw05, pw07 and pw13 0.16-0.17x), against a portable peak of 30.8.

use super::ukernel::{Blocking, GemmKernel, GemmTile};
use crate::activation::clamp;
use crate::Isa;

const MR: usize = 4;
const NR: usize = 8;

/// `gemm_f32_4x8_portable`.
pub static GEMM_F32_4X8_PORTABLE: GemmKernel = GemmKernel {
    name: "gemm_f32_4x8_portable",
    isa: Isa::Portable,
    mr: MR,
    nr: NR,
    blocking: Blocking {
        mc: 64,
        kc: 256,
        nc: 1024,
    },
    func: crate::gemm::portable::entry,
    row_panels: None,
};

/// The safe kernel: `a` holds rows at stride `lda`, `b` `k` rows of NR floats, `c` rows at `ldc`.
pub fn gemm_f32_4x8_portable(t: &mut TileSlices<'_>) {
    match t.m {
        4 => tile::<4>(t),
        3 => tile::<3>(t),
        2 => tile::<2>(t),
        _ => tile::<1>(t),
    }
}

/// [`gemm_f32_4x8_portable`] for exactly `M` rows: a constant row count, and the depth walked
/// segment by segment over row slices of the segment's length, so the compiler unrolls the rows
/// and vectorises the columns (one `mulps` + `addps` pair per row and half of NR on baseline
/// x86_64; it had divided for each depth step's segment before).
fn tile<const M: usize>(t: &mut TileSlices<'_>) {
    let (ks, lda, n) = (t.k_seg, t.lda, t.n);
    // `acc` is only ever indexed by constants (the rows and columns that vary with `n` go
    // through copies), so it lives in registers, not on the stack.
    let mut acc: [[f32; NR]; M] = if t.first_k_block {
        let bias: [f32; NR] = t.bias[..NR].try_into().expect("NR floats");
        [bias; M]
    } else {
        std::array::from_fn(|i| {
            let mut row = [0.0; NR];
            row[..n].copy_from_slice(&t.c[i * t.ldc..][..n]);
            row
        })
    };
    for (s, b_seg) in t.b[..t.k * NR].chunks_exact(ks * NR).enumerate() {
        // Segment `s` of each A row: floats `s * seg_stride ..` of it, `ks` of them.
        let a: [&[f32]; M] = std::array::from_fn(|i| &t.a[i * lda + s * t.seg_stride..][..ks]);
        for (p, b) in b_seg.chunks_exact(NR).enumerate() {
            let b: &[f32; NR] = b.try_into().expect("NR floats");
            for (row, a) in acc.iter_mut().zip(&a) {
                axpy(row, a[p], b);
            }
        }
    }
    for (i, row) in acc.into_iter().enumerate() {
        let row = if t.last_k_block {
            row.map(|v| clamp(v, t.min, t.max))
        } else {
            row
        };
        t.c[i * t.ldc..][..n].copy_from_slice(&row[..n]);
    }
}

/// `row += a * b`, column by column (one vector multiply and add per 4 or 8 columns).
#[inline(always)]
fn axpy(row: &mut [f32; NR], a: f32, b: &[f32; NR]) {
    for (y, &b) in row.iter_mut().zip(b) {
        *y += a * b;
    }
}

/// A [`GemmTile`] as slices.
pub struct TileSlices<'a> {
    /// Valid rows.
    pub m: usize,
    /// Valid columns.
    pub n: usize,
    /// Depth.
    pub k: usize,
    /// A rows.
    pub a: &'a [f32],
    /// A row stride.
    pub lda: usize,
    /// Floats per segment of an A row.
    pub k_seg: usize,
    /// Distance between segment starts in an A row.
    pub seg_stride: usize,
    /// Packed B, `k * NR`.
    pub b: &'a [f32],
    /// Bias, NR.
    pub bias: &'a [f32],
    /// C rows.
    pub c: &'a mut [f32],
    /// C row stride.
    pub ldc: usize,
    /// Start from bias (else from C).
    pub first_k_block: bool,
    /// Clamp before the store.
    pub last_k_block: bool,
    /// Clamp low.
    pub min: f32,
    /// Clamp high.
    pub max: f32,
}

/// Raw-pointer entry used by the registry; see [`crate::gemm::ukernel::GemmUkernelFn`].
///
/// # Safety
///
/// The `GemmUkernelFn` contract, with NR = 8.
unsafe fn entry(call: &GemmTile) {
    for r0 in (0..call.m).step_by(MR) {
        let t = call.rows(r0, MR.min(call.m - r0));
        // SAFETY: the contract of `GemmUkernelFn` guarantees exactly these extents are readable
        // (A, B, bias) and writable (C) for the call's rows, of which these are rows
        // `r0 .. r0 + t.m`, and that C does not alias the others.
        let mut s = unsafe {
            TileSlices {
                m: t.m,
                n: t.n,
                k: t.k,
                a: std::slice::from_raw_parts(
                    t.a,
                    (t.m - 1) * t.lda + (t.k / t.k_seg - 1) * t.seg_stride + t.k_seg,
                ),
                lda: t.lda,
                k_seg: t.k_seg,
                seg_stride: t.seg_stride,
                b: std::slice::from_raw_parts(t.b, t.k * NR),
                bias: std::slice::from_raw_parts(t.bias, NR),
                c: std::slice::from_raw_parts_mut(t.c, (t.m - 1) * t.ldc + t.n),
                ldc: t.ldc,
                first_k_block: t.first_k_block,
                last_k_block: t.last_k_block,
                min: t.min,
                max: t.max,
            }
        };
        gemm_f32_4x8_portable(&mut s);
    }
}
