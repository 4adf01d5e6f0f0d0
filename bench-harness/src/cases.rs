//! Runnable benchmark cases: one layer on one set of kernels (or on the reference), with its
//! buffers allocated and its weights packed once, so a timed call does only the operator.

#![forbid(unsafe_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sepconv::{
    Activation, AlignedBuf, Conv3x3Params, Isa, Kernels, Shape, TensorView, TensorViewMut,
    WeightLayout,
};

use crate::workloads::{Layer, Op};

/// The tier of a bench id: `layer` (one operator on one layer shape) or `net` (a whole network).
pub const LAYER_TIER: &str = "layer";
/// The tier of whole-network rows.
pub const NET_TIER: &str = "net";

/// `<tier>.<op>/<isa-or-kernel>/<layer-id>`.
pub fn bench_id(tier: &str, op: &str, label: &str, layer_id: &str) -> String {
    format!("{tier}.{op}/{label}/{layer_id}")
}

/// Seeded uniform values in `[-scale, scale]`.
pub fn random_vec(rng: &mut StdRng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.gen_range(-scale..=scale)).collect()
}

/// He-uniform scale for a layer with `fan_in` inputs per output: keeps activations of a deep
/// ReLU network at a steady magnitude (no overflow, no denormals).
pub fn he_scale(fan_in: usize) -> f32 {
    (6.0 / fan_in.max(1) as f32).sqrt()
}

/// Fan-in of one output of `layer`.
pub fn fan_in(layer: &Layer) -> usize {
    match layer.op {
        Op::Conv3x3 => 9 * layer.cin,
        Op::Depthwise3x3 => 9,
        Op::Pointwise => layer.cin,
        Op::FullyConnected => layer.h * layer.w * layer.cin,
        Op::AvgPool => 1,
    }
}

/// Seeded HWIO weights and a small positive bias for `layer`.
pub fn random_weights(layer: &Layer, rng: &mut StdRng) -> (Vec<f32>, Vec<f32>) {
    let w = random_vec(rng, layer.params(), he_scale(fan_in(layer)));
    let b = (0..layer.bias_len())
        .map(|_| rng.gen_range(0.0..0.02))
        .collect();
    (w, b)
}

/// One layer, ready to run.
pub struct Case {
    /// The layer.
    pub layer: Layer,
    /// The ISA name, or a baseline's name (`reference`).
    pub label: String,
    /// The ISA, when the case runs sepconv kernels.
    pub isa: Option<Isa>,
    /// The kernel doing the work, e.g. `gemm_f32_6x16_avx2`.
    pub kernel: String,
    /// Threads the operator may use.
    pub threads: usize,
    run: Box<dyn FnMut() + Send>,
}

impl Case {
    /// The bench id, `layer.<op>/<label>/<layer-id>`.
    pub fn id(&self) -> String {
        bench_id(
            LAYER_TIER,
            self.layer.op.name(),
            &self.label,
            &self.layer.id,
        )
    }

    /// Runs the layer once.
    pub fn run(&mut self) {
        (self.run)()
    }

