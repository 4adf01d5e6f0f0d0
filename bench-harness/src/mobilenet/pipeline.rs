//! [`RowPipeline`]: the network's first layers run as a pipeline of row bands, so the large
//! early activations (1.6-3.2 MB at 224x224, against a 0.5-1 MiB L2) never go to L3 or DRAM
//! as whole tensors. The same pipeline, over two layers further on, runs a pointwise layer and
//! the depthwise layer after it (`NetRunner::fuse_pairs`): its input is then an activation
//! buffer with its own pixel stride, and its output may overwrite that input ([`Io::InPlace`])
//! where every band of output rows lands on input rows already read for the last time (the
//! planning run records, per band, how far the first layer has read), its window then lent by
//! the engine (the other activation buffer, in cache where the pipeline's own is not).
//!
//! The last fused layer's output is produced band by band into the ordinary activation buffer
//! the layer after the prefix reads. Every fused layer produces at most `band` output rows per
//! call; to produce rows `r0 .. r1`, it first makes the layer before it hold the input rows they
//! read (a 3x3 layer at stride `s` reads rows `r0 s - top .. (r1 - 1) s - top + 3`, clipped to
//! the image; a pointwise layer reads rows `r0 .. r1`), recursively, then runs once on that band
//! through the public API: a view of the input rows, `Padding::Explicit` with the top (bottom)
//! zero rows only where the band touches the border, the layer's own left/right padding.
//!
//! Each fused layer but the last writes into its own small window, a ring of `cap` rows: output
//! row `r` in slot `r % cap`, rows dropped as soon as no band of the next layer reads them. The
//! windows are sized by a dry run of the same schedule at construction, so each holds the most
//! rows a band ever needs, rounded up to a multiple of the band (MobileNet v1 1.0-224, 8 layers,
//! bands of 2: 2-6 rows, 700 KiB in all), and they stay in cache between bands; rows of 512 or
//! 1024 channels get [`Shape::padded_strides`]' pixel stride. A band
//! starts at a multiple of `band`, so its rows never wrap around a ring: a pointwise layer reads
//! its band's input rows as one view. A depthwise layer reads the three input rows of each output
//! row wherever the ring holds them (`Kernels::depthwise3x3_row`, one call per output row); a
//! standard 3x3 layer (Conv MobileNet) reads a copy of its band's input rows where they wrap.
//! (The windows were linear before, the rows still needed copied to the front when a band would
//! not fit: 3.9 MB of copies per 224x224 inference with 4 layers fused, 106 us of 15-16 ms on an
//! Emerald Rapids VM, timed in the process.)
//!
//! ```text
//!  input 224 rows ──conv1 s2──▶ [6 rows] ──dw1──▶ [2] ──pw1──▶ [6] ──dw2 s2──▶ [2] ──pw2──▶ [6]
//!      ──dw3──▶ [2] ──pw3──▶ [6] ──dw4 s2──▶ whole 28x28x128 activation buffer
//! ```
//!
//! Measured on a Cascade Lake core (1 MiB L2; MobileNet v1 1.0-224, batch 1, one thread; two or
//! more runners in one process run in turn, 100 inferences each, the median of the per-run time
//! ratios against layer by layer): AVX-512, 8 layers fused, 0.954-0.981 with bands of 1-8 rows
//! (12 layers 0.970-0.991, 4 layers 0.970-0.983); AVX2 0.986-0.989; in the VM's slow phases
//! (every layer at about 60% of its usual speed) the two run alike, 0.99-1.01. Per layer the
//! fused stem, `conv_dw_1`, `conv_pw_1` and `conv_dw_2` ran 10-60% faster; what was left is the
//! kernels' own speed at these shallow depths, not memory. An earlier schedule, in which only the
//! last layer was cut into bands and each layer before it produced at once all the rows its
//! consumer asked for (windows of 5-14 rows, 1.27 MB: more than L2), ran within noise of this one.
//!
//! Every layer runs on the same row bands whatever the slab: bands of `band` rows starting at
//! multiples of `band`. With several threads, each runs its own pipeline (its own windows) for
//! a slab of whole bands of the last fused layer, and each layer starts at the band holding the
//! first row its slab reads, so rows where two slabs meet are computed by both, alike: results
//! do not depend on the thread count. (Calling each layer's band on all threads instead cost a
//! synchronisation per call: two threads took 1.12-1.22x the time of layer by layer. With
//! slabs, two threads on this VM's two cores: 0.99x with bands of 2, 1.03x with 4.)
//!
//! Depthwise bands give the same bits as one call (tested in the `sepconv` crate); pointwise and
//! standard-conv bands may differ from one call in the last bits, as the GEMM's short tiles fall
//! on other pixels (see the crate docs, "Floating point").

