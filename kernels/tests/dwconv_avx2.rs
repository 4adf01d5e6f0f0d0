//! Edge cases of the AVX2 depthwise 3x3 kernels (`dwconv3x3_f32_c16_avx2`,
//! `dwconv3x3s2_f32_c16_avx2`) through the public API, against the f64 reference.
//!
//! Prints `SKIP` and passes when the CPU lacks AVX2 + FMA. Input and output buffers end at a
//! guard page, so a read or write past the last channel of the last pixel faults.

mod common;

use common::guard::Guarded;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sepconv::{
    Activation, Conv3x3Params, Isa, Kernels, Padding, Shape, Strides, TensorView, TensorViewMut,
    WeightLayout,
};
use sepconv_reference as reference;

const CHANNELS: &[usize] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 23, 24, 31, 32, 33, 67,
];
const WIDTHS: &[usize] = &[1, 2, 3, 4, 5, 7, 9, 16, 17];
const HEIGHTS: &[usize] = &[1, 2, 3, 5];
const ACTIVATIONS: [Activation; 4] = [
    Activation::None,
    Activation::Relu,
    Activation::Relu6,
    Activation::Clamp {
        min: -0.4,
        max: 0.6,
    },
];

/// The AVX2 kernels, or `None` (after printing `SKIP`) on a CPU without them.
fn avx2() -> Option<Kernels> {
    if !Isa::Avx2.is_available() {
        println!("SKIP: this CPU has no AVX2 + FMA");
        return None;
    }
    let k = Kernels::for_isa(Isa::Avx2).expect("AVX2 is available");
    assert_eq!(k.dw_kernel(1).name, "dwconv3x3_f32_c16_avx2");
    assert_eq!(k.dw_kernel(2).name, "dwconv3x3s2_f32_c16_avx2");
    Some(k)
}

/// One convolution to check.
#[derive(Clone, Copy, Debug)]
struct Case {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    stride: usize,
    padding: Padding,
    activation: Activation,
    /// Input pixel stride minus channels.
    in_gap: usize,
    /// Output pixel stride minus channels.
    out_gap: usize,
    threads: usize,
}

impl Case {
    fn new(h: usize, w: usize, c: usize, stride: usize, padding: Padding) -> Case {
        Case {
            n: 1,
            h,
            w,
            c,
            stride,
            padding,
            activation: Activation::None,
            in_gap: 0,
            out_gap: 0,
            threads: 1,
        }
    }

    /// Whether the padded input covers the 3x3 window (else the API must refuse it).
    fn legal(&self) -> bool {
        let (t, b, l, r) = match self.padding {
            Padding::Same => return true,
            Padding::Valid => (0, 0, 0, 0),
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            } => (top, bottom, left, right),
        };
        self.h + t + b >= 3 && self.w + l + r >= 3
    }

    fn reference_padding(&self) -> reference::Padding {
        match self.padding {
            Padding::Same => reference::Padding::same(self.h, self.w, 3, self.stride),
            Padding::Valid => reference::Padding::valid(),
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            } => reference::Padding {
                top,
                bottom,
                left,
                right,
            },
        }
    }
}

fn reference_activation(a: Activation) -> reference::Activation {
    match a {
        Activation::None => reference::Activation::None,
        Activation::Relu => reference::Activation::Relu,
        Activation::Relu6 => reference::Activation::Relu6,
        Activation::Clamp { min, max } => reference::Activation::Clamp { min, max },
    }
}

