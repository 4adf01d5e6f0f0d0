//! x86_64 depthwise 3x3 kernels.

pub mod avx2;
pub mod avx512;
