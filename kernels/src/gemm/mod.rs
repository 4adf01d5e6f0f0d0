//! The BLIS-style blocked GEMM driver: `C = act(A * B + bias)` with B packed once.
//!
//! Loop nest (BLIS' five loops around the micro-kernel), written once for every ISA:
//!
//! ```text
//! for jc in 0..N step NC            // B block KC x NC stays in L2/L3
//!   for pc in 0..K step KC          // a KC x NR sliver of B stays in L1
//!     for ic in 0..M step MC        // the MC x KC block of A stays in L2
//!       for jr in jc..jc+NC step NR
//!         micro-kernel: for ir in ic..ic+MC step MR   (the MR loop is inside the kernel)
//!                         MR x NR register tile, depth KC
//! ```
//!
//! A is the NHWC activation used in place (row `i` = pixel `i`, `lda` = pixel stride), so a
//! pointwise convolution needs no im2col and no copy. Threads take blocks of a grid over C (row
//! bands of whole MR tiles x ranges of whole NR panels): each C element is computed by one thread
//! in one fixed order, so results do not depend on `threads`.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub mod portable;
pub mod ukernel;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use crate::pack::PackedB;
use crate::threading::{run_parts, split_even};
use ukernel::{GemmKernel, GemmTile, ROW_PANELS};

/// Below this many multiply-adds a GEMM stays on the calling thread.
pub(crate) const MIN_MACS_PER_THREAD: usize = 1 << 18;

/// Dimensions and strides of one GEMM call. `a` has `m` rows at stride `lda`, each `k / k_seg`
/// segments of `k_seg` contiguous floats `seg_stride` apart (one segment of `k` floats for a plain
/// matrix: [`GemmShape::plain`]); `c` has `m` rows of `n` floats at stride `ldc`. With a
/// [`Batch`], that is one problem of several on the same B.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmShape {
    pub m: usize,
    pub lda: usize,
    pub ldc: usize,
    /// Depth of one segment of A; `None`: A rows are plain (`k` contiguous floats).
    pub segments: Option<Segments>,
    /// How many problems of this shape the call computes, and where ([`Batch::ONE`]: one).
    pub batch: Batch,
}

/// A strided batch: `count` GEMMs of one shape on the same B, problem `j` reading its A
/// `j * a_stride` floats and writing its C `j * c_stride` floats after the first one's. The
/// implicit-GEMM convolution computes a band of output rows in one call this way (each row is
/// a problem: its pixels are evenly strided, but the rows are not), so the per-call work of the
/// driver is paid once per band, not once per row. The problems' C must not overlap
/// (`c_stride` at least one problem's extent of C), so threads may split each of them alike.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Batch {
    pub count: usize,
    pub a_stride: usize,
    pub c_stride: usize,
}

impl Batch {
    /// A single problem.
    pub const ONE: Batch = Batch {
        count: 1,
        a_stride: 0,
        c_stride: 0,
    };
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
            batch: Batch::ONE,
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

/// Runs the GEMM on up to `threads` threads.
///
/// The caller (an operator in safe code) has checked that `a` and `c` hold the extents `shape`
/// says; this function re-checks them with `assert!` before the unsafe call.
///
/// Threads get blocks of a `tm x tn` grid over C: `tm` bands of whole MR-row tiles and `tn`
/// ranges of whole NR-column panels (see [`grid`]). Every C element is still computed by one
/// register tile of the same shape, over the same depth blocks, as on one thread, so results do
/// not depend on `threads`.
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
    let (m, k, n, mr, nr) = (shape.m, b.k, b.n, kernel.mr, kernel.nr);
    let call = checked_call(kernel, shape, a, b, c, min, max);
    let macs = m
        .saturating_mul(k)
        .saturating_mul(n)
        .saturating_mul(shape.batch.count);
    let want = (macs / MIN_MACS_PER_THREAD).clamp(1, threads.max(1));
    let (tm, tn) = grid(m.div_ceil(mr), n.div_ceil(nr), want, mr, nr);
    if tm * tn <= 1 {
        gemm_block(&call, 0..m, 0..n);
        return;
    }
    let (rows, cols) = (split_even(m, tm, mr), split_even(n, tn, nr));
    let blocks: Vec<_> = rows
        .iter()
        .flat_map(|r| cols.iter().map(move |j| (r.clone(), j.clone())))
        .collect();
    run_parts(threads, blocks, |(r, j)| gemm_block(&call, r, j));
}

