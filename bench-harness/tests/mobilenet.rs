//! The whole MobileNet v1 forward (`sepconv_bench::mobilenet`) against the f64 reference, on every
//! ISA and thread count; batch-norm folding; safetensors weights; batching; the CLI.

#![forbid(unsafe_code)]

use std::process::Command;

use rand::rngs::StdRng;
use rand::SeedableRng;
use sepconv::Kernels;
use sepconv_bench::cases::random_vec;
use sepconv_bench::mobilenet::{
    fold_batch_norm, fold_network, network, pixel_stride, BatchNorm, FoldedLayer, ModelError,
    NetRunner, Weights, KERAS_BN_EPSILON,
};
use sepconv_bench::workloads::{Network, Op};
use sepconv_reference as r;

/// Seeded images, `batch x r x r x 3`, in [-1, 1] (Keras' MobileNet preprocessing range).
fn images(runner: &NetRunner, seed: u64) -> Vec<f32> {
    let len = runner.batch() * runner.network().resolution.pow(2) * 3;
    random_vec(&mut StdRng::seed_from_u64(seed), len, 1.0)
}

/// The network through the naive f64 reference, layer by layer, from the same folded weights
/// (each layer's output rounded to f32 before the next, as the kernels store it): the logits.
fn reference_logits(folded: &[FoldedLayer], input: &[f32], batch: usize) -> Vec<f64> {
    let first = &folded[0].layer;
    let mut x = r::Tensor::new(batch, first.h, first.w, first.cin, input.to_vec());
    let mut last = Vec::new();
    for f in folded {
        let l = &f.layer;
        let (w, b) = (&f.weights[..], Some(&f.bias[..]));
        let e = match l.op {
            Op::Conv3x3 | Op::Depthwise3x3 => r::conv2d(
                &x,
                w,
                b,
                l.cout,
                &r::Conv2d {
                    kh: 3,
                    kw: 3,
                    stride: l.stride,
                    padding: r::Padding::same(l.h, l.w, 3, l.stride),
                    groups: if l.op == Op::Conv3x3 { 1 } else { l.cin },
                    activation: r::Activation::Relu6,
                },
            ),
            Op::Pointwise => r::pointwise(&x, w, b, l.cout, r::Activation::Relu6),
            Op::AvgPool => r::global_avg_pool(&x),
            Op::FullyConnected => {
                r::fully_connected(&x, w, l.h * l.w * l.cin, b, l.cout, r::Activation::None)
            }
        };
        last = e.value.clone();
        let data = e.value.iter().map(|&v| v as f32).collect();
        x = r::Tensor::new(e.n, e.h, e.w, e.c, data);
    }
    last
}

/// Compares logits with the reference, tolerance relative to the logits' scale; checks the
/// probabilities are the softmax of the logits and sum to 1 per image.
fn check_against_reference(runner: &mut NetRunner, folded: &[FoldedLayer], what: &str) {
    let input = images(runner, 11);
    runner.input_mut().copy_from_slice(&input);
    let want = reference_logits(folded, &input, runner.batch());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 0.1, "{what}: logits vanished ({scale})");
    let probs = runner.run().unwrap().to_vec();
    let logits = runner.logits();
    assert_eq!(logits.len(), want.len());
    for (i, (g, w)) in logits.iter().zip(&want).enumerate() {
        assert!(
            (f64::from(*g) - w).abs() <= 1e-4 * scale,
            "{what}: logit {i}: {g} vs reference {w} (scale {scale})"
        );
    }
    let classes = runner.classes();
    assert_eq!(probs.len(), runner.batch() * classes);
    for (p, z) in probs
        .chunks_exact(classes)
        .zip(logits.chunks_exact(classes))
    {
        let sum: f64 = p.iter().map(|&v| f64::from(v)).sum();
        assert!(
            (sum - 1.0).abs() < 1e-5,
            "{what}: probabilities sum to {sum}"
        );
        let zt = r::Tensor::new(1, 1, 1, classes, z.to_vec());
        for (g, w) in p.iter().zip(&r::softmax(&zt).data) {
            assert!(
                (g - w).abs() <= 1e-6 + 1e-5 * w,
                "{what}: softmax {g} vs {w}"
            );
        }
    }
    // Buffers are reused: a second run gives the same probabilities.
    assert_eq!(runner.run().unwrap(), &probs[..]);
}

