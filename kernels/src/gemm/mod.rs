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

/// Dimensions and strides of one GEMM call. `a` has `m` rows at stride `lda`, each `k / k_seg`
/// segments of `k_seg` contiguous floats `seg_stride` apart (one segment of `k` floats for a plain
/// matrix: [`GemmShape::plain`]); `c` has `m` rows of `n` floats at stride `ldc`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmShape {
    pub m: usize,
    pub lda: usize,
    pub ldc: usize,
    /// Depth of one segment of A; `None`: A rows are plain (`k` contiguous floats).
    pub segments: Option<Segments>,
}

/// A rows cut into segments (see [`GemmTile::a`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segments {
    /// Floats per segment (divides `k`).
    pub len: usize,
    /// Distance between segment starts, in floats.
    pub stride: usize,
}

impl GemmShape {
    /// Plain A: `m` rows of `k` contiguous floats, `lda` apart.
    pub fn plain(m: usize, lda: usize, ldc: usize) -> GemmShape {
        GemmShape {
            m,
            lda,
            ldc,
            segments: None,
        }
    }
}

/// One KC block of the depth: depths `p .. p + len` of B, whose A columns start at float offset
/// `a_off` of each A row and form segments of `seg` floats (`seg` divides `len`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct KBlock {
    p: usize,
    len: usize,
    a_off: usize,
    seg: usize,
}

/// Cuts the depth `k` into blocks of at most `kc` (BLIS' KC): whole segments per block when a
/// segment fits `kc`, else each segment in pieces of at most `kc`. (An iterator: no allocation.)
fn k_blocks(k: usize, kc: usize, segments: Option<Segments>) -> impl Iterator<Item = KBlock> {
    let Segments { len: sl, stride } = segments.unwrap_or(Segments { len: k, stride: 0 });
    let nseg = k / sl;
    // Whole segments per block, or pieces per segment.
    let (per, pieces) = if sl <= kc {
        (kc / sl, 1)
    } else {
        (1, sl.div_ceil(kc))
    };
    (0..nseg).step_by(per).flat_map(move |s0| {
        (0..pieces).map(move |q| {
            if pieces == 1 {
                let n = per.min(nseg - s0);
                KBlock {
                    p: s0 * sl,
                    len: n * sl,
                    a_off: s0 * stride,
                    seg: sl,
                }
            } else {
                let o = q * kc;
                let len = kc.min(sl - o);
                KBlock {
                    p: s0 * sl + o,
                    len,
                    a_off: s0 * stride + o,
                    seg: len,
                }
            }
        })
    })
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
    let GemmShape { m, lda, ldc, .. } = shape;
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
            ..shape
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
    let GemmShape {
        m,
        lda,
        ldc,
        segments,
    } = shape;
    let (k, n, mr, nr) = (b.k, b.n, kernel.mr, kernel.nr);
    let bl = kernel.blocking;
    let panel_len = (k + 1) * nr;
    // The extents every tile below stays within (see `GemmTile`'s contract).
    assert!(m >= 1 && k >= 1 && n >= 1 && b.nr == nr && ldc >= n);
    // The last float of A any tile reads: row `m - 1`, the end of the last segment.
    let a_row_len = match segments {
        None => k,
        Some(sg) => {
            assert!(sg.len >= 1 && k % sg.len == 0, "segments must divide K");
            (k / sg.len - 1) * sg.stride + sg.len
        }
    };
    assert!(a.len() >= (m - 1) * lda + a_row_len, "A too short");
    assert!(c.len() >= (m - 1) * ldc + n, "C too short");
    let b_data = b.data.as_slice();
    assert!(b_data.len() >= n.div_ceil(nr) * panel_len, "B too short");

    for jc in (0..n).step_by(bl.nc) {
        let nc = bl.nc.min(n - jc);
        for kb in k_blocks(k, bl.kc, segments) {
            for ic in (0..m).step_by(bl.mc) {
                let mc = bl.mc.min(m - ic);
                for jr in (jc..jc + nc).step_by(nr) {
                    let panel = &b_data[(jr / nr) * panel_len..][..panel_len];
                    for ir in (ic..ic + mc).step_by(mr) {
                        let tile = GemmTile {
                            m: mr.min(m - ir),
                            n: nr.min(n - jr),
                            k: kb.len,
                            a: a[ir * lda + kb.a_off..].as_ptr(),
                            lda,
                            k_seg: kb.seg,
                            seg_stride: segments.map_or(0, |sg| sg.stride),
                            b: panel[(1 + kb.p) * nr..].as_ptr(),
                            bias: panel.as_ptr(),
                            c: c[ir * ldc + jr..].as_mut_ptr(),
                            ldc,
                            first_k_block: kb.p == 0,
                            last_k_block: kb.p + kb.len == k,
                            min,
                            max,
                        };
                        // SAFETY: `kernel` came from a `Kernels`, which proves its ISA is available.
                        // Rows ir..ir+tile.m < m of A are readable for this block's depths: its
                        // segments lie within the `a_row_len` floats after each row start, and
                        // a.len() >= (m-1)*lda + a_row_len (asserted above); `kb.seg` divides
                        // `kb.len` (`k_blocks`). Rows of C are writable for jr..jr+tile.n <= n
                        // columns (c.len() >= (m-1)*ldc + n); the panel slice holds the bias (nr
                        // floats) and k*nr floats of B after it, so b+kb.len*nr stays inside it.
                        // C is a `&mut` slice, so it aliases neither A nor B.
                        unsafe { (kernel.func)(&tile) };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(
        k: usize,
        kc: usize,
        seg: Option<(usize, usize)>,
    ) -> Vec<(usize, usize, usize, usize)> {
        let segments = seg.map(|(len, stride)| Segments { len, stride });
        k_blocks(k, kc, segments)
            .map(|b| (b.p, b.len, b.a_off, b.seg))
            .collect()
    }

    #[test]
    fn plain_depth_is_cut_at_kc() {
        assert_eq!(blocks(10, 16, None), [(0, 10, 0, 10)]);
        assert_eq!(
            blocks(40, 16, None),
            [(0, 16, 0, 16), (16, 16, 16, 16), (32, 8, 32, 8)]
        );
    }

    #[test]
    fn segments_stay_whole_or_are_cut_in_pieces() {
        // Stem: 3 segments of 9 (kernel rows), 672 floats apart (one input row).
        assert_eq!(blocks(27, 1024, Some((9, 672))), [(0, 27, 0, 9)]);
        // Two whole segments per block of at most 20.
        assert_eq!(
            blocks(27, 20, Some((9, 100))),
            [(0, 18, 0, 9), (18, 9, 200, 9)]
        );
        // Segments longer than KC: pieces of each, offsets within the segment.
        assert_eq!(
            blocks(30, 4, Some((10, 100))),
            [
                (0, 4, 0, 4),
                (4, 4, 4, 4),
                (8, 2, 8, 2),
                (10, 4, 100, 4),
                (14, 4, 104, 4),
                (18, 2, 108, 2),
                (20, 4, 200, 4),
                (24, 4, 204, 4),
                (28, 2, 208, 2)
            ]
        );
    }
}
