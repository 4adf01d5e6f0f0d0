//! AVX-512F depthwise 3x3 row kernels, stride 1 and stride 2, channel tile 32 (two `zmm`): the
//! x86 row kernel of `dwconv/x86/row.rs` (loop order, register plan, borders and tails are
//! explained there) on 16-lane vectors with `__mmask16` lane masks, and this ISA's group-size rule.
//!
//! Measured on a Sapphire Rapids core (probe over the public API, 64-byte aligned NHWC tensors,
//! median GFLOP/s), this kernel / the previous 16-channel AVX-512 kernel (bias and taps held in
//! registers, a column chunk per 16-channel block) / the AVX2 kernel on the same core: 28x28x256
//! s1 92 / 48 / 66, s2 64 / 34 / 47; 14x14x512 s1 76 / 51 / 58, s2 37 / 39 / 40; 56x56x128 s1
//! 42 / 26 / 38; 112x112x32 s1 42 / 29 / 36; 7x7x1024 47 / 41 / 41. With tensors 16 bytes off a
//! line every `zmm` straddles two lines, and it loses a third (28x28x256 s1: 64 instead of 92).

use super::row::{edge_group, interior_run, row_groups, Group, RowLanes};
use super::{lines_per_set, row_8_ways, L1_WAYS};
use crate::dwconv::ukernel::{DwKernel, DwRow};
use crate::lanes::Zmm;
use crate::Isa;

/// Channel tile of the packed weights (two `zmm` of `f32`).
pub const C_TILE: usize = 32;

/// `dwconv3x3_f32_c32_avx512`: stride 1.
pub static DWCONV3X3_F32_C32_AVX512: DwKernel = DwKernel {
    name: "dwconv3x3_f32_c32_avx512",
    isa: Isa::Avx512,
    stride: 1,
    c_tile: C_TILE,
    func: dwconv3x3_f32_c32_avx512,
};

/// `dwconv3x3s2_f32_c32_avx512`: stride 2.
pub static DWCONV3X3S2_F32_C32_AVX512: DwKernel = DwKernel {
    name: "dwconv3x3s2_f32_c32_avx512",
    isa: Isa::Avx512,
    stride: 2,
    c_tile: C_TILE,
    func: dwconv3x3s2_f32_c32_avx512,
};

/// `dwconv3x3_f32_c32w8_avx512`: stride 1, the group rule for an 8-way L1 (`row_w8`).
pub static DWCONV3X3_F32_C32W8_AVX512: DwKernel = DwKernel {
    name: "dwconv3x3_f32_c32w8_avx512",
    isa: Isa::Avx512,
    stride: 1,
    c_tile: C_TILE,
    func: dwconv3x3_f32_c32w8_avx512,
};

/// `dwconv3x3s2_f32_c32w8_avx512`: stride 2, the group rule for an 8-way L1.
pub static DWCONV3X3S2_F32_C32W8_AVX512: DwKernel = DwKernel {
    name: "dwconv3x3s2_f32_c32w8_avx512",
    isa: Isa::Avx512,
    stride: 2,
    c_tile: C_TILE,
    func: dwconv3x3s2_f32_c32w8_avx512,
};

/// Depthwise 3x3, stride 1, one output row (see [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 32`; the CPU has AVX-512F.
pub unsafe fn dwconv3x3_f32_c32_avx512(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, AVX-512F available).
    unsafe { row::<1>(r) }
}

/// Depthwise 3x3, stride 2, one output row (see [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 32`; the CPU has AVX-512F.
pub unsafe fn dwconv3x3s2_f32_c32_avx512(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, AVX-512F available).
    unsafe { row::<2>(r) }
}

/// Depthwise 3x3, stride 1, one output row, group rule for an 8-way L1 (see
/// [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 32`; the CPU has AVX-512F.
pub unsafe fn dwconv3x3_f32_c32w8_avx512(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, AVX-512F available).
    unsafe { row_w8::<1>(r) }
}

/// Depthwise 3x3, stride 2, one output row, group rule for an 8-way L1 (see
/// [`crate::dwconv::ukernel::DwRowFn`]).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 32`; the CPU has AVX-512F.
pub unsafe fn dwconv3x3s2_f32_c32w8_avx512(r: &DwRow) {
    // SAFETY: forwarded from the caller (the `DwRowFn` contract, AVX-512F available).
    unsafe { row_w8::<2>(r) }
}

