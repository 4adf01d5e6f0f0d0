//! The GEMM micro-kernel contract: one register tile of `C = act(A * B + bias)`.
//!
//! The portable driver (`gemm/mod.rs`) owns the BLIS loop nest (NC / KC / MC blocking, threading,
//! packing of B) and calls the micro-kernel once per column panel (`NR` columns) of an MC block of
//! rows and KC block of depth. The micro-kernel walks the block's rows in `MR x NR` register tiles
//! (the last one shorter), so the per-tile cost of a call, its argument checks and its dispatch is
//! paid once per block. Only the micro-kernel is per ISA.
//!
//! # Packed B (pointwise weights), built once by [`crate::pack`]
//!
//! B is `K x N`. It is cut into panels of `NR` columns; the last panel is zero-padded to `NR`.
//! Each panel stores the bias first, then the `K` rows of the panel, `NR` floats each:
//!
//! ```text
//!  panel p (columns p*NR .. p*NR+NR):
//!  +--------------------------------+
//!  | bias[p*NR .. p*NR+NR]          |  NR floats (zeros when there is no bias)
//!  | B[0][p*NR .. p*NR+NR]          |  NR floats
//!  | B[1][p*NR .. p*NR+NR]          |
//!  | ...                            |
//!  | B[K-1][p*NR .. p*NR+NR]        |
//!  +--------------------------------+  panel stride = (K + 1) * NR floats
//! ```
//!
//! A KC block `k0 .. k0+kc` of panel `p` therefore starts at `panel + (1 + k0) * NR`.

/// Arguments of one micro-kernel call. All pointers are raw because the call is the one unsafe
/// boundary of the driver; the driver checks every extent in safe code first.
#[derive(Clone, Copy, Debug)]
pub struct GemmTile {
    /// Rows of this call, `>= 1`. The kernel computes them as register tiles of rows
    /// `0 .. MR`, `MR .. 2 MR`, ... (the last tile holds the `m % MR` rest), so a row's result
    /// depends only on its position modulo MR within the call: the driver starts every call at a
    /// multiple of MR rows of the GEMM. (A kernel may cover whole tiles with taller ones whose
    /// arithmetic per row is the same, as `gemm_f32_12x32_avx512` does.) Rows `>= m` must not
    /// be read or written.
    pub m: usize,
    /// Columns of the tile that are valid, `1 ..= NR`. Columns `>= n` of C must not be written
    /// (B and bias are zero-padded to NR, so reading all NR of them is allowed).
    pub n: usize,
    /// Depth of this KC block, `>= 1`.
    pub k: usize,
    /// A: element `(i, p)` of the tile (row `i < m`, depth `p < k`) is at
    /// `a + i * lda + (p / k_seg) * seg_stride + p % k_seg`: each row is `k / k_seg` segments of
    /// `k_seg` contiguous floats, `seg_stride` apart. A plain matrix has one segment
    /// (`k_seg == k`): row `i` is `k` contiguous floats at `a + i * lda`. Several segments let a
    /// 3x3 convolution read its windows straight from the input (implicit GEMM): segment `ky` is
    /// kernel row `ky`, `3 * cin` floats of one input row, and the next segment is one input row
    /// further.
    pub a: *const f32,
    /// Distance between rows of A, in floats.
    pub lda: usize,
    /// Depth of one segment of A (`1 ..= k`, and `k` is a multiple of it).
    pub k_seg: usize,
    /// Distance between the starts of consecutive segments of A, in floats (unused when
    /// `k_seg == k`).
    pub seg_stride: usize,
    /// Packed B for this KC block: `k` rows of `NR` floats (see the module docs).
    pub b: *const f32,
    /// Bias for the tile's `NR` columns (padded with zeros). Used only when `first_k_block`.
    pub bias: *const f32,
    /// Where the kernel may prefetch the B of the call that follows this one: the start (bias
    /// row) of the next column panel of packed B, `(k + 1) * NR` floats, when the GEMM has one;
    /// else this panel's start (`bias`), whose lines are already cached. Prefetches never fault,
    /// but one past the end of packed B may land on an unmapped page, and its page walk is not
    /// free: prefetching the panel after the last one cost a Cascade Lake core 15% at K = 32-128
    /// (8 x 32 tile, packed B at the top of the heap, paired calls). With the depth in several KC
    /// blocks these are the next panel's first block's lines, whatever block the call is in;
    /// pointing it at the call's own block of the next panel instead measured level (Emerald
    /// Rapids VM, the two alternating in one process: the 14 x 16 AVX-512 tile, KC = 256, on
    /// pw07/pw12/pw13, 40-120 pairs a run, 0.96-1.05x in five runs; std07/std13, deeper than KC,
    /// 0.99-1.03x on that tile and 0.995-1.003x on AVX2's).
    pub next_b: *const f32,
    /// C: row `i` of the tile starts at `c + i * ldc`; columns `0 .. n` are written.
    pub c: *mut f32,
    /// Distance between rows of C, in floats.
    pub ldc: usize,
    /// `true`: the accumulators start from the bias. `false`: they start from the values already in C
    /// (a later KC block).
    pub first_k_block: bool,
    /// `true` when this is the last KC block: clamp to `[min, max]` before storing.
    pub last_k_block: bool,
    /// Lower bound of the fused activation (`-inf` for none).
    pub min: f32,
    /// Upper bound of the fused activation (`+inf` for none).
    pub max: f32,
}

