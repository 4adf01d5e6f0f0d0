//! [`NetRunner`]: a network's folded weights packed once for one set of kernels, its input and
//! two ping-pong activation buffers allocated once for a batch size; [`NetRunner::run`] is one
//! inference (conv / depthwise / pointwise with fused bias + ReLU6, average pool, classifier,
//! softmax) and allocates nothing itself.

#![forbid(unsafe_code)]

use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use sepconv::{
    Activation, AlignedBuf, Conv3x3Params, ConvWeights, DepthwiseWeights, FullyConnectedWeights,
    Kernels, PointwiseWeights, Shape, Strides, TensorView, TensorViewMut, WeightLayout,
};

use super::pipeline::{Io, RowPipeline};
use super::weights::{fold_network, FoldedLayer, Weights};
use super::ModelError;
use crate::cases::random_vec;
use crate::workloads::{Layer, Network, Op};

pub(super) enum Packed {
    Conv(ConvWeights),
    Dw(DepthwiseWeights),
    Pw(PointwiseWeights),
    Fc(FullyConnectedWeights),
    Pool,
}

pub(super) struct Stage {
    pub(super) layer: Layer,
    pub(super) name: String,
    pub(super) packed: Packed,
}

/// The activation after every conv, depthwise and pointwise layer (Keras' MobileNet: ReLU6).
pub const ACTIVATION: Activation = Activation::Relu6;

/// A network ready to run on one set of kernels, for a fixed batch size.
pub struct NetRunner {
    k: Kernels,
    network: Network,
    batch: usize,
    stages: Vec<Stage>,
    input: AlignedBuf,
    bufs: [AlignedBuf; 2],
    probs: AlignedBuf,
    classes: usize,
    /// The fused prefix ([`NetRunner::fuse_rows`]): one pipeline per thread, each for a slab of
    /// the last fused layer's rows; empty when every layer runs whole.
    pipelines: Vec<RowPipeline>,
    /// Pointwise layers run with the depthwise layer after them in row bands
    /// ([`NetRunner::fuse_pairs`]): the pointwise layer's index and the pair's pipeline (one for
    /// all threads: the kernels split each band's pointwise call), in layer order.
    pairs: Vec<(usize, RowPipeline)>,
    /// Per pair: whether its depthwise output overwrites its input (`lay_out`: where each
    /// band's output rows lie on input rows already read, and the images are as large or the
    /// batch is 1), which then stays in cache for the next layer instead of a buffer untouched
    /// since two layers before.
    pair_in_place: Vec<bool>,
    /// Which of the two buffers each layer's output lands in (`lay_out`): they alternate over the
    /// layers whose outputs are written whole; a layer inside a fused group gets its group's.
    out_buf: Vec<usize>,
    /// Whether activations whose dense pixel stride is a multiple of 2 KiB get one line of
    /// padding per pixel ([`NetRunner::pad_pixels`]): every layer's output is laid out as
    /// [`Shape::padded_strides`], else dense.
    pad: bool,
}

/// The pixel stride the runner gives an `h x w x c` activation: dense, or when `pad`, that of
/// [`Shape::padded_strides`] (`c + 16` for 512, 1024 channels in a tensor of more than one
/// pixel, so that consecutive pixels fall into consecutive L1 sets; the layer writing the
/// tensor pays nothing for it).
pub fn pixel_stride(pad: bool, h: usize, w: usize, c: usize) -> usize {
    match Shape::new(1, h, w, c).padded_strides() {
        Ok(s) if pad => s.pixel,
        _ => c,
    }
}

/// The strides of `shape` as the runner lays it out: [`Shape::padded_strides`] or dense.
fn layout(shape: Shape, padded: bool) -> sepconv::Result<Strides> {
    if padded {
        shape.padded_strides()
    } else {
        shape.dense_strides()
    }
}

