//! The unfolded weight set of a network (Keras names, see the [module doc](super)): seeded random,
//! or read from / written to a `.safetensors` file; and batch-norm folding into HWIO weights
//! and a bias, the form sepconv packs.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::{Dtype, SafeTensors};

use super::ModelError;
use crate::cases::{fan_in, he_scale, random_vec};
use crate::workloads::{Layer, Network, Op};

/// Keras' `BatchNormalization` epsilon (MobileNet uses the default).
pub const KERAS_BN_EPSILON: f64 = 1e-3;

/// The four batch-norm tensors, in Keras' order.
pub const BN_PARAMS: [&str; 4] = ["gamma", "beta", "moving_mean", "moving_variance"];

/// One tensor of a weight set.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// The dtype as safetensors names it; only `F32` tensors hold `data`.
    pub dtype: String,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The values, row-major (empty unless `dtype` is `F32`).
    pub data: Vec<f32>,
}

/// A set of named, unfolded tensors (the weights of one network).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weights {
    tensors: BTreeMap<String, NamedTensor>,
}

/// Which tensors a layer reads: the weight tensor's name and shape, and the batch norm's (or
/// the classifier's bias) name prefix.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerTensors {
    /// A convolution (standard, depthwise or pointwise) followed by batch norm.
    ConvBn {
        /// e.g. `conv_dw_3/depthwise_kernel`.
        kernel: String,
        /// HWIO shape of the kernel.
        shape: [usize; 4],
        /// e.g. `conv_dw_3_bn`; the tensors are `<bn>/gamma` etc.
        bn: String,
    },
    /// The classifier: a 1x1 conv with a bias and no batch norm.
    Classifier {
        /// `conv_preds/kernel`.
        kernel: String,
        /// `(1, 1, cin, classes)`.
        shape: [usize; 4],
        /// `conv_preds/bias`.
        bias: String,
    },
    /// No weights (pooling).
    None,
}

/// The Keras layer name of a layer of [`crate::workloads::mobilenet_v1`] or
/// [`crate::workloads::conv_mobilenet_v1`]: `conv1`, `conv_dw_{i}`, `conv_pw_{i}`,
/// `conv_std_{i}`, `global_average_pooling2d`, `conv_preds`.
pub fn keras_name(layer: &Layer) -> String {
    let suffix = layer.id.rsplit('_').next().unwrap_or(&layer.id);
    let block = |p: &str| suffix.strip_prefix(p).and_then(|n| n.parse::<usize>().ok());
    match layer.op {
        Op::Conv3x3 if suffix.starts_with("conv") => match block("conv") {
            Some(n) => format!("conv{n}"),
            None => layer.id.clone(),
        },
        Op::Conv3x3 => match block("std") {
            Some(n) => format!("conv_std_{n}"),
            None => layer.id.clone(),
        },
        Op::Depthwise3x3 => match block("dw") {
            Some(n) => format!("conv_dw_{n}"),
            None => layer.id.clone(),
        },
        Op::Pointwise => match block("pw") {
            Some(n) => format!("conv_pw_{n}"),
            None => layer.id.clone(),
        },
        Op::AvgPool => "global_average_pooling2d".to_string(),
        Op::FullyConnected => "conv_preds".to_string(),
    }
}

/// The tensors `layer` reads, named after Keras' layers.
pub fn layer_tensors(layer: &Layer) -> LayerTensors {
    let name = keras_name(layer);
    let (cin, cout) = (layer.cin, layer.cout);
    let conv = |kernel: &str, shape| LayerTensors::ConvBn {
        kernel: format!("{name}/{kernel}"),
        shape,
        bn: format!("{name}_bn"),
    };
    match layer.op {
        Op::Conv3x3 => conv("kernel", [3, 3, cin, cout]),
        Op::Depthwise3x3 => conv("depthwise_kernel", [3, 3, cin, 1]),
        Op::Pointwise => conv("kernel", [1, 1, cin, cout]),
        Op::FullyConnected => LayerTensors::Classifier {
            kernel: format!("{name}/kernel"),
            shape: [1, 1, layer.h * layer.w * cin, cout],
            bias: format!("{name}/bias"),
        },
        Op::AvgPool => LayerTensors::None,
    }
}

