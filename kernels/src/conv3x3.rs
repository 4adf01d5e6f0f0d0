//! Standard 3x3 convolution (the MobileNet stem, and the baseline of the paper's cost ratio) as
//! an implicit GEMM on the GEMM micro-kernel: no im2col.
//!
//! For one output row, the three input rows it reads (kernel rows `ky` = 0, 1, 2) are copied into
//! a per-thread buffer, zero-padded left and right (rows in the top/bottom padding are zeros), so
//! that the 3x3 window of output pixel `ox` is, per kernel row, `3 * cin` contiguous floats:
//!
//! ```text
//!  buffer (3 padded rows, row_len = ((out_w - 1) * stride + 3) * cin floats each):
//!  ky=0 | 0 0 0 | x x x x x x x ... x | 0 |      A row ox, segment ky: the 3 * cin floats at
//!  ky=1 | 0 0 0 | x x x x x x x ... x | 0 |      ky * row_len + ox * stride * cin
//!  ky=2 | 0 0 0 | x x x x x x x ... x | 0 |
//! ```
//!
//! So A (`M = out_w` pixels, `K = 9 * cin`) has rows `stride * cin` apart, each three segments of
//! `3 * cin` floats `row_len` apart ([`GemmTile::a`](crate::gemm::ukernel::GemmTile::a)), and B is
//! the HWIO weights packed as for a pointwise layer with `K = 9 * cin`. The copy is
//! `3 * row_len` floats per output row, against `out_w * 9 * cin * cout` multiply-adds. The im2col
//! it replaces (a `9 * cin`-float row per output pixel, written and then read back) made the stem
//! (`cin = 3`) about 1.5x slower than the GEMM alone.

use std::cell::RefCell;

use crate::dwconv::expect;
use crate::error::Result;
use crate::gemm::{gemm, GemmShape, Segments, MIN_MACS_PER_THREAD};
use crate::pack::{pack_conv3x3, ConvWeights, WeightLayout};
use crate::params::Conv3x3Params;
use crate::tensor::{TensorView, TensorViewMut};
use crate::threading::run_bands;
use crate::Kernels;

thread_local! {
    /// The three padded input rows of the output row being computed (per thread).
    static WINDOW_ROWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
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

        // One GEMM per output row (M = its pixels), reading A straight from three padded input
        // rows (see the module docs).
        let os = output.strides;
        let rows = (0..o.n * o.h).map(move |r| {
            let (n, y) = (r / o.h, r % o.h);
            ((n, y), n * os.batch + y * os.row)
        });
        let macs = o.n * o.h * o.w * 9 * i.c * o.c;
        let threads = (macs / MIN_MACS_PER_THREAD).clamp(1, self.threads);
        // A padded row: input columns `-pad_left .. (out_w - 1) * stride - pad_left + 3`.
        let padded_w = (o.w - 1) * g.stride + 3;
        let row_len = padded_w * i.c;
        let shape = GemmShape {
            m: o.w,
            lda: g.stride * i.c,
            ldc: output.strides.pixel,
            segments: Some(Segments {
                len: 3 * i.c,
                stride: row_len,
            }),
        };

        run_bands(self.threads, threads, output.data, rows, |part| {
            WINDOW_ROWS.with(|buf| {
                let mut buf = buf.borrow_mut();
                if buf.len() < 3 * row_len {
                    buf.resize(3 * row_len, 0.0);
                }
                for ((n, oy), out) in part {
                    for (ky, dst) in buf[..3 * row_len].chunks_exact_mut(row_len).enumerate() {
                        let iy = (oy * g.stride + ky).wrapping_sub(g.pad_top);
                        padded_row(input, n, iy, g.pad_left, dst);
                    }
                    gemm(
                        self.gemm,
                        1,
                        shape,
                        &buf[..3 * row_len],
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

/// Fills `dst` (`padded_w` pixels of `cin` floats, packed) with input row `iy` of image `n`
/// starting at column `-pad_left`: zeros for the columns outside the image, and for the whole
/// row when `iy` is outside it (top/bottom padding).
fn padded_row(input: &TensorView<'_>, n: usize, iy: usize, pad_left: usize, dst: &mut [f32]) {
    let (c, w) = (input.shape.c, input.shape.w);
    let padded_w = dst.len() / c;
    if iy >= input.shape.h {
        dst.fill(0.0);
        return;
    }
    // Columns `pad_left .. pad_left + in_cols` of `dst` are input columns `0 .. in_cols`.
    let in_cols = w.min(padded_w.saturating_sub(pad_left));
    let (left, rest) = dst.split_at_mut(pad_left.min(padded_w) * c);
    let (mid, right) = rest.split_at_mut(in_cols * c);
    left.fill(0.0);
    right.fill(0.0);
    let row = &input.data[input.offset(n, iy, 0)..];
    if input.strides.pixel == c {
        mid.copy_from_slice(&row[..in_cols * c]);
    } else {
        for (x, d) in mid.chunks_exact_mut(c).enumerate() {
            d.copy_from_slice(&row[x * input.strides.pixel..][..c]);
        }
    }
}