/// Runs `case` on `k` and checks it against the reference; returns the dense output.
/// `poison` puts a NaN into the input (at a position derived from the seed).
fn check(k: Kernels, case: Case, seed: u64, poison: bool) -> Vec<f32> {
    let Case {
        n, h, w, c, stride, ..
    } = case;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut x: Vec<f32> = (0..n * h * w * c)
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    if poison {
        let i = rng.gen_range(0..x.len());
        x[i] = f32::NAN;
    }
    let wts: Vec<f32> = (0..9 * c).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let bias: Vec<f32> = (0..c).map(|_| rng.gen_range(-0.5..0.5)).collect();

    // Input with pixel stride c + in_gap; the gaps hold garbage that must not leak in.
    let ip = c + case.in_gap;
    let in_strides = Strides {
        pixel: ip,
        row: w * ip,
        batch: h * w * ip,
    };
    // Exactly as long as the view needs: the last channel of the last pixel ends the buffer,
    // right before a guard page.
    let mut xs = Guarded::from_slice(&vec![
        1.0e30f32;
        (n - 1) * in_strides.batch
            + (h - 1) * in_strides.row
            + (w - 1) * ip
            + c
    ]);
    for (i, v) in x.iter().enumerate() {
        let (p, ch) = (i / c, i % c);
        xs[p * ip + ch] = *v;
    }

    let params = Conv3x3Params::new()
        .stride(stride)
        .padding(case.padding)
        .activation(case.activation);
    let kk = k.with_threads(case.threads).unwrap();
    let packed = kk
        .pack_depthwise3x3(&wts, WeightLayout::Hwio, Some(&bias), c)
        .unwrap();
    let input = TensorView::with_strides(&xs, Shape::new(n, h, w, c), in_strides).unwrap();
    if !case.legal() {
        assert!(
            params.output_size(h, w).is_err(),
            "{case:?} should be refused"
        );
        return Vec::new();
    }
    let (oh, ow) = params.output_size(h, w).unwrap();
    let op = c + case.out_gap;
    let out_strides = Strides {
        pixel: op,
        row: ow * op,
        batch: oh * ow * op,
    };
    let sentinel = -7.25f32;
    let mut ys = Guarded::from_slice(&vec![
        sentinel;
        (n - 1) * out_strides.batch
            + (oh - 1) * out_strides.row
            + (ow - 1) * op
            + c
    ]);
    let mut output =
        TensorViewMut::with_strides(&mut ys, Shape::new(n, oh, ow, c), out_strides).unwrap();
    kk.depthwise3x3(&input, &packed, &params, &mut output)
        .unwrap_or_else(|e| panic!("{case:?}: {e}"));

    let expected = reference::depthwise3x3(
        &reference::Tensor::new(n, h, w, c, x),
        &wts,
        Some(&bias),
        stride,
        case.reference_padding(),
        reference_activation(case.activation),
    );
    assert_eq!((expected.h, expected.w), (oh, ow), "{case:?}");
    expected
        .check_strided(&ys, op, out_strides.row, out_strides.batch, 1e-5)
        .unwrap_or_else(|e| panic!("{case:?}: {e}"));
    // The gaps between output pixels are untouched.
    for (i, v) in ys.iter().enumerate() {
        if i % op >= c {
            assert_eq!(
                v.to_bits(),
                sentinel.to_bits(),
                "{case:?}: wrote gap float {i}"
            );
        }
    }
    let mut dense = Vec::with_capacity(n * oh * ow * c);
    for p in 0..n * oh * ow {
        dense.extend_from_slice(&ys[p * op..p * op + c]);
    }
    dense
}

/// Same, Valid and every (left, right) explicit pair, with varying top/bottom.
fn paddings() -> Vec<Padding> {
    let mut v = vec![Padding::Same, Padding::Valid];
    for left in 0..3 {
        for right in 0..3 {
            v.push(Padding::Explicit {
                top: (left + right) % 3,
                bottom: (2 * left + right + 1) % 3,
                left,
                right,
            });
        }
    }
    v
}

#[test]
fn every_channel_count_width_height_stride_and_padding() {
    let Some(k) = avx2() else { return };
    let mut seed = 0;
    for &c in CHANNELS {
        for &w in WIDTHS {
            for &h in HEIGHTS {
                for stride in [1, 2] {
                    for padding in paddings() {
                        seed += 1;
                        let mut case = Case::new(h, w, c, stride, padding);
                        case.activation = ACTIVATIONS[seed as usize % 4];
                        check(k, case, seed, false);
                    }
                }
            }
        }
    }
}

#[test]
fn every_explicit_padding_on_each_side() {
    let Some(k) = avx2() else { return };
    let mut seed = 1000;
    for (h, w, c) in [(1, 1, 5), (2, 3, 9), (4, 5, 16), (5, 9, 17), (3, 17, 33)] {
        for stride in [1, 2] {
            for p in 0..81 {
                let padding = Padding::Explicit {
                    top: p % 3,
                    bottom: p / 3 % 3,
                    left: p / 9 % 3,
                    right: p / 27,
                };
                seed += 1;
                check(k, Case::new(h, w, c, stride, padding), seed, false);
            }
        }
    }
}