#[test]
fn mobilenet_batch_2_matches_the_reference_on_every_isa() {
    let net = network(25, 128, false).unwrap();
    let w = Weights::random(&net, 7);
    let folded = fold_network(&net, &w).unwrap();
    for k in Kernels::available() {
        let mut runner = NetRunner::with_weights(k, &net, &w, 2).unwrap();
        check_against_reference(&mut runner, &folded, &format!("{} on {}", net.id, k.isa()));
    }
}

#[test]
fn conv_mobilenet_matches_the_reference_on_every_isa() {
    let net = network(25, 128, true).unwrap();
    let w = Weights::random(&net, 8);
    let folded = fold_network(&net, &w).unwrap();
    for k in Kernels::available() {
        let mut runner = NetRunner::with_weights(k, &net, &w, 1).unwrap();
        check_against_reference(&mut runner, &folded, &format!("{} on {}", net.id, k.isa()));
    }
}

/// Width 0.5 has 512-channel activations, which the runner pads by a line per pixel
/// (`pixel_stride`): against the reference on every ISA, and bit for bit equal to the dense
/// layout, layer by layer and with the first 10 layers fused.
#[test]
fn padded_activations_match_the_reference_and_the_dense_layout() {
    let net = network(50, 128, false).unwrap();
    let padded = (net.layers.iter())
        .filter(|l| {
            let (h, w) = l.out_hw();
            pixel_stride(true, h, w, l.cout) != l.cout
        })
        .count();
    assert_eq!(
        padded, 3,
        "conv_pw_12, conv_dw_13 and conv_pw_13 have 512 channels"
    );
    let w = Weights::random(&net, 13);
    let folded = fold_network(&net, &w).unwrap();
    for k in Kernels::available() {
        for fuse in [0, 10] {
            let what = format!("{} on {}, {fuse} layers fused", net.id, k.isa());
            let mut runner = NetRunner::with_weights(k, &net, &w, 2).unwrap();
            runner.fuse_rows(fuse, 2).unwrap();
            let padded = |r: &NetRunner| {
                (r.out_pixel_strides().iter().zip(&net.layers))
                    .filter(|(&p, l)| p != l.cout)
                    .count()
            };
            assert_eq!(padded(&runner), 3, "{what}");
            check_against_reference(&mut runner, &folded, &what);
            let (logits, probs) = (runner.logits().to_vec(), runner.probabilities().to_vec());
            runner.pad_pixels(false);
            assert_eq!(padded(&runner), 0, "{what}");
            assert_eq!(runner.run().unwrap(), &probs[..], "{what}: dense layout");
            assert_eq!(runner.logits(), &logits[..], "{what}: dense layout");
        }
    }
}

/// Layer by layer (width 0.25, batch 2), with the first 10 layers fused in row bands (width
/// 0.5, batch 1; each thread runs the pipeline on its own slab of rows), and with pointwise +
/// depthwise pairs fused (batch 1 and 2: in place and not; every thread on each band).
#[test]
fn every_thread_count_gives_identical_outputs() {
    let pairs = [(6, 2), (8, 1), (22, 3)];
    for (alpha, batch, fuse, pairs) in [
        (25, 2, 0, &[][..]),
        (50, 1, 10, &[]),
        (25, 1, 4, &pairs),
        (25, 2, 4, &pairs),
    ] {
        let net = network(alpha, 128, false).unwrap();
        let w = Weights::random(&net, 9);
        for k in Kernels::available() {
            let mut outs: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
            for threads in 1..=4 {
                let kt = k.with_threads(threads).unwrap();
                let mut runner = NetRunner::with_weights(kt, &net, &w, batch).unwrap();
                runner.fuse_rows(fuse, 2).unwrap();
                runner.fuse_pairs(pairs).unwrap();
                let input = images(&runner, 12);
                runner.input_mut().copy_from_slice(&input);
                let p = runner.run().unwrap().to_vec();
                outs.push((runner.logits().to_vec(), p));
            }
            for (t, o) in outs.iter().enumerate().skip(1) {
                assert!(
                    *o == outs[0],
                    "{}, {fuse} layers and pairs {pairs:?} fused: {} threads differ from 1",
                    k.isa(),
                    t + 1
                );
            }
        }
    }
}

