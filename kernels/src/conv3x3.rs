//! Standard 3x3 convolution (the MobileNet stem, and the baseline of the paper's cost ratio) as
//! an implicit GEMM on the GEMM micro-kernel: no im2col.
//!
//! With dense pixels (pixel stride `cin`), the 3x3 window of output pixel `ox` is, per kernel row
//! `ky`, `3 * cin` contiguous floats of input row `oy * stride - pad_top + ky`. So for an output
//! row whose three input rows are inside the image, A (`M` = the output pixels whose windows are
//! inside the image, `K = 9 * cin`) is read in place: rows `stride * cin` apart, each three
//! segments of `3 * cin` floats one input row apart
//! ([`GemmTile::a`](crate::gemm::ukernel::GemmTile::a)). B is the HWIO weights packed as for a
//! pointwise layer with `K = 9 * cin`.
//!
//! Each run of pixels is its own GEMM call, which streams all of B, so rows are read in place
//! only where re-reading B for the border runs costs less than copying the three rows (the stem,
//! whose B is 27 x 32, but not Conv MobileNet's wide layers). Where B is larger than an L2, a
//! thread's rows go panel-major instead: their padded input rows copied once, then each NR-column
//! panel of B through every row's GEMM (`Kernels::panel_major`), so B comes from memory once per
//! band of rows instead of once per row.
//!
//! The other pixels (a run at each end of the row, in the left/right padding), every pixel of the
//! rows in the top/bottom padding, inputs with gaps between pixels, and whole rows where the
//! split does not pay go through a per-thread buffer: the three input rows under a run of
//! pixels, copied and zero-padded, so the same segmented A applies with `row_len` as the segment
//! stride:
//!
//! ```text
//!  buffer (3 padded rows, row_len = ((pixels - 1) * stride + 3) * cin floats each):
//!  ky=0 | 0 0 0 | x x x x x x x ... x | 0 |      A row ox, segment ky: the 3 * cin floats at
//!  ky=1 | 0 0 0 | x x x x x x x ... x | 0 |      ky * row_len + ox * stride * cin
//!  ky=2 | 0 0 0 | x x x x x x x ... x | 0 |
//! ```
//!
//! The im2col this replaces (a `9 * cin`-float row per output pixel, written and then read back)
//! made the stem (`cin = 3`) about 1.5x slower than the GEMM alone; copying all three rows of every
//! output row (before in-place reads) cost the stem 7% of its time in `memmove`.
//!
//! What bounds the stem on AVX2 (Zen 3): its depth is only 27, so each 6 x 16 tile is 324 FMAs
//! (162 cycles) before its epilogue. The depth loop itself runs at the FMA bound (`llvm-mca
//! -mcpu=znver3` on the lean loop's segment body: 54.0 cycles per 108 FMAs), but the ReLU6 clamp
//! of the tile, 12 `vmaxps` + 12 `vminps`, issues on the same two pipes as the FMAs (12 cycles),
//! which caps the stem near 93% of peak; the report measures 84-87% best of run (medians 62-78%
//! on this shared machine).

use std::cell::RefCell;
use std::ops::Range;