use std::ops::Range;
use std::time::Instant;

use sepconv::{
    AlignedBuf, Conv3x3Params, Kernels, Padding, Shape, Strides, TensorView, TensorViewMut,
};

use super::model::{Packed, Stage, ACTIVATION};
use crate::workloads::{Layer, Op};

/// Rows `base .. base + len` of one layer's output are held (in the layer's window, or for the
/// last fused layer in the activation buffer); the window holds at most `cap` rows.
#[derive(Clone, Copy, Debug, Default)]
struct Rows {
    base: usize,
    len: usize,
    cap: usize,
}

/// What a band of output rows reads: input rows `a .. b`, with `top` / `bottom` zero rows of
/// padding above / below them.
#[derive(Clone, Copy, Debug)]
struct Span {
    a: usize,
    b: usize,
    top: usize,
    bottom: usize,
}

/// The fused prefix of a network: its first `layers` layers, run in row bands, for the output
/// rows `slab` of the last of them (one thread's share; all rows on one thread).
pub(super) struct RowPipeline {
    layers: usize,
    band: usize,
    slab: Range<usize>,
    /// Per fused layer: `(top, left, right)` zero padding of the whole layer (3x3 layers).
    pads: Vec<(usize, usize, usize)>,
    rows: Vec<Rows>,
    /// The windows of layers `0 .. layers - 1`: rings of `rows[j].cap` output rows each, row
    /// `r` in slot `r % cap`.
    windows: Vec<AlignedBuf>,
    /// The pixel stride of each window's rows: [`Shape::padded_strides`] (512 or 1024
    /// channels at 2 KiB or 4 KiB strides would put a row's pixels into a few L1 sets).
    window_pixel: Vec<usize>,
    /// The input rows of a standard 3x3 layer's band, copied out of a ring where they wrap.
    gather: Vec<f32>,
    /// Per band of the last layer (from the planning run): `(r1, a)`, the band ends at output
    /// row `r1` and the first layer reads input rows from `a` on after it.
    overwrites: Vec<(usize, usize)>,
}

/// What [`RowPipeline::advance`] does at each step: plan (bookkeeping only, sizing the
/// windows) or run the layers.
enum Mode<'a> {
    Plan,
    Run {
        k: Kernels,
        stages: &'a [Stage],
        io: Io<'a>,
        /// Floats from pixel to pixel of the first fused layer's input and of the last one's
        /// output.
        in_pixel: usize,
        out_pixel: usize,
        times: Option<&'a mut [f64]>,
    },
}

/// Where a pipeline reads its first layer's input and writes its last layer's output: one
/// image of each (of the output, rows `slab`).
pub(super) enum Io<'a> {
    /// Two buffers.
    Apart {
        input: &'a [f32],
        out: &'a mut [f32],
    },
    /// One buffer, holding the input as the pipeline starts, and the output at its end: each band
    /// of output rows lands on input rows the first layer has read for the last time (only for
    /// a pipeline over all rows, and where [`RowPipeline::fits_in_place`] says so).
    InPlace(&'a mut [f32]),
}