#[test]
fn every_activation_clamps_like_the_reference() {
    let Some(k) = avx2() else { return };
    let mut seed = 5000;
    for activation in ACTIVATIONS.into_iter().chain([
        Activation::Clamp { min: 0.1, max: 0.1 },
        Activation::Clamp {
            min: -3.0,
            max: -0.2,
        },
    ]) {
        for &c in &[3, 8, 13, 24, 67] {
            for stride in [1, 2] {
                for &w in &[1, 4, 9, 17] {
                    seed += 1;
                    let mut case = Case::new(5, w, c, stride, Padding::Same);
                    case.activation = activation;
                    check(k, case, seed, false);
                }
            }
        }
    }
}

#[test]
fn nan_stays_nan_through_every_activation() {
    let Some(k) = avx2() else { return };
    let mut seed = 6000;
    for activation in ACTIVATIONS {
        for &c in &[5, 16, 19] {
            for stride in [1, 2] {
                seed += 1;
                let mut case = Case::new(5, 9, c, stride, Padding::Same);
                case.activation = activation;
                check(k, case, seed, true);
            }
        }
    }
}

#[test]
fn pixel_strides_larger_than_channels_and_batches() {
    let Some(k) = avx2() else { return };
    let mut seed = 7000;
    for &c in &[1, 3, 8, 9, 16, 21, 33] {
        for (in_gap, out_gap) in [(1, 0), (0, 3), (5, 8), (8, 1)] {
            for stride in [1, 2] {
                for padding in [
                    Padding::Same,
                    Padding::Valid,
                    Padding::Explicit {
                        top: 2,
                        bottom: 0,
                        left: 0,
                        right: 2,
                    },
                ] {
                    seed += 1;
                    let mut case = Case::new(5, 7, c, stride, padding);
                    case.n = 2;
                    case.in_gap = in_gap;
                    case.out_gap = out_gap;
                    case.activation = ACTIVATIONS[seed as usize % 4];
                    check(k, case, seed, false);
                }
            }
        }
    }
}

#[test]
fn threads_give_identical_results() {
    let Some(k) = avx2() else { return };
    let mut seed = 8000;
    for (n, h, w, c) in [(1, 16, 16, 64), (2, 9, 17, 35), (1, 33, 12, 40)] {
        for stride in [1, 2] {
            seed += 1;
            let mut case = Case::new(h, w, c, stride, Padding::Same);
            case.n = n;
            case.activation = Activation::Relu6;
            let one = check(k, case, seed, false);
            for threads in 2..=4 {
                case.threads = threads;
                let many = check(k, case, seed, false);
                assert!(
                    one.iter()
                        .zip(&many)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{case:?}: {threads} threads differ from 1"
                );
            }
        }
    }
}

#[test]
fn mobilenet_sized_rows() {
    let Some(k) = avx2() else { return };
    // Widths longer than the kernel's column chunk, and MobileNet's channel counts.
    let mut seed = 9000;
    for (h, w, c) in [
        (3, 112, 32),
        (4, 150, 8),
        (3, 14, 512),
        (3, 7, 1024),
        (2, 129, 13),
    ] {
        for stride in [1, 2] {
            seed += 1;
            let mut case = Case::new(h, w, c, stride, Padding::Same);
            case.activation = Activation::Relu6;
            check(k, case, seed, false);
        }
    }
}

#[test]
fn power_of_two_pixel_strides_pick_small_groups() {
    let Some(k) = avx2() else { return };
    // Pixel strides of 2 and 4 KiB make the kernel switch to groups of 2 output pixels; run
    // that path with channel tails, borders and both strides.
    let mut seed = 10_000;
    for pixel in [512, 1024] {
        for &c in &[5, 8, 13, 16, 21, 37] {
            for &w in &[1, 2, 3, 5, 7, 9] {
                for stride in [1, 2] {
                    for padding in paddings() {
                        seed += 1;
                        let mut case = Case::new(3, w, c, stride, padding);
                        case.in_gap = pixel - c;
                        case.activation = ACTIVATIONS[seed as usize % 4];
                        check(k, case, seed, false);
                    }
                }
            }
        }
    }
}
