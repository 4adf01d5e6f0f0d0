//! Cross-checks between the operators on pseudo-random shapes and data: each special case must
//! agree with the general convolution it stands for, and the convolution with an independent
//! scatter-form implementation over OIHW weights.

use sepconv_reference::{
    conv2d, depthwise3x3, fully_connected, oihw_to_hwio, pointwise, Activation, Conv2d, Expected,
    Padding, Tensor,
};

/// A small xorshift generator, so the tests need no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in 0..n.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform-ish in [-1, 1).
    fn float(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn floats(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.float()).collect()
    }
    fn tensor(&mut self, n: usize, h: usize, w: usize, c: usize) -> Tensor {
        Tensor::new(n, h, w, c, self.floats(n * h * w * c))
    }
}

/// Asserts that two expectations agree in shape and, to rounding, in value and magnitude.
fn assert_close(a: &Expected, b: &Expected, what: &str) {
    assert_eq!((a.n, a.h, a.w, a.c), (b.n, b.h, b.w, b.c), "{what}: shape");
    for i in 0..a.value.len() {
        let tol = 1e-12 * a.magnitude[i].max(1.0);
        assert!(
            (a.value[i] - b.value[i]).abs() <= tol,
            "{what}: value {i}: {} vs {}",
            a.value[i],
            b.value[i]
        );
        assert!(
            (a.magnitude[i] - b.magnitude[i]).abs() <= tol,
            "{what}: magnitude {i}: {} vs {}",
            a.magnitude[i],
            b.magnitude[i]
        );
    }
}

fn random_padding(rng: &mut Rng, max: usize) -> Padding {
    Padding {
        top: rng.below(max + 1),
        bottom: rng.below(max + 1),
        left: rng.below(max + 1),
        right: rng.below(max + 1),
    }
}

#[test]
fn depthwise_equals_dense_conv_with_block_diagonal_weights() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..50 {
        let (n, h, w, c) = (
            1 + rng.below(2),
            1 + rng.below(6),
            1 + rng.below(6),
            1 + rng.below(5),
        );
        let stride = 1 + rng.below(2);
        let pad = random_padding(&mut rng, 2);
        if h + pad.top + pad.bottom < 3 || w + pad.left + pad.right < 3 {
            continue;
        }
        let input = rng.tensor(n, h, w, c);
        let dw = rng.floats(9 * c);
        let bias = rng.floats(c);
        let dwe = depthwise3x3(&input, &dw, Some(&bias), stride, pad, Activation::Relu6);
        // Dense HWIO [3][3][c][c], non-zero only where i == o.
        let mut dense = vec![0.0f32; 9 * c * c];
        for t in 0..9 {
            for ch in 0..c {
                dense[(t * c + ch) * c + ch] = dw[t * c + ch];
            }
        }
        let spec = Conv2d {
            kh: 3,
            kw: 3,
            stride,
            padding: pad,
            groups: 1,
            activation: Activation::Relu6,
        };
        let de = conv2d(&input, &dense, Some(&bias), c, &spec);
        assert_close(&dwe, &de, "depthwise vs dense");
    }
}

