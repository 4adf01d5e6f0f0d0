//! Portable GEMM micro-kernel: plain Rust over slices, written so the compiler vectorises it
//! (fixed-size arrays for the MR x NR accumulator tile). The fallback on every CPU and the baseline
//! the SIMD kernels must beat.

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
    let mut acc = [[0.0f32; NR]; MR];
    if t.first_k_block {
        for row in acc.iter_mut().take(t.m) {
            row.copy_from_slice(&t.bias[..NR]);
        }
    } else {
        for (i, row) in acc.iter_mut().enumerate().take(t.m) {
            row[..t.n].copy_from_slice(&t.c[i * t.ldc..i * t.ldc + t.n]);
        }
    }
    for p in 0..t.k {
        let b: &[f32; NR] = t.b[p * NR..p * NR + NR].try_into().expect("NR floats");
        // Depth `p` is float `p % k_seg` of segment `p / k_seg` of each A row.
        let col = (p / t.k_seg) * t.seg_stride + p % t.k_seg;
        for (i, row) in acc.iter_mut().enumerate().take(t.m) {
            let a = t.a[i * t.lda + col];
            for j in 0..NR {
                row[j] += a * b[j];
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(t.m) {
        let out = &mut t.c[i * t.ldc..i * t.ldc + t.n];
        for (o, &v) in out.iter_mut().zip(row.iter()) {
            *o = if t.last_k_block {
                clamp(v, t.min, t.max)
            } else {
                v
            };
        }
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
