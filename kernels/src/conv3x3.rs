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
//! The output rows go in bands (up to [`BAND_ROWS`]), and each part of a band is one batched GEMM
//! call ([`Batch`]: one problem per output row, all on the same B): the inside pixels of the
//! band's inside rows, read in place (problems `stride` input rows apart), and each run of
//! border pixels through copies. A run's GEMM streams all of B, so rows are read in place only
//! where re-reading B for the border runs costs less than copying the three rows (the stem, whose
//! B is 27 x 32, but not Conv MobileNet's wide layers). Where B is larger than an L2, the copies
//! go panel-major instead: each NR-column panel of B through every row of the band
//! (`Bands::copies`), so B comes from memory once per band of rows instead of once per row.
//!
//! The other pixels (a run at each end of the row, in the left/right padding), every pixel of the
//! rows in the top/bottom padding, inputs with gaps between pixels, and whole rows where the
//! split does not pay go through a per-thread buffer: the input rows under a band's run of
//! pixels, copied once each and zero-padded, so the same segmented A applies with `row_len` as
//! the segment stride, output row `y` of the band reading copied rows `y * stride ..`:
//!
//! ```text
//!  buffer: (rows - 1) * stride + 3 padded rows of row_len = ((pixels - 1) * stride + 3) * cin
//!  floats each
//!  row 0 | 0 0 0 | x x x x x x x ... x | 0 |      A row ox of output row y, segment ky: the
//!  row 1 | 0 0 0 | x x x x x x x ... x | 0 |      3 * cin floats at
//!  row 2 | 0 0 0 | x x x x x x x ... x | 0 |      (y * stride + ky) * row_len + ox * stride * cin
//!  ...
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
//!
//! One GEMM call per row (before the bands) spent a tenth of the stem's instructions outside the
//! micro-kernel (`valgrind --tool=callgrind`: 2.0-2.3 K per output row in the GEMM driver, its
//! checks and the copies, beside 23 K in the full tiles); per band, 115.5 M instructions for 40
//! stems against 120.9 M, and the two builds alternating in one process (Emerald Rapids VM,
//! 40-60 pairs) 0.97-0.99x the time on AVX2 and 0.93-0.95x on AVX-512, the same bits. Conv
//! MobileNet's std01-std05, level. The lean tiles
//! alone (valid padding, 108 outputs per row: no border tile, rows in L1) take 195-200 cycles
//! for 324 FMAs there (at the 2.97 GHz its FMA peak implies), 81-83% of peak, with or without
//! the clamp.

use std::cell::RefCell;
use std::ops::Range;

use crate::dwconv::expect;
use crate::error::Result;
use crate::gemm::{gemm, gemm_panels, Batch, GemmShape, Segments, MIN_MACS_PER_THREAD};
use crate::pack::{pack_conv3x3, ConvWeights, WeightLayout};
use crate::params::Conv3x3Params;
use crate::tensor::{TensorView, TensorViewMut};
use crate::threading::run_bands;
use crate::Kernels;

thread_local! {
    /// The padded input rows under the band of output rows being computed (per thread).
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

        // Per band of output rows: one batched GEMM over the pixels whose 3x3 window lies inside
        // the image, read in place, and one per run of border pixels through padded copies (see
        // the module docs).
        let os = output.strides;
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
        // Rows through copies with a B of an L2 or more (Conv MobileNet's std05-std13):
        // panel-major over the band's rows (see `Bands::copies`).
        let b_bytes = 9 * i.c * o.c * std::mem::size_of::<f32>();
        let panel_major = in_place_cols.is_none() && b_bytes > PANEL_MAJOR_B_BYTES;
        // Rows per band: a band's padded copies (`(rows - 1) * s + 3` rows) within
        // `COPY_FLOATS`, and a few bands per thread.
        let rows_per_band = if panel_major {
            PANEL_MAJOR_ROWS
        } else {
            let fit = (COPY_FLOATS / max_row_len).saturating_sub(3) / s + 1;
            fit.min(o.h.div_ceil(2 * threads)).clamp(1, BAND_ROWS)
        };
        let cx = Bands {
            kernels: self,
            input,
            weights,
            stride: s,
            pad_top: g.pad_top,
            pad_left: g.pad_left,
            out_pixel: os.pixel,
            out_row: os.row,
            out_w: o.w,
            in_place_cols,
            panel_major,
            bounds: (min, max),
        };
        let per_image = o.h.div_ceil(rows_per_band);
        let bands = (0..o.n * per_image).map(move |b| {
            let (n, y0) = (b / per_image, b % per_image * rows_per_band);
            (
                (n, y0..(y0 + rows_per_band).min(o.h)),
                n * os.batch + y0 * os.row,
            )
        });
        run_bands(self.threads, threads, output.data, bands, |part| {
            WINDOW_ROWS.with(|buf| {
                let mut buf = buf.borrow_mut();
                for ((n, rows), out) in part {
                    cx.rows(n, rows, out, &mut buf);
                }
            });
        });
        Ok(())
    }
}

