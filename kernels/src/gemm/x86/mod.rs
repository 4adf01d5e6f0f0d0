//! x86_64 GEMM micro-kernels.

pub mod avx2;
pub mod avx512;
