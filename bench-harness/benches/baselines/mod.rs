//! The two external GEMM crates behind safe wrappers: the one place the benches use `unsafe`
//! (`layers.rs` and `versus.rs` both include this module).

#![allow(unsafe_code)]

/// `c = a * b`, row-major `a: m x k`, `b: k x n`, `c: m x n`, with `matrixmultiply::sgemm`.
pub fn matrixmultiply(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: with row strides (k, n, n) and column stride 1, element (i, j) of A, B and C
    // is at i * k + j < m * k, i * n + j < k * n and i * n + j < m * n: inside the slices
    // (asserted above). `c` is a unique borrow, so it aliases neither `a` nor `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// `c = a * b` as above, with the `gemm` crate on `threads` threads.
pub fn gemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], threads: usize) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: as in `matrixmultiply`: row strides (k, n, n), column stride 1, every element
    // reached is inside its slice (asserted above), and `c` is a unique borrow. `read_dst`
    // is false, so C's old contents are never read (alpha, the scale of C, is 0).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}
