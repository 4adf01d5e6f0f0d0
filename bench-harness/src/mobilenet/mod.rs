//! MobileNet v1 as an inference engine that links sepconv would build it: only the public
//! `sepconv` API, weights folded and packed once, activations in two ping-pong buffers allocated
//! once, any batch size.
//!
//! The network (Howard et al. 2017, Table 1, at width multiplier 1.0, 0.75, 0.5 or 0.25 and
//! resolution 224, 192, 160 or 128; layer shapes from [`crate::workloads::mobilenet_v1`]):
//! stem conv 3x3 s2, 13 depthwise-separable blocks (depthwise 3x3 + pointwise 1x1), global
//! average pool, the 1x1 classifier (fully connected, 1000 classes), softmax. As in Keras'
//! `MobileNet`: batch norm and ReLU6 after every conv, depthwise and pointwise layer, no
//! activation after the classifier, TensorFlow `SAME` padding (for the even sizes every
//! stride-2 layer sees this is Keras' `ZeroPadding2D(((0, 1), (0, 1)))` + `valid`).
//! "Conv MobileNet" (Table 4: each separable block replaced by one standard 3x3 conv of the same
//! stride, [`crate::workloads::conv_mobilenet_v1`]) runs on the same machinery.
//!
//! * [`weights`]: the unfolded weight set ([`Weights`]: seeded random, or a `.safetensors` file)
//!   and batch-norm folding ([`fold_batch_norm`], [`fold_network`]).
//! * [`model`]: [`NetRunner`], the packed network and its buffers; `run` is one inference.
//! * [`cli`]: `sepconv-bench mobilenet`, per-layer times and end-to-end latency.
//! * `pipeline`: the leading layers fused in row bands ([`NetRunner::fuse_rows`]), and pairs of
//!   a pointwise layer and the depthwise layer after it ([`NetRunner::fuse_pairs`]).
//!
//! By default layers run one after the other, each over the whole batch. The CLI and the report
//! fuse the leading layers whose inputs exceed L2 ([`NetRunner::auto_fusion`]: MobileNet v1
//! 1.0-224 has 1.6-3.2 MB activations up to `conv_dw_4`) into a pipeline of row bands, image by
//! image, so those activations stay in cache; measured on a Cascade Lake core: 0.954-0.981x the
//! time with AVX-512, 0.986-0.989x with AVX2 (the `pipeline` module has the details). After
//! the prefix, on one thread at batch 1, each pointwise layer whose depthwise layer has stride 2
//! runs with it in bands of rows, the depthwise output over the pointwise input, with the bits
//! of layer by layer ([`NetRunner::auto_pairs`]: on an Emerald Rapids VM `conv_dw_4` 0.60x the
//! time, the inference 0.995x, within its noise; into stride-1 layers slower, not picked).
//! Measured
//! and not adopted (Zen 3, one thread, MobileNet v1 1.0-224, two runners alternating run by run,
//! 150 runs, median of the per-run time ratios): running each depthwise layer and the pointwise
//! layer after it in bands of output rows (each band's depthwise output, 64-256 KiB, kept in L2
//! and fed straight to the pointwise GEMM) took 0.99-1.07x the time: the early depthwise layers
//! got faster, and the GEMMs, now called per band, gave it back. Offsetting the two activation
//! buffers from each other modulo 4 KiB (64 B to 2 KiB apart): 0.997-1.008x. (The row pipeline
//! is not measured on Zen 3 yet: `--fuse 0` against `--fuse auto` there, whose rule picks 8
//! layers with its 512 KiB L2 too.)
//!
//! # Weights: tensor names, shapes and layouts
//!
//! A [`Weights`] set (and a `.safetensors` file) holds the *unfolded* tensors of a trained
//! Keras `tf.keras.applications.MobileNet`, named after its layers, all `F32`, row-major
//! (C order), `a` = the width multiplier:
//!
//! | tensor | shape | layout |
//! |---|---|---|
//! | `conv1/kernel` | `(3, 3, 3, 32a)` | HWIO `[kh][kw][cin][cout]` |
//! | `conv1_bn/{gamma,beta,moving_mean,moving_variance}` | `(32a,)` | per output channel |
//! | `conv_dw_{i}/depthwise_kernel` | `(3, 3, C, 1)` | `[kh][kw][channel][multiplier 1]` |
//! | `conv_dw_{i}_bn/{gamma,beta,moving_mean,moving_variance}` | `(C,)` | per channel |
//! | `conv_pw_{i}/kernel` | `(1, 1, Cin, Cout)` | HWIO |
//! | `conv_pw_{i}_bn/{gamma,beta,moving_mean,moving_variance}` | `(Cout,)` | per output channel |
//! | `conv_preds/kernel` | `(1, 1, 1024a, 1000)` | HWIO (Keras' classifier is a 1x1 conv) |
//! | `conv_preds/bias` | `(1000,)` | |
//!
//! for blocks `i = 1 ..= 13` (`C`, `Cin`, `Cout` as in Table 1, times `a`, rounded). None of the
//! convolutions has a bias of its own: batch norm supplies it. Folding, with Keras'
//! `epsilon = 1e-3` ([`KERAS_BN_EPSILON`]): `w' = w * gamma / sqrt(var + eps)` per output channel
//! and `b' = beta - mean * gamma / sqrt(var + eps)`. Conv MobileNet's standard convolutions (no
//! Keras counterpart) are `conv_std_{i}/kernel` `(3, 3, Cin, Cout)` with `conv_std_{i}_bn/...`.
//!
//! Converting a Keras model: `{f"{l.name}/{w.name.split('/')[-1].split(':')[0]}": w.numpy() for l
//! in model.layers for w in l.weights}` gives these names; save the dict with
//! `safetensors.numpy.save_file`. Extra tensors in a file are ignored; a missing tensor, a wrong
//! shape or a dtype other than `F32` is a [`ModelError`] naming the tensor.

