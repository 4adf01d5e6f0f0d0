//! AVX2 + FMA probe loops: `fma_f32_12x8_avx2` (12 chains of 8-lane FMAs) and `read_f32_avx2`
//! (256-bit loads into 8 independent adds).
//!
//! Zen 3 and Skylake have two 256-bit FMA pipes with a 4-cycle latency: 8 independent chains
//! saturate them, 12 leave margin. They load two 256-bit vectors per cycle: 8 add chains of 3-4
//! cycles keep both load ports busy.

use std::arch::x86_64::*;

use crate::probe::portable::{CHAIN_STEP, FMA_A, FMA_M};
use crate::probe::{FmaLoop, ReadLoop};

const CHAINS: usize = 12;
const LANES: usize = 8;
const READ_ACCS: usize = 8;
const BLOCK: usize = READ_ACCS * LANES;

pub(crate) const FMA_LOOP: FmaLoop = FmaLoop {
    chains: CHAINS,
    lanes: LANES,
    run: fma_f32_12x8_avx2,
};

pub(crate) const READ_LOOP: ReadLoop = ReadLoop {
    block: BLOCK,
    run: read_f32_avx2,
};

/// `iters` steps of `acc = fma(acc, M, A)` on 12 independent 8-lane accumulators (chain `c`
/// starts at `seed + c * CHAIN_STEP`); returns the sum of lane 0 of every chain.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn fma_f32_12x8_avx2(iters: usize, seed: f32) -> f32 {
    let m = _mm256_set1_ps(FMA_M);
    let a = _mm256_set1_ps(FMA_A);
    let mut acc = [_mm256_setzero_ps(); CHAINS];
    for (c, v) in acc.iter_mut().enumerate() {
        *v = _mm256_set1_ps(seed + c as f32 * CHAIN_STEP);
    }
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, m, a);
        }
    }
    let mut sum = acc[0];
    for v in &acc[1..] {
        sum = _mm256_add_ps(sum, *v);
    }
    _mm256_cvtss_f32(sum)
}

/// Sums `data` (whose length must be a multiple of 64 floats; a shorter tail is ignored) with
/// 256-bit loads into 8 independent accumulators.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn read_f32_avx2(data: &[f32]) -> f32 {
    let mut acc = [_mm256_setzero_ps(); READ_ACCS];
    for chunk in data.chunks_exact(BLOCK) {
        for (j, v) in acc.iter_mut().enumerate() {
            // SAFETY: `chunk` holds BLOCK = READ_ACCS * 8 floats, so the 8 floats at `j * 8`
            // (j < READ_ACCS) are in bounds; `loadu` has no alignment requirement.
            let x = unsafe { _mm256_loadu_ps(chunk.as_ptr().add(j * LANES)) };
            *v = _mm256_add_ps(*v, x);
        }
    }
    let mut sum = acc[0];
    for v in &acc[1..] {
        sum = _mm256_add_ps(sum, *v);
    }
    let mut lanes = [0.0f32; LANES];
    // SAFETY: `lanes` holds exactly 8 writable floats; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}