impl Weights {
    /// An empty set.
    pub fn new() -> Weights {
        Weights::default()
    }

    /// Adds (or replaces) an `F32` tensor.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `shape`.
    pub fn insert(&mut self, name: impl Into<String>, shape: &[usize], data: Vec<f32>) {
        let name = name.into();
        assert_eq!(
            data.len(),
            shape.iter().product::<usize>(),
            "tensor {name:?}: data does not fit shape {shape:?}"
        );
        self.tensors.insert(
            name,
            NamedTensor {
                dtype: "F32".to_string(),
                shape: shape.to_vec(),
                data,
            },
        );
    }

    /// Removes a tensor, returning it.
    pub fn remove(&mut self, name: &str) -> Option<NamedTensor> {
        self.tensors.remove(name)
    }

    /// The tensor `name`.
    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.get(name)
    }

    /// The tensor `name`, mutably (to edit a loaded set).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut NamedTensor> {
        self.tensors.get_mut(name)
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The values of `name`, which must be `F32` of shape `shape`.
    pub fn f32_tensor(&self, name: &str, shape: &[usize]) -> Result<&[f32], ModelError> {
        let t = self.get(name).ok_or_else(|| ModelError::MissingTensor {
            name: name.to_string(),
        })?;
        if t.dtype != "F32" {
            return Err(ModelError::WrongDtype {
                name: name.to_string(),
                dtype: t.dtype.clone(),
            });
        }
        if t.shape != shape {
            return Err(ModelError::WrongShape {
                name: name.to_string(),
                expected: shape.to_vec(),
                got: t.shape.clone(),
            });
        }
        Ok(&t.data)
    }

    /// Seeded random weights for every layer of `net`: He-uniform kernels (fan-in scaled, so
    /// activations keep their magnitude through the depth), batch norm with `gamma ~ U(0.5,
    /// 1.5)`, `beta ~ U(-0.1, 0.1)`, `moving_mean ~ U(-0.1, 0.1)`, `moving_variance ~ U(0.5,
    /// 1.5)`, and a classifier bias `~ U(-0.1, 0.1)`. Unfolded, so that running them exercises
    /// batch-norm folding.
    pub fn random(net: &Network, seed: u64) -> Weights {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut w = Weights::new();
        for l in &net.layers {
            match layer_tensors(l) {
                LayerTensors::ConvBn { kernel, shape, bn } => {
                    let len = shape.iter().product();
                    w.insert(
                        kernel,
                        &shape,
                        random_vec(&mut rng, len, he_scale(fan_in(l))),
                    );
                    let c = l.cout; // = channels for depthwise
                    let mut u = |lo: f32, hi: f32| -> Vec<f32> {
                        (0..c).map(|_| rng.gen_range(lo..hi)).collect()
                    };
                    let (gamma, beta, mean, var) =
                        (u(0.5, 1.5), u(-0.1, 0.1), u(-0.1, 0.1), u(0.5, 1.5));
                    for (p, v) in BN_PARAMS.iter().zip([gamma, beta, mean, var]) {
                        w.insert(format!("{bn}/{p}"), &[c], v);
                    }
                }
                LayerTensors::Classifier {
                    kernel,
                    shape,
                    bias,
                } => {
                    let len = shape.iter().product();
                    w.insert(
                        kernel,
                        &shape,
                        random_vec(&mut rng, len, he_scale(fan_in(l))),
                    );
                    w.insert(bias, &[shape[3]], random_vec(&mut rng, shape[3], 0.1));
                }
                LayerTensors::None => {}
            }
        }
        w
    }

    /// Parses a `.safetensors` file's bytes. Every tensor is kept; non-`F32` ones keep their
    /// dtype and no data (an error only if the network needs them).
    pub fn from_safetensors(bytes: &[u8]) -> Result<Weights, ModelError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| ModelError::File(e.to_string()))?;
        let mut w = Weights::new();
        for (name, view) in st.iter() {
            let data = if view.dtype() == Dtype::F32 {
                view.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            } else {
                Vec::new()
            };
            w.tensors.insert(
                name.to_string(),
                NamedTensor {
                    dtype: format!("{:?}", view.dtype()),
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(w)
    }

    /// Reads a `.safetensors` file.
    pub fn load(path: &Path) -> Result<Weights, ModelError> {
        let bytes = std::fs::read(path)
            .map_err(|e| ModelError::File(format!("{}: {e}", path.display())))?;
        Weights::from_safetensors(&bytes)
    }

    /// The set as a `.safetensors` file (`F32` tensors only; the others are skipped).
    pub fn to_safetensors(&self) -> Result<Vec<u8>, ModelError> {
        let bytes: Vec<(&str, &NamedTensor, Vec<u8>)> = self
            .tensors
            .iter()
            .filter(|(_, t)| t.dtype == "F32")
            .map(|(n, t)| {
                let b = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (n.as_str(), t, b)
            })
            .collect();
        let mut views = Vec::with_capacity(bytes.len());
        for (name, t, b) in &bytes {
            let v = safetensors::tensor::TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map_err(|e| ModelError::File(format!("{name}: {e}")))?;
            views.push((*name, v));
        }
        safetensors::serialize(views, None).map_err(|e| ModelError::File(e.to_string()))
    }

    /// Writes the set to a `.safetensors` file.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let bytes = self.to_safetensors()?;
        std::fs::write(path, bytes)
            .map_err(|e| ModelError::File(format!("{}: {e}", path.display())))
    }
}

