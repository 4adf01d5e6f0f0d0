//! Naive, obviously-correct NHWC `f32` operators that accumulate in `f64`.
//!
//! This crate is the oracle every optimised sepconv kernel is tested against, so
//! clarity beats speed: every operator is a plain loop nest over the output,
//! written to be checked by eye. Each operator returns an [`Expected`], which holds
//! the exact (`f64`) result of every output element together with a magnitude
//! (`|bias| + sum |x * w|`) used to scale the comparison tolerance, so that a
//! kernel computing in `f32` with FMA and a different summation order can be
//! checked with [`Expected::check`].
//!
//! Layouts:
//! - activations are dense NHWC ([`Tensor`]);
//! - convolution weights are HWIO `[kh][kw][cin / groups][cout]` (TensorFlow's);
//!   [`oihw_to_hwio`] converts from ONNX/PyTorch's OIHW;
//! - fully-connected weights are IO `[cin][cout]`.
//!
//! Misuse (mismatched lengths, impossible shapes) panics: this is a test oracle.

#![forbid(unsafe_code)]

mod activation;
mod conv;
mod expected;
mod ops;
mod tensor;

pub use activation::Activation;
pub use conv::{conv2d, depthwise3x3, oihw_to_hwio, pointwise, Conv2d, Padding};
pub use expected::Expected;
pub use ops::{fully_connected, global_avg_pool, softmax};
pub use tensor::Tensor;
