//! x86_64 probe loops.

pub mod avx2;
pub mod avx512;
