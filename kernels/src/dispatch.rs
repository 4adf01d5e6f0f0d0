//! The production kernel per op and ISA, resolved once; explicit handles for tests and benches.

use std::sync::OnceLock;

use crate::dwconv::ukernel::DwKernel;
use crate::error::{Error, Result};
use crate::gemm::ukernel::GemmKernel;
use crate::{dwconv, gemm, Isa};

/// A set of kernels for one ISA, plus the thread count operators use.
///
/// Holding a `Kernels` proves the CPU can run its kernels: the only ways to get one check
/// [`Isa::is_available`]. It is `Copy` and cheap to pass around; every operator is a method on it.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    pub(crate) isa: Isa,
    pub(crate) threads: usize,
    pub(crate) gemm: &'static GemmKernel,
    pub(crate) dw_s1: &'static DwKernel,
    pub(crate) dw_s2: &'static DwKernel,
}

/// The production GEMM micro-kernel per ISA; `None` when this build has no kernels for the ISA.
fn production_gemm(isa: Isa) -> Option<&'static GemmKernel> {
    match isa {
        Isa::Portable => Some(&gemm::portable::GEMM_F32_4X8_PORTABLE),
        // Intel cores with an 8-way L1d (before Ice Lake) have a 1.5K-uop decoded-instruction
        // cache, too small for the depth-64 tile unrolled (measured on Cascade Lake; see
        // `gemm/x86/avx2.rs`).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if !crate::isa::is_amd() && crate::isa::l1d_ways() <= 8 => {
            Some(&gemm::x86::avx2::GEMM_F32_6X16U32_AVX2)
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(&gemm::x86::avx2::GEMM_F32_6X16_AVX2),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Some(&gemm::aarch64::neon::GEMM_F32_6X12_NEON),
        // Intel cores: 8 x 32 (Sapphire Rapids, measured: 84-91% of peak on MobileNet's
        // pointwise layers against 58-73% for 14 x 16). AMD Zen 4: 14 x 16, whose embedded
        // broadcasts llvm-mca models at ~100% there and the 8 x 32 loop at ~67% (no Zen 4 to
        // measure on; see the two kernels' module docs).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if crate::isa::is_amd() => Some(&gemm::x86::avx512::GEMM_F32_14X16_AVX512),
        // Intel cores with an 8-way 32 KiB L1d and 1 MiB L2 (Skylake-SP, Cascade Lake): the
        // 8 x 32 kernel with 12-row tiles for deep calls, 4-8% faster at K >= 256 on a Cascade
        // Lake core (`avx512_12x32.rs`); not measured on the 12-way cores, which keep 8 x 32.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if crate::isa::l1d_ways() <= 8 => {
            Some(&gemm::x86::avx512_12x32::GEMM_F32_12X32_AVX512)
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(&gemm::x86::avx512_8x32::GEMM_F32_8X32_AVX512),
        _ => None,
    }
}

/// The production depthwise kernels per ISA, `(stride 1, stride 2)`; both must share a channel tile.
fn production_dw(isa: Isa) -> Option<(&'static DwKernel, &'static DwKernel)> {
    match isa {
        Isa::Portable => Some((
            &dwconv::portable::DWCONV3X3_F32_C8_PORTABLE,
            &dwconv::portable::DWCONV3X3S2_F32_C8_PORTABLE,
        )),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some((
            &dwconv::x86::avx2::DWCONV3X3_F32_C16_AVX2,
            &dwconv::x86::avx2::DWCONV3X3S2_F32_C16_AVX2,
        )),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Some((
            &dwconv::aarch64::neon::DWCONV3X3_F32_C4_NEON,
            &dwconv::aarch64::neon::DWCONV3X3S2_F32_C4_NEON,
        )),
        // The depthwise group rule follows the L1's ways: 8 (measured on Cascade Lake; Zen 4 has
        // the same geometry, not measured) or 12 (Sapphire and Emerald Rapids); see
        // `dwconv/x86/avx512.rs`.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if crate::isa::l1d_ways() <= 8 => Some((
            &dwconv::x86::avx512::DWCONV3X3_F32_C32W8_AVX512,
            &dwconv::x86::avx512::DWCONV3X3S2_F32_C32W8_AVX512,
        )),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some((
            &dwconv::x86::avx512::DWCONV3X3_F32_C32_AVX512,
            &dwconv::x86::avx512::DWCONV3X3S2_F32_C32_AVX512,
        )),
        _ => None,
    }
}

/// The environment variable that forces an ISA.
pub const ISA_ENV: &str = "SEPCONV_ISA";
/// Set (to anything) to print the chosen kernels to stderr once.
pub const DEBUG_ENV: &str = "SEPCONV_DEBUG";

