//! The BLIS-style blocked GEMM driver: `C = act(A * B + bias)` with B packed once.
//!
//! Loop nest (BLIS' five loops around the micro-kernel), written once for every ISA:
//!
//! ```text
//! for jc in 0..N step NC            // B block KC x NC stays in L2/L3
//!   for pc in 0..K step KC          // a KC x NR sliver of B stays in L1
//!     for ic in 0..M step MC        // the MC x KC block of A stays in L2
//!       for jr in jc..jc+NC step NR
//!         for ir in ic..ic+MC step MR
//!           micro-kernel(MR x NR tile, depth KC)
//! ```
//!
//! A is the NHWC activation used in place (row `i` = pixel `i`, `lda` = pixel stride), so a
//! pointwise convolution needs no im2col and no copy. Threads split M into row bands: each C
//! element is computed by one thread in one fixed order, so results do not depend on `threads`.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub mod portable;
pub mod ukernel;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use crate::pack::PackedB;
use crate::threading::{run_parts, split_even};
use ukernel::{GemmKernel, GemmTile};

/// Below this many multiply-adds a GEMM stays on the calling thread.
const MIN_MACS_PER_THREAD: usize = 1 << 18;

/// Dimensions and strides of one GEMM call. `a` has `m` rows of `k` floats at stride `lda`; `c` has
/// `m` rows of `n` floats at stride `ldc`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmShape {
    pub m: usize,
    pub lda: usize,
    pub ldc: usize,
}

/// Runs the GEMM, splitting M over `threads`.
///
/// The caller (an operator in safe code) has checked that `a` and `c` hold the extents `shape`
/// says; this function re-checks them with `assert!` before the one unsafe call.
pub(crate) fn gemm(
    kernel: &GemmKernel,
    threads: usize,
    shape: GemmShape,
    a: &[f32],
    b: &PackedB,
    c: &mut [f32],
    min: f32,
    max: f32,
) {
    let GemmShape { m, lda, ldc } = shape;
    let macs = m.saturating_mul(b.k).saturating_mul(b.n);
    let want = (macs / MIN_MACS_PER_THREAD).clamp(1, threads.max(1));
    if want <= 1 {
        gemm_serial(kernel, shape, a, b, c, min, max);
        return;
    }
    // Row bands of whole MR tiles; each band gets its own disjoint slices of C.
    let bands = split_even(m, want, kernel.mr);
    let mut parts = Vec::with_capacity(bands.len());
    let mut rest = c;
    let mut consumed = 0;
    for (i, band) in bands.iter().enumerate() {
        let start = band.start * ldc - consumed;
        let tail = std::mem::take(&mut rest).split_at_mut(start).1;
        let (mine, next) = if i + 1 < bands.len() {
            tail.split_at_mut((band.end - band.start) * ldc)
        } else {
            let len = tail.len();
            tail.split_at_mut(len)
        };
        consumed = band.end * ldc;
        rest = next;
        parts.push((band.clone(), mine));
    }
    run_parts(threads, parts, |(band, c_band)| {
        let sub = GemmShape {
            m: band.end - band.start,
            lda,
            ldc,
        };
        gemm_serial(kernel, sub, &a[band.start * lda..], b, c_band, min, max);
    });
}

/// The five-loop nest on one thread.
fn gemm_serial(
    kernel: &GemmKernel,
    shape: GemmShape,
    a: &[f32],
    b: &PackedB,
    c: &mut [f32],
    min: f32,
    max: f32,
) {
    let GemmShape { m, lda, ldc } = shape;
    let (k, n, mr, nr) = (b.k, b.n, kernel.mr, kernel.nr);
    let bl = kernel.blocking;
    let panel_len = (k + 1) * nr;
    // The extents every tile below stays within (see `GemmTile`'s contract).
    assert!(m >= 1 && k >= 1 && n >= 1 && b.nr == nr && ldc >= n);
    assert!(a.len() >= (m - 1) * lda + k, "A too short");
    assert!(c.len() >= (m - 1) * ldc + n, "C too short");
    let b_data = b.data.as_slice();
    assert!(b_data.len() >= n.div_ceil(nr) * panel_len, "B too short");

    for jc in (0..n).step_by(bl.nc) {
        let nc = bl.nc.min(n - jc);
        for pc in (0..k).step_by(bl.kc) {
            let kc = bl.kc.min(k - pc);
            for ic in (0..m).step_by(bl.mc) {
                let mc = bl.mc.min(m - ic);
                for jr in (jc..jc + nc).step_by(nr) {
                    let panel = &b_data[(jr / nr) * panel_len..][..panel_len];
                    for ir in (ic..ic + mc).step_by(mr) {
                        let tile = GemmTile {
                            m: mr.min(m - ir),
                            n: nr.min(n - jr),
                            k: kc,
                            a: a[ir * lda + pc..].as_ptr(),
                            lda,
                            b: panel[(1 + pc) * nr..].as_ptr(),
                            bias: panel.as_ptr(),
                            c: c[ir * ldc + jr..].as_mut_ptr(),
                            ldc,
                            first_k_block: pc == 0,
                            last_k_block: pc + kc == k,
                            min,
                            max,
                        };
                        // SAFETY: `kernel` came from a `Kernels`, which proves its ISA is available.
                        // Rows ir..ir+tile.m < m of A are readable for pc..pc+kc <= k columns and
                        // of C writable for jr..jr+tile.n <= n columns (asserted above: a.len() >=
                        // (m-1)*lda + k, c.len() >= (m-1)*ldc + n); the panel slice holds the bias
                        // (nr floats) and k*nr floats of B after it, so b+kc*nr stays inside it.
                        // C is a `&mut` slice, so it aliases neither A nor B.
                        unsafe { (kernel.func)(&tile) };
                    }
                }
            }
        }
    }
}
