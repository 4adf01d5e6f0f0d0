//! Standard 3x3 convolution (the MobileNet stem, and the baseline of the paper's cost ratio):
//! im2col of a few output rows into a per-thread buffer, then the GEMM micro-kernel on it.

use std::cell::RefCell;

use crate::dwconv::expect;
use crate::error::Result;
use crate::gemm::{gemm, GemmShape};
use crate::pack::{pack_conv3x3, ConvWeights, WeightLayout};
use crate::params::{Conv3x3Params, Geometry};
use crate::tensor::{TensorView, TensorViewMut};
use crate::threading::{run_parts, split_at_offsets, split_even};
use crate::Kernels;

/// Upper bound of the im2col buffer per thread, in floats (512 KiB: about one L2).
const IM2COL_FLOATS: usize = 128 * 1024;
/// Pixels per im2col block when the depth is small.
const TARGET_PIXELS: usize = 96;

thread_local! {
    static IM2COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl Kernels {
    /// Packs standard 3x3 convolution weights once: `[3][3][cin][cout]` for
    /// [`WeightLayout::Hwio`], `[cout][cin][3][3]` for [`WeightLayout::Oihw`].
    pub fn pack_conv3x3(
        &self,
        weights: &[f32],
        layout: WeightLayout,
        bias: Option<&[f32]>,
        cin: usize,
        cout: usize,
    ) -> Result<ConvWeights> {
        pack_conv3x3(self.isa, self.gemm.nr, weights, layout, bias, cin, cout)
    }

    /// Standard 3x3 convolution with fused bias and activation (any `cin`, `cout`; stride 1 or 2).
    pub fn conv3x3(
        &self,
        input: &TensorView<'_>,
        weights: &ConvWeights,
        params: &Conv3x3Params,
        output: &mut TensorViewMut<'_>,
    ) -> Result<()> {
        let (min, max) = params.activation.bounds()?;
        self.check_b(&weights.b)?;
        let (i, o) = (input.shape, output.shape);
        let g = params.geometry(i.h, i.w)?;
        expect("weights input channels", weights.cin, i.c)?;
        expect("output channels", weights.b.n, o.c)?;
        expect("output batch", i.n, o.n)?;
        expect("output height", g.out_h, o.h)?;
        expect("output width", g.out_w, o.w)?;

        let depth = 9 * i.c;
        let (ops, ops_pixel) = (output.strides.row, output.strides.pixel);
        // Rows per block: several when output rows are evenly strided, so M is not tiny.
        let rows_per_block = if ops == o.w * ops_pixel {
            (TARGET_PIXELS.min(IM2COL_FLOATS / depth) / o.w).clamp(1, o.h)
        } else {
            1
        };
        let blocks: Vec<(usize, usize, usize)> = (0..o.n)
            .flat_map(|n| {
                (0..o.h)
                    .step_by(rows_per_block)
                    .map(move |y| (n, y, rows_per_block.min(o.h - y)))
            })
            .collect();
        let starts: Vec<usize> = blocks
            .iter()
            .map(|&(n, y, _)| output.offset(n, y, 0))
            .collect();
        let pieces = split_at_offsets(output.data, &starts);
        let macs = o.n * o.h * o.w * depth * o.c;
        let threads = (macs >> 18).clamp(1, self.threads);
        let bands = split_even(blocks.len(), threads, 1);
        let mut it = blocks.iter().copied().zip(pieces);
        let parts: Vec<Vec<_>> = bands
            .iter()
            .map(|b| it.by_ref().take(b.len()).collect())
            .collect();

        run_parts(self.threads, parts, |part| {
            IM2COL.with(|buf| {
                let mut buf = buf.borrow_mut();
                for ((n, y0, rows), out) in part {
                    let m = rows * o.w;
                    if buf.len() < m * depth {
                        buf.resize(m * depth, 0.0);
                    }
                    // im2col: row (y, x) of A holds the 3x3xCin window, zeros in the padding.
                    for r in 0..rows {
                        let dst = &mut buf[r * o.w * depth..][..o.w * depth];
                        im2col_row(input, &g, n, y0 + r, dst);
                    }
                    let shape = GemmShape {
                        m,
                        lda: depth,
                        ldc: ops_pixel,
                    };
                    gemm(
                        self.gemm,
                        1,
                        shape,
                        &buf[..m * depth],
                        &weights.b,
                        out,
                        min,
                        max,
                    );
                }
            });
        });
        Ok(())
    }
}

/// im2col of output row `oy` of image `n`: `dst` holds `out_w` rows of `9 * cin` floats, row `ox`
/// the 3x3 window of output pixel `ox` in `(ky, kx, c)` order, zeros where it reads padding.
///
/// Per kernel row `ky`, the output columns whose three input columns are all inside the image
/// form one interior range; there, when pixels are packed (`pixel stride == cin`), each window row
/// is one contiguous copy of `3 * cin` floats (a fixed-size copy for the stem's `cin = 3`).
/// Everything else (left/right border, rows in the top/bottom padding, strided pixels) goes
/// column by column.
fn im2col_row(input: &TensorView<'_>, g: &Geometry, n: usize, oy: usize, dst: &mut [f32]) {
    let (c, w, s) = (input.shape.c, input.shape.w, g.stride);
    let depth = 9 * c;
    let seg = 3 * c;
    // Output columns `lo .. hi` read input columns `ox * s - pad_left + 0..3`, all in `0 .. w`.
    let lo = g.pad_left.div_ceil(s).min(g.out_w);
    let hi = if w + g.pad_left >= 3 {
        ((w + g.pad_left - 3) / s + 1).clamp(lo, g.out_w)
    } else {
        lo
    };
    let dense = input.strides.pixel == c;
    for ky in 0..3 {
        let iy = (oy * s + ky).wrapping_sub(g.pad_top);
        let windows = dst
            .chunks_exact_mut(depth)
            .map(|d| &mut d[ky * seg..][..seg]);
        if iy >= input.shape.h {
            windows.for_each(|d| d.fill(0.0));
            continue;
        }
        let row = &input.data[input.offset(n, iy, 0)..];
        let interior = if dense { lo..hi } else { 0..0 };
        if seg == 9 {
            for ox in interior.clone() {
                let src: &[f32; 9] = row[(ox * s - g.pad_left) * c..][..9].try_into().unwrap();
                let d: &mut [f32; 9] = (&mut dst[ox * depth + ky * 9..][..9]).try_into().unwrap();
                *d = *src;
            }
        } else {
            for ox in interior.clone() {
                dst[ox * depth + ky * seg..][..seg]
                    .copy_from_slice(&row[(ox * s - g.pad_left) * c..][..seg]);
            }
        }
        for ox in (0..g.out_w).filter(|ox| !interior.contains(ox)) {
            let ix0 = (ox * s).wrapping_sub(g.pad_left);
            let d = &mut dst[ox * depth + ky * seg..][..seg];
            for (kx, d) in d.chunks_exact_mut(c).enumerate() {
                let ix = ix0.wrapping_add(kx);
                if ix < w {
                    d.copy_from_slice(&row[ix * input.strides.pixel..][..c]);
                } else {
                    d.fill(0.0);
                }
            }
        }
    }
}