/// Most output rows per band (one batched GEMM call per part of a band): the stem's 112 rows
/// in 14 bands, where one call per row had spent about a tenth of the instructions in the
/// driver.
const BAND_ROWS: usize = 8;

/// Floats of padded input rows a band copies at most (128 KiB: a band of the stem copies a
/// few hundred floats; Conv MobileNet's std01, 3648-float rows, gets 6-row bands).
const COPY_FLOATS: usize = 32 << 10;

/// B bytes (`9 cin cout` floats) above which rows through copies go panel-major: an L2 or more
/// (512 KiB on Zen 3, 1-2 MiB on Intel server cores). Conv MobileNet 1.0-224 on a Cascade Lake
/// core, each layer both ways alternating in one process (median time ratio, panel-major over
/// row by row; AVX2 / AVX-512): std03 and std04 (B 576 KiB, 1.1 MiB) 1.01 / 1.01 and 1.02-1.03 /
/// 0.99-1.00, so they stay off it; std05 (2.3 MiB) 0.99 / 0.97, std06 (4.5 MiB) 0.99 / 0.93,
/// std07-std11 (9 MiB) 0.89 / 0.75-0.90, std12 (18 MiB, stride 2) 0.72 / 0.54, std13 (36 MiB)
/// 0.75 / 0.57.
const PANEL_MAJOR_B_BYTES: usize = 2 << 20;

/// Most output rows per panel-major band: B is read once per band (Conv MobileNet's std05-std13
/// have 7-28 rows; a 56-row band would take four).
const PANEL_MAJOR_ROWS: usize = 16;

/// One `conv3x3` call's bands of output rows: how the 3x3 windows of output pixels map onto
/// the input, for the implicit GEMM, and what each band is computed with.
struct Bands<'a, 'b> {
    kernels: &'a Kernels,
    input: &'a TensorView<'b>,
    weights: &'a ConvWeights,
    stride: usize,
    pad_top: usize,
    pad_left: usize,
    /// Output pixel stride (the GEMM's `ldc`) and row stride (between the batch's problems).
    out_pixel: usize,
    out_row: usize,
    /// Output row width (pixels).
    out_w: usize,
    /// The output columns read in place, on the rows whose windows are inside vertically.
    in_place_cols: Option<Range<usize>>,
    /// Copies go panel-major (B of an L2 or more).
    panel_major: bool,
    /// The activation's clamp.
    bounds: (f32, f32),
}

impl Bands<'_, '_> {
    /// Output rows `rows` of image `n`, whose output starts at `out`: on the rows whose three
    /// input rows are inside the image, the in-place columns in place and the runs either side
    /// through copies; all columns of the other rows (the top/bottom padding) through copies.
    fn rows(&self, n: usize, rows: Range<usize>, out: &mut [f32], buf: &mut Vec<f32>) {
        let (s, h) = (self.stride, self.input.shape.h);
        // Output rows `first .. end` have all three input rows `y * s - pad_top .. + 3` inside.
        let first = self.pad_top.div_ceil(s);
        let end = (h + self.pad_top)
            .checked_sub(3)
            .map_or(0, |top| top / s + 1);
        let ya = first.clamp(rows.start, rows.end);
        let yb = end.clamp(ya, rows.end);
        let all = 0..self.out_w;
        match self.in_place_cols.clone() {
            Some(cols) if ya < yb => {
                self.copies(n, rows.start..ya, all.clone(), rows.start, out, buf);
                self.in_place(n, ya..yb, cols.clone(), rows.start, out);
                for border in [0..cols.start, cols.end..self.out_w] {
                    if !border.is_empty() {
                        self.copies(n, ya..yb, border, rows.start, out, buf);
                    }
                }
                self.copies(n, yb..rows.end, all, rows.start, out, buf);
            }
            _ => self.copies(n, rows.clone(), all, rows.start, out, buf),
        }
    }