use crate::dwconv::expect;
use crate::error::Result;
use crate::gemm::{gemm, gemm_panels, GemmShape, Segments, MIN_MACS_PER_THREAD};
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

        // Per output row: one GEMM over the pixels whose 3x3 window lies inside the image, read
        // in place, and one per run of border pixels through padded copies (see the module docs).
        let os = output.strides;
        let rows = (0..o.n * o.h).map(move |r| {
            let (n, y) = (r / o.h, r % o.h);
            ((n, y), n * os.batch + y * os.row)
        });
        let macs = o.n * o.h * o.w * 9 * i.c * o.c;
        let threads = (macs / MIN_MACS_PER_THREAD).clamp(1, self.threads);
        let s = g.stride;
        // Output columns `lo .. hi` read input columns `ox * s - pad_left .. + 3`, all inside.
        let lo = g.pad_left.div_ceil(s);
        let hi = ((i.w + g.pad_left).saturating_sub(3) / s + 1).min(o.w);
        let max_row_len = ((o.w - 1) * s + 3) * i.c;
        // In place, a row costs one GEMM per run of border pixels besides the inside one, and
        // each GEMM call streams all of B again: worth it only while that is less traffic than
        // copying the three rows (the stem: B is 27 x 32; Conv MobileNet's 3x3 layers, whose B
        // is up to 36 MiB, measured up to 2x slower in place).
        let border_runs = usize::from(lo > 0) + usize::from(hi < o.w);
        // With a right border run anyway, the inside run's last `len % MR` pixels join it, so
        // every tile of the inside run is whole (the lean loop) and the border run's pixels make
        // one tile instead of a partial tile and a one-pixel one. The stem (112 outputs per row,
        // 111 inside), AVX-512 8 x 32 tile: 104 + 8 instead of 111 + 1, paired calls on a
        // Cascade Lake core 0.96x the time; AVX2 (108 + 4 instead of 111 + 1) 0.99x.
        let mr = self.gemm.mr;
        let hi = if hi < o.w && hi.saturating_sub(lo) > mr {
            hi - (hi - lo) % mr
        } else {
            hi
        };
        let in_place_cols = (i.w + g.pad_left >= 3
            && lo < hi
            && input.strides.pixel == i.c
            && border_runs * 9 * i.c * o.c < 3 * max_row_len)
            .then_some(lo..hi);
        let window = Window {
            input,
            stride: s,
            pad_left: g.pad_left,
            ldc: os.pixel,
            out_w: o.w,
        };
        // Rows through copies with a B of an L2 or more (Conv MobileNet's std05-std13):
        // panel-major over the band's rows (see `panel_major`).
        let b_bytes = 9 * i.c * o.c * std::mem::size_of::<f32>();
        let panel_major = in_place_cols.is_none() && b_bytes > PANEL_MAJOR_B_BYTES;

        run_bands(self.threads, threads, output.data, rows, |part| {
            WINDOW_ROWS.with(|buf| {
                let mut buf = buf.borrow_mut();
                if panel_major {
                    let mut flush = |run: &mut [Option<OutRow<'_>>]| {
                        self.panel_major(&window, weights, g.pad_top, run, &mut buf, (min, max));
                    };
                    // Runs of up to `PANEL_MAJOR_ROWS` rows of one image (a band may span two),
                    // gathered on the stack: an inference allocates nothing.
                    let mut run = [const { None }; PANEL_MAJOR_ROWS];
                    let mut len = 0;
                    for (row, out) in part {
                        let same_image = matches!(&run[0], Some(((n, _), _)) if *n == row.0);
                        if len == PANEL_MAJOR_ROWS || (len > 0 && !same_image) {
                            flush(&mut run[..len]);
                            len = 0;
                        }
                        run[len] = Some((row, out));
                        len += 1;
                    }
                    flush(&mut run[..len]);
                    return;
                }
                if buf.len() < 3 * max_row_len {
                    buf.resize(3 * max_row_len, 0.0);
                }
                for ((n, oy), out) in part {
                    // The window's top input row, when all three rows are inside the image.
                    let top = (oy * s).checked_sub(g.pad_top).filter(|&iy| iy + 3 <= i.h);
                    let gemm_cols = |cols: Range<usize>, a: &[f32], seg_stride, out: &mut [f32]| {
                        let shape = window.shape(cols.len(), seg_stride);
                        let c = &mut out[cols.start * os.pixel..];
                        gemm(self.gemm, 1, shape, a, &weights.b, c, min, max);
                    };
                    match (top, in_place_cols.clone()) {
                        (Some(iy), Some(cols)) => {
                            let a = &input.data[input.offset(n, iy, cols.start * s - g.pad_left)..];
                            gemm_cols(cols.clone(), a, input.strides.row, out);
                            for border in [0..cols.start, cols.end..o.w] {
                                if !border.is_empty() {
                                    let len = window.fill(&mut buf, n, oy * s, g.pad_top, &border);
                                    gemm_cols(border, &buf, len, out);
                                }
                            }
                        }
                        _ => {
                            let all = 0..o.w;
                            let len = window.fill(&mut buf, n, oy * s, g.pad_top, &all);
                            gemm_cols(all, &buf, len, out);
                        }
                    }
                }
            });
        });
        Ok(())
    }
}

/// B bytes (`9 cin cout` floats) above which rows through copies go panel-major: an L2 or more
/// (512 KiB on Zen 3, 1-2 MiB on Intel server cores). Conv MobileNet 1.0-224 on a Cascade Lake
/// core, each layer both ways alternating in one process (median time ratio, panel-major over
/// row by row; AVX2 / AVX-512): std03 and std04 (B 576 KiB, 1.1 MiB) 1.01 / 1.01 and 1.02-1.03 /
/// 0.99-1.00, so they stay row by row; std05 (2.3 MiB) 0.99 / 0.97, std06 (4.5 MiB) 0.99 / 0.93,
/// std07-std11 (9 MiB) 0.89 / 0.75-0.90, std12 (18 MiB, stride 2) 0.72 / 0.54, std13 (36 MiB)
/// 0.75 / 0.57.
const PANEL_MAJOR_B_BYTES: usize = 2 << 20;

/// An output row `(image, row)` and its piece of the output.
type OutRow<'a> = ((usize, usize), &'a mut [f32]);

/// Most output rows per panel-major run: B is read once per run (Conv MobileNet's std05-std13
/// have 7-28 rows; a 56-row band would take four runs).
const PANEL_MAJOR_ROWS: usize = 16;