/// Batch-norm parameters of one layer (one value per channel).
#[derive(Clone, Copy, Debug)]
pub struct BatchNorm<'a> {
    /// Scale.
    pub gamma: &'a [f32],
    /// Shift.
    pub beta: &'a [f32],
    /// Moving mean.
    pub mean: &'a [f32],
    /// Moving variance.
    pub var: &'a [f32],
    /// Added to the variance ([`KERAS_BN_EPSILON`] for Keras).
    pub eps: f64,
}

/// Folds batch norm into a kernel whose innermost dimension is the channel (HWIO, and the
/// depthwise `(3, 3, C, 1)`): `w' = w * s`, `b' = beta - mean * s` with `s = gamma /
/// sqrt(var + eps)` per channel, computed in f64 and rounded once.
///
/// # Panics
/// If the four batch-norm slices differ in length or the kernel is not a whole number of
/// channel rows.
pub fn fold_batch_norm(kernel: &[f32], bn: &BatchNorm<'_>) -> (Vec<f32>, Vec<f32>) {
    let c = bn.gamma.len();
    assert!(
        bn.beta.len() == c && bn.mean.len() == c && bn.var.len() == c,
        "batch norm tensors differ in length"
    );
    assert!(
        c > 0 && kernel.len().is_multiple_of(c),
        "kernel of {} values is not whole rows of {c} channels",
        kernel.len()
    );
    let scale: Vec<f64> = (0..c)
        .map(|i| f64::from(bn.gamma[i]) / (f64::from(bn.var[i]) + bn.eps).sqrt())
        .collect();
    let w = kernel
        .iter()
        .enumerate()
        .map(|(i, &v)| (f64::from(v) * scale[i % c]) as f32)
        .collect();
    let b = (0..c)
        .map(|i| (f64::from(bn.beta[i]) - f64::from(bn.mean[i]) * scale[i]) as f32)
        .collect();
    (w, b)
}

/// One layer's folded weights, ready to pack: HWIO (`[3][3][cin][cout]`, depthwise
/// `[3][3][c]`, pointwise and classifier `[cin][cout]`) and a bias per output channel. Both empty
/// for pooling.
#[derive(Clone, Debug, PartialEq)]
pub struct FoldedLayer {
    /// The layer.
    pub layer: Layer,
    /// Its Keras name.
    pub name: String,
    /// Folded weights.
    pub weights: Vec<f32>,
    /// Folded bias.
    pub bias: Vec<f32>,
}