/// A batch-2 layer-by-layer run: its input images and logits, for fused runs to match.
struct LayerByLayer {
    input: Vec<f32>,
    logits: Vec<f32>,
    /// The largest logit magnitude.
    scale: f32,
}

impl LayerByLayer {
    fn run(k: Kernels, net: &Network, w: &Weights) -> LayerByLayer {
        let mut plain = NetRunner::with_weights(k, net, w, 2).unwrap();
        let input = images(&plain, 16);
        plain.input_mut().copy_from_slice(&input);
        plain.run().unwrap();
        let logits = plain.logits().to_vec();
        let scale = logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        LayerByLayer {
            input,
            logits,
            scale,
        }
    }

    /// `fused` (batch 2) on the same images: every logit within `1e-6 x scale` (pointwise and
    /// stem bands may round differently: short GEMM tiles on other pixels).
    fn check(&self, fused: &mut NetRunner, what: &str) {
        fused.input_mut().copy_from_slice(&self.input);
        fused.run().unwrap();
        for (i, (g, w)) in fused.logits().iter().zip(&self.logits).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 * self.scale,
                "{what}: logit {i}: fused {g}, layer by layer {w}"
            );
        }
    }
}

/// The leading layers fused in row bands (`fuse_rows`) against the reference, on every ISA, at
/// batch 2: a short prefix, one ending at a stride-2 depthwise layer, and every convolution of
/// the network (27 layers), with bands of 1-3 rows, which put band edges at every position
/// relative to the stride-2 windows. Against layer by layer too, at a far tighter tolerance:
/// only pointwise / stem bands may round differently (short GEMM tiles on other pixels).
#[test]
fn fused_row_bands_match_the_reference_and_layer_by_layer() {
    fused_against_reference(128, false, &[(2, 1), (4, 3), (8, 2), (27, 1), (27, 3)]);
}

/// Conv MobileNet fused: standard 3x3 layers read their input rows out of the ring of the layer
/// before (copied out where they wrap around it), at every band edge position of stride 2.
#[test]
fn fused_conv_mobilenet_rows() {
    fused_against_reference(128, true, &[(4, 1), (6, 2), (14, 3)]);
}

/// At resolution 160 the last layers are 5x5: odd heights, and a stride-2 layer with padding
/// on both sides (10 -> 5).
#[test]
fn fused_row_bands_at_odd_heights() {
    fused_against_reference(160, false, &[(27, 2)]);
}

/// [`fused_row_bands_match_the_reference_and_layer_by_layer`] at `resolution`, width 0.25, for
/// each `(layers, band)`, on MobileNet v1 or (`conv`) Conv MobileNet.
fn fused_against_reference(resolution: usize, conv: bool, cases: &[(usize, usize)]) {
    let net = network(25, resolution, conv).unwrap();
    let w = Weights::random(&net, 15);
    let folded = fold_network(&net, &w).unwrap();
    let convs = net
        .layers
        .iter()
        .take_while(|l| matches!(l.op, Op::Conv3x3 | Op::Depthwise3x3 | Op::Pointwise))
        .count();
    assert_eq!(convs, if conv { 14 } else { 27 });
    for k in Kernels::available() {
        let plain = LayerByLayer::run(k, &net, &w);
        for &(layers, band) in cases {
            let what = format!(
                "{} on {}, {layers} layers fused, band {band}",
                net.id,
                k.isa()
            );
            let mut fused = NetRunner::with_weights(k, &net, &w, 2).unwrap();
            fused.fuse_rows(layers, band).unwrap();
            let (l, b, windows) = fused.fused().unwrap();
            assert_eq!((l, b, windows.len()), (layers, band, layers - 1), "{what}");
            check_against_reference(&mut fused, &folded, &what);
            plain.check(&mut fused, &what);
        }
    }
}

