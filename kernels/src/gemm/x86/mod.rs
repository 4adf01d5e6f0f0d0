//! x86_64 GEMM micro-kernels.
