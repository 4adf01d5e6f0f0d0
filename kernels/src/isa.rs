//! Instruction sets: the only place that asks the CPU what it can do.

use std::fmt;
use std::sync::OnceLock;

/// An instruction set a kernel can be written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, compiled for the target's baseline; runs everywhere.
    Portable,
    /// x86_64 AVX2 + FMA3.
    Avx2,
    /// x86_64 AVX-512F (with AVX2 + FMA3).
    Avx512,
    /// AArch64 Advanced SIMD (NEON) with FMA.
    Neon,
}

impl Isa {
    /// Every ISA, in the order tests and reports list them.
    pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// The lowercase name used in env vars, bench ids and reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses a name as printed by [`Isa::name`].
    pub fn from_name(s: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name() == s.trim())
    }

    /// Whether this CPU can run the ISA (and this build has kernels for it). Detected once.
    pub fn is_available(self) -> bool {
        static DETECTED: OnceLock<[bool; 4]> = OnceLock::new();
        let d = DETECTED.get_or_init(|| Isa::ALL.map(detect));
        d[self as usize]
    }

    /// The ISAs this CPU can run, best last.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn detect(isa: Isa) -> bool {
    let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    match isa {
        Isa::Portable => true,
        Isa::Avx2 => avx2,
        Isa::Avx512 => avx2 && is_x86_feature_detected!("avx512f"),
        Isa::Neon => false,
    }
}

/// Whether this is an AMD x86 CPU, for the kernel choices that differ between AMD and Intel
/// cores of the same ISA. SSE4a is implemented by every AMD core since K10 and by no Intel core,
/// so its CPUID bit tells the vendors apart without reading the vendor string.
#[cfg(target_arch = "x86_64")]
pub(crate) fn is_amd() -> bool {
    is_x86_feature_detected!("sse4a")
}

/// Ways of the L1 data cache, from CPUID's deterministic cache parameters (leaf 4 on Intel,
/// 0x8000_001D on AMD); 8 when the CPU does not say. Read once. Kernels whose best loop order
/// depends on how many lines of one L1 set survive (the AVX-512 depthwise group rule) are chosen
/// by it: 8 on Zen 3/4 and Intel server cores up to Cascade Lake, 12 on Sapphire and Emerald
/// Rapids (48 KiB).
#[cfg(target_arch = "x86_64")]
pub(crate) fn l1d_ways() -> usize {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    static WAYS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *WAYS.get_or_init(|| {
        let (leaf, max) = if is_amd() {
            (0x8000_001D, __cpuid(0x8000_0000).eax)
        } else {
            (4, __cpuid(0).eax)
        };
        if max < leaf {
            return 8;
        }
        for sub in 0..8 {
            let r = __cpuid_count(leaf, sub);
            // EAX[4:0]: 0 = no more caches, 1 = data, 2 = instruction, 3 = unified; EAX[7:5]:
            // level; EBX[31:22]: ways - 1.
            let (kind, level) = (r.eax & 0x1f, (r.eax >> 5) & 7);
            if kind == 0 {
                break;
            }
            if level == 1 && (kind == 1 || kind == 3) {
                return (r.ebx >> 22) as usize + 1;
            }
        }
        8
    })
}

#[cfg(target_arch = "aarch64")]
fn detect(isa: Isa) -> bool {
    match isa {
        Isa::Portable => true,
        Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
        Isa::Avx2 | Isa::Avx512 => false,
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect(isa: Isa) -> bool {
    isa == Isa::Portable
}