impl NetRunner {
    /// Batch 1 with seeded random weights ([`Weights::random`], batch norm folded at load) and a
    /// seeded random input: what the report's `net.*` rows time.
    pub fn new(k: Kernels, network: &Network, seed: u64) -> Result<NetRunner, ModelError> {
        let w = Weights::random(network, seed);
        let mut r = NetRunner::with_weights(k, network, &w, 1)?;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x1A9E);
        let len = r.input.len();
        r.input.copy_from_slice(&random_vec(&mut rng, len, 1.0));
        Ok(r)
    }

    /// Checks and folds `weights` (see [`fold_network`]), packs every layer once and allocates
    /// the buffers for `batch` images. The input starts as zeros ([`NetRunner::input_mut`]).
    pub fn with_weights(
        k: Kernels,
        network: &Network,
        weights: &Weights,
        batch: usize,
    ) -> Result<NetRunner, ModelError> {
        let folded = fold_network(network, weights)?;
        NetRunner::from_folded(k, network, &folded, batch)
    }

    /// As [`NetRunner::with_weights`], from already folded layers (one per layer of `network`).
    pub fn from_folded(
        k: Kernels,
        network: &Network,
        folded: &[FoldedLayer],
        batch: usize,
    ) -> Result<NetRunner, ModelError> {
        if batch == 0 {
            return Err(ModelError::Unsupported("batch must be at least 1".into()));
        }
        let (first, last) = match (network.layers.first(), network.layers.last()) {
            (Some(f), Some(l)) if folded.len() == network.layers.len() => (f, l),
            _ => {
                return Err(ModelError::Unsupported(format!(
                    "{}: {} layers, {} folded",
                    network.id,
                    network.layers.len(),
                    folded.len()
                )))
            }
        };
        let mut max_len = 0;
        let mut stages = Vec::with_capacity(folded.len());
        for (l, f) in network.layers.iter().zip(folded) {
            // Room for the padded layout too ([`NetRunner::pad_pixels`]).
            let (oh, ow) = l.out_hw();
            max_len = max_len.max(oh * ow * pixel_stride(true, oh, ow, l.cout));
            let (w, b) = (&f.weights[..], Some(&f.bias[..]));
            let packed = match l.op {
                Op::Conv3x3 => {
                    Packed::Conv(k.pack_conv3x3(w, WeightLayout::Hwio, b, l.cin, l.cout)?)
                }
                Op::Depthwise3x3 => {
                    Packed::Dw(k.pack_depthwise3x3(w, WeightLayout::Hwio, b, l.cin)?)
                }
                Op::Pointwise => {
                    Packed::Pw(k.pack_pointwise(w, WeightLayout::Hwio, b, l.cin, l.cout)?)
                }
                Op::FullyConnected => Packed::Fc(k.pack_fully_connected(
                    w,
                    WeightLayout::Hwio,
                    b,
                    l.h * l.w * l.cin,
                    l.cout,
                )?),
                Op::AvgPool => Packed::Pool,
            };
            stages.push(Stage {
                layer: l.clone(),
                name: f.name.clone(),
                packed,
            });
        }
        let classes = last.output_len();
        let mut r = NetRunner {
            k,
            network: network.clone(),
            batch,
            stages,
            // Activations on cache lines (see `AlignedBuf`).
            input: AlignedBuf::zeroed(batch * first.input_len()),
            bufs: [
                AlignedBuf::zeroed(batch * max_len),
                AlignedBuf::zeroed(batch * max_len),
            ],
            probs: AlignedBuf::zeroed(batch * classes),
            classes,
            pipelines: Vec::new(),
            pairs: Vec::new(),
            pair_in_place: Vec::new(),
            out_buf: Vec::new(),
            pad: true,
        };
        r.lay_out();
        Ok(r)
    }

    /// Lays out each layer's output ([`pixel_stride`]), decides which pairs run in place and
    /// picks each layer's buffer (`out_buf`).
    fn lay_out(&mut self) {
        let n = self.stages.len();
        // Layers whose output is not written whole (all but the last of each fused group), and
        // those written over their group's input.
        let (mut inside, mut over) = (vec![false; n], vec![false; n]);
        let prefix = self.pipelines.first().map_or(0, |p| p.layers());
        for j in 0..prefix.saturating_sub(1) {
            inside[j] = true;
        }
        self.pair_in_place.clear();
        for (i, p) in &self.pairs {
            let (in_row, out_row) = (self.out_row(i - 1), self.out_row(i + 1));
            let (in_len, out_len) = (self.out_image(i - 1), self.out_image(i + 1));
            let fits = p.fits_in_place(&self.stages[*i..], in_row, out_row);
            // (And the other buffer, its window then, holds the window.)
            let in_place = fits
                && (self.batch == 1 || in_len == out_len)
                && p.first_window_len() <= self.bufs[0].len();
            self.pair_in_place.push(in_place);
            inside[*i] = true;
            over[i + 1] = in_place;
        }
        // Materialised outputs alternate between the buffers but where written over the input.
        let mut last = None;
        self.out_buf = vec![0; n];
        for j in 0..n {
            if !inside[j] {
                let b = match last {
                    Some(b) if over[j] => b,
                    Some(b) => 1 - b,
                    None => 0,
                };
                self.out_buf[j] = b;
                last = Some(b);
            }
        }
        // A layer inside a group: its group's buffer.
        for j in (0..n.saturating_sub(1)).rev() {
            if inside[j] {
                self.out_buf[j] = self.out_buf[j + 1];
            }
        }
    }

    /// Pads each pixel of the activations whose dense pixel stride is a multiple of 2 KiB by
    /// one cache line (on by default; see [`pixel_stride`]), or lays every activation out
    /// densely. Results are the same either way.
    pub fn pad_pixels(&mut self, pad: bool) {
        self.pad = pad;
        self.lay_out();
    }

    /// The pixel stride (floats) of each layer's output, in layer order.
    pub fn out_pixel_strides(&self) -> Vec<usize> {
        (0..self.stages.len()).map(|j| self.out_pixel(j)).collect()
    }

    /// The pixel stride (floats) of layer `j`'s output as laid out ([`pixel_stride`]).
    fn out_pixel(&self, j: usize) -> usize {
        let l = &self.stages[j].layer;
        let (oh, ow) = l.out_hw();
        pixel_stride(self.pad, oh, ow, l.cout)
    }

    /// Floats from one row of layer `j`'s output to the next.
    fn out_row(&self, j: usize) -> usize {
        self.stages[j].layer.out_hw().1 * self.out_pixel(j)
    }

    /// Floats from one image of layer `j`'s output to the next.
    fn out_image(&self, j: usize) -> usize {
        self.stages[j].layer.out_hw().0 * self.out_row(j)
    }

    /// Runs the first `layers` layers as a pipeline of row bands (see the `pipeline` module):
    /// each produces at most `band` output rows per call, and only when the layer after it
    /// reads them, into a window of a few rows that stays in cache (the last fused layer into
    /// the activation buffer the rest of the network reads). With several threads each runs the
    /// pipeline for a slab of the rows. The results equal those of layer-by-layer runs but for
    /// the last bits of pointwise and standard-conv outputs, and do not depend on the thread
    /// count. `layers` 0 goes back to layer by layer.
    ///
    /// `Err` if the prefix cannot be fused (fewer than 2 or more than all layers, a pooling or
    /// fully connected layer in it, `band` 0).
    pub fn fuse_rows(&mut self, layers: usize, band: usize) -> Result<(), ModelError> {
        if let Some((i, _)) = self.pairs.first().filter(|(i, _)| *i < layers) {
            return Err(ModelError::Unsupported(format!(
                "fusing {layers} layers: the pair at layer {i} is fused already"
            )));
        }
        self.pipelines = if layers == 0 {
            Vec::new()
        } else {
            RowPipeline::per_thread(&self.stages, layers, band, self.k.threads())
                .map_err(ModelError::Unsupported)?
        };
        self.lay_out();
        Ok(())
    }

    /// Runs each pointwise layer `i` of `pairs` (`(i, band)`) together with the depthwise layer
    /// after it as a pipeline of row bands (see the `pipeline` module): the pointwise layer
    /// produces `band` output rows per call into a window of a few rows, and the depthwise layer
    /// reads them from there, while they are in cache, as soon as it has the three rows an
    /// output row reads. (Layer by layer, the depthwise layer reads an activation the pointwise
    /// layer wrote while streaming its weights, much of it gone to L3 by then.) All threads work
    /// on each band (the pointwise call is split as any call), so the results do not depend on
    /// the thread count; they equal those of layer-by-layer runs but for the last bits of the
    /// pointwise outputs. An empty list goes back to layer by layer.
    ///
    /// `Err` if a pair is not a pointwise layer followed by a depthwise one, overlaps the fused
    /// prefix or another pair, or has `band` 0.
    pub fn fuse_pairs(&mut self, pairs: &[(usize, usize)]) -> Result<(), ModelError> {
        let prefix = self.pipelines.first().map_or(0, |p| p.layers());
        let mut fused = Vec::with_capacity(pairs.len());
        let mut after = prefix;
        let mut sorted = pairs.to_vec();
        sorted.sort_unstable();
        for (i, band) in sorted {
            let ops = (self.stages.get(i), self.stages.get(i + 1));
            let name = |j: usize| self.stages.get(j).map_or("(none)", |s| s.name.as_str());
            match ops {
                (Some(a), Some(b))
                    if i > 0 && a.layer.op == Op::Pointwise && b.layer.op == Op::Depthwise3x3 => {}
                _ => {
                    return Err(ModelError::Unsupported(format!(
                        "pair at layer {i} ({} then {}): a pointwise layer followed by a \
                         depthwise one fuses",
                        name(i),
                        name(i + 1)
                    )))
                }
            }
            if i < after {
                return Err(ModelError::Unsupported(format!(
                    "pair at layer {i} ({}): overlaps the fused prefix or the pair before it",
                    name(i)
                )));
            }
            let mut p = RowPipeline::per_thread(&self.stages[i..], 2, band, 1)
                .map_err(ModelError::Unsupported)?;
            fused.push((i, p.remove(0)));
            after = i + 2;
        }
        self.pairs = fused;
        self.lay_out();
        Ok(())
    }

    /// How many leading layers [`NetRunner::fuse_rows`] should fuse on a core with `l2_bytes`
    /// of L2: through the last layer whose input (one image) is larger than L2, counting only
    /// the stem and the depthwise and pointwise layers after it, and stopping before a
    /// pointwise layer whose weights take a quarter of L2 or more (every band reads all of a fused
    /// layer's weights again: they must stay in L2 beside the windows; for the same reason a
    /// standard 3x3 conv after the stem, as in Conv MobileNet, ends the prefix). 0 when fewer
    /// than 2 layers qualify: every activation then fits L2 anyway.
    ///
    /// MobileNet v1 1.0-224 gets 8 (through `conv_dw_4`, whose 56x56x128 input is 1.6 MB) with
    /// a 1 MiB L2, and with 512 KiB too (`conv_pw_4`'s 128 KiB of weights end it there).
    /// Measured on a Cascade Lake core (1 MiB L2; paired runs, see the `pipeline` module):
    /// fusing 8 layers took 0.954-0.981x the time of layer by layer with AVX-512 (12 layers:
    /// 0.970-0.991x) and 0.986-0.989x with AVX2. On an Emerald Rapids VM (2 MiB L2: 4 layers)
    /// fusing 4, 8 or none is level with AVX2 (alternating in one process, per-round median
    /// ratios 0.97-1.00): activations of up to 1.6 MB stay in its L2 either way.
    pub fn auto_fusion(&self, l2_bytes: u64) -> usize {
        let mut fuse = 0;
        for (j, st) in self.stages.iter().enumerate() {
            let l = &st.layer;
            let fusable = match l.op {
                Op::Depthwise3x3 => true,
                Op::Pointwise => ((l.cin * l.cout * 4) as u64) < l2_bytes / 4,
                Op::Conv3x3 => j == 0,
                Op::AvgPool | Op::FullyConnected => false,
            };
            if !fusable {
                break;
            }
            if (l.input_len() * 4) as u64 > l2_bytes {
                fuse = j + 1;
            }
        }
        if fuse < 2 {
            0
        } else {
            fuse
        }
    }

    /// Which pointwise layers [`NetRunner::fuse_pairs`] should fuse with the depthwise layer
    /// after them, and their bands, on a core with `l2_bytes` of L2, for one thread and batch 1:
    /// those after the fused prefix whose depthwise layer has stride 2 and whose weights take
    /// less than a quarter of L2 (every band reads all of them again), each with the fewest rows
    /// from `band` on that make whole GEMM row tiles ([`NetRunner::tile_aligned_band`]), so that
    /// the results are those of layer-by-layer runs, bit for bit, and so do not depend on the
    /// thread count either. None with more threads: each band's pointwise call is split over
    /// the threads and the depthwise rows stay on one (2 threads on the Emerald Rapids VM:
    /// `conv_pw_3` 125 against ~165 GFLOP/s, the inference 1.02-1.04x the time of layer by
    /// layer). None at batch 2 or more, where layer by layer one GEMM call spans the images
    /// (so the bits would differ), and a pair's output overwrites its input only where the
    /// images are of one size.
    ///
    /// Measured on an Emerald Rapids VM (2 MiB L2, MobileNet v1 1.0-224, one thread; the runner
    /// with and without pairs alternating in one process, 16-40 rounds of 20 inferences,
    /// per-layer medians of the per-round ratios): AVX2, bands of 3 rows (the 6-row tiles),
    /// `conv_dw_4` 0.60x the time (faster in 40 of 40 rounds), `conv_dw_6` 0.92x, `conv_pw_3`
    /// 0.98x, `conv_pw_5` 1.01x, the inference 0.995x (median times 14.72 -> 14.54 ms; its noise
    /// is larger than the ~30 us gained); with bands of 2 rows alike (`conv_dw_4` 0.57-0.69x,
    /// the inference 0.996-1.004x). AVX-512, bands of 2: `conv_dw_4` 0.47x, `conv_dw_6` 0.88x,
    /// the inference 0.983x. Pairs
    /// into stride-1 depthwise layers measured slower and are not picked: `conv_dw_8` ..
    /// `conv_dw_11` 1.04-1.10x the time with bands of 6 rows and the window in the other
    /// buffer (1.22-1.35x with the pair's own window, cold since the inference before), their
    /// pointwise layers 1.02-1.03x (with 6 rows, 84 pixels, two MC blocks per band: B streams
    /// twice as often), 1.02-1.07x with bands of 5 (70 pixels, one MC block); `conv_dw_5` (not
    /// in place: its output is twice its input) 1.15-1.30x.
    pub fn auto_pairs(&self, l2_bytes: u64, band: usize) -> Vec<(usize, usize)> {
        if self.k.threads() > 1 || self.batch > 1 {
            return Vec::new();
        }
        let prefix = self.pipelines.first().map_or(0, |p| p.layers());
        (prefix.max(1)..self.stages.len().saturating_sub(1))
            .filter(|&i| {
                let (pw, dw) = (&self.stages[i].layer, &self.stages[i + 1].layer);
                pw.op == Op::Pointwise
                    && dw.op == Op::Depthwise3x3
                    && dw.stride == 2
                    && ((pw.cin * pw.cout * 4) as u64) < l2_bytes / 4
            })
            .map(|i| (i, self.tile_aligned_band(i, band)))
            .collect()
    }

    /// The fewest rows, at least `band`, of pointwise layer `i`'s output that hold a whole
    /// number of the GEMM kernel's row tiles (`mr` pixels): a pair with such bands makes the
    /// same tiles as one call over the whole layer, and so the same bits (a pixel's result
    /// depends only on whether it falls in a short edge tile, see the crate docs).
    ///
    /// # Panics
    /// If `i` is not a layer index.
    pub fn tile_aligned_band(&self, i: usize, band: usize) -> usize {
        let (w, mr) = (self.stages[i].layer.w, self.k.gemm_kernel().mr);
        let (mut a, mut b) = (w, mr);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        let rows = mr / a;
        band.max(1).div_ceil(rows) * rows
    }

    /// The fused prefix: `(layers, band rows, rows of each layer's window)`, or `None` when
    /// every layer runs whole.
    pub fn fused(&self) -> Option<(usize, usize, Vec<usize>)> {
        self.pipelines
            .first()
            .map(|p| (p.layers(), p.band(), p.window_rows().collect()))
    }

    /// The fused pairs ([`NetRunner::fuse_pairs`]), in order: `(pointwise layer, band rows,
    /// whether the depthwise output overwrites the pair's input)`.
    pub fn fused_pairs(&self) -> Vec<(usize, usize, bool)> {
        (self.pairs.iter().zip(&self.pair_in_place))
            .map(|((i, p), &in_place)| (*i, p.band(), in_place))
            .collect()
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The kernels it runs on.
    pub fn kernels(&self) -> Kernels {
        self.k
    }

    /// Images per inference.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Classes per image (1000).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The layers in execution order, with their Keras names. [`NetRunner::run_timed`] times
    /// these and then the softmax.
    pub fn layers(&self) -> impl Iterator<Item = (&str, &Layer)> {
        self.stages.iter().map(|s| (s.name.as_str(), &s.layer))
    }

    /// The input images (dense NHWC, `batch x r x r x 3`), to overwrite before a run.
    pub fn input_mut(&mut self) -> &mut [f32] {
        &mut self.input
    }

    /// One inference of the whole batch; returns the class probabilities (softmax),
    /// `batch x 1000`, image after image.
    pub fn run(&mut self) -> sepconv::Result<&[f32]> {
        let k = self.k;
        k.run_in_pool(|| self.forward(None))?;
        Ok(&self.probs)
    }

    /// As [`NetRunner::run`], adding each layer's seconds to `times[i]` (one entry per layer,
    /// then one for the softmax): per-layer times inside whole forwards, with the caches as a
    /// real inference leaves them.
    ///
    /// # Panics
    /// If `times` does not have one entry per layer plus one.
    pub fn run_timed(&mut self, times: &mut [f64]) -> sepconv::Result<&[f32]> {
        assert_eq!(
            times.len(),
            self.stages.len() + 1,
            "one time per layer + softmax"
        );
        let k = self.k;
        k.run_in_pool(|| self.forward(Some(times)))?;
        Ok(&self.probs)
    }

    /// The logits (classifier outputs before softmax) of the last run, `batch x 1000`.
    pub fn logits(&self) -> &[f32] {
        let n = self.stages.len();
        &self.bufs[self.out_buf[n - 1]][..self.batch * self.classes]
    }

    /// The probabilities of the last run (as [`NetRunner::run`] returned them).
    pub fn probabilities(&self) -> &[f32] {
        &self.probs
    }

    /// Runs layer `i` alone on the buffers a whole inference gives it: its input is what the
    /// layer before it wrote in the last run (the input images for layer 0; after a layer
    /// inside a fused group, whatever its group's buffer holds), its output goes where the next
    /// layer reads it. Run repeatedly, this times a layer with the caches warm
    /// from itself, to set beside its time inside whole inferences ([`NetRunner::run_timed`]).
    ///
    /// # Panics
    /// If `i` is not a layer index.
    pub fn run_layer(&mut self, i: usize) -> sepconv::Result<()> {
        assert!(i < self.stages.len(), "layer {i} of {}", self.stages.len());
        let k = self.k;
        k.run_in_pool(|| self.stage(i))
    }

    /// Layer `i`: reads the buffer layer `i - 1` wrote (the input for 0), writes the other.
    fn stage(&mut self, i: usize) -> sepconv::Result<()> {
        let (k, n) = (self.k, self.batch);
        let (src, dst) = io(&self.input, &mut self.bufs, &self.out_buf, i);
        let st = &self.stages[i];
        let l = &st.layer;
        let (oh, ow) = l.out_hw();
        // Each activation as laid out (`lay_out`); the input images are dense.
        let (xs, ys) = (
            Shape::new(n, l.h, l.w, l.cin),
            Shape::new(n, oh, ow, l.cout),
        );
        let xt = layout(xs, i > 0 && self.pad)?;
        let yt = layout(ys, self.pad)?;
        let x = TensorView::with_strides(&src[..n * xt.batch], xs, xt)?;
        let mut y = TensorViewMut::with_strides(&mut dst[..n * yt.batch], ys, yt)?;
        let p = Conv3x3Params::new().stride(l.stride).activation(ACTIVATION);
        match &st.packed {
            Packed::Conv(w) => k.conv3x3(&x, w, &p, &mut y),
            Packed::Dw(w) => k.depthwise3x3(&x, w, &p, &mut y),
            Packed::Pw(w) => k.pointwise(&x, w, ACTIVATION, &mut y),
            Packed::Fc(w) => k.fully_connected(&x, w, Activation::None, &mut y),
            Packed::Pool => k.global_avg_pool(&x, &mut y),
        }
    }

    fn forward(&mut self, mut times: Option<&mut [f64]>) -> sepconv::Result<()> {
        let mut first = 0;
        if let Some(p0) = self.pipelines.first() {
            first = p0.layers();
            let in_len = self.stages[0].layer.input_len();
            let (out_pixel, out_row) = (self.out_pixel(first - 1), self.out_row(first - 1));
            let out_len = self.out_image(first - 1);
            let out = &mut self.bufs[self.out_buf[first - 1]];
            // Each slab's layers run on its own thread, one thread per call.
            let k1 = self.k.with_threads(1)?;
            let stages = &self.stages[..];
            for n in 0..self.batch {
                let input = &self.input[n * in_len..(n + 1) * in_len];
                let image = &mut out[n * out_len..(n + 1) * out_len];
                if let [p] = &mut self.pipelines[..] {
                    // One slab: this thread, and nothing allocated.
                    let io = Io::Apart { input, out: image };
                    p.run(k1, stages, io, (3, out_pixel), times.as_deref_mut())?;
                    continue;
                }
                // The slabs run on the kernels' own pool (no threads started per inference:
                // spawning them cost 16 threads 1.35-1.6x the time of layer by layer on a
                // 16-core VM); the first slab's layer times stand for all slabs'.
                let mut rest = image;
                let mut first_times = times.as_deref_mut();
                let mut parts = Vec::with_capacity(self.pipelines.len());
                for p in &mut self.pipelines {
                    let (part, tail) = rest.split_at_mut(p.slab().len() * out_row);
                    parts.push((p, part, first_times.take()));
                    rest = tail;
                }
                self.k.run_parts(parts, |(p, part, t)| {
                    let io = Io::Apart { input, out: part };
                    p.run(k1, stages, io, (3, out_pixel), t)
                })?;
            }
        }
        let (mut i, mut pair) = (first, 0);
        while i < self.stages.len() {
            if self.pairs.get(pair).is_some_and(|(j, _)| *j == i) {
                // A fused pair: image by image, all threads on each band.
                let pixels = (self.out_pixel(i - 1), self.out_pixel(i + 1));
                let (in_len, out_len) = (self.out_image(i - 1), self.out_image(i + 1));
                let (p, in_place) = (&mut self.pairs[pair].1, self.pair_in_place[pair]);
                pair += 1;
                let stages = &self.stages[i..];
                if in_place {
                    // Batch 1, or images of one size: image `n` over image `n`. The window is
                    // the other buffer (written two layers before: in cache, where the
                    // pipeline's own window was last touched an inference before).
                    let (buf, free) = this_and_other(&mut self.bufs, self.out_buf[i - 1]);
                    p.swap_first_window(free);
                    let mut run = || -> sepconv::Result<()> {
                        for image in buf.chunks_exact_mut(in_len).take(self.batch) {
                            let t = times.as_deref_mut().map(|t| &mut t[i..]);
                            p.run(self.k, stages, Io::InPlace(image), pixels, t)?;
                        }
                        Ok(())
                    };
                    let result = run();
                    p.swap_first_window(free);
                    result?;
                } else {
                    let (src, dst) = io(&self.input, &mut self.bufs, &self.out_buf, i);
                    for n in 0..self.batch {
                        let t = times.as_deref_mut().map(|t| &mut t[i..]);
                        let io = Io::Apart {
                            input: &src[n * in_len..(n + 1) * in_len],
                            out: &mut dst[n * out_len..(n + 1) * out_len],
                        };
                        p.run(self.k, stages, io, pixels, t)?;
                    }
                }
                i += 2;
                continue;
            }
            let t0 = times.as_ref().map(|_| Instant::now());
            self.stage(i)?;
            if let (Some(t), Some(t0)) = (times.as_deref_mut(), t0) {
                t[i] += t0.elapsed().as_secs_f64();
            }
            i += 1;
        }
        let t0 = times.as_ref().map(|_| Instant::now());
        let n = self.batch;
        let logits = &self.bufs[self.out_buf[self.stages.len() - 1]][..n * self.classes];
        for (z, p) in logits
            .chunks_exact(self.classes)
            .zip(self.probs.chunks_exact_mut(self.classes))
        {
            softmax(z, p);
        }
        if let (Some(t), Some(t0)) = (times, t0) {
            t[self.stages.len()] += t0.elapsed().as_secs_f64();
        }
        Ok(())
    }
}

