//! x86_64 GEMM micro-kernels, and the lean-loop dispatch their entry points share.

/// Runs the lean loop (`$full_tiles`, each tile file's loop over whole tiles) over every whole
/// `$mr`-row tile of `$call` when the call qualifies, and evaluates to the rows it covered (0
/// when it did not run): the call must cover a whole `$nr`-column panel and be its GEMM's only
/// KC block (C is then written once, bias and clamp applied in the same pass). The segment depth
/// is passed as a constant where it is small and common, so its steps unroll completely (no
/// loop exit per tile, constant offsets): 9 ([`RGB_SEGMENT`], a 3x3 convolution over RGB), and
/// the depths listed in `[$($deep),*]` (each kernel's list: MobileNet's first pointwise depths,
/// 32 and 64, where the tile's code still fits the core's decoded-instruction cache); other
/// depths as 0 (read from the call).
///
/// Expands to `unsafe` calls: the call site is inside an `unsafe` block of a `GemmUkernelFn`
/// entry point whose caller upholds that contract for `$call`'s rows; `$full_tiles::<KS>`
/// must accept whole tiles of such a call with `KS == 0` or `KS == call.k_seg`.
macro_rules! lean_full_tiles {
    ($call:expr, $mr:expr, $nr:expr, $full_tiles:ident, [$($deep:literal),*]) => {{
        let call = $call;
        let full = call.m - call.m % $mr;
        if call.n == $nr && call.first_k_block && call.last_k_block && full > 0 {
            match call.k_seg {
                $crate::gemm::x86::RGB_SEGMENT => {
                    $full_tiles::<{ $crate::gemm::x86::RGB_SEGMENT }>(call, full / $mr)
                }
                $($deep => $full_tiles::<$deep>(call, full / $mr),)*
                _ => $full_tiles::<0>(call, full / $mr),
            }
            full
        } else {
            0
        }
    }};
}

/// One A row of a depth step in an `asm!` template (the AVX2 lean loop's and the 12 x 32 tile's):
/// broadcast the element at `base + idx + disp` bytes into `{av}`, then two FMAs into the row's
/// accumulators `lo` / `hi` (`lo += {b0} * {av}`, `hi += {b1} * {av}`: operands of either width).
macro_rules! asm_row {
    ($base:literal, $idx:literal, $disp:literal, $lo:literal, $hi:literal) => {
        concat!(
            "vbroadcastss {av}, dword ptr [",
            $base,
            $idx,
            " + ",
            $disp,
            "]\n",
            "vfmadd231ps ",
            $lo,
            ", {b0}, {av}\n",
            "vfmadd231ps ",
            $hi,
            ", {b1}, {av}\n",
        )
    };
}

pub mod avx2;
pub mod avx512;
pub mod avx512_12x32;
pub mod avx512_8x32;
pub mod row;

/// Segment depth of the implicit GEMM of a 3x3 convolution over 3 input channels (the stem).
pub(crate) const RGB_SEGMENT: usize = 9;
