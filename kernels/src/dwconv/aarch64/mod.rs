//! AArch64 depthwise 3x3 kernels.

pub mod neon;
