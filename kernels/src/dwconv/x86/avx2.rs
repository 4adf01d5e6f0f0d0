//! AVX2+FMA depthwise 3x3 row kernels, stride 1 and stride 2, channel tile 16 (two `ymm`): the
//! x86 row kernel of `dwconv/x86/row.rs` (loop order, register plan, borders and tails are
//! explained there) on 8-lane vectors, with this ISA's group-size rule.
//!
//! # What bounds it
//!
//! For 128 channels and more, three input rows exceed L1, so every call streams its three rows
//! from L2: about 0.7 byte per FLOP at stride 1 and 1.3 at stride 2, against ~25 B/cycle of L2
//! bandwidth and 32 FLOP/cycle of FMA peak. A loads-only copy of this kernel's access pattern runs
//! at about the speed of the whole kernel on the stride-2 and 512/1024-channel layers.
//!
//! Pixel strides of 2 or 4 KiB (512 or 1024 channels) put all the lines of one group and tile
//! into one or two of L1's 64 sets. Up to about twice its 8 ways per set, groups of 4 still win
//! (each line is read whole, back to back), except at stride 2 where groups of 2 fit the ways;
//! beyond that (1024 channels at stride 2: 27 lines per set) `row` uses `G` = 2 (`lines_per_set`,
//! `ALIASED_LINES_OK` in `x86/mod.rs`).
//!
//! The stride, more than the L2 traffic, is what costs on the wide layers: interior pixels only
//! (probe, Zen 3, best / median % of peak), 56x56x128 runs at 69 / 49 and 14x14x512 at 42 / 40,
//! though both rows are 28 KiB (the same L2 bytes per FMA); 7x7x1024 at 29 / 27.
//!
//! Tried and dropped (Zen 3): two output rows per call sharing 4 input rows (8 channels per
//! pass, so 8 accumulators and both rows' taps fit 16 `ymm`; 0.58 loads per FMA): interior
//! probe 35 / 34 on 14x14x512, 18 / 17 on 7x7x1024, level elsewhere: at 8 channels each line is
//! used in two passes, and the aliased sets evict it in between. The same at stride 2 (two
//! output rows from 5 input rows instead of 6; interior-only probe running both alternately, best
//! / median % of peak, one row vs two): 112x112x64 48/35-43 vs 42-43/31-39, 56x56x128
//! 42-43/31-34 vs 35/25-28, 28x28x256 33-34/26-27 vs 25/18, 14x14x512 30/25-26 vs 18/14-15.
//! Prefetching, per group, the input rows the next output row adds: no gain inside MobileNet
//! (depthwise layers 1.25-1.36 ms in all against 1.18-1.25 without). Prefetching (T0) in each
//! interior group and tile the columns the group one or two ahead adds (3 rows x 4 or 8
//! columns) was slower still on an Emerald Rapids VM (each layer hot, alternating in one
//! process, 40 pairs): stride 2 0.99-1.30x (7 of 8 trials over 1.05), stride 1 0.98-1.14x.
//!
//! Tried and dropped (Cascade Lake, session 14): the interior groups of 4 in inline assembly,
//! every address one base register plus the pixel stride scaled. LLVM's stride-2 loop spilled
//! then (`scripts/mca-x86.sh`: 127 loads per 72 FMAs where 74 are needed; see `row.rs`) and
//! llvm-mca modelled its loops at 72 / 62% of the FMA peak on znver3 (70 / 57% skylake) against
//! 82% for the assembly at both strides (the FP0/FP1 pipes also run the clamp). Measured,
//! though, the two ran alike:
//! whole layers in one process, alternating (ReLU6, dense), dw02-dw13 within 1%, dw01 (32
//! channels) 3% slower; the row kernel alone on rows in L1 (valid padding, 32-128 channels),
//! 50-56% of peak for the intrinsics and 49-55% for the assembly. Its FMAs in tap-major order
//! (each input vector a memory operand of its FMA, 1.1 loads per FMA) were 3-17% slower. So
//! on this core the loop's instruction stream is not what holds the depthwise rows at half the
//! peak in L1; the model's 72-82% is not reached by either.