impl Kernels {
    /// The kernels for `isa`, with 1 thread, or `None` if this CPU or build lacks the ISA.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        if !isa.is_available() {
            return None;
        }
        let gemm = production_gemm(isa)?;
        let (dw_s1, dw_s2) = production_dw(isa)?;
        Some(Kernels {
            isa,
            threads: 1,
            gemm,
            dw_s1,
            dw_s2,
        })
    }

    /// Every ISA this CPU and build can run, best last.
    pub fn available() -> Vec<Kernels> {
        Isa::ALL.into_iter().filter_map(Kernels::for_isa).collect()
    }

    /// The best kernels for this CPU, or the ISA forced by `SEPCONV_ISA`. Resolved once.
    ///
    /// Errors: [`Error::UnknownIsa`] when `SEPCONV_ISA` names no ISA, [`Error::IsaUnavailable`]
    /// when it names one this CPU or build lacks.
    pub fn try_best() -> Result<Kernels> {
        static BEST: OnceLock<Result<Kernels>> = OnceLock::new();
        BEST.get_or_init(|| {
            let k = Self::resolve(std::env::var(ISA_ENV).ok().as_deref())?;
            if std::env::var_os(DEBUG_ENV).is_some() {
                eprintln!(
                    "sepconv: isa={} gemm={} dwconv_s1={} dwconv_s2={}",
                    k.isa, k.gemm.name, k.dw_s1.name, k.dw_s2.name
                );
            }
            Ok(k)
        })
        .clone()
    }

    /// As [`Kernels::try_best`].
    ///
    /// # Panics
    ///
    /// When `SEPCONV_ISA` is set to a value that names no ISA or an ISA this CPU lacks: forcing an
    /// ISA is a deliberate act, and silently running another one would defeat it.
    pub fn best() -> Kernels {
        match Self::try_best() {
            Ok(k) => k,
            Err(e) => panic!("sepconv: {e}"),
        }
    }

    /// The kernels `SEPCONV_ISA=forced` selects (the best available when `None` or empty).
    pub fn resolve(forced: Option<&str>) -> Result<Kernels> {
        match forced.map(str::trim).filter(|s| !s.is_empty()) {
            Some(name) => {
                let isa =
                    Isa::from_name(name).ok_or_else(|| Error::UnknownIsa(name.to_string()))?;
                Kernels::for_isa(isa).ok_or(Error::IsaUnavailable(isa))
            }
            None => Ok(*Kernels::available()
                .last()
                .expect("the portable kernels are always available")),
        }
    }

    /// The ISA of these kernels.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Threads operators split their work over.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The same kernels, using `threads` threads (>= 1). Results do not depend on it.
    pub fn with_threads(mut self, threads: usize) -> Result<Kernels> {
        if threads == 0 {
            return Err(Error::ZeroThreads);
        }
        self.threads = threads;
        Ok(self)
    }

    /// Runs `f` on one of this handle's pool workers and returns what it returns (on the calling
    /// thread when `threads() == 1`). Operators that `f` calls with the same thread count then
    /// hand their parts to the other workers from inside the pool, instead of waking the pool
    /// from outside and sleeping until it is done, and the other workers poll for parts until
    /// `f` returns instead of going to sleep between operators (yielding their cores to the OS
    /// now and then, so more threads than free cores still work). On a 2-core VM a call of two
    /// 5 us parts after a pause took 20.4 us from outside, 10.3-10.7 us inside, 5.8 us inside with
    /// the workers kept awake. An engine running a whole network on several threads should run
    /// each inference this way. The other workers use their cores until `f` returns, so keep
    /// long serial work (loading, preprocessing) outside it. `f` starts once every worker is
    /// polling (after the slowest wake-up). Calls from several threads at once on the same
    /// thread count, and calls nested in `f`, are allowed (they share the pool; a nested call's
    /// workers are the outer call's). A panic in `f` reaches the caller.
    pub fn run_in_pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        crate::threading::in_pool(self.threads, f)
    }

    /// Runs `f` on every part on this handle's threads (the persistent pool the operators use)
    /// and returns the error of the lowest-numbered part that failed, if any. For engines that
    /// run their own per-thread work between operators (e.g. a pipeline of row bands per slab of
    /// rows): they start no threads of their own, and their parts run on the workers whose caches
    /// the operators before and after them use. With one thread or one part, everything runs in
    /// order on the calling thread.
    pub fn run_parts<T: Send, E: Send>(
        &self,
        parts: Vec<T>,
        f: impl Fn(T) -> std::result::Result<(), E> + Sync + Send,
    ) -> std::result::Result<(), E> {
        let first_error = std::sync::Mutex::new(None::<(usize, E)>);
        let numbered: Vec<(usize, T)> = parts.into_iter().enumerate().collect();
        crate::threading::run_parts(self.threads, numbered, |(i, part)| {
            if let Err(e) = f(part) {
                let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
                if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                    *slot = Some((i, e));
                }
            }
        });
        match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// The same set with another GEMM micro-kernel of the same ISA (tests and benches use this to
    /// reach every registered variant). Weights must be packed after the switch.
    pub fn with_gemm_kernel(mut self, k: &'static GemmKernel) -> Result<Kernels> {
        if k.isa != self.isa {
            return Err(Error::IsaUnavailable(k.isa));
        }
        self.gemm = k;
        Ok(self)
    }

    /// The same set with another depthwise kernel of the same ISA for its stride. Weights are
    /// packed once for both strides, so when the other stride's kernel has another channel tile it
    /// is swapped for a registered one with this tile (an error if there is none).
    pub fn with_dw_kernel(mut self, k: &'static DwKernel) -> Result<Kernels> {
        if k.isa != self.isa {
            return Err(Error::IsaUnavailable(k.isa));
        }
        let other_stride = if k.stride == 1 { 2 } else { 1 };
        let mut other = self.dw_kernel(other_stride);
        if other.c_tile != k.c_tile {
            other = crate::registry::dw_kernels(k.isa, other_stride)
                .find(|o| o.c_tile == k.c_tile)
                .ok_or_else(|| Error::WeightsMismatch {
                    packed_for: format!("{} (tile {})", other.name, other.c_tile),
                    used_with: format!("{} (tile {})", k.name, k.c_tile),
                })?;
        }
        (self.dw_s1, self.dw_s2) = if k.stride == 1 {
            (k, other)
        } else {
            (other, k)
        };
        Ok(self)
    }

    /// The GEMM micro-kernel in use.
    pub fn gemm_kernel(&self) -> &'static GemmKernel {
        self.gemm
    }

    /// The depthwise kernel in use for `stride` (1 or 2).
    pub fn dw_kernel(&self, stride: usize) -> &'static DwKernel {
        if stride == 2 {
            self.dw_s2
        } else {
            self.dw_s1
        }
    }
}
