//! Whole networks built from sepconv's public API: MobileNet v1 (stem conv 3x3 s2, 13 depthwise +
//! pointwise blocks, global average pool, fully connected) and Conv MobileNet (each depthwise +
//! pointwise pair replaced by one standard 3x3 conv of the same stride), with seeded random
//! weights packed once and activation buffers allocated once.

#![forbid(unsafe_code)]

use rand::rngs::StdRng;
use rand::SeedableRng;
use sepconv::{
    Activation, Conv3x3Params, ConvWeights, DepthwiseWeights, FullyConnectedWeights, Kernels,
    PointwiseWeights, Shape, TensorView, TensorViewMut, WeightLayout,
};

use crate::cases::{random_vec, random_weights};
use crate::workloads::{Layer, Network, Op};

enum Packed {
    Conv(ConvWeights),
    Dw(DepthwiseWeights),
    Pw(PointwiseWeights),
    Fc(FullyConnectedWeights),
    Pool,
}

struct Stage {
    layer: Layer,
    packed: Packed,
}

/// A network ready to run on one set of kernels.
pub struct NetRunner {
    k: Kernels,
    network: Network,
    stages: Vec<Stage>,
    input: Vec<f32>,
    bufs: [Vec<f32>; 2],
}

impl NetRunner {
    /// Packs seeded random weights for every layer of `network` (He-uniform, small positive
    /// biases, ReLU after every conv, none after the classifier) and a seeded random input.
    pub fn new(k: Kernels, network: &Network, seed: u64) -> sepconv::Result<NetRunner> {
        let mut rng = StdRng::seed_from_u64(seed);
        let first = network
            .layers
            .first()
            .ok_or(sepconv::Error::ZeroDimension {
                what: "network layers",
            })?;
        let input = random_vec(&mut rng, first.input_len(), 1.0);
        let mut max_len = 0;
        let mut stages = Vec::with_capacity(network.layers.len());
        for l in &network.layers {
            max_len = max_len.max(l.output_len());
            let (w, b) = random_weights(l, &mut rng);
            let (w, b) = (&w[..], Some(&b[..]));
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
                packed,
            });
        }
        Ok(NetRunner {
            k,
            network: network.clone(),
            stages,
            input,
            bufs: [vec![0.0; max_len], vec![0.0; max_len]],
        })
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The kernels it runs on.
    pub fn kernels(&self) -> Kernels {
        self.k
    }

    /// The input image (dense NHWC, `1 x r x r x 3`), to overwrite before [`NetRunner::run`].
    pub fn input_mut(&mut self) -> &mut [f32] {
        &mut self.input
    }

    /// One inference; returns the logits (1000 values, before softmax).
    pub fn run(&mut self) -> sepconv::Result<&[f32]> {
        let k = self.k;
        let [b0, b1] = &mut self.bufs;
        let input = &self.input[..];
        for (i, st) in self.stages.iter().enumerate() {
            let (src, dst): (&[f32], &mut [f32]) = match (i, i % 2) {
                (0, _) => (input, &mut b0[..]),
                (_, 0) => (&b1[..], &mut b0[..]),
                _ => (&b0[..], &mut b1[..]),
            };
            let l = &st.layer;
            let (oh, ow) = l.out_hw();
            let x = TensorView::new(src, Shape::new(1, l.h, l.w, l.cin))?;
            let mut y = TensorViewMut::new(dst, Shape::new(1, oh, ow, l.cout))?;
            let p = Conv3x3Params::new()
                .stride(l.stride)
                .activation(Activation::Relu);
            match &st.packed {
                Packed::Conv(w) => k.conv3x3(&x, w, &p, &mut y)?,
                Packed::Dw(w) => k.depthwise3x3(&x, w, &p, &mut y)?,
                Packed::Pw(w) => k.pointwise(&x, w, Activation::Relu, &mut y)?,
                Packed::Fc(w) => k.fully_connected(&x, w, Activation::None, &mut y)?,
                Packed::Pool => k.global_avg_pool(&x, &mut y)?,
            }
        }
        let n = self.stages.len();
        let out_len = self.stages[n - 1].layer.output_len();
        Ok(&self.bufs[(n - 1) % 2][..out_len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::{conv_mobilenet_v1, mobilenet_v1};
    use sepconv_reference as r;

    /// The same network through the naive f64 reference, layer by layer.
    fn reference_logits(net: &Network, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let first = &net.layers[0];
        let mut x = r::Tensor::new(
            1,
            first.h,
            first.w,
            first.cin,
            random_vec(&mut rng, first.input_len(), 1.0),
        );
        let mut last = Vec::new();
        for l in &net.layers {
            let (w, b) = random_weights(l, &mut rng);
            let e = match l.op {
                Op::Conv3x3 | Op::Depthwise3x3 => r::conv2d(
                    &x,
                    &w,
                    Some(&b),
                    l.cout,
                    &r::Conv2d {
                        kh: 3,
                        kw: 3,
                        stride: l.stride,
                        padding: r::Padding::same(l.h, l.w, 3, l.stride),
                        groups: if l.op == Op::Conv3x3 { 1 } else { l.cin },
                        activation: r::Activation::Relu,
                    },
                ),
                Op::Pointwise => r::pointwise(&x, &w, Some(&b), l.cout, r::Activation::Relu),
                Op::AvgPool => r::global_avg_pool(&x),
                Op::FullyConnected => r::fully_connected(
                    &x,
                    &w,
                    l.h * l.w * l.cin,
                    Some(&b),
                    l.cout,
                    r::Activation::None,
                ),
            };
            last = e.value.clone();
            x = r::Tensor::new(
                e.n,
                e.h,
                e.w,
                e.c,
                e.value.iter().map(|&v| v as f32).collect(),
            );
        }
        last
    }

    #[test]
    fn small_networks_match_the_reference_on_every_isa() {
        for net in [mobilenet_v1(25, 128), conv_mobilenet_v1(25, 128)] {
            let want = reference_logits(&net, 7);
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(scale > 1e-3, "{}: logits vanished", net.id);
            for k in Kernels::available() {
                let mut n = NetRunner::new(k, &net, 7).unwrap();
                let got = n.run().unwrap().to_vec();
                assert_eq!(got.len(), 1000);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (*g as f64 - w).abs() <= 1e-3 * scale,
                        "{} on {}: {g} vs {w}",
                        net.id,
                        k.isa()
                    );
                }
                // Buffers are reused: a second run gives the same logits.
                assert_eq!(n.run().unwrap(), &got[..]);
            }
        }
    }
}