/// One row with the AVX2 kernel's group rule ([`row_8_ways`]) on `zmm`, for cores with an
/// 8-way L1 (`isa::l1d_ways`). Measured on one Cascade Lake core (Intel Xeon VM, family 6 model
/// 85 stepping 7, 32 KiB 8-way L1, 1 MiB L2; `report dwconv3x3/avx512/mbv1_a100_r224_dw --isa
/// avx512 --budget-ms 300`, builds alternating, twice each, median % of the AVX-512 peak):
/// [`row`]'s rule / groups of 4 everywhere: dw07-dw11 (14x14x512, stride 1) 21-22 / 28,
/// dw12 (stride 2) 17-19 / 22-23, dw06 (28x28x256, stride 2) 19-20 / 18, every other layer
/// level; this rule picks groups of 4 on dw07-dw12 and keeps groups of 2 on dw06. With 8 ways
/// neither group size keeps a 512-channel step's lines in L1, and groups of 4 read fewer lines
/// per output; with 12 ways (Sapphire/Emerald Rapids) groups of 2 do fit, and win.
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 32` and stride `S`; the CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn row_w8<const S: usize>(r: &DwRow) {
    // SAFETY: forwarded; this is AVX-512's `#[target_feature]` function.
    unsafe { row_8_ways::<Zmm, S>(r) }
}

/// One row, for cores with a 12-way L1 (48 KiB: Sapphire and Emerald Rapids): picks the group
/// size, then [`row_groups`]: groups of 2 once a group of 4 puts more lines into one L1 set than
/// 8, unlike the AVX2 kernel, which keeps groups of 4 up
/// to twice that. Measured on one Emerald Rapids core (`report dwconv3x3/avx512`, builds
/// alternating, median % of peak): the AVX2 rule took dw07-dw11 (14x14x512, stride 1) from 40-41
/// to 31-32 and dw05/dw06 from 45-53 / 33 to 32-39 / 24-25; groups of 4 everywhere 30-39 on
/// dw07-dw11. So this rule stays (`reports/2026-11-26_emr-avx512/run4-dw-groups/`).
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 32` and stride `S`; the CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn row<const S: usize>(r: &DwRow) {
    let (g4, g2) = (lines_per_set(r, S, 4), lines_per_set(r, S, 2));
    if g4 <= L1_WAYS || g4 <= g2 {
        // SAFETY: forwarded; this is AVX-512's `#[target_feature]` function.
        unsafe { row_groups::<Zmm, S, 4>(r) }
    } else {
        // SAFETY: forwarded; this is AVX-512's `#[target_feature]` function.
        unsafe { row_groups::<Zmm, S, 2>(r) }
    }
}

impl RowLanes for Zmm {
    #[inline(always)]
    unsafe fn interior<const S: usize, const GROUP: usize>(r: &DwRow, ox: usize, groups: usize) {
        // SAFETY: forwarded (the trait's contract; the CPU has this ISA).
        unsafe { interior_avx512::<S, GROUP>(r, ox, groups) }
    }

    #[inline(always)]
    unsafe fn edge<const S: usize, const GROUP: usize>(r: &DwRow, g: Group) {
        // SAFETY: forwarded (the trait's contract; the CPU has this ISA).
        unsafe { edge_avx512::<S, GROUP>(r, g) }
    }

    /// The interior loop's markers for `scripts/mca-x86.sh`.
    #[inline(always)]
    fn mca_mark(begin: bool, s: usize) {
        match (begin, s) {
            (true, 1) => {
                mca_marker!("BEGIN dwconv3x3_f32_c32_avx512");
            }
            (false, 1) => {
                mca_marker!("END dwconv3x3_f32_c32_avx512");
            }
            (true, _) => {
                mca_marker!("BEGIN dwconv3x3s2_f32_c32_avx512");
            }
            (false, _) => {
                mca_marker!("END dwconv3x3s2_f32_c32_avx512");
            }
        }
    }
}

/// [`interior_run`] on `zmm`: a function of its own (see [`RowLanes`]).
///
/// # Safety
///
/// As [`interior_run`]; the CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline(never)]
unsafe fn interior_avx512<const S: usize, const GROUP: usize>(r: &DwRow, ox: usize, groups: usize) {
    // SAFETY: forwarded; this is the ISA's `#[target_feature]` function.
    unsafe { interior_run::<Zmm, S, GROUP>(r, ox, groups) }
}

/// [`edge_group`] on `zmm`: a function of its own (see [`RowLanes`]).
///
/// # Safety
///
/// As [`edge_group`]; the CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline(never)]
unsafe fn edge_avx512<const S: usize, const GROUP: usize>(r: &DwRow, g: Group) {
    // SAFETY: forwarded; this is the ISA's `#[target_feature]` function.
    unsafe { edge_group::<Zmm, S, GROUP>(r, g) }
}
