//! AVX-512F probe loops: `fma_f32_16x16_avx512` (16 chains of 16-lane FMAs) and
//! `read_f32_avx512` (512-bit loads into 8 independent adds).
//!
//! Intel server cores have two 512-bit FMA pipes with a 4-cycle latency (8 chains saturate them);
//! Zen 4/5 issue 512-bit FMAs on two (double-pumped or full-width) pipes. 16 of the 32 zmm
//! registers leave margin for both.

use std::arch::x86_64::*;

use crate::probe::portable::{CHAIN_STEP, FMA_A, FMA_M};
use crate::probe::{FmaLoop, ReadLoop};

const CHAINS: usize = 16;
const LANES: usize = 16;
const READ_ACCS: usize = 8;
const BLOCK: usize = READ_ACCS * LANES;

pub(crate) const FMA_LOOP: FmaLoop = FmaLoop {
    chains: CHAINS,
    lanes: LANES,
    run: fma_f32_16x16_avx512,
};

pub(crate) const READ_LOOP: ReadLoop = ReadLoop {
    block: BLOCK,
    run: read_f32_avx512,
};

/// `iters` steps of `acc = fma(acc, M, A)` on 16 independent 16-lane accumulators (chain `c`
/// starts at `seed + c * CHAIN_STEP`); returns the sum of lane 0 of every chain.
///
/// # Safety
///
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn fma_f32_16x16_avx512(iters: usize, seed: f32) -> f32 {
    let m = _mm512_set1_ps(FMA_M);
    let a = _mm512_set1_ps(FMA_A);
    let mut acc = [_mm512_setzero_ps(); CHAINS];
    for (c, v) in acc.iter_mut().enumerate() {
        *v = _mm512_set1_ps(seed + c as f32 * CHAIN_STEP);
    }
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, m, a);
        }
    }
    let mut sum = acc[0];
    for v in &acc[1..] {
        sum = _mm512_add_ps(sum, *v);
    }
    _mm512_cvtss_f32(sum)
}

/// Sums `data` (whose length must be a multiple of 128 floats; a shorter tail is ignored) with
/// 512-bit loads into 8 independent accumulators.
///
/// # Safety
///
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn read_f32_avx512(data: &[f32]) -> f32 {
    let mut acc = [_mm512_setzero_ps(); READ_ACCS];
    for chunk in data.chunks_exact(BLOCK) {
        for (j, v) in acc.iter_mut().enumerate() {
            // SAFETY: `chunk` holds BLOCK = READ_ACCS * 16 floats, so the 16 floats at `j * 16`
            // (j < READ_ACCS) are in bounds; `loadu` has no alignment requirement.
            let x = unsafe { _mm512_loadu_ps(chunk.as_ptr().add(j * LANES)) };
            *v = _mm512_add_ps(*v, x);
        }
    }
    let mut sum = acc[0];
    for v in &acc[1..] {
        sum = _mm512_add_ps(sum, *v);
    }
    let mut lanes = [0.0f32; LANES];
    // SAFETY: `lanes` holds exactly 16 writable floats; `storeu` has no alignment requirement.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}