/// The buffer layer `i` of a network reads (`input` for layer 0, else the one layer `i - 1`
/// writes by `out_buf`) and the other one, which it writes.
fn io<'a>(
    input: &'a [f32],
    bufs: &'a mut [AlignedBuf; 2],
    out_buf: &[usize],
    i: usize,
) -> (&'a [f32], &'a mut [f32]) {
    match i.checked_sub(1) {
        None => (input, this_and_other(bufs, out_buf[0]).0),
        Some(j) => {
            let (src, dst) = this_and_other(bufs, out_buf[j]);
            (src, dst)
        }
    }
}

/// Buffer `b` of the two and the other one.
fn this_and_other(bufs: &mut [AlignedBuf; 2], b: usize) -> (&mut AlignedBuf, &mut AlignedBuf) {
    let [b0, b1] = bufs;
    if b == 0 {
        (b0, b1)
    } else {
        (b1, b0)
    }
}

/// `p = exp(z - max z) / sum exp(z - max z)`, the sum in f64. NaN in, NaN out.
pub fn softmax(z: &[f32], p: &mut [f32]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for (p, &z) in p.iter_mut().zip(z) {
        *p = (z - max).exp();
        sum += f64::from(*p);
    }
    let inv = (1.0 / sum) as f32;
    for p in p.iter_mut() {
        *p *= inv;
    }
}
