//! AArch64 GEMM micro-kernels.
