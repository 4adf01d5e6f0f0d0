//! Tiny cases worked out by hand: every expected number is a literal, with the arithmetic
//! beside it.

use sepconv_reference::{
    conv2d, depthwise3x3, fully_connected, global_avg_pool, oihw_to_hwio, pointwise, softmax,
    Activation, Conv2d, Padding, Tensor,
};

/// The 1 x 3 x 3 x 1 image
/// ```text
/// 1 2 3
/// 4 5 6
/// 7 8 9
/// ```
fn one_to_nine() -> Tensor {
    Tensor::new(1, 3, 3, 1, (1..=9).map(|v| v as f32).collect())
}

/// A single-channel k x k convolution spec with no activation.
fn single(kh: usize, kw: usize, stride: usize, padding: Padding) -> Conv2d {
    Conv2d {
        kh,
        kw,
        stride,
        padding,
        groups: 1,
        activation: Activation::None,
    }
}

// ---------------------------------------------------------------------------------------------
// Padding::same

#[test]
fn padding_same_224_k3_s2() {
    // out = ceil(224 / 2) = 112; total = (112 - 1) * 2 + 3 - 224 = 1 -> top 0, bottom 1.
    let p = Padding::same(224, 224, 3, 2);
    assert_eq!(
        p,
        Padding {
            top: 0,
            bottom: 1,
            left: 0,
            right: 1
        }
    );
}

#[test]
fn padding_same_112_k3_s1() {
    // out = 112; total = 111 * 1 + 3 - 112 = 2 -> 1 / 1.
    let p = Padding::same(112, 112, 3, 1);
    assert_eq!(
        p,
        Padding {
            top: 1,
            bottom: 1,
            left: 1,
            right: 1
        }
    );
}

#[test]
fn padding_same_7_k3_s2() {
    // out = ceil(7 / 2) = 4; total = 3 * 2 + 3 - 7 = 2 -> 1 / 1.
    let p = Padding::same(7, 7, 3, 2);
    assert_eq!(
        p,
        Padding {
            top: 1,
            bottom: 1,
            left: 1,
            right: 1
        }
    );
}

#[test]
fn padding_same_non_square_and_negative_total() {
    // h = 8, s2: out 4, total = 3 * 2 + 3 - 8 = 1 -> 0 / 1.
    // w = 9, s2: out 5, total = 4 * 2 + 3 - 9 = 2 -> 1 / 1.
    assert_eq!(
        Padding::same(8, 9, 3, 2),
        Padding {
            top: 0,
            bottom: 1,
            left: 1,
            right: 1
        }
    );
    // k = 1, s = 2 on 8: out 4, (4 - 1) * 2 + 1 - 8 = -1 -> clamped to 0.
    assert_eq!(Padding::same(8, 8, 1, 2), Padding::valid());
    // k = 5, s = 1 on 10: total 4 -> 2 / 2.
    assert_eq!(
        Padding::same(10, 10, 5, 1),
        Padding {
            top: 2,
            bottom: 2,
            left: 2,
            right: 2
        }
    );
}

#[test]
fn padding_valid_is_zero() {
    assert_eq!(
        Padding::valid(),
        Padding {
            top: 0,
            bottom: 0,
            left: 0,
            right: 0
        }
    );
}

// ---------------------------------------------------------------------------------------------
// conv2d, single channel, all-ones 3x3 kernel on 1..9

#[test]
fn ones_3x3_same_stride1() {
    let e = conv2d(
        &one_to_nine(),
        &[1.0; 9],
        None,
        1,
        &single(3, 3, 1, Padding::same(3, 3, 3, 1)),
    );
    assert_eq!((e.n, e.h, e.w, e.c), (1, 3, 3, 1));
    #[rustfmt::skip]
    let want = [
        12.0, // 1+2+4+5
        21.0, // 1+2+3+4+5+6
        16.0, // 2+3+5+6
        27.0, // 1+2+4+5+7+8
        45.0, // 1+...+9
        33.0, // 2+3+5+6+8+9
        24.0, // 4+5+7+8
        39.0, // 4+5+6+7+8+9
        28.0, // 5+6+8+9
    ];
    assert_eq!(e.value, want);
    // All products are positive, so magnitude == value.
    assert_eq!(e.magnitude, want);
}

