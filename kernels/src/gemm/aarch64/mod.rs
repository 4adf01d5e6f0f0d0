//! AArch64 GEMM micro-kernels.

pub mod neon;
