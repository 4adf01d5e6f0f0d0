//! The non-convolution operators: global average pool, fully connected, softmax.

use crate::{Activation, Expected, Tensor};

/// Global average pool: output n x 1 x 1 x c, value = mean over h*w (f64), magnitude = mean of |x|.
///
/// # Panics
/// If `h * w == 0` (the mean of nothing is undefined).
pub fn global_avg_pool(input: &Tensor) -> Expected {
    let count = input.h * input.w;
    assert!(
        count > 0,
        "global_avg_pool: empty {}x{} image",
        input.h,
        input.w
    );
    let inv = 1.0 / count as f64;
    let mut value = Vec::with_capacity(input.n * input.c);
    let mut magnitude = Vec::with_capacity(input.n * input.c);
    for n in 0..input.n {
        for c in 0..input.c {
            let mut sum = 0.0f64;
            let mut abs = 0.0f64;
            for y in 0..input.h {
                for x in 0..input.w {
                    let v = f64::from(input.at(n, y, x, c));
                    sum += v;
                    abs += v.abs();
                }
            }
            value.push(sum * inv);
            magnitude.push(abs * inv);
        }
    }
    Expected {
        n: input.n,
        h: 1,
        w: 1,
        c: input.c,
        value,
        magnitude,
    }
}

/// Fully connected: input `[batch][cin]` (a Tensor of shape batch x 1 x 1 x cin, or any shape whose h*w*c = cin — flatten in NHWC order), weights `[cin][cout]` (IO), bias `[cout]`; output batch x 1 x 1 x cout.
///
/// `value = act(bias[o] + sum_i x[i] * w[i][o])`, `magnitude = |bias[o]| + sum_i |x[i] * w[i][o]|`.
///
/// # Panics
/// If `h * w * c != cin`, or the weight or bias length is wrong.
pub fn fully_connected(
    input: &Tensor,
    weights: &[f32],
    cin: usize,
    bias: Option<&[f32]>,
    cout: usize,
    activation: Activation,
) -> Expected {
    assert_eq!(
        input.h * input.w * input.c,
        cin,
        "fully_connected: a {}x{}x{} image does not flatten to cin = {cin}",
        input.h,
        input.w,
        input.c
    );
    assert_eq!(
        weights.len(),
        cin * cout,
        "fully_connected: weights must be IO {cin}x{cout}"
    );
    if let Some(b) = bias {
        assert_eq!(
            b.len(),
            cout,
            "fully_connected: bias must have cout = {cout} entries"
        );
    }
    let mut value = Vec::with_capacity(input.n * cout);
    let mut magnitude = Vec::with_capacity(input.n * cout);
    for n in 0..input.n {
        // Dense NHWC: image n is one contiguous run of cin floats.
        let x = &input.data[n * cin..(n + 1) * cin];
        for o in 0..cout {
            let b = bias.map_or(0.0, |b| f64::from(b[o]));
            let mut acc = b;
            let mut mag = b.abs();
            for i in 0..cin {
                let p = f64::from(x[i]) * f64::from(weights[i * cout + o]);
                acc += p;
                mag += p.abs();
            }
            value.push(activation.apply(acc));
            magnitude.push(mag);
        }
    }
    Expected {
        n: input.n,
        h: 1,
        w: 1,
        c: cout,
        value,
        magnitude,
    }
}

/// Softmax over the channels of each pixel, in f64 (max-subtracted), returned as f32 NHWC.
///
/// A NaN anywhere in a pixel makes the whole pixel NaN; so does `+inf` (`inf - inf`).
pub fn softmax(input: &Tensor) -> Tensor {
    let c = input.c;
    let mut data = vec![0.0f32; input.data.len()];
    if c == 0 {
        return Tensor::new(input.n, input.h, input.w, c, data);
    }
    let mut exps = vec![0.0f64; c];
    for (src, dst) in input.data.chunks_exact(c).zip(data.chunks_exact_mut(c)) {
        let max = src
            .iter()
            .map(|&v| f64::from(v))
            .fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for (e, &v) in exps.iter_mut().zip(src) {
            *e = (f64::from(v) - max).exp();
            sum += *e;
        }
        for (d, e) in dst.iter_mut().zip(&exps) {
            *d = (e / sum) as f32;
        }
    }
    Tensor::new(input.n, input.h, input.w, c, data)
}