    /// Prepares `layer` on kernels `k` (with `k`'s thread count): seeded input and weights,
    /// packed weights, output buffer.
    pub fn new(k: Kernels, layer: &Layer, seed: u64) -> sepconv::Result<Case> {
        let mut rng = StdRng::seed_from_u64(seed);
        let l = layer.clone();
        // Activations as an engine that follows the library's advice allocates them: on cache
        // lines (`AlignedBuf`), in `Shape::padded_strides` (dense, except a 64-byte line after
        // each pixel of 512 or 1024 channels), as the MobileNet runner does.
        let (oh, ow) = l.out_hw();
        let ishape = Shape::new(1, l.h, l.w, l.cin);
        let oshape = Shape::new(1, oh, ow, l.cout);
        let (istr, ostr) = (ishape.padded_strides()?, oshape.padded_strides()?);
        let x = AlignedBuf::from_slice(&random_vec(&mut rng, istr.batch, 1.0));
        let mut y = AlignedBuf::zeroed(ostr.batch);
        let (w, b) = random_weights(&l, &mut rng);
        let act = Activation::Relu;
        // Each op on the case's input and output views, over its weights packed here.
        type OpFn =
            Box<dyn FnMut(&TensorView<'_>, &mut TensorViewMut<'_>) -> sepconv::Result<()> + Send>;
        let (kernel, mut op): (String, OpFn) = match l.op {
            Op::Depthwise3x3 => {
                let pw = k.pack_depthwise3x3(&w, WeightLayout::Hwio, Some(&b), l.cin)?;
                let p = Conv3x3Params::new().stride(l.stride).activation(act);
                let name = k.dw_kernel(l.stride).name.to_string();
                (name, Box::new(move |x, y| k.depthwise3x3(x, &pw, &p, y)))
            }
            Op::Pointwise => {
                let pw = k.pack_pointwise(&w, WeightLayout::Hwio, Some(&b), l.cin, l.cout)?;
                let name = k.gemm_kernel().name.to_string();
                (name, Box::new(move |x, y| k.pointwise(x, &pw, act, y)))
            }
            Op::Conv3x3 => {
                let cw = k.pack_conv3x3(&w, WeightLayout::Hwio, Some(&b), l.cin, l.cout)?;
                let p = Conv3x3Params::new().stride(l.stride).activation(act);
                let name = k.gemm_kernel().name.to_string();
                (name, Box::new(move |x, y| k.conv3x3(x, &cw, &p, y)))
            }
            Op::FullyConnected => {
                let fin = l.h * l.w * l.cin;
                let fw = k.pack_fully_connected(&w, WeightLayout::Hwio, Some(&b), fin, l.cout)?;
                let name = k.gemm_kernel().name.to_string();
                (
                    name,
                    Box::new(move |x, y| k.fully_connected(x, &fw, act, y)),
                )
            }
            Op::AvgPool => (
                "global_avg_pool".to_string(),
                Box::new(move |x, y| k.global_avg_pool(x, y)),
            ),
        };
        let mut call = move || {
            let xi = TensorView::with_strides(&x, ishape, istr)?;
            op(&xi, &mut TensorViewMut::with_strides(&mut y, oshape, ostr)?)
        };
        // One call outside the timed closure checks the shapes; the timed one then unwraps.
        call()?;
        let run = Box::new(move || call().expect("checked on the first call"));
        Ok(Case {
            layer: l,
            label: k.isa().name().to_string(),
            isa: Some(k.isa()),
            kernel,
            threads: k.threads(),
            run,
        })
    }

    /// The naive f64 reference (`sepconv-reference`) on a depthwise or pointwise layer: the
    /// baseline the depthwise kernels are set against. `None` for other ops.
    pub fn reference(layer: &Layer, seed: u64) -> Option<Case> {
        use sepconv_reference as r;
        let mut rng = StdRng::seed_from_u64(seed);
        let l = layer.clone();
        let x = r::Tensor::new(1, l.h, l.w, l.cin, random_vec(&mut rng, l.input_len(), 1.0));
        let (w, b) = random_weights(&l, &mut rng);
        let run: Box<dyn FnMut() + Send> = match l.op {
            Op::Depthwise3x3 => {
                let pad = r::Padding::same(l.h, l.w, 3, l.stride);
                Box::new(move || {
                    std::hint::black_box(r::depthwise3x3(
                        &x,
                        &w,
                        Some(&b),
                        l.stride,
                        pad,
                        r::Activation::Relu,
                    ));
                })
            }
            Op::Pointwise => {
                let cout = l.cout;
                Box::new(move || {
                    std::hint::black_box(r::pointwise(&x, &w, Some(&b), cout, r::Activation::Relu));
                })
            }
            _ => return None,
        };
        Some(Case {
            layer: layer.clone(),
            label: "reference".to_string(),
            isa: None,
            kernel: "sepconv_reference (f64)".to_string(),
            threads: 1,
            run,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::mobilenet_v1;

    #[test]
    fn every_op_of_a_small_network_runs_on_every_isa() {
        let net = mobilenet_v1(25, 128);
        for k in Kernels::available() {
            for l in &net.layers {
                let mut c = Case::new(k, l, 1).unwrap();
                c.run();
                assert!(c.id().starts_with(&format!("layer.{}/{}/", l.op, k.isa())));
            }
        }
        let dw = net.layer("mbv1_a025_r128_dw02").unwrap();
        let mut r = Case::reference(dw, 1).unwrap();
        r.run();
        assert_eq!(r.id(), "layer.dwconv3x3/reference/mbv1_a025_r128_dw02");
    }
}
