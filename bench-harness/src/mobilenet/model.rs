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

use super::pipeline::RowPipeline;
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
    /// Whether activations whose dense pixel stride is a multiple of 2 KiB get one line of
    /// padding per pixel ([`NetRunner::pad_pixels`]).
    pad: bool,
    /// Whether each layer's output is laid out as [`Shape::padded_strides`] (else dense).
    out_padded: Vec<bool>,
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
            pad: true,
            out_padded: Vec::new(),
        };
        r.lay_out();
        Ok(r)
    }

    /// Lays out each layer's output: dense inside the fused prefix (the pipeline writes its
    /// last layer's rows densely), else [`pixel_stride`].
    fn lay_out(&mut self) {
        let fused = self.pipelines.first().map_or(0, |p| p.layers());
        self.out_padded = (0..self.stages.len())
            .map(|i| self.pad && i >= fused)
            .collect();
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
        (self.stages.iter().zip(&self.out_padded))
            .map(|(st, &padded)| {
                let (oh, ow) = st.layer.out_hw();
                pixel_stride(padded, oh, ow, st.layer.cout)
            })
            .collect()
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
        self.pipelines = if layers == 0 {
            Vec::new()
        } else {
            RowPipeline::per_thread(&self.stages, layers, band, self.k.threads())
                .map_err(ModelError::Unsupported)?
        };
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

    /// The fused prefix: `(layers, band rows, rows of each layer's window)`, or `None` when
    /// every layer runs whole.
    pub fn fused(&self) -> Option<(usize, usize, Vec<usize>)> {
        self.pipelines
            .first()
            .map(|p| (p.layers(), p.band(), p.window_rows().collect()))
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
        &self.bufs[(n - 1) % 2][..self.batch * self.classes]
    }

    /// The probabilities of the last run (as [`NetRunner::run`] returned them).
    pub fn probabilities(&self) -> &[f32] {
        &self.probs
    }

    /// Runs layer `i` alone on the buffers a whole inference gives it: its input is what the
    /// layer before it wrote in the last run (the input images for layer 0), its output goes
    /// where the next layer reads it. Run repeatedly, this times a layer with the caches warm
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
        let [b0, b1] = &mut self.bufs;
        let (src, dst): (&[f32], &mut [f32]) = match (i, i % 2) {
            (0, _) => (&self.input[..], &mut b0[..]),
            (_, 0) => (&b1[..], &mut b0[..]),
            _ => (&b0[..], &mut b1[..]),
        };
        let st = &self.stages[i];
        let l = &st.layer;
        let (oh, ow) = l.out_hw();
        // Each activation as laid out (`lay_out`); the input images are dense.
        let (xs, ys) = (
            Shape::new(n, l.h, l.w, l.cin),
            Shape::new(n, oh, ow, l.cout),
        );
        let xt = layout(xs, i > 0 && self.out_padded[i - 1])?;
        let yt = layout(ys, self.out_padded[i])?;
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
            let last = &self.stages[first - 1].layer;
            let (in_len, out_len) = (self.stages[0].layer.input_len(), last.output_len());
            let out_row = out_len / last.out_hw().0;
            let out = &mut self.bufs[(first - 1) % 2];
            // Each slab's layers run on its own thread, one thread per call.
            let k1 = self.k.with_threads(1)?;
            let stages = &self.stages[..];
            for n in 0..self.batch {
                let input = &self.input[n * in_len..(n + 1) * in_len];
                let image = &mut out[n * out_len..(n + 1) * out_len];
                if let [p] = &mut self.pipelines[..] {
                    // One slab: this thread, and nothing allocated.
                    p.run(k1, stages, input, image, times.as_deref_mut())?;
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
                self.k
                    .run_parts(parts, |(p, part, t)| p.run(k1, stages, input, part, t))?;
            }
        }
        for i in first..self.stages.len() {
            let t0 = times.as_ref().map(|_| Instant::now());
            self.stage(i)?;
            if let (Some(t), Some(t0)) = (times.as_deref_mut(), t0) {
                t[i] += t0.elapsed().as_secs_f64();
            }
        }
        let t0 = times.as_ref().map(|_| Instant::now());
        let n = self.batch;
        let logits = &self.bufs[(self.stages.len() - 1) % 2][..n * self.classes];
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