impl RowPipeline {
    /// Plans the first `layers` layers, each producing `band` output rows per call, as one
    /// pipeline per thread: `threads` slabs of whole bands of the last fused layer's rows (fewer
    /// when it has fewer bands). `Err` names why the prefix cannot be fused: fewer than 2
    /// layers, a layer that is not a 3x3 / depthwise / pointwise convolution, or `band` 0.
    pub(super) fn per_thread(
        stages: &[Stage],
        layers: usize,
        band: usize,
        threads: usize,
    ) -> Result<Vec<RowPipeline>, String> {
        let pads = RowPipeline::pads(stages, layers, band)?;
        let height = stages[layers - 1].layer.out_hw().0;
        let bands = height.div_ceil(band);
        let slabs = threads.clamp(1, bands);
        Ok((0..slabs)
            .map(|i| {
                let rows = (i * bands / slabs * band)..((i + 1) * bands / slabs * band).min(height);
                RowPipeline::new(stages, layers, band, pads.clone(), rows)
            })
            .collect())
    }

    /// Checks that the first `layers` layers can be fused with bands of `band` rows, and returns
    /// each one's `(top, left, right)` zero padding.
    fn pads(
        stages: &[Stage],
        layers: usize,
        band: usize,
    ) -> Result<Vec<(usize, usize, usize)>, String> {
        if layers < 2 || layers > stages.len() {
            return Err(format!(
                "fusing {layers} layers: between 2 and {} can be fused",
                stages.len()
            ));
        }
        if band == 0 {
            return Err("the band must be at least one row".into());
        }
        let mut pads = Vec::with_capacity(layers);
        for st in &stages[..layers] {
            let l = &st.layer;
            pads.push(match l.op {
                Op::Conv3x3 | Op::Depthwise3x3 => {
                    match Conv3x3Params::new()
                        .stride(l.stride)
                        .explicit_padding(l.h, l.w)
                        .map_err(|e| format!("{}: {e}", st.name))?
                    {
                        Padding::Explicit {
                            top, left, right, ..
                        } => (top, left, right),
                        p => unreachable!("explicit_padding returned {p:?}"),
                    }
                }
                Op::Pointwise => (0, 0, 0),
                Op::AvgPool | Op::FullyConnected => {
                    return Err(format!(
                        "{} is not a convolution: only 3x3, depthwise and pointwise layers fuse",
                        st.name
                    ))
                }
            });
        }
        Ok(pads)
    }

    /// Plans the pipeline of the first `layers` layers (`pads` from [`RowPipeline::pads`]) for
    /// output rows `slab` of the last one (`slab.start` a multiple of `band`, `slab.end` one or
    /// the layer's height).
    fn new(
        stages: &[Stage],
        layers: usize,
        band: usize,
        pads: Vec<(usize, usize, usize)>,
        slab: Range<usize>,
    ) -> RowPipeline {
        let mut p = RowPipeline {
            layers,
            band,
            slab,
            pads,
            rows: vec![Rows::default(); layers],
            windows: Vec::new(),
            window_pixel: Vec::new(),
            gather: Vec::new(),
            overwrites: Vec::new(),
        };
        // The dry run drops every row as soon as it is no longer needed, so the largest extent
        // it sees is the smallest window that never overflows.
        p.image(stages, &mut Mode::Plan)
            .expect("planning runs no layer");
        (p.windows, p.window_pixel) = (0..layers - 1)
            .map(|j| {
                // A multiple of the band, so that no band of rows wraps around the ring.
                p.rows[j].cap = p.rows[j].cap.next_multiple_of(band);
                let l = &stages[j].layer;
                let ow = l.out_hw().1;
                let pixel = Shape::new(1, p.rows[j].cap, ow, l.cout)
                    .padded_strides()
                    .map_or(l.cout, |s| s.pixel);
                (AlignedBuf::zeroed(p.rows[j].cap * ow * pixel), pixel)
            })
            .unzip();
        p
    }

    /// Whether the output can overwrite the input ([`Io::InPlace`]) for one image whose input
    /// rows are `in_row` floats apart and output rows `out_row`: every band of output rows must
    /// end before the first input row still to be read. Always false for a slab that is not
    /// all rows.
    pub(super) fn fits_in_place(&self, stages: &[Stage], in_row: usize, out_row: usize) -> bool {
        let height = stages[self.layers - 1].layer.out_hw().0;
        self.slab == (0..height)
            && (self.overwrites.iter()).all(|&(r1, a)| r1 * out_row <= a * in_row)
    }