    /// The GEMM shape of output columns `cols` on `rows` output rows (a batch, one problem per
    /// row, `row_step` floats of A and one output row apart), whose windows start `stride * cin`
    /// floats apart and whose three kernel rows are `seg_stride` floats apart.
    fn shape(
        &self,
        cols: &Range<usize>,
        rows: usize,
        seg_stride: usize,
        row_step: usize,
    ) -> GemmShape {
        let c = self.input.shape.c;
        GemmShape {
            m: cols.len(),
            lda: self.stride * c,
            ldc: self.out_pixel,
            segments: Some(Segments {
                len: 3 * c,
                stride: seg_stride,
            }),
            batch: Batch {
                count: rows,
                a_stride: row_step,
                c_stride: self.out_row,
            },
        }
    }

    /// Columns `cols` of output rows `rows` (all three input rows inside the image, columns
    /// inside too), reading A in place: one batched GEMM.
    fn in_place(
        &self,
        n: usize,
        rows: Range<usize>,
        cols: Range<usize>,
        y0: usize,
        out: &mut [f32],
    ) {
        let (input, s) = (self.input, self.stride);
        let a = &input.data[input.offset(
            n,
            rows.start * s - self.pad_top,
            cols.start * s - self.pad_left,
        )..];
        let shape = self.shape(&cols, rows.len(), input.strides.row, s * input.strides.row);
        let c = &mut out[(rows.start - y0) * self.out_row + cols.start * self.out_pixel..];
        let (min, max) = self.bounds;
        gemm(self.kernels.gemm, 1, shape, a, &self.weights.b, c, min, max);
    }

    /// Columns `cols` of output rows `rows` (none: a no-op) through copies: the padded input
    /// rows under them (`(rows - 1) * stride + 3` rows of `((cols - 1) * stride + 3) * cin`
    /// floats, zeros in the padding) copied once into `buf`, then one batched GEMM, output row
    /// `y` reading copied rows `(y - rows.start) * stride ..` (see the module docs).
    ///
    /// Panel-major (B of an L2 or more): each NR-column panel of B through every row before the
    /// next, so a panel (`9 cin x NR` floats) is read once per band and stays in L2 while the rows
    /// use it; row by row, each row's GEMM streamed all of B (up to 36 MiB, from L3 or DRAM) for
    /// one row of pixels (7-14 here). Each output element is the same tile's sum over the same KC
    /// blocks either way (the GEMM's tiles do not depend on which columns a call covers).
    fn copies(
        &self,
        n: usize,
        rows: Range<usize>,
        cols: Range<usize>,
        y0: usize,
        out: &mut [f32],
        buf: &mut Vec<f32>,
    ) {
        if rows.is_empty() {
            return;
        }
        let (input, s) = (self.input, self.stride);
        let row_len = ((cols.len() - 1) * s + 3) * input.shape.c;
        let rows_in = (rows.len() - 1) * s + 3;
        if buf.len() < rows_in * row_len {
            buf.resize(rows_in * row_len, 0.0);
        }
        // Signed: the first column is left of the image when it is in the padding.
        let x0 = (cols.start * s) as isize - self.pad_left as isize;
        for (r, dst) in buf[..rows_in * row_len]
            .chunks_exact_mut(row_len)
            .enumerate()
        {
            padded_row(
                input,
                n,
                (rows.start * s + r).wrapping_sub(self.pad_top),
                x0,
                dst,
            );
        }
        let shape = self.shape(&cols, rows.len(), row_len, s * row_len);
        let c = &mut out[(rows.start - y0) * self.out_row + cols.start * self.out_pixel..];
        let (min, max, b) = (self.bounds.0, self.bounds.1, &self.weights.b);
        let a = &buf[..rows_in * row_len];
        if self.panel_major {
            let nr = self.kernels.gemm.nr;
            for jr in (0..b.n).step_by(nr) {
                gemm_panels(
                    self.kernels.gemm,
                    shape,
                    a,
                    b,
                    jr..(jr + nr).min(b.n),
                    c,
                    min,
                    max,
                );
            }
        } else {
            gemm(self.kernels.gemm, 1, shape, a, b, c, min, max);
        }
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
