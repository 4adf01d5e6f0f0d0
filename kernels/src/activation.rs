//! Fused activations. Every one is a clamp, so kernels only ever see `[min, max]`.

use crate::error::{Error, Result};

/// The activation fused into an operator's store.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)` (MobileNet's).
    Relu6,
    /// `min(max(x, min), max)`.
    Clamp {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
}

impl Activation {
    /// The `[min, max]` clamp this activation is, after checking its bounds.
    ///
    /// NaN inputs stay NaN in every kernel (`y < min` and `y > max` are both false for NaN).
    pub fn bounds(self) -> Result<(f32, f32)> {
        let (lo, hi) = match self {
            Activation::None => (f32::NEG_INFINITY, f32::INFINITY),
            Activation::Relu => (0.0, f32::INFINITY),
            Activation::Relu6 => (0.0, 6.0),
            Activation::Clamp { min, max } => (min, max),
        };
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(Error::BadActivation);
        }
        Ok((lo, hi))
    }
}

/// The scalar clamp every kernel implements; portable kernels call it, SIMD kernels match it.
#[inline(always)]
pub(crate) fn clamp(y: f32, min: f32, max: f32) -> f32 {
    let y = if y < min { min } else { y };
    if y > max {
        max
    } else {
        y
    }
}
