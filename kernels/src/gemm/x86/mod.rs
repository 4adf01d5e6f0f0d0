//! x86_64 GEMM micro-kernels.

pub mod avx2;
pub mod avx512;
pub mod avx512_8x32;
