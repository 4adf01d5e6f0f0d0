//! x86 vector widths as the generic kernels use them: [`Lanes`] (what a kernel needs of a
//! vector ISA), [`Ymm`] (AVX2 + FMA) and [`Zmm`] (AVX-512F). The depthwise row kernel
//! (`dwconv/x86/row.rs`) and the one-row GEMM path (`gemm/x86/row.rs`) are each written once
//! over it; each ISA's `#[target_feature]` entry point instantiates them, and everything
//! inlines there.

use std::arch::x86_64::*;

/// One x86 vector width as the generic kernels use it: each method is one or two intrinsics.
///
/// # Safety (for implementors and callers)
///
/// Implementations are `#[target_feature]` functions of their ISA; callers must run on a CPU with
/// that ISA. Kernels only call them from code inlined into the ISA's `#[target_feature]`
/// entry point, so they inline too.
pub(crate) trait Lanes {
    /// `f32` lanes per vector.
    const LANES: usize;
    /// One vector of `LANES` floats.
    type V: Copy;
    /// A lane mask.
    type Mask: Copy;

    /// The mask of lanes `0 .. n` (`1 <= n <= LANES`).
    unsafe fn first_lanes(n: usize) -> Self::Mask;
    /// `x` in every lane.
    unsafe fn splat(x: f32) -> Self::V;
    /// Loads `p .. p + LANES`, which must be readable (no alignment needed).
    unsafe fn load(p: *const f32) -> Self::V;
    /// Loads the lanes `m` enables (only those need be readable), zeros elsewhere.
    unsafe fn load_masked(p: *const f32, m: Self::Mask) -> Self::V;
    /// `a * b + c`, fused.
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `y` clamped to `[lo, hi]` as `min(hi, max(lo, y))`, with `y` the operand the x86 min/max
    /// return when either is NaN: a NaN stays NaN (the clamp semantics of every kernel contract).
    unsafe fn clamp(y: Self::V, lo: Self::V, hi: Self::V) -> Self::V;
    /// Stores `v` at `p .. p + LANES`, which must be writable.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Stores the lanes `m` enables (only those need be writable); others are untouched.
    unsafe fn store_masked(p: *mut f32, m: Self::Mask, v: Self::V);
}

/// `ymm`: eight `f32` lanes, masks as `__m256i` lanes of all ones (`vmaskmovps`).
pub(crate) struct Ymm;

impl Lanes for Ymm {
    const LANES: usize = 8;
    type V = __m256;
    type Mask = __m256i;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn first_lanes(n: usize) -> __m256i {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn splat(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable floats at `p`.
        unsafe { _mm256_loadu_ps(p) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load_masked(p: *const f32, m: __m256i) -> __m256 {
        // SAFETY: the caller guarantees the enabled lanes are readable; disabled lanes are not
        // accessed (no read, no fault).
        unsafe { _mm256_maskload_ps(p, m) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn clamp(y: __m256, lo: __m256, hi: __m256) -> __m256 {
        // `max`/`min` return their second operand when either is NaN: `y` goes second.
        _mm256_min_ps(hi, _mm256_max_ps(lo, y))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the caller guarantees 8 writable floats at `p`.
        unsafe { _mm256_storeu_ps(p, v) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store_masked(p: *mut f32, m: __m256i, v: __m256) {
        // SAFETY: the caller guarantees the enabled lanes are writable; others are untouched.
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }
}

/// `zmm`: sixteen `f32` lanes, masks as `__mmask16`.
pub(crate) struct Zmm;

impl Lanes for Zmm {
    const LANES: usize = 16;
    type V = __m512;
    type Mask = __mmask16;

    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn first_lanes(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable floats at `p`.
        unsafe { _mm512_loadu_ps(p) }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn load_masked(p: *const f32, m: __mmask16) -> __m512 {
        // SAFETY: the caller guarantees the enabled lanes are readable; masked-off lanes are
        // neither read nor fault.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn clamp(y: __m512, lo: __m512, hi: __m512) -> __m512 {
        // `max`/`min` return their second operand when either is NaN: `y` goes second.
        _mm512_min_ps(hi, _mm512_max_ps(lo, y))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the caller guarantees 16 writable floats at `p`.
        unsafe { _mm512_storeu_ps(p, v) }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn store_masked(p: *mut f32, m: __mmask16, v: __m512) {
        // SAFETY: the caller guarantees the enabled lanes are writable; others are untouched.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
}