/// The GEMM on columns `cols` of C only (panels of B `cols.start / NR ..`; `cols.start` a multiple
/// of NR), on the calling thread: for drivers that walk B panel by panel over several calls
/// (each panel then comes from memory once for all of them), computed exactly as `gemm` computes
/// those columns.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_panels(
    kernel: &GemmKernel,
    shape: GemmShape,
    a: &[f32],
    b: &PackedB,
    cols: std::ops::Range<usize>,
    c: &mut [f32],
    min: f32,
    max: f32,
) {
    assert!(cols.start.is_multiple_of(kernel.nr) && cols.start < cols.end && cols.end <= b.n);
    let m = shape.m;
    let call = checked_call(kernel, shape, a, b, c, min, max);
    gemm_block(&call, 0..m, cols);
}

/// Checks that `a`, `b` and `c` hold the extents `shape` says (with `assert!`: the unsafe kernel
/// calls rely on them) and bundles the call for [`gemm_block`].
fn checked_call<'a>(
    kernel: &'a GemmKernel,
    shape: GemmShape,
    a: &'a [f32],
    b: &'a PackedB,
    c: &'a mut [f32],
    min: f32,
    max: f32,
) -> GemmCall<'a> {
    let GemmShape {
        m,
        lda,
        ldc,
        segments,
        batch,
    } = shape;
    let (k, n, mr, nr) = (b.k, b.n, kernel.mr, kernel.nr);
    // The extents every tile stays within (see `GemmTile`'s contract).
    assert!(m >= 1 && k >= 1 && n >= 1 && b.nr == nr && ldc >= n);
    assert!(kernel.blocking.mc.is_multiple_of(mr) && kernel.blocking.nc.is_multiple_of(nr));
    // The last float of A any tile reads: row `m - 1`, the end of the last segment.
    let a_row_len = match segments {
        None => k,
        Some(sg) => {
            assert!(sg.len >= 1 && k % sg.len == 0, "segments must divide K");
            (k / sg.len - 1) * sg.stride + sg.len
        }
    };
    // One problem's extents, then the batch's: the last problem starts `count - 1` strides on.
    let extent = |stride: usize, one: Option<usize>| {
        (batch.count - 1).checked_mul(stride)?.checked_add(one?)
    };
    let a_one = (m - 1)
        .checked_mul(lda)
        .and_then(|x| x.checked_add(a_row_len));
    let c_one = (m - 1).checked_mul(ldc).and_then(|x| x.checked_add(n));
    assert!(batch.count >= 1, "empty batch");
    assert!(
        batch.count == 1 || c_one.is_some_and(|one| batch.c_stride >= one),
        "the problems' C overlap"
    );
    assert!(
        extent(batch.a_stride, a_one).is_some_and(|e| a.len() >= e),
        "A too short"
    );
    assert!(
        extent(batch.c_stride, c_one).is_some_and(|e| c.len() >= e),
        "C too short"
    );
    assert!(
        b.data.as_slice().len() >= n.div_ceil(nr) * (k + 1) * nr,
        "B too short"
    );

    GemmCall {
        kernel,
        shape,
        a,
        b,
        c: OutC {
            ptr: c.as_mut_ptr(),
            _borrow: std::marker::PhantomData,
        },
        min,
        max,
    }
}

/// The thread grid `(tm, tn)` for a C of `mt` row tiles (MR rows) and `nt` column panels (NR
/// columns) on up to `want` threads. Cost of the busiest thread, per unit of depth: its multiply-
/// adds (tiles x MR x NR) plus [`LOAD_COST`] per float of A rows and B columns it streams. Large M
/// splits rows (each thread reads its own pixels and all of B); small M with many columns (the
/// 7x7 layers, the classifier) splits columns, so no thread streams all of B for a few rows.
fn grid(mt: usize, nt: usize, want: usize, mr: usize, nr: usize) -> (usize, usize) {
    (1..=want.min(nt))
        .map(|tn| ((want / tn).clamp(1, mt), tn))
        .min_by_key(|&(tm, tn)| {
            let (rows, cols) = (mt.div_ceil(tm), nt.div_ceil(tn));
            rows * cols * mr * nr + LOAD_COST * (rows * mr + cols * nr)
        })
        .unwrap_or((1, 1))
}

