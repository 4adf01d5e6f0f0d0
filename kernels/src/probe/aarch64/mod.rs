//! AArch64 probe loops.

pub mod neon;
