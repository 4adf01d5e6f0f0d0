//! Convolutions: the general grouped [`conv2d`] and its depthwise and pointwise special cases.

use crate::{Activation, Expected, Tensor};

/// Padding of a 2-D convolution, explicit per side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Padding {
    /// Rows of zeros above the input.
    pub top: usize,
    /// Rows of zeros below the input.
    pub bottom: usize,
    /// Columns of zeros left of the input.
    pub left: usize,
    /// Columns of zeros right of the input.
    pub right: usize,
}

impl Padding {
    /// TensorFlow "SAME" for one kernel size and stride on an (h, w) input: out = ceil(in / stride), total = max((out-1)*stride + k - in, 0), top/left = total/2, bottom/right = total - total/2.
    ///
    /// # Panics
    /// If `stride` is 0.
    pub fn same(h: usize, w: usize, k: usize, stride: usize) -> Padding {
        assert!(stride > 0, "Padding::same: stride must be positive");
        let total = |len: usize| {
            let out = len.div_ceil(stride);
            (out.saturating_sub(1) * stride + k).saturating_sub(len)
        };
        let (th, tw) = (total(h), total(w));
        Padding {
            top: th / 2,
            bottom: th - th / 2,
            left: tw / 2,
            right: tw - tw / 2,
        }
    }

    /// No padding ("VALID").
    pub fn valid() -> Padding {
        Padding {
            top: 0,
            bottom: 0,
            left: 0,
            right: 0,
        }
    }
}

/// A general 2-D convolution. `weights` layout: HWIO = `[kh][kw][cin / groups][cout]` (TensorFlow's).
/// Groups: cin and cout divisible by groups; output channel o belongs to group g = o / (cout/groups)
/// and reads input channels g*(cin/groups) .. (g+1)*(cin/groups). Depthwise = groups = cin = cout.
/// Output size: oh = (h + top + bottom - kh) / stride + 1 (panics if h + top + bottom < kh), same for width.
/// Accumulates in f64: `value = act(bias[o] + sum x*w)`, `magnitude = |bias[o]| + sum |x*w|`. Padded taps contribute nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2d {
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride, the same in both directions.
    pub stride: usize,
    /// Zero padding per side.
    pub padding: Padding,
    /// Number of groups (1 = dense, `cin` = depthwise when `cout == cin`).
    pub groups: usize,
    /// Activation fused after the bias.
    pub activation: Activation,
}

