//! The one error type of the public API.

use std::fmt;

/// Everything that can be wrong with the arguments of a sepconv call.
///
/// Every public function checks its inputs in safe code before any kernel runs; a bad input is
/// reported with one of these, never with a panic, undefined behaviour or a wrong answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// A dimension that must be at least 1 is 0.
    ZeroDimension {
        /// Which dimension.
        what: &'static str,
    },
    /// A size computation overflowed `usize`.
    Overflow {
        /// Which size.
        what: &'static str,
    },
    /// A slice is shorter than its shape and strides need.
    SliceTooShort {
        /// Which slice.
        what: &'static str,
        /// Floats needed.
        needed: usize,
        /// Floats given.
        got: usize,
    },
    /// A stride is smaller than the extent it has to step over.
    BadStride {
        /// Which stride.
        what: &'static str,
        /// The smallest valid value.
        min: usize,
        /// The value given.
        got: usize,
    },
    /// Two shapes that must agree do not.
    ShapeMismatch {
        /// What was compared.
        what: &'static str,
        /// The expected value.
        expected: usize,
        /// The value given.
        got: usize,
    },
    /// The convolution stride is not supported (only 1 and 2 are).
    UnsupportedStride(usize),
    /// The padding is not supported or leaves no output.
    BadPadding {
        /// Why.
        reason: &'static str,
    },
    /// An activation's bounds are invalid (`min > max`, or NaN).
    BadActivation,
    /// Packed weights were made by a kernel set of another ISA or tile.
    WeightsMismatch {
        /// The ISA or tile the weights were packed for.
        packed_for: String,
        /// The ISA or tile of the kernels they were used with.
        used_with: String,
    },
    /// The requested ISA is not available on this CPU or this build.
    IsaUnavailable(crate::Isa),
    /// `SEPCONV_ISA` holds a value that names no ISA.
    UnknownIsa(String),
    /// A thread count of 0 was requested.
    ZeroThreads,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ZeroDimension { what } => write!(f, "{what} must be at least 1"),
            Error::Overflow { what } => write!(f, "{what} overflows usize"),
            Error::SliceTooShort { what, needed, got } => {
                write!(f, "{what} needs {needed} floats, got {got}")
            }
            Error::BadStride { what, min, got } => {
                write!(f, "{what} must be at least {min}, got {got}")
            }
            Error::ShapeMismatch {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected {expected}, got {got}"),
            Error::UnsupportedStride(s) => write!(f, "stride {s} is not supported (use 1 or 2)"),
            Error::BadPadding { reason } => write!(f, "bad padding: {reason}"),
            Error::BadActivation => write!(f, "activation bounds must satisfy min <= max, not NaN"),
            Error::WeightsMismatch {
                packed_for,
                used_with,
            } => write!(
                f,
                "weights packed for {packed_for} used with kernels for {used_with}; pack them with the same Kernels"
            ),
            Error::IsaUnavailable(isa) => {
                write!(f, "ISA {isa} is not available on this CPU or in this build")
            }
            Error::UnknownIsa(s) => write!(
                f,
                "SEPCONV_ISA={s:?} names no ISA (use portable, avx2, avx512 or neon)"
            ),
            Error::ZeroThreads => write!(f, "threads must be at least 1"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Checked product of sizes, as an [`Error::Overflow`] naming `what`.
pub(crate) fn checked_mul(what: &'static str, factors: &[usize]) -> Result<usize> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .ok_or(Error::Overflow { what })
}

/// `Err(ZeroDimension)` when `v == 0`.
pub(crate) fn nonzero(what: &'static str, v: usize) -> Result<usize> {
    if v == 0 {
        Err(Error::ZeroDimension { what })
    } else {
        Ok(v)
    }
}