    /// Floats the window of layer 0 holds (its ring of rows).
    pub(super) fn first_window_len(&self) -> usize {
        self.windows.first().map_or(0, |w| w.len())
    }

    /// Swaps the window of layer 0 with `buf`, which must hold at least
    /// [`RowPipeline::first_window_len`] floats when the pipeline runs: so that a pipeline can
    /// run in a buffer of its engine's, one recently used (in cache) rather than its own.
    pub(super) fn swap_first_window(&mut self, buf: &mut AlignedBuf) {
        std::mem::swap(&mut self.windows[0], buf);
    }

    /// Layers fused.
    pub(super) fn layers(&self) -> usize {
        self.layers
    }

    /// The output rows of the last fused layer this pipeline produces.
    pub(super) fn slab(&self) -> Range<usize> {
        self.slab.clone()
    }

    /// Output rows per call of each fused layer.
    pub(super) fn band(&self) -> usize {
        self.band
    }

    /// Rows each window holds (layers `0 .. layers - 1`).
    pub(super) fn window_rows(&self) -> impl Iterator<Item = usize> + '_ {
        self.rows[..self.layers - 1].iter().map(|r| r.cap)
    }

    /// Runs the fused layers on one image: `io` holds that image of the first fused layer's
    /// input and rows `slab` of that image of the last fused layer's output, each with its
    /// pixel stride (`in_pixel`, `out_pixel`: rows are `width x pixel` floats apart). Adds each
    /// layer's seconds to `times[j]`.
    pub(super) fn run(
        &mut self,
        k: Kernels,
        stages: &[Stage],
        io: Io<'_>,
        (in_pixel, out_pixel): (usize, usize),
        times: Option<&mut [f64]>,
    ) -> sepconv::Result<()> {
        self.image(
            stages,
            &mut Mode::Run {
                k,
                stages,
                io,
                in_pixel,
                out_pixel,
                times,
            },
        )
    }

    /// One image, band after band of the last fused layer's slab (each pulling what it reads).
    fn image(&mut self, stages: &[Stage], mode: &mut Mode) -> sepconv::Result<()> {
        let (last, band) = (self.layers - 1, self.band);
        let slab = self.slab.clone();
        self.rows[last].base = slab.start;
        self.rows[last].len = 0;
        self.rows[last].cap = slab.len();
        // Each layer starts at the first row its consumer reads, rounded down to a multiple of
        // `band`: every layer then runs on the same row bands for any slab, so any split of the
        // rows over threads gives the same bits.
        for j in (0..last).rev() {
            let first = self.rows[j + 1].base;
            let a = self.span(stages, j + 1, first, first + 1).a;
            self.rows[j].base = a / band * band;
            self.rows[j].len = 0;
        }
        for r0 in slab.clone().step_by(band) {
            self.advance(stages, last, r0, (r0 + band).min(slab.end), mode)?;
        }
        Ok(())
    }

    /// Makes layer `j` hold its output rows up to `b`, keeping rows from `a` on (the rows its
    /// consumer reads next). Rows are produced in bands of `band` starting at multiples of
    /// `band` (the last band of the layer may be shorter), so that each band's input rows, not
    /// the whole request's, must be held by the layer before.
    fn advance(
        &mut self,
        stages: &[Stage],
        j: usize,
        a: usize,
        b: usize,
        mode: &mut Mode,
    ) -> sepconv::Result<()> {
        let height = stages[j].layer.out_hw().0;
        loop {
            let Rows { base, len, .. } = self.rows[j];
            let end = base + len;
            if b <= end {
                return Ok(());
            }
            self.chunk(stages, j, a, end..(end + self.band).min(height), mode)?;
        }
    }

    /// Produces output rows `rows` of layer `j` (`rows.start` is the first not yet produced),
    /// keeping its rows from `a` on.
    fn chunk(
        &mut self,
        stages: &[Stage],
        j: usize,
        a: usize,
        rows: Range<usize>,
        mode: &mut Mode,
    ) -> sepconv::Result<()> {
        let plan = matches!(mode, Mode::Plan);
        let Rows { mut base, cap, .. } = self.rows[j];
        let (end, b) = (rows.start, rows.end);
        // Drop the rows below `a` (their slots of the ring get reused).
        if j + 1 < self.layers {
            base = a.clamp(base, end);
        }
        if plan {
            self.rows[j].cap = cap.max(b - base);
        } else {
            assert!(
                b - base <= cap,
                "window {j} too small: {} rows of {cap}",
                b - base
            );
        }
        self.rows[j].base = base;
        let span = self.span(stages, j, end, b);
        if j > 0 {
            self.advance(stages, j - 1, span.a, span.b, mode)?;
        }
        if j + 1 == self.layers {
            match mode {
                Mode::Plan => self.overwrites.push((b, self.next_input_row(stages))),
                Mode::Run {
                    io: Io::InPlace(_),
                    stages,
                    in_pixel,
                    out_pixel,
                    ..
                } => {
                    let (first, last) = (&stages[0].layer, &stages[j].layer);
                    let (in_row, out_row) = (first.w * *in_pixel, last.out_hw().1 * *out_pixel);
                    let a = self.next_input_row(stages);
                    assert!(b * out_row <= a * in_row, "in place: rows {b} over {a}");
                }
                Mode::Run { .. } => {}
            }
        }
        if let Mode::Run {
            k,
            stages,
            io,
            in_pixel,
            out_pixel,
            times,
        } = mode
        {
            let t0 = times.as_ref().map(|_| Instant::now());
            self.layer(*k, stages, j, rows, span, io, (*in_pixel, *out_pixel))?;
            if let (Some(t), Some(t0)) = (times.as_deref_mut(), t0) {
                t[j] += t0.elapsed().as_secs_f64();
            }
        }
        self.rows[j].len = b - base;
        Ok(())
    }

    /// The first input row the first layer reads next (its input's height: none).
    fn next_input_row(&self, stages: &[Stage]) -> usize {
        let end = self.rows[0].base + self.rows[0].len;
        if end < stages[0].layer.out_hw().0 {
            self.span(stages, 0, end, end + 1).a
        } else {
            stages[0].layer.h
        }
    }

    /// The input rows that output rows `r0 .. r1` of layer `j` read.
    fn span(&self, stages: &[Stage], j: usize, r0: usize, r1: usize) -> Span {
        let l = &stages[j].layer;
        if l.op == Op::Pointwise {
            return Span {
                a: r0,
                b: r1,
                top: 0,
                bottom: 0,
            };
        }
        let (s, top) = (l.stride as isize, self.pads[j].0 as isize);
        let lo = r0 as isize * s - top;
        let hi = (r1 as isize - 1) * s - top + 3;
        let (a, b) = (lo.max(0), hi.min(l.h as isize));
        Span {
            a: a as usize,
            b: b as usize,
            top: (a - lo) as usize,
            bottom: (hi - b) as usize,
        }
    }

    /// Runs layer `j` for its output rows `rows`, reading the input rows of `span`; `io` is
    /// the pipeline's input and output, with their pixel strides (see [`RowPipeline::run`]).
    #[allow(clippy::too_many_arguments)]
    fn layer(
        &mut self,
        k: Kernels,
        stages: &[Stage],
        j: usize,
        rows: Range<usize>,
        span: Span,
        io: &mut Io,
        (in_pixel, out_pixel): (usize, usize),
    ) -> sepconv::Result<()> {
        let st = &stages[j];
        let l: &Layer = &st.layer;
        let ow = l.out_hw().1;
        // Pixel strides: the pipeline's input and output as given, the windows' their own.
        let in_px = if j == 0 {
            in_pixel
        } else {
            self.window_pixel[j - 1]
        };
        let out_px = if j + 1 == self.layers {
            out_pixel
        } else {
            self.window_pixel[j]
        };
        let (in_row, out_row) = (l.w * in_px, ow * out_px);
        let strides = |px: usize, row: usize, rows: usize| Strides {
            pixel: px,
            row,
            batch: rows * row,
        };
        let (before, from) = self.windows.split_at_mut(j);
        // The first layer only reads the pipeline's input, the last only writes its output.
        let (input, out): (&[f32], &mut [f32]) = match io {
            Io::Apart { input, out } => (input, out),
            Io::InPlace(buf) if j + 1 == self.layers => (&[], buf),
            Io::InPlace(buf) => (buf, &mut []),
        };
        let dst: &mut [f32] = if j + 1 == self.layers {
            let first = self.slab.start;
            &mut out[(rows.start - first) * out_row..(rows.end - first) * out_row]
        } else {
            // A band starts at a multiple of `band`, which divides the ring's rows: no wrap.
            let slot = rows.start % self.rows[j].cap;
            &mut from[0][slot * out_row..(slot + rows.len()) * out_row]
        };
        let (top, left, right) = self.pads[j];
        let p = Conv3x3Params::new().stride(l.stride).activation(ACTIVATION);
        if let (Packed::Dw(w), Some(ring)) = (&st.packed, before.last()) {
            // Row by row, each output row from its three input rows wherever the ring holds them.
            let cap = self.rows[j - 1].cap;
            let p = p.padding(Padding::Explicit {
                top: 0,
                bottom: 0,
                left,
                right,
            });
            let (in_shape, in_strides) = (Shape::new(1, 1, l.w, l.cin), strides(in_px, in_row, 1));
            let y_shape = Shape::new(1, 1, ow, l.cout);
            for (oy, y_row) in rows.zip(dst.chunks_exact_mut(out_row)) {
                let row = |ky: usize| -> sepconv::Result<Option<TensorView<'_>>> {
                    let iy = (oy * l.stride + ky).checked_sub(top).filter(|&iy| iy < l.h);
                    iy.map(|iy| {
                        let r = &ring[iy % cap * in_row..][..in_row];
                        TensorView::with_strides(r, in_shape, in_strides)
                    })
                    .transpose()
                };
                let (r0, r1, r2) = (row(0)?, row(1)?, row(2)?);
                let mut y =
                    TensorViewMut::with_strides(y_row, y_shape, strides(out_px, out_row, 1))?;
                k.depthwise3x3_row([r0.as_ref(), r1.as_ref(), r2.as_ref()], w, &p, &mut y)?;
            }
            return Ok(());
        }
        // The span's rows, one after the other: the input image's, the pointwise band's rows of
        // the ring (a band: no wrap), or for a standard 3x3 layer a copy of them.
        let src: &[f32] = if j == 0 {
            &input[span.a * in_row..span.b * in_row]
        } else {
            let (ring, cap) = (&before[j - 1], self.rows[j - 1].cap);
            let (a, len) = (span.a % cap, span.b - span.a);
            if a + len <= cap {
                &ring[a * in_row..(a + len) * in_row]
            } else {
                self.gather.clear();
                for iy in span.a..span.b {
                    self.gather
                        .extend_from_slice(&ring[iy % cap * in_row..][..in_row]);
                }
                &self.gather
            }
        };
        let (in_rows, out_rows) = (span.b - span.a, rows.len());
        let x = TensorView::with_strides(
            src,
            Shape::new(1, in_rows, l.w, l.cin),
            strides(in_px, in_row, in_rows),
        )?;
        let mut y = TensorViewMut::with_strides(
            dst,
            Shape::new(1, out_rows, ow, l.cout),
            strides(out_px, out_row, out_rows),
        )?;
        let p = p.padding(Padding::Explicit {
            top: span.top,
            bottom: span.bottom,
            left,
            right,
        });
        match &st.packed {
            Packed::Conv(w) => k.conv3x3(&x, w, &p, &mut y),
            Packed::Dw(w) => k.depthwise3x3(&x, w, &p, &mut y),
            Packed::Pw(w) => k.pointwise(&x, w, ACTIVATION, &mut y),
            Packed::Fc(_) | Packed::Pool => unreachable!("checked in RowPipeline::new"),
        }
    }
}