#[test]
fn ones_3x3_same_stride2() {
    // Padding::same(3, 3, 3, 2): out 2, total = 1 * 2 + 3 - 3 = 2 -> 1 / 1.
    // Outputs are centred on input (0,0), (0,2), (2,0), (2,2): the four corners above.
    let pad = Padding::same(3, 3, 3, 2);
    assert_eq!(
        pad,
        Padding {
            top: 1,
            bottom: 1,
            left: 1,
            right: 1
        }
    );
    let e = conv2d(&one_to_nine(), &[1.0; 9], None, 1, &single(3, 3, 2, pad));
    assert_eq!((e.h, e.w), (2, 2));
    assert_eq!(
        e.value,
        [
            12.0, // 1+2+4+5
            16.0, // 2+3+5+6
            24.0, // 4+5+7+8
            28.0, // 5+6+8+9
        ]
    );
}

#[test]
fn ones_3x3_valid() {
    // oh = (3 - 3) / 1 + 1 = 1: the one window covers everything, 1+...+9 = 45.
    let e = conv2d(
        &one_to_nine(),
        &[1.0; 9],
        None,
        1,
        &single(3, 3, 1, Padding::valid()),
    );
    assert_eq!((e.n, e.h, e.w, e.c), (1, 1, 1, 1));
    assert_eq!(e.value, [45.0]);
}

#[test]
fn ones_2x2_valid() {
    // oh = ow = (3 - 2) / 1 + 1 = 2.
    let e = conv2d(
        &one_to_nine(),
        &[1.0; 4],
        None,
        1,
        &single(2, 2, 1, Padding::valid()),
    );
    assert_eq!((e.h, e.w), (2, 2));
    assert_eq!(
        e.value,
        [
            12.0, // 1+2+4+5
            16.0, // 2+3+5+6
            24.0, // 4+5+7+8
            28.0, // 5+6+8+9
        ]
    );
}

#[test]
fn ones_3x3_asymmetric_padding() {
    // top 1, bottom 0, left 0, right 2:
    // oh = (3 + 1 + 0 - 3) / 1 + 1 = 2, ow = (3 + 0 + 2 - 3) / 1 + 1 = 3.
    // Output (oy, ox) covers input rows oy-1 ..= oy+1 and columns ox ..= ox+2.
    let pad = Padding {
        top: 1,
        bottom: 0,
        left: 0,
        right: 2,
    };
    let e = conv2d(&one_to_nine(), &[1.0; 9], None, 1, &single(3, 3, 1, pad));
    assert_eq!((e.h, e.w), (2, 3));
    #[rustfmt::skip]
    let want = [
        21.0, // rows 0..=1, cols 0..=2: 1+2+3+4+5+6
        16.0, // rows 0..=1, cols 1..=2: 2+3+5+6
        9.0,  // rows 0..=1, col 2:      3+6
        45.0, // rows 0..=2, cols 0..=2
        33.0, // rows 0..=2, cols 1..=2: 2+3+5+6+8+9
        18.0, // rows 0..=2, col 2:      3+6+9
    ];
    assert_eq!(e.value, want);
}

