//! The two external GEMM crates behind safe wrappers: the one place the benches use `unsafe`
//! (`layers.rs` and `versus.rs` both include this module).

#![allow(unsafe_code)]

/// Whether row-major `m x cols` with row stride `ld >= cols` fits in `len` elements.
fn fits(m: usize, cols: usize, ld: usize, len: usize) -> bool {
    ld >= cols && (m == 0 || (m - 1) * ld + cols <= len)
}

/// `c = a * b`, row-major `a: m x k` (row stride `lda`), `b: k x n` (dense), `c: m x n` (row
/// stride `ldc`), with `matrixmultiply::sgemm`.
#[allow(clippy::too_many_arguments)]
pub fn matrixmultiply(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    c: &mut [f32],
    ldc: usize,
) {
    assert!(fits(m, k, lda, a.len()) && fits(k, n, n, b.len()) && fits(m, n, ldc, c.len()));
    // SAFETY: with row strides (lda, n, ldc) and column stride 1, element (i, j) of A, B and C
    // is at i * lda + j, i * n + j and i * ldc + j: inside the slices (asserted above). `c` is
    // a unique borrow, so it aliases neither `a` nor `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            lda as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        )
    }
}

/// `c = a * b` as above, with the `gemm` crate on `threads` threads.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    c: &mut [f32],
    ldc: usize,
    threads: usize,
) {
    assert!(fits(m, k, lda, a.len()) && fits(k, n, n, b.len()) && fits(m, n, ldc, c.len()));
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: as in `matrixmultiply`: row strides (lda, n, ldc), column stride 1, every element
    // reached is inside its slice (asserted above), and `c` is a unique borrow. `read_dst`
    // is false, so C's old contents are never read (alpha, the scale of C, is 0).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            false,
            a.as_ptr(),
            1,
            lda as isize,
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

/// The row strides (`lda`, `ldc`) of a pointwise layer's input and output as `Case` lays them
/// out (`Shape::padded_strides`: a line of padding after each pixel of 512 or 1024 channels),
/// so the crates read and write the same layout as sepconv.
pub fn pointwise_strides(h: usize, w: usize, cin: usize, cout: usize) -> (usize, usize) {
    let pixel = |c| {
        sepconv::Shape::new(1, h, w, c)
            .padded_strides()
            .expect("a MobileNet layer's shape")
            .pixel
    };
    (pixel(cin), pixel(cout))
}
