//! Convolution parameters: stride, padding and the output size they give.

use crate::activation::Activation;
use crate::error::{Error, Result};

/// Padding of a 3x3 convolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Padding {
    /// TensorFlow `SAME`: output = ceil(input / stride); any odd total goes to the bottom/right.
    #[default]
    Same,
    /// TensorFlow `VALID`: no padding; output = (input - 3) / stride + 1.
    Valid,
    /// Explicit zero rows/columns per side, each `0 ..= 2` (ONNX `pads`, PyTorch `padding`).
    Explicit {
        /// Rows above.
        top: usize,
        /// Rows below.
        bottom: usize,
        /// Columns left.
        left: usize,
        /// Columns right.
        right: usize,
    },
}

/// Parameters of a 3x3 convolution (depthwise or standard).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Conv3x3Params {
    /// 1 or 2, the same in both directions.
    pub stride: usize,
    /// Zero padding.
    pub padding: Padding,
    /// Activation fused into the output store (after the bias).
    pub activation: Activation,
}

impl Conv3x3Params {
    /// Stride 1, `SAME` padding, no activation.
    pub fn new() -> Self {
        Conv3x3Params {
            stride: 1,
            padding: Padding::Same,
            activation: Activation::None,
        }
    }

    /// With this stride.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// With this padding.
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// With this activation.
    pub fn activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// The output `(height, width)` for an input of `(h, w)`, after checking stride and padding.
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let g = self.geometry(h, w)?;
        Ok((g.out_h, g.out_w))
    }

    /// The padding as explicit zero rows and columns per side for an input of `(h, w)` (`SAME`
    /// and `VALID` resolved), after checking stride and padding. An engine that runs a layer in
    /// bands of output rows starts from this: a band's rows read a slice of the input rows, with
    /// the top (bottom) amount only on the band that touches the top (bottom) border.
    ///
    /// ```
    /// use sepconv::{Conv3x3Params, Padding};
    /// let p = Conv3x3Params::new().stride(2); // SAME: the odd total goes to the bottom/right
    /// assert_eq!(
    ///     p.explicit_padding(112, 112).unwrap(),
    ///     Padding::Explicit { top: 0, bottom: 1, left: 0, right: 1 }
    /// );
    /// ```
    pub fn explicit_padding(&self, h: usize, w: usize) -> Result<Padding> {
        let g = self.geometry(h, w)?;
        let s = g.stride;
        Ok(Padding::Explicit {
            top: g.pad_top,
            // (`VALID` can leave input rows unread at the bottom: no padding there then.)
            bottom: ((g.out_h - 1) * s + 3).saturating_sub(h + g.pad_top),
            left: g.pad_left,
            right: ((g.out_w - 1) * s + 3).saturating_sub(w + g.pad_left),
        })
    }

    /// Resolves padding into per-side amounts and the output size.
    pub(crate) fn geometry(&self, h: usize, w: usize) -> Result<Geometry> {
        let s = self.stride;
        if s != 1 && s != 2 {
            return Err(Error::UnsupportedStride(s));
        }
        let (top, bottom, left, right) = match self.padding {
            Padding::Valid => (0, 0, 0, 0),
            Padding::Same => {
                let (t, b) = same_pad(h, s);
                let (l, r) = same_pad(w, s);
                (t, b, l, r)
            }
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            } => {
                if top > 2 || bottom > 2 || left > 2 || right > 2 {
                    return Err(Error::BadPadding {
                        reason: "explicit padding must be 0..=2 per side for a 3x3 kernel",
                    });
                }
                (top, bottom, left, right)
            }
        };
        let out = |n: usize, a: usize, b: usize| -> Result<usize> {
            let padded = n.checked_add(a + b).ok_or(Error::Overflow {
                what: "padded size",
            })?;
            if padded < 3 {
                return Err(Error::BadPadding {
                    reason: "padded input is smaller than the 3x3 kernel",
                });
            }
            Ok((padded - 3) / s + 1)
        };
        Ok(Geometry {
            out_h: out(h, top, bottom)?,
            out_w: out(w, left, right)?,
            pad_top: top,
            pad_left: left,
            stride: s,
        })
    }
}

/// TensorFlow SAME padding for a 3-tap window: (before, after).
fn same_pad(n: usize, s: usize) -> (usize, usize) {
    let out = n.div_ceil(s);
    let total = ((out - 1) * s + 3).saturating_sub(n);
    (total / 2, total - total / 2)
}

/// Resolved geometry of a 3x3 convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub out_h: usize,
    pub out_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub stride: usize,
}
