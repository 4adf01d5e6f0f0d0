//! Fused activations, expressed as clamps.

/// Fused activation, as a clamp. `None` => (-inf, inf), `Relu` => (0, inf), `Relu6` => (0, 6).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// Identity: no clamp.
    None,
    /// `max(y, 0)`.
    Relu,
    /// `min(max(y, 0), 6)`.
    Relu6,
    /// `min(max(y, min), max)`.
    Clamp {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
}

impl Activation {
    /// The clamp bounds `(min, max)` of this activation, in `f64`.
    fn bounds(self) -> (f64, f64) {
        match self {
            Activation::None => (f64::NEG_INFINITY, f64::INFINITY),
            Activation::Relu => (0.0, f64::INFINITY),
            Activation::Relu6 => (0.0, 6.0),
            Activation::Clamp { min, max } => (f64::from(min), f64::from(max)),
        }
    }

    /// Applies the activation to a pre-activation value.
    ///
    /// NaN stays NaN: the clamp is `if y < min { min } else { y }` followed by
    /// `if y > max { max } else { y }`, and both comparisons are false for NaN.
    pub fn apply(self, y: f64) -> f64 {
        let (min, max) = self.bounds();
        let y = if y < min { min } else { y };
        if y > max {
            max
        } else {
            y
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Activation;

    #[test]
    fn none_is_identity() {
        assert_eq!(Activation::None.apply(-3.5), -3.5);
        assert_eq!(Activation::None.apply(1e300), 1e300);
        assert_eq!(Activation::None.apply(f64::NEG_INFINITY), f64::NEG_INFINITY);
    }

    #[test]
    fn relu() {
        assert_eq!(Activation::Relu.apply(-1.0), 0.0);
        assert_eq!(Activation::Relu.apply(0.0), 0.0);
        assert_eq!(Activation::Relu.apply(3.0), 3.0);
        assert_eq!(Activation::Relu.apply(1e9), 1e9);
        assert_eq!(Activation::Relu.apply(f64::NEG_INFINITY), 0.0);
        assert_eq!(Activation::Relu.apply(f64::INFINITY), f64::INFINITY);
    }

    #[test]
    fn relu6() {
        assert_eq!(Activation::Relu6.apply(-1.0), 0.0);
        assert_eq!(Activation::Relu6.apply(3.0), 3.0);
        assert_eq!(Activation::Relu6.apply(6.0), 6.0);
        assert_eq!(Activation::Relu6.apply(7.0), 6.0);
        assert_eq!(Activation::Relu6.apply(f64::INFINITY), 6.0);
    }

    #[test]
    fn clamp() {
        let a = Activation::Clamp {
            min: -1.0,
            max: 1.0,
        };
        assert_eq!(a.apply(-2.0), -1.0);
        assert_eq!(a.apply(0.5), 0.5);
        assert_eq!(a.apply(2.0), 1.0);
        // Bounds are taken exactly from the f32 values.
        let b = Activation::Clamp { min: 0.1, max: 0.2 };
        assert_eq!(b.apply(0.0), f64::from(0.1f32));
        assert_eq!(b.apply(1.0), f64::from(0.2f32));
    }

    #[test]
    fn nan_survives_every_activation() {
        for a in [
            Activation::None,
            Activation::Relu,
            Activation::Relu6,
            Activation::Clamp {
                min: -1.0,
                max: 1.0,
            },
        ] {
            assert!(a.apply(f64::NAN).is_nan(), "{a:?} swallowed NaN");
        }
    }
}