/// Rows x depth of A (floats) below which a block of rows is not cut into MC blocks: 16 KiB, half
/// of the smallest L1 data cache we target.
///
/// Measured and not kept: no MC blocks either where A fits a quarter of L2 (from CPUID), so B
/// streams through the caches once instead of once per MC block and evicts less of C (the next
/// layer's input). On an Emerald Rapids VM (2 MiB L2), AVX2, whole networks with and without in
/// one process (50 rounds of 20 inferences): the depthwise layers after the 14x14x512 pointwise
/// ones 0.90-0.95x the time, those pointwise layers 1.009-1.014x (A, 414 KiB, re-read from L2
/// for each of the 32 panels), the inference 1.000x.
const SMALL_A_FLOATS: usize = 4096;

/// Multiply-adds one streamed float of A or B is worth in [`grid`]'s cost (FMA peak over the
/// L2/L3 bandwidth, in floats, is 4-16 on the CPUs we target).
const LOAD_COST: usize = 8;

/// C of one `gemm` call, shared by its threads: each writes only its own block of rows x
/// columns, which `&mut` slices cannot express when blocks share rows. It is formed from the
/// caller's `&mut [f32]` and lives no longer than that borrow (`gemm` returns after every block).
#[derive(Clone, Copy)]
struct OutC<'a> {
    ptr: *mut f32,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: `OutC` is only a pointer into a slice that `gemm` borrows mutably for the whole call;
// the threads of that call write pairwise disjoint blocks of it (a row band x a column range of a
// grid), and nothing reads C through it while they run.
unsafe impl Send for OutC<'_> {}
// SAFETY: as above: shared references to an `OutC` only hand the pointer to one block's kernel
// calls.
unsafe impl Sync for OutC<'_> {}

/// What every block of one `gemm` call shares: the call's arguments, whose extents `gemm` has
/// checked, with C as the pointer its threads share.
#[derive(Clone, Copy)]
struct GemmCall<'a> {
    kernel: &'a GemmKernel,
    shape: GemmShape,
    a: &'a [f32],
    b: &'a PackedB,
    c: OutC<'a>,
    /// Lower bound of the fused activation.
    min: f32,
    /// Upper bound of the fused activation.
    max: f32,
}

/// Panel `p + 1` of packed B (`panel_len` floats each), or panel `p` itself when it is the last:
/// what a kernel may prefetch for the call after this one (`GemmTile::next_b`), never past the
/// end of packed B.
fn next_panel(b_data: &[f32], p: usize, panel_len: usize) -> &[f32] {
    match b_data.get((p + 1) * panel_len..) {
        Some(next) if next.len() >= panel_len => &next[..panel_len],
        _ => &b_data[p * panel_len..][..panel_len],
    }
}

