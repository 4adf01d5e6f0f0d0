//! Standard 3x3 convolution (the MobileNet stem, and the baseline of the paper's cost ratio):
//! im2col of a few output rows into a per-thread buffer, then the GEMM micro-kernel on it.

use std::cell::RefCell;

use crate::dwconv::expect;
use crate::error::Result;
use crate::gemm::{gemm, GemmShape};
use crate::pack::{pack_conv3x3, ConvWeights, WeightLayout};
use crate::params::Conv3x3Params;
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

        // Pixels packed back to back: a window row is one contiguous copy.
        let dense = input.strides.pixel == i.c;
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
                        for ox in 0..o.w {
                            let dst = &mut buf[(r * o.w + ox) * depth..][..depth];
                            let ix0 = (ox * g.stride).wrapping_sub(g.pad_left);
                            // The three columns of the window lie side by side in the input row.
                            let whole_row = dense && ix0 < i.w && ix0 + 2 < i.w;
                            for ky in 0..3 {
                                let iy = ((y0 + r) * g.stride + ky).wrapping_sub(g.pad_top);
                                if whole_row && iy < i.h {
                                    copy_window_row(
                                        &mut dst[ky * 3 * i.c..][..3 * i.c],
                                        &input.data[input.offset(n, iy, ix0)..][..3 * i.c],
                                    );
                                    continue;
                                }
                                for kx in 0..3 {
                                    let ix = (ox * g.stride + kx).wrapping_sub(g.pad_left);
                                    let d = &mut dst[(ky * 3 + kx) * i.c..][..i.c];
                                    if iy < i.h && ix < i.w {
                                        d.copy_from_slice(
                                            &input.data[input.offset(n, iy, ix)..][..i.c],
                                        );
                                    } else {
                                        d.fill(0.0);
                                    }
                                }
                            }
                        }
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

/// Copies one row of a 3x3 window (`3 * cin` floats). The stem's `cin = 3` gets a fixed-size
/// copy the compiler inlines as two vector moves (a `memcpy` call per 36 bytes cost more than
/// the GEMM that follows).
#[inline]
fn copy_window_row(dst: &mut [f32], src: &[f32]) {
    if let (Ok(d), Ok(s)) = (
        <&mut [f32; 9]>::try_from(&mut *dst),
        <&[f32; 9]>::try_from(src),
    ) {
        *d = *s;
    } else {
        dst.copy_from_slice(src);
    }
}