/// Runs the convolution described by `spec` on `input`, producing `cout` output channels.
///
/// `weights` is HWIO `[kh][kw][cin / groups][cout]`; `bias`, if given, has `cout` entries.
///
/// # Panics
/// On any inconsistent argument: a zero kernel size, stride or group count, channel counts not
/// divisible by `groups`, wrong weight or bias length, or an input (with padding) smaller than
/// the kernel.
pub fn conv2d(
    input: &Tensor,
    weights: &[f32],
    bias: Option<&[f32]>,
    cout: usize,
    spec: &Conv2d,
) -> Expected {
    let &Conv2d {
        kh,
        kw,
        stride,
        padding: pad,
        groups,
        activation,
    } = spec;
    let cin = input.c;
    assert!(
        kh > 0 && kw > 0 && stride > 0 && groups > 0,
        "conv2d: kh, kw, stride and groups must be positive: {spec:?}"
    );
    assert!(
        cin.is_multiple_of(groups) && cout.is_multiple_of(groups),
        "conv2d: cin {cin} and cout {cout} must both be divisible by groups {groups}"
    );
    let cin_g = cin / groups; // input channels per group
    let cout_g = cout / groups; // output channels per group
    assert_eq!(
        weights.len(),
        kh * kw * cin_g * cout,
        "conv2d: weights must be HWIO {kh}x{kw}x{cin_g}x{cout}"
    );
    if let Some(b) = bias {
        assert_eq!(
            b.len(),
            cout,
            "conv2d: bias must have cout = {cout} entries"
        );
    }
    let padded_h = input.h + pad.top + pad.bottom;
    let padded_w = input.w + pad.left + pad.right;
    assert!(
        padded_h >= kh && padded_w >= kw,
        "conv2d: padded input {padded_h}x{padded_w} is smaller than the {kh}x{kw} kernel"
    );
    let oh = (padded_h - kh) / stride + 1;
    let ow = (padded_w - kw) / stride + 1;

    let len = input.n * oh * ow * cout;
    let mut value = Vec::with_capacity(len);
    let mut magnitude = Vec::with_capacity(len);
    for n in 0..input.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..cout {
                    let g = o / cout_g;
                    let b = bias.map_or(0.0, |b| f64::from(b[o]));
                    let mut acc = b;
                    let mut mag = b.abs();
                    for ky in 0..kh {
                        // Row in the padded input is oy * stride + ky; subtract the top padding.
                        let Some(iy) = (oy * stride + ky).checked_sub(pad.top) else {
                            continue;
                        };
                        if iy >= input.h {
                            continue;
                        }
                        for kx in 0..kw {
                            let Some(ix) = (ox * stride + kx).checked_sub(pad.left) else {
                                continue;
                            };
                            if ix >= input.w {
                                continue;
                            }
                            for i in 0..cin_g {
                                let x = f64::from(input.at(n, iy, ix, g * cin_g + i));
                                let w = f64::from(weights[((ky * kw + kx) * cin_g + i) * cout + o]);
                                // f32 * f32 is exact in f64.
                                let p = x * w;
                                acc += p;
                                mag += p.abs();
                            }
                        }
                    }
                    value.push(activation.apply(acc));
                    magnitude.push(mag);
                }
            }
        }
    }
    Expected {
        n: input.n,
        h: oh,
        w: ow,
        c: cout,
        value,
        magnitude,
    }
}

/// Depthwise 3x3 convenience: weights `[3][3][c]` (HWIO with multiplier 1), calls [`conv2d`] with groups = c.
pub fn depthwise3x3(
    input: &Tensor,
    weights: &[f32],
    bias: Option<&[f32]>,
    stride: usize,
    padding: Padding,
    activation: Activation,
) -> Expected {
    let c = input.c;
    let spec = Conv2d {
        kh: 3,
        kw: 3,
        stride,
        padding,
        groups: c,
        activation,
    };
    conv2d(input, weights, bias, c, &spec)
}

/// Pointwise 1x1: weights `[cin][cout]`; calls [`conv2d`].
pub fn pointwise(
    input: &Tensor,
    weights: &[f32],
    bias: Option<&[f32]>,
    cout: usize,
    activation: Activation,
) -> Expected {
    let spec = Conv2d {
        kh: 1,
        kw: 1,
        stride: 1,
        padding: Padding::valid(),
        groups: 1,
        activation,
    };
    conv2d(input, weights, bias, cout, &spec)
}

/// Converts weights from OIHW `[cout][cin/groups][kh][kw]` (ONNX/PyTorch) to HWIO `[kh][kw][cin/groups][cout]`.
///
/// # Panics
/// If `w.len() != cout * cin_per_group * kh * kw`.
pub fn oihw_to_hwio(
    w: &[f32],
    cout: usize,
    cin_per_group: usize,
    kh: usize,
    kw: usize,
) -> Vec<f32> {
    assert_eq!(
        w.len(),
        cout * cin_per_group * kh * kw,
        "oihw_to_hwio: weights must be OIHW {cout}x{cin_per_group}x{kh}x{kw}"
    );
    let mut out = vec![0.0; w.len()];
    for o in 0..cout {
        for i in 0..cin_per_group {
            for ky in 0..kh {
                for kx in 0..kw {
                    let src = ((o * cin_per_group + i) * kh + ky) * kw + kx;
                    let dst = ((ky * kw + kx) * cin_per_group + i) * cout + o;
                    out[dst] = w[src];
                }
            }
        }
    }
    out
}