use super::row::{edge_group, interior_run, Group, RowLanes};
use super::row_8_ways;
use crate::dwconv::ukernel::{DwKernel, DwRow};
use crate::lanes::Ymm;
use crate::Isa;

/// Channel tile of the packed weights (two `ymm` of `f32`).
pub const C_TILE: usize = 16;

/// `dwconv3x3_f32_c16_avx2`: stride 1.
pub static DWCONV3X3_F32_C16_AVX2: DwKernel = DwKernel {
    name: "dwconv3x3_f32_c16_avx2",
    isa: Isa::Avx2,
    stride: 1,
    c_tile: C_TILE,
    func: dwconv3x3_f32_c16_avx2,
};

/// `dwconv3x3s2_f32_c16_avx2`: stride 2.
pub static DWCONV3X3S2_F32_C16_AVX2: DwKernel = DwKernel {
    name: "dwconv3x3s2_f32_c16_avx2",
    isa: Isa::Avx2,
    stride: 2,
    c_tile: C_TILE,
    func: dwconv3x3s2_f32_c16_avx2,
};

/// Depthwise 3x3, stride 1, one output row (see [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 16`; the CPU has AVX2 and FMA.
pub unsafe fn dwconv3x3_f32_c16_avx2(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, AVX2 + FMA available).
    unsafe { row::<1>(r) }
}

/// Depthwise 3x3, stride 2, one output row (see [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 16`; the CPU has AVX2 and FMA.
pub unsafe fn dwconv3x3s2_f32_c16_avx2(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, AVX2 + FMA available).
    unsafe { row::<2>(r) }
}

/// One row: [`row_8_ways`] (the 8-way-L1 group rule, then the row kernel) on `ymm`.
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 16` and stride `S`; the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn row<const S: usize>(r: &DwRow) {
    // SAFETY: forwarded; this is AVX2's `#[target_feature]` function.
    unsafe { row_8_ways::<Ymm, S>(r) }
}

impl RowLanes for Ymm {
    #[inline(always)]
    unsafe fn interior<const S: usize, const GROUP: usize>(r: &DwRow, ox: usize, groups: usize) {
        // SAFETY: forwarded (the trait's contract; the CPU has this ISA).
        unsafe { interior_avx2::<S, GROUP>(r, ox, groups) }
    }

    #[inline(always)]
    unsafe fn edge<const S: usize, const GROUP: usize>(r: &DwRow, g: Group) {
        // SAFETY: forwarded (the trait's contract; the CPU has this ISA).
        unsafe { edge_avx2::<S, GROUP>(r, g) }
    }

    /// The interior loop's markers for `scripts/mca-x86.sh`.
    #[inline(always)]
    fn mca_mark(begin: bool, s: usize) {
        match (begin, s) {
            (true, 1) => {
                mca_marker!("BEGIN dwconv3x3_f32_c16_avx2");
            }
            (false, 1) => {
                mca_marker!("END dwconv3x3_f32_c16_avx2");
            }
            (true, _) => {
                mca_marker!("BEGIN dwconv3x3s2_f32_c16_avx2");
            }
            (false, _) => {
                mca_marker!("END dwconv3x3s2_f32_c16_avx2");
            }
        }
    }
}

/// [`interior_run`] on `ymm`: a function of its own (see [`RowLanes`]).
///
/// # Safety
///
/// As [`interior_run`]; the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn interior_avx2<const S: usize, const GROUP: usize>(r: &DwRow, ox: usize, groups: usize) {
    // SAFETY: forwarded; this is the ISA's `#[target_feature]` function.
    unsafe { interior_run::<Ymm, S, GROUP>(r, ox, groups) }
}

/// [`edge_group`] on `ymm`: a function of its own (see [`RowLanes`]).
///
/// # Safety
///
/// As [`edge_group`]; the CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn edge_avx2<const S: usize, const GROUP: usize>(r: &DwRow, g: Group) {
    // SAFETY: forwarded; this is the ISA's `#[target_feature]` function.
    unsafe { edge_group::<Ymm, S, GROUP>(r, g) }
}