#![forbid(unsafe_code)]

pub mod cli;
pub mod model;
mod pipeline;
pub mod weights;

use std::fmt;

pub use model::{pixel_stride, NetRunner};

/// Output rows per call of each fused layer ([`NetRunner::fuse_rows`]) where the CLI and the
/// report fuse. Measured on a Cascade Lake core (1 MiB L2, MobileNet v1 1.0-224,
/// 8 layers fused, AVX-512, paired runs): 1-4 rows within noise of each other (0.95-0.98x of
/// layer by layer), 2 as good as any.
pub const FUSION_BAND_ROWS: usize = 2;
pub use weights::{
    fold_batch_norm, fold_network, BatchNorm, FoldedLayer, NamedTensor, Weights, KERAS_BN_EPSILON,
};

use crate::workloads::{conv_mobilenet_v1, mobilenet_v1, Network, V1_ALPHAS, V1_RESOLUTIONS};

/// Everything that can go wrong building or loading a network.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelError {
    /// A tensor the network needs is not in the weight set.
    MissingTensor {
        /// The tensor's name, e.g. `conv_pw_3/kernel`.
        name: String,
    },
    /// A tensor has another shape than the network needs.
    WrongShape {
        /// The tensor's name.
        name: String,
        /// The shape the network needs.
        expected: Vec<usize>,
        /// The shape in the weight set.
        got: Vec<usize>,
    },
    /// A tensor is not `F32`.
    WrongDtype {
        /// The tensor's name.
        name: String,
        /// Its dtype, as safetensors names it (e.g. `F16`).
        dtype: String,
    },
    /// A tensor holds a value the network cannot use (e.g. `moving_variance + eps <= 0`).
    BadValue {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The file could not be read or is not a valid safetensors file.
    File(String),
    /// A width multiplier, resolution or batch size the model does not support.
    Unsupported(String),
    /// The kernels rejected a shape (a bug in the model if it happens).
    Kernel(sepconv::Error),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::MissingTensor { name } => write!(f, "weights: tensor {name:?} is missing"),
            ModelError::WrongShape {
                name,
                expected,
                got,
            } => write!(
                f,
                "weights: tensor {name:?} has shape {got:?}, the network needs {expected:?}"
            ),
            ModelError::WrongDtype { name, dtype } => {
                write!(
                    f,
                    "weights: tensor {name:?} is {dtype}, only F32 is supported"
                )
            }
            ModelError::BadValue { name, reason } => {
                write!(f, "weights: tensor {name:?}: {reason}")
            }
            ModelError::File(e) => write!(f, "weights file: {e}"),
            ModelError::Unsupported(e) => f.write_str(e),
            ModelError::Kernel(e) => write!(f, "sepconv: {e}"),
        }
    }
}