/// Every pointwise layer fused with the depthwise layer after it (`fuse_pairs`), on every ISA at
/// batch 2, against the reference and layer by layer: bands of 1-4 rows (band edges at every
/// position of the stride-2 windows, a last band shorter than the others), alone and after a
/// fused prefix; and the fused pairs' outputs written into (and read from) padded activations.
#[test]
fn fused_pairs_match_the_reference_and_layer_by_layer() {
    let net = network(25, 128, false).unwrap();
    let w = Weights::random(&net, 17);
    let folded = fold_network(&net, &w).unwrap();
    // conv_pw_1 .. conv_pw_12 at 2, 4, .. 24, each followed by its depthwise layer.
    let pairs = |from: usize, band: usize| -> Vec<(usize, usize)> {
        (from..=24).step_by(2).map(|i| (i, band + i % 3)).collect()
    };
    for k in Kernels::available() {
        let plain = LayerByLayer::run(k, &net, &w);
        for (prefix, band) in [(0, 1), (0, 2), (4, 1), (8, 2)] {
            let what = format!(
                "{} on {}, prefix {prefix}, pairs of band {band}+",
                net.id,
                k.isa()
            );
            let mut fused = NetRunner::with_weights(k, &net, &w, 2).unwrap();
            fused.fuse_rows(prefix, 2).unwrap();
            fused.fuse_pairs(&pairs(prefix.max(2), band)).unwrap();
            check_against_reference(&mut fused, &folded, &what);
            plain.check(&mut fused, &what);
        }
    }
    // With bands of whole GEMM row tiles (`tile_aligned_band`), every pair of the network gives
    // the bits of layer-by-layer runs at batch 1, on every ISA (`auto_pairs` picks such bands).
    // (Not at batch 2: layer by layer, one GEMM call spans both images, so its tiles straddle
    // them where an image is not a whole number of tiles.)
    for k in Kernels::available() {
        let mut plain = NetRunner::with_weights(k, &net, &w, 1).unwrap();
        let mut fused = NetRunner::with_weights(k, &net, &w, 1).unwrap();
        let aligned: Vec<_> = (2..=24)
            .step_by(2)
            .map(|i| (i, fused.tile_aligned_band(i, 1 + i % 3)))
            .collect();
        for &(i, band) in &aligned {
            let (w, mr) = (net.layers[i].w, k.gemm_kernel().mr);
            assert!((band * w).is_multiple_of(mr) && band > i % 3, "{i}: {band}");
        }
        fused.fuse_pairs(&aligned).unwrap();
        let input = images(&plain, 20);
        plain.input_mut().copy_from_slice(&input);
        fused.input_mut().copy_from_slice(&input);
        plain.run().unwrap();
        fused.run().unwrap();
        assert!(
            plain.logits() == fused.logits(),
            "{} on {}, pairs {aligned:?}: not the bits of layer by layer",
            net.id,
            k.isa()
        );
    }
    // Width 0.5: conv_pw_12's pair writes conv_dw_13's 512 channels padded; width 1.0
    // (128 rows): the pairs from conv_pw_7 on read and write padded 512-channel activations.
    for (alpha, resolution) in [(50, 128), (100, 128)] {
        let net = network(alpha, resolution, false).unwrap();
        let w = Weights::random(&net, 18);
        for k in Kernels::available() {
            let mut plain = NetRunner::with_weights(k, &net, &w, 1).unwrap();
            let mut fused = NetRunner::with_weights(k, &net, &w, 1).unwrap();
            fused.fuse_pairs(&pairs(2, 1)).unwrap();
            let what = format!("{} on {}, pairs", net.id, k.isa());
            let strides = fused.out_pixel_strides();
            assert!(
                strides.iter().zip(&net.layers).any(|(&p, l)| p != l.cout),
                "{what}"
            );
            let input = images(&plain, 19);
            plain.input_mut().copy_from_slice(&input);
            fused.input_mut().copy_from_slice(&input);
            let want = plain.run().unwrap().to_vec();
            let got = fused.run().unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6,
                    "{what}: class {i}: fused {g}, layer by layer {w}"
                );
            }
        }
    }
}

