//! Portable depthwise 3x3 row kernels (stride 1 and 2): plain Rust over slices, channel tiles of
//! [`C_TILE`] as fixed-size arrays so the compiler vectorises across channels.
//!
//! With the channel tail indexed at run time in the accumulator loop (before), the tile lived on
//! the stack: the MobileNet depthwise layers ran at 3.2-3.6 GFLOP/s on an Emerald Rapids VM
//! (baseline x86_64, portable peak 30.8); with constant indices, 7.8-10.6 (0.32-0.41x the time,
//! old and new alternating in one process, the same bits).

use super::ukernel::{DwKernel, DwRow};
use crate::activation::clamp;
use crate::Isa;

/// Channel tile of the portable kernels' packed weights.
pub const C_TILE: usize = 8;

/// `dwconv3x3_f32_c8_portable`.
pub static DWCONV3X3_F32_C8_PORTABLE: DwKernel = DwKernel {
    name: "dwconv3x3_f32_c8_portable",
    isa: Isa::Portable,
    stride: 1,
    c_tile: C_TILE,
    func: entry::<1>,
};

/// `dwconv3x3s2_f32_c8_portable`.
pub static DWCONV3X3S2_F32_C8_PORTABLE: DwKernel = DwKernel {
    name: "dwconv3x3s2_f32_c8_portable",
    isa: Isa::Portable,
    stride: 2,
    c_tile: C_TILE,
    func: entry::<2>,
};

/// A [`DwRow`] as slices.
pub struct RowSlices<'a> {
    /// Input rows ky = 0..3, each `(in_width - 1) * in_stride + channels` floats.
    pub rows: [&'a [f32]; 3],
    /// Input columns.
    pub in_width: usize,
    /// Zero columns before column 0.
    pub pad_left: usize,
    /// Output columns.
    pub out_width: usize,
    /// Channels.
    pub channels: usize,
    /// Input pixel stride.
    pub in_stride: usize,
    /// Output row, `(out_width - 1) * out_stride + channels` floats.
    pub out: &'a mut [f32],
    /// Output pixel stride.
    pub out_stride: usize,
    /// Packed weights.
    pub weights: &'a [f32],
    /// Clamp low.
    pub min: f32,
    /// Clamp high.
    pub max: f32,
}

/// The safe row kernel for stride `S`. The accumulators and taps are only ever indexed by
/// constants (a channel tail goes through zero-padded copies), so they stay in registers: see
/// `gemm/portable.rs` for what one run-time index costs.
pub fn dwconv3x3_row_portable<const S: usize>(r: &mut RowSlices<'_>) {
    for (t, w) in r.weights.chunks_exact(10 * C_TILE).enumerate() {
        let c0 = t * C_TILE;
        if c0 >= r.channels {
            break;
        }
        let cn = (r.channels - c0).min(C_TILE);
        // Bias, then the 9 taps (ky-major), one channel tile each.
        let taps: [[f32; C_TILE]; 10] =
            std::array::from_fn(|i| w[i * C_TILE..][..C_TILE].try_into().expect("C_TILE"));
        for ox in 0..r.out_width {
            let mut acc = taps[0];
            for kx in 0..3 {
                // Input column, skipping the zero padding on either side.
                let ix = (ox * S + kx).wrapping_sub(r.pad_left);
                if ix >= r.in_width {
                    continue;
                }
                for (ky, row) in r.rows.iter().enumerate() {
                    let x = tile(&row[ix * r.in_stride + c0..], cn);
                    let wt = &taps[1 + ky * 3 + kx];
                    for j in 0..C_TILE {
                        acc[j] += x[j] * wt[j];
                    }
                }
            }
            let acc = acc.map(|v| clamp(v, r.min, r.max));
            r.out[ox * r.out_stride + c0..][..cn].copy_from_slice(&acc[..cn]);
        }
    }
}

/// The first `cn <= C_TILE` floats of `src` as a channel tile, zeros after them.
#[inline(always)]
fn tile(src: &[f32], cn: usize) -> [f32; C_TILE] {
    if cn == C_TILE {
        src[..C_TILE].try_into().expect("C_TILE")
    } else {
        let mut v = [0.0; C_TILE];
        v[..cn].copy_from_slice(&src[..cn]);
        v
    }
}

/// Raw-pointer entry used by the registry; see [`crate::dwconv::ukernel::DwRowFn`].
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 8`.
unsafe fn entry<const S: usize>(r: &DwRow) {
    let in_len = (r.in_width - 1) * r.in_stride + r.channels;
    // SAFETY: the `DwRowFn` contract guarantees each input row is readable for `in_len` floats,
    // the packed weights for whole tiles, and the output writable (and unaliased) for its row.
    let mut s = unsafe {
        RowSlices {
            rows: r.rows.map(|p| std::slice::from_raw_parts(p, in_len)),
            in_width: r.in_width,
            pad_left: r.pad_left,
            out_width: r.out_width,
            channels: r.channels,
            in_stride: r.in_stride,
            out: std::slice::from_raw_parts_mut(
                r.out,
                (r.out_width - 1) * r.out_stride + r.channels,
            ),
            out_stride: r.out_stride,
            weights: std::slice::from_raw_parts(
                r.weights,
                r.channels.div_ceil(C_TILE) * 10 * C_TILE,
            ),
            min: r.min,
            max: r.max,
        }
    };
    dwconv3x3_row_portable::<S>(&mut s);
}
