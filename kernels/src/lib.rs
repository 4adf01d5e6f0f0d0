//! # sepconv
//!
//! Hand-tuned SIMD kernels for depthwise-separable convolution — the building block of MobileNet
//! (Howard et al., 2017) — with runtime ISA dispatch and a safe API.
//!
//! * Activations are NHWC `f32` ([`TensorView`], [`TensorViewMut`]); strided views let outputs land
//!   inside a larger buffer.
//! * Weights are packed once per layer by a [`Kernels`] handle ([`Kernels::pack_depthwise3x3`],
//!   [`Kernels::pack_pointwise`], [`Kernels::pack_conv3x3`], [`Kernels::pack_fully_connected`]) from
//!   TensorFlow (HWIO) or ONNX/PyTorch (OIHW) layouts.
//! * Operators are methods of [`Kernels`]: [`Kernels::depthwise3x3`] (and
//!   [`Kernels::depthwise3x3_row`], one output row from three input rows), [`Kernels::pointwise`],
//!   [`Kernels::conv3x3`], [`Kernels::global_avg_pool`], [`Kernels::fully_connected`], each with a
//!   fused bias and [`Activation`].
//! * Every bad input returns an [`Error`]; nothing a caller passes can cause undefined behaviour.
//!
//! # Floating point
//!
//! IEEE `f32` throughout, with subnormals kept: the kernels never set flush-to-zero or
//! denormals-are-zero (MXCSR on x86, FPCR on AArch64). That state belongs to the calling thread
//! (and to every worker thread), and a library that flips it changes the results of unrelated code
//! behind its caller's back; MobileNet activations after batch norm and ReLU6 are rarely subnormal,
//! so there is little speed to buy. A caller who wants FTZ/DAZ sets it on its own threads; the
//! kernels then simply follow it. Tested: `subnormals_are_kept` (kernels/tests/ops_vs_reference.rs)
//! checks exact subnormal inputs and outputs on every ISA and kernel. Sums are `f32` FMA chains;
//! `threads` never changes a result's bits. NaN propagates through every activation.
//!
//! Cutting one operator into several calls: a depthwise output row is computed the same way
//! whichever call computes it, so an engine that runs a depthwise layer in bands of output rows
//! (the input rows the band needs as a view, [`Padding::Explicit`] with the layer's padding
//! where the band touches a border; e.g. to feed each band straight into the next layer) gets
//! the same bits as one call (tested: `depthwise_in_row_bands_gives_the_same_bits`), and so
//! does one output row from [`Kernels::depthwise3x3_row`], its three input rows wherever the
//! engine keeps them (a ring of rows: no copies to make the rows of a band adjacent). Pointwise
//! and fully connected outputs can differ in the last bits when a pixel lands elsewhere in the
//! GEMM's rows (another batch size, another range of pixels per call): the short register tile
//! that takes a call's last rows (AVX2 1-3 rows, AVX-512 1-3 or 1-7 depending on the tile) splits
//! the depth over 2-4 accumulator chains to hide the FMA latency, which sums in another order than
//! the full tiles.
//!
//! ```
//! use sepconv::{Activation, Conv3x3Params, Kernels, Shape, TensorView, TensorViewMut, WeightLayout};
//!
//! let k = Kernels::best(); // AVX-512, AVX2, NEON or portable; `SEPCONV_ISA` forces one
//! let (h, w, cin, cout) = (8, 8, 16, 32);
//! let x = vec![1.0f32; h * w * cin];
//! let dw = k.pack_depthwise3x3(&vec![0.1; 9 * cin], WeightLayout::Hwio, None, cin)?;
//! let pw = k.pack_pointwise(&vec![0.01; cin * cout], WeightLayout::Hwio, Some(&vec![0.5; cout]), cin, cout)?;
//! let (mut mid, mut y) = (vec![0.0; h * w * cin], vec![0.0; h * w * cout]);
//! let params = Conv3x3Params::new().stride(1).activation(Activation::Relu6);
//! k.depthwise3x3(&TensorView::new(&x, Shape::new(1, h, w, cin))?, &dw, &params,
//!                &mut TensorViewMut::new(&mut mid, Shape::new(1, h, w, cin))?)?;
//! k.pointwise(&TensorView::new(&mid, Shape::new(1, h, w, cin))?, &pw, Activation::Relu,
//!             &mut TensorViewMut::new(&mut y, Shape::new(1, h, w, cout))?)?;
//! assert!((y[(3 * w + 3) * cout] - (0.5 + 16.0 * 0.01 * 0.9)).abs() < 1e-5);
//! # Ok::<(), sepconv::Error>(())
//! ```

#[macro_use]
mod mca;

pub mod activation;
mod buffer;
mod conv3x3;
pub mod dispatch;
pub mod dwconv;
pub mod error;
pub mod gemm;
pub mod isa;
#[cfg(target_arch = "x86_64")]
mod lanes;
pub mod pack;
pub mod params;
mod pointwise;
mod pool;
pub mod probe;
pub mod registry;
pub mod tensor;
mod threading;

pub use activation::Activation;
pub use buffer::AlignedBuf;
pub use dispatch::Kernels;
pub use error::{Error, Result};
pub use isa::Isa;
pub use pack::{
    ConvWeights, DepthwiseWeights, FullyConnectedWeights, PointwiseWeights, WeightLayout,
};
pub use params::{Conv3x3Params, Padding};
pub use tensor::{Shape, Strides, TensorView, TensorViewMut};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
