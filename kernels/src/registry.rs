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
pub static GEMM_KERNELS: &[&GemmKernel] = &[&gemm::portable::GEMM_F32_4X8_PORTABLE];

/// All depthwise 3x3 row kernels (both strides).
pub static DW_KERNELS: &[&DwKernel] = &[
    &dwconv::portable::DWCONV3X3_F32_C8_PORTABLE,
    &dwconv::portable::DWCONV3X3S2_F32_C8_PORTABLE,
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
