//! Portable probe loops: plain Rust that the compiler vectorises for the baseline target.

#![forbid(unsafe_code)]

use super::{FmaLoop, ReadLoop};

/// Multiplier of the FMA recurrence `acc <- acc * FMA_M + FMA_A` (every ISA uses it; the fixed
/// point is 1.0, so values stay normal whatever the iteration count).
pub(crate) const FMA_M: f32 = 0.999;
/// Addend of the FMA recurrence.
pub(crate) const FMA_A: f32 = 0.001;
/// Chain `c` of every FMA loop starts from `seed + c * CHAIN_STEP` (distinct starts, so no
/// compiler can merge chains that would otherwise compute the same values).
pub(crate) const CHAIN_STEP: f32 = 0.01;

const CHAINS: usize = 12;
const LANES: usize = 4;
const READ_ACCS: usize = 32;

pub(crate) const FMA_LOOP: FmaLoop = FmaLoop {
    chains: CHAINS,
    lanes: LANES,
    run: fma_f32_portable,
};

pub(crate) const READ_LOOP: ReadLoop = ReadLoop {
    block: READ_ACCS,
    run: read_f32_portable,
};

/// `iters` steps of `acc * M + A` on `CHAINS x LANES` independent accumulators (a multiply and an
/// add: the baseline target has no FMA); returns the sum of lane 0 of every chain.
pub(crate) fn fma_f32_portable(iters: usize, seed: f32) -> f32 {
    let mut acc = [0.0f32; CHAINS * LANES];
    for (j, v) in acc.iter_mut().enumerate() {
        *v = seed + (j / LANES) as f32 * CHAIN_STEP + (j % LANES) as f32 * 1e-4;
    }
    let (m, a) = (std::hint::black_box(FMA_M), std::hint::black_box(FMA_A));
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = *v * m + a;
        }
    }
    acc.iter().step_by(LANES).sum()
}

/// Sums `data` (a multiple of 32 floats) with 32 independent accumulators.
pub(crate) fn read_f32_portable(data: &[f32]) -> f32 {
    let mut acc = [0.0f32; READ_ACCS];
    for chunk in data.chunks_exact(READ_ACCS) {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    acc.iter().sum()
}