#[test]
fn fusion_rule_and_what_cannot_be_fused() {
    let k = Kernels::for_isa(sepconv::Isa::Portable).unwrap();
    let net = network(100, 224, false).unwrap();
    let mut runner = NetRunner::new(k, &net, 1).unwrap();
    // Through conv_dw_4 (input 56x56x128 = 1.6 MB) with 1 MiB of L2; with 512 KiB conv_pw_4's
    // 128 KiB of weights stop it there too (by inputs alone it would go on to conv_dw_6); up
    // to conv_dw_3 with 256 KiB (conv_pw_3's 64 KiB of weights); nothing when every input fits.
    assert_eq!(runner.auto_fusion(1 << 20), 8);
    assert_eq!(runner.auto_fusion(512 << 10), 8);
    assert_eq!(runner.auto_fusion(256 << 10), 6);
    assert_eq!(runner.auto_fusion(64 << 20), 0);
    // Conv MobileNet: the standard conv after the stem ends the prefix.
    let conv = network(100, 224, true).unwrap();
    assert_eq!(NetRunner::new(k, &conv, 1).unwrap().auto_fusion(1 << 20), 0);
    for (layers, band) in [(1, 2), (28, 2), (29, 2), (200, 2), (8, 0)] {
        assert!(
            matches!(
                runner.fuse_rows(layers, band),
                Err(ModelError::Unsupported(_))
            ),
            "{layers} layers, band {band}"
        );
    }
    assert!(runner.fused().is_none());
    runner.fuse_rows(27, 2).unwrap();
    assert_eq!(runner.fused().unwrap().0, 27);
    runner.fuse_rows(0, 2).unwrap();
    assert!(runner.fused().is_none());
    // Pairs: a pointwise layer (even index from 2 to 24) and the depthwise layer after it, apart
    // from the prefix and from each other.
    for pairs in [
        &[(3, 2)][..],
        &[(1, 2)],
        &[(26, 2)],
        &[(28, 2)],
        &[(2, 0)],
        &[(4, 2), (4, 2)],
    ] {
        assert!(
            matches!(runner.fuse_pairs(pairs), Err(ModelError::Unsupported(_))),
            "{pairs:?}"
        );
    }
    runner.fuse_rows(4, 2).unwrap();
    assert!(matches!(
        runner.fuse_pairs(&[(2, 2)]),
        Err(ModelError::Unsupported(_))
    ));
    runner.fuse_pairs(&[(4, 2), (24, 1)]).unwrap();
    assert!(matches!(
        runner.fuse_rows(6, 2),
        Err(ModelError::Unsupported(_))
    ));
    assert_eq!(runner.fused_pairs(), vec![(4, 2, false), (24, 1, false)]);
    runner.fuse_pairs(&[]).unwrap();
    assert!(runner.fused_pairs().is_empty());
    // The pairs picked: into stride-2 depthwise layers, after the prefix, weights under L2 / 4
    // (conv_pw_3: 64 KiB, conv_pw_5: 256 KiB, conv_pw_11: 1 MiB), bands of whole 4-row tiles
    // (the portable kernel's; conv_pw_11's rows are 14 pixels); none with 2 threads.
    assert_eq!(runner.auto_pairs(2 << 20, 2), vec![(6, 2), (10, 2)]);
    assert_eq!(
        runner.auto_pairs(8 << 20, 3),
        vec![(6, 3), (10, 3), (22, 4)]
    );
    let two = NetRunner::new(k.with_threads(2).unwrap(), &net, 1).unwrap();
    assert!(two.auto_pairs(8 << 20, 2).is_empty());
    let batch2 = NetRunner::with_weights(k, &net, &Weights::random(&net, 1), 2).unwrap();
    assert!(batch2.auto_pairs(8 << 20, 2).is_empty());
    runner.fuse_rows(0, 2).unwrap();
    assert_eq!(runner.auto_pairs(2 << 20, 2), vec![(2, 2), (6, 2), (10, 2)]);
    // Batch 1: conv_pw_3's pair (56x56x128 -> 28x28x128) writes over its input.
    runner.fuse_pairs(&runner.auto_pairs(2 << 20, 2)).unwrap();
    assert_eq!(
        runner.fused_pairs(),
        vec![(2, 2, true), (6, 2, true), (10, 2, true)]
    );
}