#[test]
fn grouped_conv_equals_per_group_convs() {
    let mut rng = Rng(0x0bad_cafe_f00d_0001);
    for _ in 0..40 {
        let groups = 1 + rng.below(3);
        let (cin_g, cout_g) = (1 + rng.below(3), 1 + rng.below(3));
        let (cin, cout) = (cin_g * groups, cout_g * groups);
        let (kh, kw) = (1 + rng.below(3), 1 + rng.below(3));
        let (h, w) = (kh + rng.below(4), kw + rng.below(4));
        let stride = 1 + rng.below(2);
        let input = rng.tensor(1, h, w, cin);
        let weights = rng.floats(kh * kw * cin_g * cout);
        let bias = rng.floats(cout);
        let spec = Conv2d {
            kh,
            kw,
            stride,
            padding: Padding::valid(),
            groups,
            activation: Activation::None,
        };
        let all = conv2d(&input, &weights, Some(&bias), cout, &spec);
        for g in 0..groups {
            // Slice the group's input channels and its output channels' weights and bias.
            let mut sub_in = Vec::new();
            for px in input.data.chunks_exact(cin) {
                sub_in.extend_from_slice(&px[g * cin_g..(g + 1) * cin_g]);
            }
            let sub_in = Tensor::new(1, h, w, cin_g, sub_in);
            let mut sub_w = Vec::new();
            for row in weights.chunks_exact(cout) {
                sub_w.extend_from_slice(&row[g * cout_g..(g + 1) * cout_g]);
            }
            let sub_b = &bias[g * cout_g..(g + 1) * cout_g];
            let sub_spec = Conv2d { groups: 1, ..spec };
            let one = conv2d(&sub_in, &sub_w, Some(sub_b), cout_g, &sub_spec);
            for p in 0..one.h * one.w {
                for o in 0..cout_g {
                    let a = all.value[p * cout + g * cout_g + o];
                    let b = one.value[p * cout_g + o];
                    assert!(
                        (a - b).abs() <= 1e-12,
                        "group {g}, pixel {p}, o {o}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn pointwise_equals_fully_connected_per_pixel() {
    let mut rng = Rng(0xfeed_face_dead_beef);
    for _ in 0..30 {
        let (n, h, w) = (1 + rng.below(2), 1 + rng.below(4), 1 + rng.below(4));
        let (cin, cout) = (1 + rng.below(6), 1 + rng.below(6));
        let input = rng.tensor(n, h, w, cin);
        let weights = rng.floats(cin * cout);
        let bias = rng.floats(cout);
        let act = Activation::Clamp {
            min: -0.25,
            max: 0.5,
        };
        let pw = pointwise(&input, &weights, Some(&bias), cout, act);
        // Every pixel as its own batch entry.
        let flat = Tensor::new(n * h * w, 1, 1, cin, input.data.clone());
        let fc = fully_connected(&flat, &weights, cin, Some(&bias), cout, act);
        assert_eq!(pw.value, fc.value);
        assert_eq!(pw.magnitude, fc.magnitude);
    }
}

#[test]
fn padding_equals_explicitly_zero_padded_input() {
    let mut rng = Rng(0x5eed_0000_0000_0042);
    for _ in 0..40 {
        let (h, w, c) = (1 + rng.below(5), 1 + rng.below(5), 1 + rng.below(3));
        let (kh, kw) = (1 + rng.below(3), 1 + rng.below(3));
        let cout = 1 + rng.below(3);
        let stride = 1 + rng.below(3);
        let pad = random_padding(&mut rng, 2);
        let (ph, pw) = (h + pad.top + pad.bottom, w + pad.left + pad.right);
        if ph < kh || pw < kw {
            continue;
        }
        let input = rng.tensor(1, h, w, c);
        let mut padded = vec![0.0f32; ph * pw * c];
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    padded[((y + pad.top) * pw + x + pad.left) * c + ch] = input.at(0, y, x, ch);
                }
            }
        }
        let padded = Tensor::new(1, ph, pw, c, padded);
        let weights = rng.floats(kh * kw * c * cout);
        let spec = Conv2d {
            kh,
            kw,
            stride,
            padding: pad,
            groups: 1,
            activation: Activation::None,
        };
        let a = conv2d(&input, &weights, None, cout, &spec);
        let b = conv2d(
            &padded,
            &weights,
            None,
            cout,
            &Conv2d {
                padding: Padding::valid(),
                ..spec
            },
        );
        assert_close(&a, &b, "padding vs zero-padded input");
    }
}

#[test]
fn stride_equals_subsampled_stride_1() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..30 {
        let (h, w, c) = (3 + rng.below(6), 3 + rng.below(6), 1 + rng.below(3));
        let stride = 2 + rng.below(2);
        let pad = Padding::same(h, w, 3, stride);
        let input = rng.tensor(1, h, w, c);
        let weights = rng.floats(9 * c);
        let s = depthwise3x3(&input, &weights, None, stride, pad, Activation::None);
        let one = depthwise3x3(&input, &weights, None, 1, pad, Activation::None);
        // SAME for stride s gives out = ceil(in / s).
        assert_eq!((s.h, s.w), (h.div_ceil(stride), w.div_ceil(stride)));
        for oy in 0..s.h {
            for ox in 0..s.w {
                for ch in 0..c {
                    let a = s.value[(oy * s.w + ox) * c + ch];
                    let b = one.value[(oy * stride * one.w + ox * stride) * c + ch];
                    assert_eq!(a, b, "({oy}, {ox}, {ch})");
                }
            }
        }
    }
}

/// An independent convolution in scatter form over OIHW weights: every input pixel adds its
/// contribution to the outputs it reaches. Values only, no activation.
fn scatter_conv_oihw(
    input: &Tensor,
    w_oihw: &[f32],
    cout: usize,
    k: (usize, usize),
    stride: usize,
    pad: Padding,
    groups: usize,
) -> (usize, usize, Vec<f64>) {
    let (kh, kw) = k;
    let cin_g = input.c / groups;
    let cout_g = cout / groups;
    let oh = (input.h + pad.top + pad.bottom - kh) / stride + 1;
    let ow = (input.w + pad.left + pad.right - kw) / stride + 1;
    let mut out = vec![0.0f64; oh * ow * cout];
    for y in 0..input.h {
        for x in 0..input.w {
            for ci in 0..input.c {
                let g = ci / cin_g;
                let i = ci % cin_g;
                let v = f64::from(input.at(0, y, x, ci));
                for ky in 0..kh {
                    for kx in 0..kw {
                        // Padded coordinate y + top = oy * stride + ky.
                        let (py, px) = (y + pad.top, x + pad.left);
                        if py < ky || px < kx || (py - ky) % stride != 0 || (px - kx) % stride != 0
                        {
                            continue;
                        }
                        let (oy, ox) = ((py - ky) / stride, (px - kx) / stride);
                        if oy >= oh || ox >= ow {
                            continue;
                        }
                        for o in g * cout_g..(g + 1) * cout_g {
                            let wv = w_oihw[((o * cin_g + i) * kh + ky) * kw + kx];
                            out[(oy * ow + ox) * cout + o] += v * f64::from(wv);
                        }
                    }
                }
            }
        }
    }
    (oh, ow, out)
}

#[test]
fn conv_with_converted_weights_matches_scatter_oihw_conv() {
    let mut rng = Rng(0x7777_1111_3333_5555);
    for _ in 0..60 {
        let groups = 1 + rng.below(3);
        let (cin_g, cout_g) = (1 + rng.below(3), 1 + rng.below(3));
        let (cin, cout) = (cin_g * groups, cout_g * groups);
        let (kh, kw) = (1 + rng.below(4), 1 + rng.below(4));
        let stride = 1 + rng.below(3);
        let pad = random_padding(&mut rng, 2);
        let (h, w) = (1 + rng.below(7), 1 + rng.below(7));
        if h + pad.top + pad.bottom < kh || w + pad.left + pad.right < kw {
            continue;
        }
        let input = rng.tensor(1, h, w, cin);
        let w_oihw = rng.floats(cout * cin_g * kh * kw);
        let spec = Conv2d {
            kh,
            kw,
            stride,
            padding: pad,
            groups,
            activation: Activation::None,
        };
        let e = conv2d(
            &input,
            &oihw_to_hwio(&w_oihw, cout, cin_g, kh, kw),
            None,
            cout,
            &spec,
        );
        let (oh, ow, want) =
            scatter_conv_oihw(&input, &w_oihw, cout, (kh, kw), stride, pad, groups);
        assert_eq!((e.h, e.w), (oh, ow));
        for i in 0..want.len() {
            assert!(
                (e.value[i] - want[i]).abs() <= 1e-12 * e.magnitude[i].max(1.0),
                "{spec:?} element {i}: {} vs {}",
                e.value[i],
                want[i]
            );
        }
    }
}

#[test]
fn f32_rounded_result_passes_check() {
    // Rounding the exact result to f32 is within 2^-24 relative, well inside 1e-6.
    let mut rng = Rng(0x2468_ace0_1357_9bdf);
    let input = rng.tensor(2, 7, 5, 8);
    let weights = rng.floats(9 * 8);
    let bias = rng.floats(8);
    let e = depthwise3x3(
        &input,
        &weights,
        Some(&bias),
        2,
        Padding::same(7, 5, 3, 2),
        Activation::Relu,
    );
    let got: Vec<f32> = e.value.iter().map(|&v| v as f32).collect();
    assert_eq!(e.check(&got, 1e-6), Ok(()));
    // And through strides: each pixel padded to 11 floats, rows to 11 * w + 3, images + 7.
    let (pixel, row) = (11, 11 * e.w + 3);
    let batch = row * e.h + 7;
    let mut big = vec![f32::NAN; batch * e.n];
    for n in 0..e.n {
        for y in 0..e.h {
            for x in 0..e.w {
                for c in 0..e.c {
                    big[n * batch + y * row + x * pixel + c] =
                        got[((n * e.h + y) * e.w + x) * e.c + c];
                }
            }
        }
    }
    assert_eq!(e.check_strided(&big, pixel, row, batch, 1e-6), Ok(()));
}