/// Checks every tensor `net` needs in `w` (name, dtype, shape, variance) and folds batch norm
/// into each layer.
pub fn fold_network(net: &Network, w: &Weights) -> Result<Vec<FoldedLayer>, ModelError> {
    let mut out = Vec::with_capacity(net.layers.len());
    for l in &net.layers {
        let (weights, bias) = match layer_tensors(l) {
            LayerTensors::ConvBn { kernel, shape, bn } => {
                let k = w.f32_tensor(&kernel, &shape)?;
                let c = l.cout; // = channels for depthwise
                let p = |s: &str| w.f32_tensor(&format!("{bn}/{s}"), &[c]);
                let (gamma, beta, mean, var) = (
                    p("gamma")?,
                    p("beta")?,
                    p("moving_mean")?,
                    p("moving_variance")?,
                );
                if let Some(v) = var.iter().find(|&&v| {
                    (f64::from(v) + KERAS_BN_EPSILON).partial_cmp(&0.0)
                        != Some(std::cmp::Ordering::Greater)
                }) {
                    return Err(ModelError::BadValue {
                        name: format!("{bn}/moving_variance"),
                        reason: format!("variance {v} + eps is not positive"),
                    });
                }
                let bn = BatchNorm {
                    gamma,
                    beta,
                    mean,
                    var,
                    eps: KERAS_BN_EPSILON,
                };
                fold_batch_norm(k, &bn)
            }
            LayerTensors::Classifier {
                kernel,
                shape,
                bias,
            } => (
                w.f32_tensor(&kernel, &shape)?.to_vec(),
                w.f32_tensor(&bias, &[shape[3]])?.to_vec(),
            ),
            LayerTensors::None => (Vec::new(), Vec::new()),
        };
        out.push(FoldedLayer {
            layer: l.clone(),
            name: keras_name(l),
            weights,
            bias,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::{conv_mobilenet_v1, mobilenet_v1};

    #[test]
    fn keras_names_of_every_layer() {
        let n = mobilenet_v1(100, 224);
        let names: Vec<String> = n.layers.iter().map(keras_name).collect();
        assert_eq!(names[0], "conv1");
        assert_eq!(names[1], "conv_dw_1");
        assert_eq!(names[2], "conv_pw_1");
        assert_eq!(names[26], "conv_pw_13");
        assert_eq!(names[27], "global_average_pooling2d");
        assert_eq!(names[28], "conv_preds");
        let c = conv_mobilenet_v1(50, 160);
        assert_eq!(keras_name(&c.layers[13]), "conv_std_13");
        // 1 + 13 * 2 layers with BN (5 tensors each), classifier 2.
        let w = Weights::random(&n, 1);
        assert_eq!(w.len(), 27 * 5 + 2);
        assert_eq!(
            w.get("conv_dw_2/depthwise_kernel").unwrap().shape,
            [3, 3, 64, 1]
        );
        assert_eq!(
            w.get("conv_pw_13/kernel").unwrap().shape,
            [1, 1, 1024, 1024]
        );
        assert_eq!(
            w.get("conv_preds/kernel").unwrap().shape,
            [1, 1, 1024, 1000]
        );
        assert_eq!(w.get("conv1_bn/moving_variance").unwrap().shape, [32]);
    }

    #[test]
    fn non_positive_variance_is_an_error() {
        let n = mobilenet_v1(25, 128);
        let mut w = Weights::random(&n, 1);
        w.get_mut("conv_pw_4_bn/moving_variance").unwrap().data[3] = -1.0;
        assert_eq!(
            fold_network(&n, &w).unwrap_err(),
            ModelError::BadValue {
                name: "conv_pw_4_bn/moving_variance".to_string(),
                reason: "variance -1 + eps is not positive".to_string()
            }
        );
    }
}