/// Per image, a batch-2 run equals batch-1 runs of each image. Not bit for bit on every ISA: the
/// AVX2 GEMM splits the depth of short tiles (fewer than 4 rows) over 2 or 4 accumulator chains,
/// so a row's rounding depends on the height of the tile it lands in, and batching moves rows
/// between tiles (the classifier: M = 1 vs 2; pointwise tails). Hence a tolerance far below
/// the reference test's, relative to the logits' scale.
#[test]
fn batch_2_equals_two_batch_1_runs() {
    let net = network(25, 128, false).unwrap();
    let w = Weights::random(&net, 10);
    for k in Kernels::available() {
        let mut two = NetRunner::with_weights(k, &net, &w, 2).unwrap();
        let input = images(&two, 13);
        let half = input.len() / 2;
        assert_ne!(input[..half], input[half..]);
        two.input_mut().copy_from_slice(&input);
        let probs = two.run().unwrap().to_vec();
        let logits = two.logits().to_vec();
        let scale = logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let mut one = NetRunner::with_weights(k, &net, &w, 1).unwrap();
        let classes = one.classes();
        for i in 0..2 {
            one.input_mut()
                .copy_from_slice(&input[i * half..(i + 1) * half]);
            one.run().unwrap();
            let range = i * classes..(i + 1) * classes;
            for (g, w) in one.logits().iter().zip(&logits[range.clone()]) {
                assert!(
                    (g - w).abs() <= 1e-6 * scale,
                    "{} image {i}: batch-1 logit {g}, batch-2 {w}",
                    k.isa()
                );
            }
            for (g, w) in one.probabilities().iter().zip(&probs[range]) {
                assert!((g - w).abs() <= 1e-6, "{} image {i}: {g} vs {w}", k.isa());
            }
        }
        // The two images give different outputs (the batch is not one image twice).
        assert!(
            probs[..classes]
                .iter()
                .zip(&probs[classes..])
                .any(|(a, b)| (a - b).abs() > 1e-4),
            "{}",
            k.isa()
        );
    }
}

/// Runs `w` on a fresh batch-1 runner with a fixed image.
fn probs_of(net: &sepconv_bench::workloads::Network, w: &Weights) -> Vec<f32> {
    let mut runner = NetRunner::with_weights(Kernels::best(), net, w, 1).unwrap();
    let input = images(&runner, 14);
    runner.input_mut().copy_from_slice(&input);
    runner.run().unwrap().to_vec()
}

#[test]
fn safetensors_round_trip() {
    let net = network(25, 128, false).unwrap();
    let w = Weights::random(&net, 15);
    let bytes = w.to_safetensors().unwrap();
    let back = Weights::from_safetensors(&bytes).unwrap();
    assert_eq!(back, w);
    assert_eq!(probs_of(&net, &back), probs_of(&net, &w));
    // Through a file.
    let path =
        std::env::temp_dir().join(format!("sepconv-mnet-{}.safetensors", std::process::id()));
    w.save(&path).unwrap();
    let loaded = Weights::load(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded.unwrap(), w);
    // Extra tensors are ignored.
    let mut extra = w.clone();
    extra.insert("dropout/unused", &[2], vec![1.0, 2.0]);
    assert_eq!(probs_of(&net, &extra), probs_of(&net, &w));
}

