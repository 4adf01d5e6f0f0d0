//! Shared test support: one test per ISA with loud skips, guard-page buffers, random data and
//! conversions to the reference crate.
#![allow(dead_code)]

pub mod cases;
pub mod guard;

use rand::{rngs::StdRng, Rng, SeedableRng};
use sepconv::registry;
use sepconv::{Isa, Kernels};

/// The ISAs `SEPCONV_REQUIRE_ISAS` (comma-separated) says must run, not skip.
pub fn required(isa: Isa) -> bool {
    std::env::var("SEPCONV_REQUIRE_ISAS")
        .map(|v| v.split(',').any(|s| s.trim() == isa.name()))
        .unwrap_or(false)
}

/// Runs `check` with the kernels of `isa`, or prints SKIP (and fails if the ISA is required).
pub fn run_isa(isa: Isa, check: fn(Kernels)) {
    match Kernels::for_isa(isa) {
        Some(k) => check(k),
        None if required(isa) => {
            panic!("{isa} is in SEPCONV_REQUIRE_ISAS but this CPU or build cannot run it")
        }
        None => eprintln!("SKIP: {isa} is not available on this CPU or in this build"),
    }
}

/// One `#[test]` per ISA for a check `fn(Kernels)`: `name::portable`, `name::avx2`, ...
#[macro_export]
macro_rules! isa_tests {
    ($($name:ident => $check:ident;)*) => {$(
        mod $name {
            #[test]
            fn portable() { $crate::common::run_isa(sepconv::Isa::Portable, super::$check) }
            #[test]
            fn avx2() { $crate::common::run_isa(sepconv::Isa::Avx2, super::$check) }
            #[test]
            fn avx512() { $crate::common::run_isa(sepconv::Isa::Avx512, super::$check) }
            #[test]
            fn neon() { $crate::common::run_isa(sepconv::Isa::Neon, super::$check) }
        }
    )*};
}

/// The production kernels of `k`'s ISA plus one handle per other registered variant, so every
/// registered kernel is exercised: for tests that run every operator.
pub fn variants(k: Kernels) -> Vec<Kernels> {
    let mut out = gemm_variants(k);
    out.extend(dw_variants(k).into_iter().skip(1));
    out
}

/// The production kernels plus one handle per other registered GEMM micro-kernel of the ISA:
/// for tests of the operators built on the GEMM (pointwise, fully connected, standard conv).
pub fn gemm_variants(k: Kernels) -> Vec<Kernels> {
    let mut out = vec![k];
    for g in registry::gemm_kernels(k.isa()) {
        if g.name != k.gemm_kernel().name {
            out.push(k.with_gemm_kernel(g).expect("same ISA"));
        }
    }
    out
}

/// The production kernels plus one handle per other registered depthwise kernel of the ISA
/// (either stride): for the depthwise tests.
pub fn dw_variants(k: Kernels) -> Vec<Kernels> {
    let mut out = vec![k];
    for s in [1, 2] {
        for d in registry::dw_kernels(k.isa(), s) {
            if d.name != k.dw_kernel(s).name {
                out.push(k.with_dw_kernel(d).expect("registered tile pair"));
            }
        }
    }
    out
}

/// A seeded generator.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `n` uniform values in [-1, 1).
pub fn random_vec(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// The same activation in the reference crate.
pub fn ref_act(a: sepconv::Activation) -> sepconv_reference::Activation {
    use sepconv::Activation as A;
    use sepconv_reference::Activation as R;
    match a {
        A::None => R::None,
        A::Relu => R::Relu,
        A::Relu6 => R::Relu6,
        A::Clamp { min, max } => R::Clamp { min, max },
    }
}

/// Relative tolerance for a dot product of `terms` f32 products: a sequential f32 sum has an
/// error of at most about `terms * eps / 2` times the sum of magnitudes; FMA and reassociation
/// only make it smaller. Twice that bound lets every correct kernel pass and a real bug fail.
pub fn tolerance(terms: usize) -> f64 {
    (terms as f64 + 2.0) * f32::EPSILON as f64
}

/// The value written into every output element before a run, to catch elements never written
/// (inside the shape) or written by mistake (in stride gaps).
pub const SENTINEL: f32 = -7.0e30;
