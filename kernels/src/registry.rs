//! Every kernel variant in this build, one line each. Tests and benches iterate over these lists;
//! `dispatch.rs` picks the production kernel per ISA from them.
//!
//! To add a kernel: write it in `<op>/<arch>/<isa>.rs` with its `static` descriptor, add one line
//! here, and (to ship it) change its ISA's line in `dispatch.rs`.

use crate::dwconv::ukernel::DwKernel;
use crate::gemm::ukernel::GemmKernel;
use crate::Isa;

#[allow(unused_imports)]
use crate::{dwconv, gemm};

/// All GEMM micro-kernels.
pub static GEMM_KERNELS: &[&GemmKernel] = &[
    &gemm::portable::GEMM_F32_4X8_PORTABLE,
    #[cfg(target_arch = "x86_64")]
    &gemm::x86::avx2::GEMM_F32_6X16_AVX2,
    #[cfg(target_arch = "x86_64")]
    &gemm::x86::avx2::GEMM_F32_6X16U32_AVX2,
    #[cfg(target_arch = "aarch64")]
    &gemm::aarch64::neon::GEMM_F32_6X12_NEON,
    #[cfg(target_arch = "x86_64")]
    &gemm::x86::avx512::GEMM_F32_14X16_AVX512,
    #[cfg(target_arch = "x86_64")]
    &gemm::x86::avx512_8x32::GEMM_F32_8X32_AVX512,
    #[cfg(target_arch = "x86_64")]
    &gemm::x86::avx512_12x32::GEMM_F32_12X32_AVX512,
];

/// All depthwise 3x3 row kernels (both strides).
pub static DW_KERNELS: &[&DwKernel] = &[
    &dwconv::portable::DWCONV3X3_F32_C8_PORTABLE,
    &dwconv::portable::DWCONV3X3S2_F32_C8_PORTABLE,
    #[cfg(target_arch = "x86_64")]
    &dwconv::x86::avx2::DWCONV3X3_F32_C16_AVX2,
    #[cfg(target_arch = "x86_64")]
    &dwconv::x86::avx2::DWCONV3X3S2_F32_C16_AVX2,
    #[cfg(target_arch = "aarch64")]
    &dwconv::aarch64::neon::DWCONV3X3_F32_C4_NEON,
    #[cfg(target_arch = "aarch64")]
    &dwconv::aarch64::neon::DWCONV3X3S2_F32_C4_NEON,
    #[cfg(target_arch = "x86_64")]
    &dwconv::x86::avx512::DWCONV3X3_F32_C32_AVX512,
    #[cfg(target_arch = "x86_64")]
    &dwconv::x86::avx512::DWCONV3X3S2_F32_C32_AVX512,
    #[cfg(target_arch = "x86_64")]
    &dwconv::x86::avx512::DWCONV3X3_F32_C32W8_AVX512,
    #[cfg(target_arch = "x86_64")]
    &dwconv::x86::avx512::DWCONV3X3S2_F32_C32W8_AVX512,
];

/// The GEMM kernels written for `isa`.
pub fn gemm_kernels(isa: Isa) -> impl Iterator<Item = &'static GemmKernel> {
    GEMM_KERNELS.iter().copied().filter(move |k| k.isa == isa)
}

/// The depthwise kernels written for `isa` and `stride`.
pub fn dw_kernels(isa: Isa, stride: usize) -> impl Iterator<Item = &'static DwKernel> {
    DW_KERNELS
        .iter()
        .copied()
        .filter(move |k| k.isa == isa && k.stride == stride)
}