#[test]
fn bad_weights_give_typed_errors_naming_the_tensor() {
    let net = network(25, 128, false).unwrap();
    let k = Kernels::best();
    let w = Weights::random(&net, 16);

    let mut missing = w.clone();
    missing.remove("conv_pw_5_bn/gamma").unwrap();
    let e = NetRunner::with_weights(k, &net, &missing, 1).err().unwrap();
    assert_eq!(
        e,
        ModelError::MissingTensor {
            name: "conv_pw_5_bn/gamma".into()
        }
    );
    assert!(e.to_string().contains("conv_pw_5_bn/gamma"), "{e}");

    // A depthwise kernel saved without its multiplier axis.
    let mut shape = w.clone();
    let t = shape.remove("conv_dw_3/depthwise_kernel").unwrap();
    let c = t.shape[2];
    shape.insert("conv_dw_3/depthwise_kernel", &[3, 3, c], t.data);
    let e = NetRunner::with_weights(k, &net, &shape, 1).err().unwrap();
    assert_eq!(
        e,
        ModelError::WrongShape {
            name: "conv_dw_3/depthwise_kernel".into(),
            expected: vec![3, 3, c, 1],
            got: vec![3, 3, c],
        }
    );
    assert!(e.to_string().contains("conv_dw_3/depthwise_kernel"), "{e}");

    // The classifier stored as F16 in the file.
    let f16 = vec![0u8; 2 * 256 * 1000];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![1, 1, 256, 1000], &f16)
            .unwrap();
    let bytes = safetensors::serialize([("conv_preds/kernel", view)], None).unwrap();
    let mut dtype = Weights::from_safetensors(&bytes).unwrap();
    for name in w.names().filter(|n| *n != "conv_preds/kernel") {
        let t = w.get(name).unwrap();
        dtype.insert(name, &t.shape, t.data.clone());
    }
    let e = NetRunner::with_weights(k, &net, &dtype, 1).err().unwrap();
    assert_eq!(
        e,
        ModelError::WrongDtype {
            name: "conv_preds/kernel".into(),
            dtype: "F16".into()
        }
    );

    // Not a safetensors file; a file that is not there.
    assert!(matches!(
        Weights::from_safetensors(b"not a safetensors file"),
        Err(ModelError::File(_))
    ));
    assert!(matches!(
        Weights::load(std::path::Path::new("/nonexistent/w.safetensors")),
        Err(ModelError::File(_))
    ));
}

/// Unfolded: conv (no bias) through the reference, then batch norm by its definition.
fn conv_then_bn(
    x: &r::Tensor,
    kernel: &[f32],
    cout: usize,
    groups: usize,
    bn: &BatchNorm<'_>,
) -> Vec<f64> {
    let spec = r::Conv2d {
        kh: 3,
        kw: 3,
        stride: 1,
        padding: r::Padding::same(x.h, x.w, 3, 1),
        groups,
        activation: r::Activation::None,
    };
    let y = r::conv2d(x, kernel, None, cout, &spec);
    y.value
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = i % cout;
            let (g, b, m, var) = (bn.gamma[c], bn.beta[c], bn.mean[c], bn.var[c]);
            f64::from(g) * (v - f64::from(m)) / (f64::from(var) + KERAS_BN_EPSILON).sqrt()
                + f64::from(b)
        })
        .collect()
}