impl GemmTile {
    /// Rows `r0 .. r0 + m` of this call as a call of their own: the same depth, B, bias and flags,
    /// with A and C moved down `r0` rows. Safe: it only forms pointers (`wrapping_add`); the
    /// caller's contract for rows `< self.m` covers the result when `r0 + m <= self.m`.
    #[inline(always)]
    pub fn rows(&self, r0: usize, m: usize) -> GemmTile {
        GemmTile {
            m,
            a: self.a.wrapping_add(r0 * self.lda),
            c: self.c.wrapping_add(r0 * self.ldc),
            ..*self
        }
    }

    /// Segment `s` of the depth (see [`GemmTile::a`]), for a kernel whose register tile is `nr`
    /// columns wide: returns `(seg_a, seg_b)`, where `seg_a[i]` is `row_starts[i]` moved
    /// `s * seg_stride` floats, and `seg_b` is `b` moved `s * k_seg * nr` floats.
    ///
    /// Safe: it only forms pointers (`wrapping_add`). They are in bounds when the call's
    /// [`GemmUkernelFn`] contract holds, `nr` is the kernel's NR (the width of packed B),
    /// `s < k / k_seg`, and each `row_starts[i]` is the start `a + r * lda` of a row `r < m`:
    /// then `seg_a[i] + p` is A element `(r, s * k_seg + p)`, readable for `p < k_seg` (and,
    /// as every row moves alike, `seg_a[i] + d * lda + p` is element `(r + d, ..)` for
    /// `r + d < m`: a kernel may pass one base row and step from it), and
    /// `seg_b + p * nr + j` is element `(s * k_seg + p, j)` of packed B, readable for `p < k_seg`
    /// and `j < nr`.
    #[inline(always)]
    pub fn segment<const M: usize>(
        &self,
        row_starts: [*const f32; M],
        s: usize,
        nr: usize,
    ) -> ([*const f32; M], *const f32) {
        (
            row_starts.map(|r| r.wrapping_add(s * self.seg_stride)),
            self.b.wrapping_add(s * self.k_seg * nr),
        )
    }
}

/// A GEMM micro-kernel.
///
/// # Safety
///
/// The caller guarantees: the ISA the kernel was compiled for is available on this CPU;
/// `m >= 1`, `1 <= n <= NR`, `k >= 1`, `1 <= k_seg <= k` with `k % k_seg == 0`; A element
/// `(i, p)` (see [`GemmTile::a`]) is readable for `i < m`, `p < k`;
/// `b` is readable for `k * NR` floats; `bias` for `NR` floats; `c + i*ldc + j` is readable and
/// writable for `i < m`, `j < n`, and does not alias `a`, `b` or `bias`.
///
/// Clamp semantics (the same on every ISA): `y = if y < min { min } else { y }` then
/// `y = if y > max { max } else { y }` — a NaN stays NaN.
pub type GemmUkernelFn = unsafe fn(&GemmTile);

/// Cache blocking for one micro-kernel (BLIS' MC / KC / NC), sized to the target's caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// Rows of A per block (a multiple of MR): the A block `MC x KC` is meant to stay in L2.
    pub mc: usize,
    /// Depth per block: a `KC x NR` sliver of B is meant to stay in L1.
    pub kc: usize,
    /// Columns of B per block (a multiple of NR): the `KC x NC` block of B is meant to stay in L2/L3.
    pub nc: usize,
}

/// One GEMM micro-kernel variant, as listed in the registry.
#[derive(Debug)]
pub struct GemmKernel {
    /// Name, `gemm_f32_<MR>x<NR>_<isa>`.
    pub name: &'static str,
    /// The ISA the kernel needs.
    pub isa: crate::Isa,
    /// Register tile rows.
    pub mr: usize,
    /// Register tile columns (= the packed panel width of B).
    pub nr: usize,
    /// Cache blocking used by the driver with this kernel.
    pub blocking: Blocking,
    /// The micro-kernel itself.
    pub(crate) func: GemmUkernelFn,
    /// The one-row kernel, where the ISA has one: a GEMM of one row (the classifier at batch 1)
    /// whose depth is one KC block, [`ROW_PANELS`] column panels per call (see [`RowPanelsFn`]).
    pub(crate) row_panels: Option<RowPanelsFn>,
}

/// Column panels per call of a [`RowPanelsFn`].
pub const ROW_PANELS: usize = 4;

/// A one-row GEMM kernel over up to [`ROW_PANELS`] consecutive column panels of packed B at
/// once: `C[0][j] = act(bias[j] + sum_p A[0][p] * B[p][j])` for `j < n`, each column summed as
/// one chain over `p` in order from its bias. A one-row GEMM is a matrix-vector product: it reads
/// each weight once, from memory when B is large, and a kernel that walks several panels at once
/// gives the hardware prefetchers that many sequential streams instead of one.
///
/// Its call is a [`GemmTile`] whose `n` may pass `NR`: columns `0 .. n` span `n.div_ceil(NR)`
/// panels, each `(k + 1) * NR` floats after the one before (`bias` and `b` are those of the first
/// panel).
///
/// # Safety
///
/// The [`GemmUkernelFn`] contract, except that `m == 1`, `1 <= n <= ROW_PANELS * NR`, the call
/// is its GEMM's only KC block (`first_k_block`, `last_k_block`) with a plain A (`k_seg == k`),
/// and each of the `n.div_ceil(NR)` panels is readable for its bias row and `k` rows of `NR`
/// floats.
pub type RowPanelsFn = unsafe fn(&GemmTile);