impl Kernels {
    /// Output rows `run` (consecutive rows of one image, each with its piece of the output; all
    /// `Some`; none at all is a no-op) through copies, panel-major: the padded input rows under
    /// all of them are copied once into `buf`, then for each NR-column panel of B, each row's
    /// GEMM on that panel. Row by row, each row's GEMM streamed all of B (up to 36 MiB, from L3
    /// or DRAM) for one row of pixels (7-14 here); panel-major, a panel (`9 cin x NR` floats) is
    /// read once per run of rows and stays in L2 while the rows use it. Each output element is the
    /// same tile's sum over the same KC blocks as row by row (the GEMM's tiles do not depend on
    /// which columns a call covers).
    fn panel_major(
        &self,
        window: &Window<'_, '_>,
        weights: &ConvWeights,
        pad_top: usize,
        run: &mut [Option<OutRow<'_>>],
        buf: &mut Vec<f32>,
        (min, max): (f32, f32),
    ) {
        let (input, s) = (window.input, window.stride);
        let Some(Some(((n, oy0), _))) = run.first() else {
            return;
        };
        let (n, oy0) = (*n, *oy0);
        let ow = window.out_w;
        // Padded input rows `oy0 * s - pad_top ..` (with the top/bottom padding as zero rows),
        // `row_len` floats each, one after the other.
        let row_len = ((ow - 1) * s + 3) * input.shape.c;
        let rows_in = (run.len() - 1) * s + 3;
        if buf.len() < rows_in * row_len {
            buf.resize(rows_in * row_len, 0.0);
        }
        let x0 = -(window.pad_left as isize);
        for (r, dst) in buf[..rows_in * row_len]
            .chunks_exact_mut(row_len)
            .enumerate()
        {
            padded_row(input, n, (oy0 * s + r).wrapping_sub(pad_top), x0, dst);
        }
        let (nr, shape) = (self.gemm.nr, window.shape(ow, row_len));
        for jr in (0..weights.b.n).step_by(nr) {
            let cols = jr..(jr + nr).min(weights.b.n);
            for (r, (_, out)) in run.iter_mut().flatten().enumerate() {
                // Output row `oy0 + r` reads padded rows `r * s .. r * s + 3`.
                let a = &buf[r * s * row_len..rows_in * row_len];
                gemm_panels(self.gemm, shape, a, &weights.b, cols.clone(), out, min, max);
            }
        }
    }
}

/// How the 3x3 windows of a run of output pixels map onto the input, for the implicit GEMM.
struct Window<'a, 'b> {
    input: &'a TensorView<'b>,
    stride: usize,
    pad_left: usize,
    /// Output pixel stride (the GEMM's `ldc`).
    ldc: usize,
    /// Output row width (pixels).
    out_w: usize,
}

impl Window<'_, '_> {
    /// The GEMM shape of `m` output pixels whose windows start `stride * cin` floats apart and
    /// whose three kernel rows are `seg_stride` floats apart.
    fn shape(&self, m: usize, seg_stride: usize) -> GemmShape {
        let c = self.input.shape.c;
        GemmShape {
            m,
            lda: self.stride * c,
            ldc: self.ldc,
            segments: Some(Segments {
                len: 3 * c,
                stride: seg_stride,
            }),
        }
    }

    /// Copies the three input rows under output pixels `cols` (padded rows `y0 - pad_top ..`,
    /// columns `cols.start * stride - pad_left ..`) into `buf` as packed, zero-padded rows of
    /// `((cols.len() - 1) * stride + 3) * cin` floats each, and returns that row length.
    fn fill(
        &self,
        buf: &mut [f32],
        n: usize,
        y0: usize,
        pad_top: usize,
        cols: &Range<usize>,
    ) -> usize {
        let c = self.input.shape.c;
        let row_len = ((cols.len() - 1) * self.stride + 3) * c;
        // Signed: the first column is left of the image when it is in the padding.
        let x0 = (cols.start * self.stride) as isize - self.pad_left as isize;
        for (ky, dst) in buf[..3 * row_len].chunks_exact_mut(row_len).enumerate() {
            padded_row(self.input, n, (y0 + ky).wrapping_sub(pad_top), x0, dst);
        }
        row_len
    }
}

/// Fills `dst` (pixels of `cin` floats, packed) with input row `iy` of image `n` from column `x0`
/// on (`x0 < 0`: the left padding): zeros for the columns outside the
/// image, and for the whole row when `iy` is outside it (top/bottom padding).
fn padded_row(input: &TensorView<'_>, n: usize, iy: usize, x0: isize, dst: &mut [f32]) {
    let (c, w) = (input.shape.c, input.shape.w);
    let cols = dst.len() / c;
    if iy >= input.shape.h {
        dst.fill(0.0);
        return;
    }
    // Columns `skip .. skip + inside` of `dst` are input columns `first .. first + inside`.
    let skip = (-x0).clamp(0, cols as isize) as usize;
    let first = (x0 + skip as isize) as usize;
    let inside = w.saturating_sub(first).min(cols - skip);
    let (left, rest) = dst.split_at_mut(skip * c);
    let (mid, right) = rest.split_at_mut(inside * c);
    left.fill(0.0);
    right.fill(0.0);
    if inside == 0 {
        return;
    }
    let row = &input.data[input.offset(n, iy, first)..];
    if input.strides.pixel == c {
        mid.copy_from_slice(&row[..inside * c]);
    } else {
        for (x, d) in mid.chunks_exact_mut(c).enumerate() {
            d.copy_from_slice(&row[x * input.strides.pixel..][..c]);
        }
    }
}