#[test]
fn batch_norm_folding_matches_conv_then_batch_norm() {
    // A 3x3 image with 2 channels; variances small enough that eps matters (0.01 vs 0.011).
    let x = r::Tensor::new(
        1,
        3,
        3,
        2,
        vec![
            1.0, -2.0, 0.5, 3.0, -1.5, 2.0, 0.25, -0.75, 4.0, 1.0, -3.0, 0.5, 2.5, -1.0, 0.0, 1.5,
            -0.5, 2.0,
        ],
    );
    let bn = BatchNorm {
        gamma: &[2.0, 0.5],
        beta: &[0.1, -0.2],
        mean: &[0.3, -1.0],
        var: &[0.01, 0.02],
        eps: KERAS_BN_EPSILON,
    };
    let act = r::Activation::None;
    let spec = |groups| r::Conv2d {
        kh: 3,
        kw: 3,
        stride: 1,
        padding: r::Padding::same(3, 3, 3, 1),
        groups,
        activation: act,
    };
    // Standard conv, HWIO (3, 3, 2, 2); depthwise (3, 3, 2, 1).
    let conv: Vec<f32> = (0..36).map(|i| ((i * 7 % 11) as f32 - 5.0) / 8.0).collect();
    let dw: Vec<f32> = (0..18).map(|i| ((i * 5 % 9) as f32 - 4.0) / 4.0).collect();
    for (kernel, groups) in [(&conv, 1), (&dw, 2)] {
        let want = conv_then_bn(&x, kernel, 2, groups, &bn);
        let (w, b) = fold_batch_norm(kernel, &bn);
        let got = r::conv2d(&x, &w, Some(&b), 2, &spec(groups));
        for (g, e) in got.value.iter().zip(&want) {
            assert!(
                (g - e).abs() <= 1e-5 * e.abs().max(1.0),
                "groups {groups}: folded {g} vs conv-then-BN {e}"
            );
        }
    }
    // By hand: w' = w * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps).
    let (w, b) = fold_batch_norm(&[1.0, 1.0], &bn);
    let s0 = 2.0 / (0.01f32 as f64 + 1e-3).sqrt();
    assert!((f64::from(w[0]) - s0).abs() < 1e-5, "{}", w[0]);
    assert!((f64::from(b[0]) - (0.1f32 as f64 - 0.3f32 as f64 * s0)).abs() < 1e-5);
    assert_eq!(b.len(), 2);
}

#[test]
fn the_report_constructor_runs_random_folded_weights() {
    let net = network(25, 128, false).unwrap();
    let mut runner = NetRunner::new(Kernels::best(), &net, 1).unwrap();
    let p = runner.run().unwrap();
    assert_eq!(p.len(), 1000);
    let sum: f64 = p.iter().map(|&v| f64::from(v)).sum();
    assert!((sum - 1.0).abs() < 1e-5);
    assert!(matches!(
        NetRunner::with_weights(Kernels::best(), &net, &Weights::random(&net, 1), 0),
        Err(ModelError::Unsupported(_))
    ));
}

fn bench_cmd() -> Command {
    let exe = env!("CARGO_BIN_EXE_sepconv-bench");
    match std::env::var("SEPCONV_TEST_RUNNER") {
        Ok(runner) if !runner.is_empty() => {
            let mut c = Command::new(runner);
            c.arg(exe);
            c
        }
        _ => Command::new(exe),
    }
}

#[test]
fn cli_prints_layers_latency_and_top_5() {
    let out = mobilenet_cli(&["--alpha", "0.25", "--batch", "2", "--runs", "3", "--alone"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "MobileNet v1 0.25-128: batch 2",
        "conv1 ",
        "conv_dw_13 ",
        "conv_pw_13 ",
        "conv_preds ",
        "softmax ",
        "alone ms",
        "inside the network the layers took",
        "end-to-end latency (batch 2): median",
        "over 3 runs",
        "top-5 classes, image 1:",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let fused = mobilenet_cli(&[
        "--alpha", "0.25", "--runs", "2", "--fuse", "6", "--band", "1",
    ]);
    let text = String::from_utf8_lossy(&fused.stdout);
    assert!(fused.status.success(), "{text}");
    assert!(
        text.contains("first 6 layers fused in row bands: 1 output rows per call; windows of"),
        "{text}"
    );
    for (fuse, why) in [
        ("1", "between 2 and"),
        ("many", "a number of layers, or auto"),
    ] {
        let bad = mobilenet_cli(&["--runs", "1", "--fuse", fuse]);
        assert_eq!(bad.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains(why),
            "--fuse {fuse}"
        );
    }
    let bad = bench_cmd()
        .args(["mobilenet", "--resolution", "100", "--runs", "1"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("resolution 100"));
}

/// `sepconv-bench mobilenet --resolution 128` with `args` after it, run to the end.
fn mobilenet_cli(args: &[&str]) -> std::process::Output {
    bench_cmd()
        .args(["mobilenet", "--resolution", "128"])
        .args(args)
        .output()
        .unwrap()
}
