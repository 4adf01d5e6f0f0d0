//! NEON probe loops: `fma_f32_24x4_neon` (24 chains of 4-lane FMAs) and `read_f32_neon`
//! (128-bit loads into 16 independent adds).
//!
//! Apple M-series and Neoverse V cores have four 128-bit FMA pipes with a 3-4 cycle latency, so
//! up to 16 chains are needed; 24 of the 32 vector registers leave margin. They load up to three
//! 128-bit vectors per cycle: 16 add chains keep the load ports busy.

use std::arch::aarch64::*;

use crate::probe::portable::{CHAIN_STEP, FMA_A, FMA_M};
use crate::probe::{FmaLoop, ReadLoop};

const CHAINS: usize = 24;
const LANES: usize = 4;
const READ_ACCS: usize = 16;
const BLOCK: usize = READ_ACCS * LANES;

pub(crate) const FMA_LOOP: FmaLoop = FmaLoop {
    chains: CHAINS,
    lanes: LANES,
    run: fma_f32_24x4_neon,
};

pub(crate) const READ_LOOP: ReadLoop = ReadLoop {
    block: BLOCK,
    run: read_f32_neon,
};

/// `iters` steps of `acc = fma(acc, M, A)` on 24 independent 4-lane accumulators (chain `c`
/// starts at `seed + c * CHAIN_STEP`); returns the sum of lane 0 of every chain.
///
/// # Safety
///
/// The CPU must support NEON (every AArch64 Linux CPU does).
#[target_feature(enable = "neon")]
pub unsafe fn fma_f32_24x4_neon(iters: usize, seed: f32) -> f32 {
    let m = vdupq_n_f32(FMA_M);
    let a = vdupq_n_f32(FMA_A);
    let mut acc = [vdupq_n_f32(0.0); CHAINS];
    for (c, v) in acc.iter_mut().enumerate() {
        *v = vdupq_n_f32(seed + c as f32 * CHAIN_STEP);
    }
    for _ in 0..iters {
        for v in acc.iter_mut() {
            // a + v * m
            *v = vfmaq_f32(a, *v, m);
        }
    }
    let mut sum = acc[0];
    for v in &acc[1..] {
        sum = vaddq_f32(sum, *v);
    }
    vgetq_lane_f32::<0>(sum)
}

/// Sums `data` (whose length must be a multiple of 64 floats; a shorter tail is ignored) with
/// 128-bit loads into 16 independent accumulators.
///
/// # Safety
///
/// The CPU must support NEON (every AArch64 Linux CPU does).
#[target_feature(enable = "neon")]
pub unsafe fn read_f32_neon(data: &[f32]) -> f32 {
    let mut acc = [vdupq_n_f32(0.0); READ_ACCS];
    for chunk in data.chunks_exact(BLOCK) {
        for (j, v) in acc.iter_mut().enumerate() {
            // SAFETY: `chunk` holds BLOCK = READ_ACCS * 4 floats, so the 4 floats at `j * 4`
            // (j < READ_ACCS) are in bounds; `vld1q_f32` needs only f32 alignment.
            let x = unsafe { vld1q_f32(chunk.as_ptr().add(j * LANES)) };
            *v = vaddq_f32(*v, x);
        }
    }
    let mut sum = acc[0];
    for v in &acc[1..] {
        sum = vaddq_f32(sum, *v);
    }
    let mut lanes = [0.0f32; LANES];
    // SAFETY: `lanes` holds exactly 4 writable floats; `vst1q_f32` needs only f32 alignment.
    unsafe { vst1q_f32(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}