impl std::error::Error for ModelError {}

impl From<sepconv::Error> for ModelError {
    fn from(e: sepconv::Error) -> Self {
        ModelError::Kernel(e)
    }
}

/// MobileNet v1 (or Conv MobileNet when `conv`) at width multiplier `alpha_pct` percent (100,
/// 75, 50, 25) and `resolution` (224, 192, 160, 128); anything else is
/// [`ModelError::Unsupported`].
pub fn network(alpha_pct: u32, resolution: usize, conv: bool) -> Result<Network, ModelError> {
    if !V1_ALPHAS.contains(&alpha_pct) {
        return Err(ModelError::Unsupported(format!(
            "width multiplier {}: MobileNet v1 has 1.0, 0.75, 0.5 and 0.25",
            alpha_pct as f64 / 100.0
        )));
    }
    if !V1_RESOLUTIONS.contains(&resolution) {
        return Err(ModelError::Unsupported(format!(
            "resolution {resolution}: MobileNet v1 has 224, 192, 160 and 128"
        )));
    }
    Ok(if conv {
        conv_mobilenet_v1(alpha_pct, resolution)
    } else {
        mobilenet_v1(alpha_pct, resolution)
    })
}

/// A width multiplier as written on the command line (`1.0`, `0.75`, `.5`, `0.25`, `1`) in
/// percent, or [`ModelError::Unsupported`].
pub fn parse_alpha(s: &str) -> Result<u32, ModelError> {
    let bad = || {
        ModelError::Unsupported(format!(
            "width multiplier {s:?}: MobileNet v1 has 1.0, 0.75, 0.5 and 0.25"
        ))
    };
    let a: f64 = s.trim().parse().map_err(|_| bad())?;
    let pct = (a * 100.0).round();
    if !a.is_finite() || (a * 100.0 - pct).abs() > 1e-6 || !V1_ALPHAS.contains(&(pct as u32)) {
        return Err(bad());
    }
    Ok(pct as u32)
}

/// The `k` largest values of `v` with their indices, largest first (ties: lower index first).
pub fn top_k(v: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<(usize, f32)> = v.iter().copied().enumerate().collect();
    idx.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphas_and_resolutions() {
        assert_eq!(parse_alpha("1.0"), Ok(100));
        assert_eq!(parse_alpha("1"), Ok(100));
        assert_eq!(parse_alpha("0.75"), Ok(75));
        assert_eq!(parse_alpha(".5"), Ok(50));
        assert_eq!(parse_alpha("0.25"), Ok(25));
        for bad in ["0.3", "2", "0.255", "x", "", "nan"] {
            assert!(
                matches!(parse_alpha(bad), Err(ModelError::Unsupported(_))),
                "{bad}"
            );
        }
        assert!(network(100, 224, false).is_ok());
        assert!(network(25, 128, true).is_ok());
        assert!(matches!(
            network(100, 100, false),
            Err(ModelError::Unsupported(_))
        ));
        assert!(matches!(
            network(60, 224, false),
            Err(ModelError::Unsupported(_))
        ));
    }

    #[test]
    fn top_k_orders_by_value() {
        assert_eq!(
            top_k(&[0.1, 0.5, 0.2, 0.5], 3),
            vec![(1, 0.5), (3, 0.5), (2, 0.2)]
        );
    }
}