/// The five-loop nest on one block of C (rows `rows`, columns `cols`; both start at a multiple
/// of MR / NR), on the calling thread.
fn gemm_block(call: &GemmCall<'_>, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) {
    let GemmCall {
        kernel,
        shape,
        a,
        b,
        c,
        min,
        max,
    } = *call;
    let GemmShape {
        lda,
        ldc,
        segments,
        batch,
        ..
    } = shape;
    let (k, nr) = (b.k, kernel.nr);
    let bl = kernel.blocking;
    let panel_len = (k + 1) * nr;
    let b_data = b.data.as_slice();

    for jc in cols.clone().step_by(bl.nc) {
        let nc = bl.nc.min(cols.end - jc);
        for kb in k_blocks(k, bl.kc, segments) {
            // A one-row GEMM in one KC block takes the kernel's one-row path where it has
            // one: `ROW_PANELS` panels per call (several streams of B). It depends only on
            // the GEMM's shape, so every column is summed alike on any thread count.
            let row_panels = kernel
                .row_panels
                .filter(|_| shape.m == 1 && segments.is_none() && kb.len == k);
            let step = if row_panels.is_some() {
                ROW_PANELS * nr
            } else {
                nr
            };
            // A block small enough for L1 needs no MC blocking: one call walks all the rows
            // (fewer calls, one partial tile instead of one per MC block).
            let mc_step = if rows.len() * kb.len <= SMALL_A_FLOATS {
                rows.len()
            } else {
                bl.mc
            };
            // MC blocks of each problem of the batch, problem by problem.
            let mc_blocks = rows.clone().step_by(mc_step);
            for (j, ic) in (0..batch.count).flat_map(|j| mc_blocks.clone().map(move |ic| (j, ic))) {
                // Problem `j`'s A and C start `a0` / `c0` floats after the first problem's.
                let (a0, c0) = (j * batch.a_stride, j * batch.c_stride);
                let mc = mc_step.min(rows.end - ic);
                for jr in (jc..jc + nc).step_by(step) {
                    let n = step.min(jc + nc - jr);
                    let panels = n.div_ceil(nr);
                    let panel = &b_data[(jr / nr) * panel_len..][..panels * panel_len];
                    // One call per column panel of the MC block (per `ROW_PANELS` panels on the
                    // one-row path): the kernel walks its rows in MR-row tiles (`ic` is a
                    // multiple of MR, so the tiles are the same for any MC and any thread split).
                    let tile = GemmTile {
                        m: mc,
                        n,
                        k: kb.len,
                        a: a[a0 + ic * lda + kb.a_off..].as_ptr(),
                        lda,
                        k_seg: kb.seg,
                        seg_stride: segments.map_or(0, |sg| sg.stride),
                        b: panel[(1 + kb.p) * nr..].as_ptr(),
                        bias: panel.as_ptr(),
                        next_b: next_panel(b_data, jr / nr + panels - 1, panel_len).as_ptr(),
                        c: c.ptr.wrapping_add(c0 + ic * ldc + jr),
                        ldc,
                        first_k_block: kb.p == 0,
                        last_k_block: kb.p + kb.len == k,
                        min,
                        max,
                    };
                    let func = row_panels.unwrap_or(kernel.func);
                    // SAFETY: `kernel` came from a `Kernels`, which proves its ISA is available.
                    // Rows ic..ic+mc <= m of problem j's A are readable for this block's depths:
                    // its segments lie within the `a_row_len` floats after each row start, and
                    // a.len() >= (count-1)*a_stride + (m-1)*lda + a_row_len (`checked_call`);
                    // `kb.seg` divides `kb.len` (`k_blocks`). C (the `&mut` slice, c.len() >=
                    // (count-1)*c_stride + (m-1)*ldc + n) is writable for problem j's rows < m
                    // and columns jr..jr+tile.n <= n; the problems' C do not overlap (c_stride
                    // >= (m-1)*ldc + n when count > 1), and this thread's block of each (rows x
                    // cols) is written by no other thread; being a `&mut` slice, it aliases
                    // neither A nor B. The panel slice holds `n.div_ceil(nr)` whole panels,
                    // each the bias (nr floats) and k*nr floats of B after it, so b+kb.len*nr
                    // stays inside each. `row_panels` is taken only for its contract's calls:
                    // one row (m == 1), the only KC block (kb.len == k), plain A,
                    // n <= ROW_PANELS * nr; otherwise n <= nr for `kernel.func`.
                    unsafe { func(&tile) };
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
    fn grid_splits_rows_for_tall_c_and_columns_for_wide_c() {
        // pw01 (112x112 pixels, 64 outputs) on 6x16 tiles: rows only.
        assert_eq!(grid(2091, 4, 2, 6, 16), (2, 1));
        assert_eq!(grid(2091, 4, 16, 6, 16), (16, 1));
        // pw13 (7x7 pixels, 1024 outputs): columns only.
        assert_eq!(grid(9, 64, 16, 6, 16), (1, 16));
        // The classifier at batch 1 (one row, 1000 outputs).
        assert_eq!(grid(1, 63, 4, 6, 16), (1, 4));
        // One thread, or one tile: no split.
        assert_eq!(grid(100, 100, 1, 6, 16), (1, 1));
        assert_eq!(grid(1, 1, 8, 6, 16), (1, 1));
        // Never more blocks than threads, rows or panels.
        for (mt, nt, want) in [(3, 5, 16), (50, 2, 7), (7, 7, 9), (1, 64, 3)] {
            let (tm, tn) = grid(mt, nt, want, 6, 16);
            assert!(tm * tn <= want && tm <= mt && tn <= nt, "{mt} {nt} {want}");
        }
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

    /// A batch of 3 problems (5 x 7 x 9, A rows 11 floats apart, C rows 12 apart: each C 57
    /// floats, 61 apart) in one call, against each problem as its own call: the same bits, and
    /// C between rows and between problems untouched.
    #[test]
    fn a_batch_is_its_problems_one_by_one() {
        let kernel = &portable::GEMM_F32_4X8_PORTABLE;
        let (m, k, n, lda, ldc) = (5, 7, 9, 11, 12);
        let (count, a_stride, c_stride) = (3, 60, 61);
        let b = crate::pack::pack_b(crate::Isa::Portable, kernel.nr, k, n, None, |i, j| {
            (i * 3 + j) as f32 * 0.25 - 2.0
        })
        .unwrap();
        let a: Vec<f32> = (0..(count - 1) * a_stride + (m - 1) * lda + k)
            .map(|i| (i % 13) as f32 - 6.0)
            .collect();
        let len = (count - 1) * c_stride + (m - 1) * ldc + n;
        let (mut batched, mut single) = (vec![f32::NAN; len], vec![f32::NAN; len]);
        let batch = Batch {
            count,
            a_stride,
            c_stride,
        };
        let shape = GemmShape {
            batch,
            ..GemmShape::plain(m, lda, ldc)
        };
        gemm(kernel, 1, shape, &a, &b, &mut batched, -50.0, 50.0);
        for j in 0..count {
            let one = GemmShape::plain(m, lda, ldc);
            let c = &mut single[j * c_stride..];
            gemm(kernel, 1, one, &a[j * a_stride..], &b, c, -50.0, 50.0);
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&batched), bits(&single));
        // Columns n .. ldc of row 0 and the gap after the last row of problem 0: never written.
        assert!(batched[n..ldc]
            .iter()
            .chain(&batched[57..c_stride])
            .all(|x| x.is_nan()));
    }

    /// Problems whose C overlap are refused (their blocks could be written by two threads).
    #[test]
    #[should_panic(expected = "overlap")]
    fn a_batch_whose_problems_overlap_is_refused() {
        let kernel = &portable::GEMM_F32_4X8_PORTABLE;
        let b =
            crate::pack::pack_b(crate::Isa::Portable, kernel.nr, 2, 3, None, |_, _| 1.0).unwrap();
        let batch = Batch {
            count: 2,
            a_stride: 8,
            c_stride: 5,
        };
        let shape = GemmShape {
            batch,
            ..GemmShape::plain(2, 2, 3)
        };
        let (a, mut c) = (vec![1.0; 16], vec![0.0; 16]);
        gemm(
            kernel,
            1,
            shape,
            &a,
            &b,
            &mut c,
            f32::NEG_INFINITY,
            f32::INFINITY,
        );
    }

    #[test]
    fn the_panel_to_prefetch_never_lies_past_packed_b() {
        // Three panels of 5 floats: 0 -> 1, 1 -> 2, and the last one prefetches itself.
        let b: Vec<f32> = (0..15).map(|i| i as f32).collect();
        for (p, want) in [(0, 5.0), (1, 10.0), (2, 10.0)] {
            let next = super::next_panel(&b, p, 5);
            assert_eq!((next[0], next.len()), (want, 5), "panel {p}");
        }
        // Slack after the last panel (less than a panel) is not a panel.
        assert_eq!(super::next_panel(&b[..14], 1, 5)[0], 5.0);
    }
}