#[test]
fn kernel_orientation_is_cross_correlation() {
    // An impulse at the centre of a 3x3 image, kernel w[ky][kx] = 1..9, SAME stride 1:
    // out(oy, ox) = sum x[oy + ky - 1][ox + kx - 1] * w[ky][kx], non-zero only for
    // ky = 2 - oy, kx = 2 - ox, so the output is the kernel rotated by 180 degrees.
    let mut x = vec![0.0; 9];
    x[4] = 1.0;
    let input = Tensor::new(1, 3, 3, 1, x);
    let w: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let e = conv2d(
        &input,
        &w,
        None,
        1,
        &single(3, 3, 1, Padding::same(3, 3, 3, 1)),
    );
    assert_eq!(e.value, [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
}

#[test]
fn bias_and_magnitude_with_mixed_signs() {
    // 1x1x2x1 input [2, -3], 1x2 VALID kernel [4, 5], bias -1:
    // value = -1 + 2*4 + (-3)*5 = -1 + 8 - 15 = -8
    // magnitude = |-1| + |8| + |-15| = 24
    let input = Tensor::new(1, 1, 2, 1, vec![2.0, -3.0]);
    let e = conv2d(
        &input,
        &[4.0, 5.0],
        Some(&[-1.0]),
        1,
        &single(1, 2, 1, Padding::valid()),
    );
    assert_eq!(e.value, [-8.0]);
    assert_eq!(e.magnitude, [24.0]);
}

#[test]
fn batch_of_two() {
    // Image 0 is 1..9, image 1 is 10 * (1..9); ones 3x3 VALID: 45 and 450.
    let mut data: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    data.extend((1..=9).map(|v| 10.0 * v as f32));
    let input = Tensor::new(2, 3, 3, 1, data);
    let e = conv2d(
        &input,
        &[1.0; 9],
        None,
        1,
        &single(3, 3, 1, Padding::valid()),
    );
    assert_eq!((e.n, e.h, e.w, e.c), (2, 1, 1, 1));
    assert_eq!(e.value, [45.0, 450.0]);
}

#[test]
fn multi_channel_dense_conv() {
    // 1x1x2x2 input, pixels (1, 2) and (3, 4); 1x2 VALID kernel, cin 2, cout 1:
    // HWIO [0][kx][i][0]: kx0 = (i0: 1, i1: 10), kx1 = (i0: 100, i1: 1000).
    // value = 1*1 + 2*10 + 3*100 + 4*1000 = 1 + 20 + 300 + 4000 = 4321.
    let input = Tensor::new(1, 1, 2, 2, vec![1.0, 2.0, 3.0, 4.0]);
    let e = conv2d(
        &input,
        &[1.0, 10.0, 100.0, 1000.0],
        None,
        1,
        &single(1, 2, 1, Padding::valid()),
    );
    assert_eq!(e.value, [4321.0]);
}

#[test]
#[should_panic(expected = "smaller than")]
fn conv_rejects_input_smaller_than_kernel() {
    // h + top + bottom = 3 < kh = 5.
    let _ = conv2d(
        &one_to_nine(),
        &[1.0; 25],
        None,
        1,
        &single(5, 5, 1, Padding::valid()),
    );
}

#[test]
#[should_panic(expected = "weights must be HWIO")]
fn conv_rejects_wrong_weight_length() {
    let _ = conv2d(
        &one_to_nine(),
        &[1.0; 8],
        None,
        1,
        &single(3, 3, 1, Padding::valid()),
    );
}

// ---------------------------------------------------------------------------------------------
// depthwise, pointwise, groups

#[test]
fn depthwise_two_channels_different_weights() {
    // 1x2x2x2 input: channel 0 = [1 2; 3 4], channel 1 = [10 20; 30 40].
    let input = Tensor::new(1, 2, 2, 2, vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0]);
    // Weights [3][3][2]: channel 0 all ones; channel 1 has w[0][0] = -1, w[1][1] = 2, else 0.
    let mut w = [0.0f32; 18];
    for t in 0..9 {
        w[t * 2] = 1.0;
    }
    w[1] = -1.0; // (ky 0, kx 0, ch 1)
    w[(3 + 1) * 2 + 1] = 2.0; // (ky 1, kx 1, ch 1)
    let pad = Padding::same(2, 2, 3, 1); // out 2, total 1 + 3 - 2 = 2 -> 1 / 1
    let bias = [0.5, -1.0];
    let e = depthwise3x3(&input, &w, Some(&bias), 1, pad, Activation::None);
    assert_eq!((e.n, e.h, e.w, e.c), (1, 2, 2, 2));
    // Channel 0: every 3x3 window covers the whole 2x2 image: 1+2+3+4 + 0.5 = 10.5.
    // Channel 1: out(oy, ox) = -1 + 2*x[oy][ox] - x[oy-1][ox-1] (the last only for (1, 1)).
    #[rustfmt::skip]
    let want = [
        10.5, 19.0, // (0,0): ch1 = -1 + 2*10            = 19
        10.5, 39.0, // (0,1): ch1 = -1 + 2*20            = 39
        10.5, 59.0, // (1,0): ch1 = -1 + 2*30            = 59
        10.5, 69.0, // (1,1): ch1 = -1 + 2*40 - 10       = 69
    ];
    assert_eq!(e.value, want);
    #[rustfmt::skip]
    let mag = [
        10.5, 21.0, // |-1| + 20
        10.5, 41.0, // |-1| + 40
        10.5, 61.0, // |-1| + 60
        10.5, 91.0, // |-1| + 80 + |-10|
    ];
    assert_eq!(e.magnitude, mag);
}

#[test]
fn depthwise_stride2_relu6() {
    // 1x3x3x1 input 1..9, all-ones kernel, SAME stride 2 (1 / 1 padding), bias -20, ReLU6:
    // pre-activation = corners (12, 16, 24, 28) - 20 = (-8, -4, 4, 8) -> (0, 0, 4, 6).
    let e = depthwise3x3(
        &one_to_nine(),
        &[1.0; 9],
        Some(&[-20.0]),
        2,
        Padding::same(3, 3, 3, 2),
        Activation::Relu6,
    );
    assert_eq!(e.value, [0.0, 0.0, 4.0, 6.0]);
    // Magnitude is the pre-activation one: 20 + corner sum.
    assert_eq!(e.magnitude, [32.0, 36.0, 44.0, 48.0]);
}

/// The 1x1x2x2 input of the pointwise tests: pixels (1, 2) and (3, -1).
fn pointwise_input() -> Tensor {
    Tensor::new(1, 1, 2, 2, vec![1.0, 2.0, 3.0, -1.0])
}

/// Weights [cin = 2][cout = 3] = [[1, 0, 2], [0, 1, -1]].
const PW_W: [f32; 6] = [1.0, 0.0, 2.0, 0.0, 1.0, -1.0];
/// Bias [0.5, 0, -1].
const PW_B: [f32; 3] = [0.5, 0.0, -1.0];

#[test]
fn pointwise_2_to_3_with_bias() {
    let e = pointwise(&pointwise_input(), &PW_W, Some(&PW_B), 3, Activation::None);
    assert_eq!((e.n, e.h, e.w, e.c), (1, 1, 2, 3));
    #[rustfmt::skip]
    let want = [
        // pixel (1, 2)
        1.5,  // 0.5 + 1*1 + 2*0
        2.0,  // 0   + 1*0 + 2*1
        -1.0, // -1  + 1*2 + 2*(-1) = -1 + 2 - 2
        // pixel (3, -1)
        3.5,  // 0.5 + 3*1 + (-1)*0
        -1.0, // 0   + 3*0 + (-1)*1
        6.0,  // -1  + 3*2 + (-1)*(-1) = -1 + 6 + 1
    ];
    assert_eq!(e.value, want);
    #[rustfmt::skip]
    let mag = [
        1.5, 2.0, 5.0, // 0.5+1+0, 0+0+2, 1+2+2
        3.5, 1.0, 8.0, // 0.5+3+0, 0+0+1, 1+6+1
    ];
    assert_eq!(e.magnitude, mag);
}

#[test]
fn pointwise_relu() {
    // As above, negatives clamped to 0; magnitudes unchanged.
    let e = pointwise(&pointwise_input(), &PW_W, Some(&PW_B), 3, Activation::Relu);
    assert_eq!(e.value, [1.5, 2.0, 0.0, 3.5, 0.0, 6.0]);
    assert_eq!(e.magnitude, [1.5, 2.0, 5.0, 3.5, 1.0, 8.0]);
}

#[test]
fn pointwise_relu6() {
    // Pre-activation [1.5, 2, -1, 3.5, -1, 6]: 6 stays 6 (not above the bound).
    let e = pointwise(&pointwise_input(), &PW_W, Some(&PW_B), 3, Activation::Relu6);
    assert_eq!(e.value, [1.5, 2.0, 0.0, 3.5, 0.0, 6.0]);
    // Bias +1 pushes the last one to 7 -> 6, and 3.5 -> 4.5 stays.
    let b1 = [1.5, 1.0, 0.0];
    let e = pointwise(&pointwise_input(), &PW_W, Some(&b1), 3, Activation::Relu6);
    // pre: [2.5, 3, 0, 4.5, 0, 7]
    assert_eq!(e.value, [2.5, 3.0, 0.0, 4.5, 0.0, 6.0]);
}

#[test]
fn pointwise_clamp() {
    // Pre-activation [1.5, 2, -1, 3.5, -1, 6] clamped to [-0.5, 2.5].
    let act = Activation::Clamp {
        min: -0.5,
        max: 2.5,
    };
    let e = pointwise(&pointwise_input(), &PW_W, Some(&PW_B), 3, act);
    assert_eq!(e.value, [1.5, 2.0, -0.5, 2.5, -0.5, 2.5]);
}

#[test]
fn groups_2_pointwise() {
    // 1x1x1x4 input [1, 2, 3, 4]; 1x1 kernel, cin 4, cout 2, groups 2:
    // cin/groups = 2, cout/groups = 1. Output 0 reads channels 0..2, output 1 reads 2..4.
    // HWIO [0][0][i][o] = [[10, 100], [20, 200]] (i = index within the group).
    let input = Tensor::new(1, 1, 1, 4, vec![1.0, 2.0, 3.0, 4.0]);
    let spec = Conv2d {
        kh: 1,
        kw: 1,
        stride: 1,
        padding: Padding::valid(),
        groups: 2,
        activation: Activation::None,
    };
    let e = conv2d(&input, &[10.0, 100.0, 20.0, 200.0], None, 2, &spec);
    assert_eq!(
        e.value,
        [
            50.0,   // 1*10 + 2*20
            1100.0, // 3*100 + 4*200
        ]
    );
}

#[test]
fn groups_2_with_two_outputs_per_group_and_spatial_kernel() {
    // 1x1x2x2 input, pixels (1, 2) and (3, 4); 1x2 VALID kernel, cin 2, cout 4, groups 2:
    // cin/groups = 1, cout/groups = 2: outputs 0, 1 read channel 0; outputs 2, 3 read channel 1.
    // HWIO [0][kx][0][o]: kx0 = [1, 2, 3, 4], kx1 = [5, 6, 7, 8].
    let input = Tensor::new(1, 1, 2, 2, vec![1.0, 2.0, 3.0, 4.0]);
    let spec = Conv2d {
        kh: 1,
        kw: 2,
        stride: 1,
        padding: Padding::valid(),
        groups: 2,
        activation: Activation::None,
    };
    let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let e = conv2d(&input, &w, None, 4, &spec);
    assert_eq!((e.h, e.w, e.c), (1, 1, 4));
    assert_eq!(
        e.value,
        [
            16.0, // ch0: 1*1 + 3*5
            20.0, // ch0: 1*2 + 3*6
            34.0, // ch1: 2*3 + 4*7 = 6 + 28
            40.0, // ch1: 2*4 + 4*8
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// NaN and infinity

#[test]
fn nan_propagates_through_conv() {
    // NaN at (0, 0) of 1..9; ones 3x3 SAME stride 1: the four windows touching (0, 0) are NaN,
    // the rest are the sums from `ones_3x3_same_stride1`.
    let mut input = one_to_nine();
    input.data[0] = f32::NAN;
    let e = conv2d(
        &input,
        &[1.0; 9],
        None,
        1,
        &single(3, 3, 1, Padding::same(3, 3, 3, 1)),
    );
    let nan = [0, 1, 3, 4];
    for (i, v) in e.value.iter().enumerate() {
        assert_eq!(v.is_nan(), nan.contains(&i), "element {i} = {v}");
    }
    assert_eq!(e.value[2], 16.0);
    assert_eq!(e.value[5], 33.0);
    assert_eq!(e.value[6], 24.0);
    assert_eq!(e.value[7], 39.0);
    assert_eq!(e.value[8], 28.0);
}

#[test]
fn nan_propagates_through_every_activation() {
    // NaN in the first input channel reaches every output of the pointwise conv.
    let input = Tensor::new(1, 1, 1, 2, vec![f32::NAN, 1.0]);
    for act in [
        Activation::None,
        Activation::Relu,
        Activation::Relu6,
        Activation::Clamp {
            min: -1.0,
            max: 1.0,
        },
    ] {
        let e = pointwise(&input, &PW_W, Some(&PW_B), 3, act);
        assert!(e.value.iter().all(|v| v.is_nan()), "{act:?}: {:?}", e.value);
        let d = depthwise3x3(
            &Tensor::new(1, 1, 1, 1, vec![f32::NAN]),
            &[1.0; 9],
            None,
            1,
            Padding::same(1, 1, 3, 1),
            act,
        );
        assert!(d.value[0].is_nan(), "{act:?}");
    }
}

#[test]
fn nan_weight_propagates() {
    let mut w = [1.0f32; 9];
    w[4] = f32::NAN;
    let e = conv2d(
        &one_to_nine(),
        &w,
        None,
        1,
        &single(3, 3, 1, Padding::valid()),
    );
    assert!(e.value[0].is_nan());
}

#[test]
fn infinity_times_zero_weight_is_nan() {
    // IEEE: inf * 0 = NaN, and the reference keeps it (no special casing).
    let input = Tensor::new(1, 1, 1, 2, vec![f32::INFINITY, 1.0]);
    // Weights [2][2] = [[0, 1], [1, 1]]: output 0 = inf*0 + 1*1 = NaN, output 1 = inf*1 + 1 = inf.
    let e = pointwise(&input, &[0.0, 1.0, 1.0, 1.0], None, 2, Activation::None);
    assert!(e.value[0].is_nan());
    assert_eq!(e.value[1], f64::INFINITY);
    // ReLU6 clamps +inf to 6 but keeps the NaN.
    let e = pointwise(&input, &[0.0, 1.0, 1.0, 1.0], None, 2, Activation::Relu6);
    assert!(e.value[0].is_nan());
    assert_eq!(e.value[1], 6.0);
}

// ---------------------------------------------------------------------------------------------
// global average pool, fully connected

#[test]
fn global_avg_pool_two_channels() {
    // 1x2x2x2: channel 0 = [1, 2, 3, -6], channel 1 = [4, 4, 4, 8].
    let input = Tensor::new(1, 2, 2, 2, vec![1.0, 4.0, 2.0, 4.0, 3.0, 4.0, -6.0, 8.0]);
    let e = global_avg_pool(&input);
    assert_eq!((e.n, e.h, e.w, e.c), (1, 1, 1, 2));
    assert_eq!(
        e.value,
        [
            0.0, // (1 + 2 + 3 - 6) / 4
            5.0, // (4 + 4 + 4 + 8) / 4
        ]
    );
    assert_eq!(
        e.magnitude,
        [
            3.0, // (1 + 2 + 3 + 6) / 4
            5.0,
        ]
    );
}

#[test]
fn global_avg_pool_batch_and_nan() {
    // 2x1x3x1: image 0 = [1, 2, 6] -> 3; image 1 = [1, NaN, 1] -> NaN.
    let input = Tensor::new(2, 1, 3, 1, vec![1.0, 2.0, 6.0, 1.0, f32::NAN, 1.0]);
    let e = global_avg_pool(&input);
    assert_eq!((e.n, e.c), (2, 1));
    assert_eq!(e.value[0], 3.0);
    assert!(e.value[1].is_nan());
}

/// Weights [cin = 3][cout = 2] = [[1, -1], [2, 0], [3, 1]].
const FC_W: [f32; 6] = [1.0, -1.0, 2.0, 0.0, 3.0, 1.0];
/// Bias [0.5, -0.5].
const FC_B: [f32; 2] = [0.5, -0.5];

#[test]
fn fully_connected_with_bias() {
    // batch 0 = [1, 2, 3], batch 1 = [-1, 0, 1].
    let input = Tensor::new(2, 1, 1, 3, vec![1.0, 2.0, 3.0, -1.0, 0.0, 1.0]);
    let e = fully_connected(&input, &FC_W, 3, Some(&FC_B), 2, Activation::None);
    assert_eq!((e.n, e.h, e.w, e.c), (2, 1, 1, 2));
    #[rustfmt::skip]
    let want = [
        14.5, // 0.5 + 1*1 + 2*2 + 3*3
        1.5,  // -0.5 + 1*(-1) + 2*0 + 3*1
        2.5,  // 0.5 + (-1)*1 + 0*2 + 1*3
        1.5,  // -0.5 + (-1)*(-1) + 0*0 + 1*1
    ];
    assert_eq!(e.value, want);
    #[rustfmt::skip]
    let mag = [
        14.5, // 0.5 + 1 + 4 + 9
        4.5,  // 0.5 + 1 + 0 + 3
        4.5,  // 0.5 + 1 + 0 + 3
        2.5,  // 0.5 + 1 + 0 + 1
    ];
    assert_eq!(e.magnitude, mag);
}

#[test]
fn fully_connected_flattens_nhwc_and_activates() {
    // The same numbers as a 2x1x3x1 tensor flatten to the same rows; ReLU6 then clamps
    // 14.5 to 6, and bias -3 makes the others negative -> 0.
    let input = Tensor::new(2, 1, 3, 1, vec![1.0, 2.0, 3.0, -1.0, 0.0, 1.0]);
    let e = fully_connected(&input, &FC_W, 3, Some(&FC_B), 2, Activation::Relu6);
    assert_eq!(e.value, [6.0, 1.5, 2.5, 1.5]);
    let e = fully_connected(&input, &FC_W, 3, None, 2, Activation::Relu);
    // No bias: [14, 2, 2, 2].
    assert_eq!(e.value, [14.0, 2.0, 2.0, 2.0]);
}

// ---------------------------------------------------------------------------------------------
// oihw_to_hwio, softmax

#[test]
fn oihw_to_hwio_small() {
    // cout 2, cin/groups 2, kh 1, kw 2. OIHW holds 0..8:
    //   o0 i0: [0, 1]   o0 i1: [2, 3]   o1 i0: [4, 5]   o1 i1: [6, 7]
    // HWIO [0][kx][i][o]:
    //   kx0: i0 -> (o0 0, o1 4), i1 -> (o0 2, o1 6)
    //   kx1: i0 -> (o0 1, o1 5), i1 -> (o0 3, o1 7)
    let w: Vec<f32> = (0..8).map(|v| v as f32).collect();
    assert_eq!(
        oihw_to_hwio(&w, 2, 2, 1, 2),
        [0.0, 4.0, 2.0, 6.0, 1.0, 5.0, 3.0, 7.0]
    );
}

#[test]
fn oihw_to_hwio_depthwise_3x3() {
    // Depthwise (cin/groups = 1), cout 2, 3x3: OIHW channel 0 holds 0..9, channel 1 holds 10..19.
    // HWIO [ky][kx][0][o] interleaves them: (0, 10), (1, 11), ..., (8, 18).
    let w: Vec<f32> = (0..18).map(|v| v as f32).collect();
    let want: Vec<f32> = (0..9).flat_map(|t| [t as f32, (t + 9) as f32]).collect();
    assert_eq!(oihw_to_hwio(&w, 2, 1, 3, 3), want);
}

#[test]
fn softmax_small() {
    // Pixel 0: [0, ln 2] -> exp = [1, 2] / 3 = [1/3, 2/3].
    // Pixel 1: [1000, 1000] -> max-subtracted [0, 0] -> [1/2, 1/2] (no overflow).
    let input = Tensor::new(
        1,
        1,
        2,
        2,
        vec![0.0, std::f32::consts::LN_2, 1000.0, 1000.0],
    );
    let s = softmax(&input);
    assert_eq!((s.n, s.h, s.w, s.c), (1, 1, 2, 2));
    assert!((s.data[0] - 1.0 / 3.0).abs() < 1e-6, "{:?}", s.data);
    assert!((s.data[1] - 2.0 / 3.0).abs() < 1e-6, "{:?}", s.data);
    assert_eq!(s.data[2], 0.5);
    assert_eq!(s.data[3], 0.5);
}

#[test]
fn softmax_sums_to_one() {
    // 2x2x2x5 with varied values, including large and negative ones.
    let data: Vec<f32> = (0..40)
        .map(|i| ((i * 37) % 23) as f32 * 3.5 - 40.0)
        .collect();
    let s = softmax(&Tensor::new(2, 2, 2, 5, data));
    for px in s.data.chunks_exact(5) {
        let sum: f64 = px.iter().map(|&v| f64::from(v)).sum();
        assert!((sum - 1.0).abs() < 1e-6, "{px:?} sums to {sum}");
        assert!(px.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
}

#[test]
fn softmax_nan_poisons_its_pixel_only() {
    let input = Tensor::new(1, 1, 2, 2, vec![f32::NAN, 1.0, 1.0, 1.0]);
    let s = softmax(&input);
    assert!(s.data[0].is_nan() && s.data[1].is_nan());
    assert_eq!(&s.data[2..], [0.5, 0.5]);
}

// ---------------------------------------------------------------------------------------------
// Expected::check on a real result

#[test]
fn check_against_conv_output() {
    let e = conv2d(
        &one_to_nine(),
        &[1.0; 9],
        None,
        1,
        &single(3, 3, 1, Padding::same(3, 3, 3, 1)),
    );
    let mut got = [12.0f32, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0];
    assert_eq!(e.check(&got, 1e-5), Ok(()));
    // 45 * (1 + 1e-6) is within 1e-5 * 45 + 1e-6.
    got[4] = 45.000045;
    assert_eq!(e.check(&got, 1e-5), Ok(()));
    // 45.01 is off by 0.01 > 1e-5 * 45 + 1e-6 = 0.000451.
    got[4] = 45.01;
    let err = e.check(&got, 1e-5).unwrap_err();
    assert!(err.contains("(0, 1, 1, 0)"), "{err}");
    assert!(err.contains("1 of 9"), "{err}");
}
