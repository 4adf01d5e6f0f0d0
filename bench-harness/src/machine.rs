//! What the machine is (CPU model, features, caches) and what it can do (measured ceilings).

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use sepconv::{probe, Isa};
use serde::{Deserialize, Serialize};

/// A cache level's name as reports use it.
pub const LEVELS: [&str; 4] = ["L1", "L2", "L3", "DRAM"];

/// One data or unified cache of CPU 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    /// 1, 2, 3.
    pub level: u32,
    /// `Data`, `Instruction` or `Unified`.
    pub kind: String,
    /// Bytes.
    pub size_bytes: u64,
    /// Logical CPUs sharing it.
    pub shared_by_cpus: usize,
}

/// The CPU, as `/proc/cpuinfo` and `/sys/devices/system/cpu/cpu0/cache` describe it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` (x86) or the implementer / part (Arm).
    pub cpu_model: String,
    /// Logical CPUs this process may use.
    pub logical_cpus: usize,
    /// `x86_64`, `aarch64`, ...
    pub arch: String,
    /// SIMD-related CPU flags (the full list is long and says little here).
    pub features: Vec<String>,
    /// Whether the CPU reports running under a hypervisor.
    pub hypervisor: bool,
    /// Data and unified caches of CPU 0, smallest level first.
    pub caches: Vec<Cache>,
    /// ISAs sepconv can run here.
    pub isas: Vec<String>,
    /// Set when this process runs under an instruction-set emulator (e.g. qemu-user): its times
    /// measure the emulator, not a CPU, and reports say so instead of presenting them as speeds.
    #[serde(default)]
    pub emulated: Option<String>,
}

/// Why this process looks emulated, if it does: `SEPCONV_EMULATOR` names the emulator (the test
/// scripts set it), or an Arm binary sees an x86 `/proc/cpuinfo` (qemu-user passes the host's).
fn detect_emulation(cpuinfo: &str) -> Option<String> {
    if let Ok(e) = std::env::var("SEPCONV_EMULATOR") {
        if !e.trim().is_empty() {
            return Some(e.trim().to_string());
        }
    }
    let x86_host = cpuinfo.lines().any(|l| l.starts_with("vendor_id"));
    (std::env::consts::ARCH != "x86_64" && x86_host).then(|| {
        format!(
            "{} user-mode emulation on an x86 host",
            std::env::consts::ARCH
        )
    })
}

/// Flags worth reporting.
const INTERESTING_FLAGS: &[&str] = &[
    "sse2",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "asimd",
    "fphp",
    "asimdhp",
    "asimddp",
    "sve",
    "sve2",
    "i8mm",
    "bf16",
];

impl Machine {
    /// Reads the description of this machine (falls back to "unknown" pieces off Linux).
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.split(':').next().map(str::trim) == Some(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let cpu_model = field("model name")
            .or_else(|| {
                let imp = field("CPU implementer")?;
                let part = field("CPU part").unwrap_or_default();
                Some(format!("Arm implementer {imp} part {part}"))
            })
            .unwrap_or_else(|| "unknown CPU".to_string());
        let flags = field("flags")
            .or_else(|| field("Features"))
            .unwrap_or_default();
        let flags: Vec<&str> = flags.split_whitespace().collect();
        let features = INTERESTING_FLAGS
            .iter()
            .filter(|f| flags.contains(f))
            .map(|f| f.to_string())
            .collect();
        Machine {
            cpu_model,
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            arch: std::env::consts::ARCH.to_string(),
            features,
            hypervisor: flags.contains(&"hypervisor"),
            caches: read_caches(),
            isas: Isa::available()
                .iter()
                .map(|i| i.name().to_string())
                .collect(),
            emulated: detect_emulation(&cpuinfo),
        }
    }

    /// Size in bytes of the data/unified cache at `level` (1..=3), if known.
    pub fn cache_size(&self, level: u32) -> Option<u64> {
        self.caches
            .iter()
            .find(|c| c.level == level && c.kind != "Instruction")
            .map(|c| c.size_bytes)
    }

    /// L1d, L2, L3 sizes with fallbacks (32 KiB, 512 KiB, 8 MiB) where the system does not say.
    pub fn cache_sizes(&self) -> [u64; 3] {
        [
            self.cache_size(1).unwrap_or(32 << 10),
            self.cache_size(2).unwrap_or(512 << 10),
            self.cache_size(3).unwrap_or(8 << 20),
        ]
    }

    /// A short, file-name-safe name for the CPU, e.g. `amd-epyc`.
    pub fn slug(&self) -> String {
        let mut s = String::new();
        for ch in self.cpu_model.to_lowercase().chars() {
            if ch.is_ascii_alphanumeric() {
                s.push(ch);
            } else if !s.ends_with('-') {
                s.push('-');
            }
        }
        let s: String = s
            .split('-')
            .filter(|w| !w.is_empty() && !matches!(*w, "r" | "tm" | "cpu" | "processor"))
            .take(4)
            .collect::<Vec<_>>()
            .join("-");
        if s.is_empty() {
            "cpu".to_string()
        } else {
            s
        }
    }

    /// One line: model, CPUs, caches, features.
    pub fn summary(&self) -> String {
        let caches: Vec<String> = self
            .caches
            .iter()
            .map(|c| {
                format!(
                    "L{}{} {}",
                    c.level,
                    if c.kind == "Data" { "d" } else { "" },
                    human_bytes(c.size_bytes)
                )
            })
            .collect();
        format!(
            "{} ({} logical CPUs{}; {}; features: {}){}",
            self.cpu_model,
            self.logical_cpus,
            if self.hypervisor { ", virtualised" } else { "" },
            caches.join(", "),
            self.features.join(" "),
            self.emulated
                .as_ref()
                .map(|e| format!(" — EMULATED ({e})"))
                .unwrap_or_default()
        )
    }

    /// A warning to print above any timing from an emulated run, or `None` on real hardware.
    pub fn emulation_warning(&self) -> Option<String> {
        self.emulated.as_ref().map(|e| {
            format!(
                "EMULATED RUN ({e}): every time, GFLOP/s and % figure below measures the emulator, \
                 not a CPU. This run only shows that the harness works on {}; it says nothing about \
                 the speed of the kernels.",
                self.arch
            )
        })
    }
}

fn read_caches() -> Vec<Cache> {
    let mut caches = Vec::new();
    for i in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        let kind = kind.trim().to_string();
        if kind == "Instruction" {
            continue;
        }
        caches.push(Cache {
            level: level.trim().parse().unwrap_or(0),
            kind,
            size_bytes: parse_size(size.trim()).unwrap_or(0),
            shared_by_cpus: read("shared_cpu_list").map_or(1, |l| count_cpu_list(l.trim())),
        });
    }
    caches.sort_by_key(|c| c.level);
    caches
}

/// Parses `32K`, `512K`, `32768K`, `8M`, `1024` into bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok().map(|n| n * mult)
}

/// Counts the CPUs of a list like `0-3,8,10-11`.
pub fn count_cpu_list(s: &str) -> usize {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum::<usize>()
        .max(1)
}

/// `32 KiB`, `512 KiB`, `32 MiB`.
pub fn human_bytes(b: u64) -> String {
    if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
        format!("{} GiB", b >> 30)
    } else if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

/// The ceilings of one ISA at one thread count, measured in this run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    /// ISA name.
    pub isa: String,
    /// Threads the probes ran on.
    pub threads: usize,
    /// f32 FMA peak, GFLOP/s: the larger of the probes at the start and at the end of the run.
    pub fma_peak_gflops: f64,
    /// The FMA peak probe at the end of the run, GFLOP/s (0 where not measured: `probe`, older
    /// files).
    #[serde(default)]
    pub fma_peak_end_gflops: f64,
    /// Read bandwidth per level (`L1`, `L2`, `L3`, `DRAM`), GB/s.
    pub bandwidth_gbs: BTreeMap<String, f64>,
    /// Bytes per thread of the buffer each bandwidth was measured on.
    pub bandwidth_bytes_per_thread: BTreeMap<String, u64>,
    /// Median trial of the FMA peak probe at the start of the run, GFLOP/s (0 in files from
    /// before it was recorded).
    #[serde(default)]
    pub fma_median_gflops: f64,
    /// Median trial of each bandwidth probe, GB/s (empty in files from before it was recorded).
    #[serde(default)]
    pub bandwidth_median_gbs: BTreeMap<String, f64>,
}

impl Ceiling {
    /// Bandwidth of `level`, GB/s (0 when not measured).
    pub fn bandwidth(&self, level: &str) -> f64 {
        self.bandwidth_gbs.get(level).copied().unwrap_or(0.0)
    }

    /// Median / best trial of the FMA probe and of each bandwidth probe (`FMA`, `L1`, ..), where
    /// recorded: how steady the machine was during the run (1.0 = every trial alike). The FMA
    /// figure sets the start probe's median against the kept peak (the larger of start and end).
    pub fn steadiness(&self) -> Vec<(String, f64)> {
        let ratio = |median: f64, best: f64| (median > 0.0 && best > 0.0).then(|| median / best);
        let mut v: Vec<(String, f64)> = ratio(self.fma_median_gflops, self.fma_peak_gflops)
            .map(|x| ("FMA".to_string(), x))
            .into_iter()
            .collect();
        for (level, &median) in &self.bandwidth_median_gbs {
            if let Some(x) = ratio(median, self.bandwidth(level)) {
                v.push((level.clone(), x));
            }
        }
        // Cache levels in order, DRAM last (BTreeMap order puts DRAM first).
        v.sort_by_key(|(l, _)| {
            ["FMA", "L1", "L2", "L3", "DRAM"]
                .iter()
                .position(|x| x == l)
        });
        v
    }

    /// [`Ceiling::steadiness`] as text: `"FMA 0.98, L1 0.82, ..."` (empty where not recorded).
    pub fn steadiness_text(&self) -> String {
        let v: Vec<String> = self
            .steadiness()
            .iter()
            .map(|(l, x)| format!("{l} {x:.2}"))
            .collect();
        v.join(", ")
    }
}

/// Buffer bytes per thread that put a read loop's working set in each level: half of L1d, half of
/// L2, the geometric mean of L2 and L3 shared between the threads (a typical "in L3" working set:
/// under a hypervisor, or beside other tenants, the L3 a process really gets is often half the
/// size sysfs reports), and 2 x L3 (at least 64 MiB) for DRAM.
pub fn probe_sizes(m: &Machine, threads: usize) -> [(&'static str, u64); 4] {
    let [l1, l2, l3] = m.cache_sizes();
    let t = threads.max(1) as u64;
    [
        ("L1", l1 / 2),
        ("L2", l2 / 2),
        (
            "L3",
            (((l2 as f64 * l3 as f64).sqrt() as u64) / t).max(l2 * 2),
        ),
        ("DRAM", (2 * l3).max(64 << 20) / t),
    ]
}

/// Measures the FMA peak and the four bandwidths of `isa` on `threads` threads, `duration` per
/// probe. `None` if the CPU lacks the ISA.
pub fn measure_ceiling(
    m: &Machine,
    isa: Isa,
    threads: usize,
    duration: Duration,
) -> Option<Ceiling> {
    let fma = probe::fma_peak_stats(isa, threads, duration)?;
    let mut bandwidth_gbs = BTreeMap::new();
    let mut bandwidth_median_gbs = BTreeMap::new();
    let mut bandwidth_bytes_per_thread = BTreeMap::new();
    for (level, bytes) in probe_sizes(m, threads) {
        // DRAM passes are long: give that probe a little more time for a few whole passes.
        let d = if level == "DRAM" {
            duration * 2
        } else {
            duration
        };
        let bw = probe::read_bandwidth_stats(isa, bytes as usize, threads, d)?;
        bandwidth_gbs.insert(level.to_string(), bw.best);
        bandwidth_median_gbs.insert(level.to_string(), bw.median);
        bandwidth_bytes_per_thread.insert(level.to_string(), bytes);
    }
    Some(Ceiling {
        isa: isa.name().to_string(),
        threads,
        fma_peak_gflops: fma.best,
        fma_peak_end_gflops: 0.0,
        bandwidth_gbs,
        bandwidth_bytes_per_thread,
        fma_median_gflops: fma.median,
        bandwidth_median_gbs,
    })
}

/// The cache level a working set of `bytes` fits in when `threads` threads share it: L1 and L2
/// are per core (their capacity scales with threads), L3 is shared.
pub fn level_for(m: &Machine, bytes: u64, threads: usize) -> &'static str {
    let [l1, l2, l3] = m.cache_sizes();
    let t = threads.max(1) as u64;
    if bytes <= l1 * t {
        "L1"
    } else if bytes <= l2 * t {
        "L2"
    } else if bytes <= l3 {
        "L3"
    } else {
        "DRAM"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysfs_values() {
        assert_eq!(parse_size("32K"), Some(32 << 10));
        assert_eq!(parse_size("32768K"), Some(32 << 20));
        assert_eq!(parse_size("8M"), Some(8 << 20));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(count_cpu_list("0-1"), 2);
        assert_eq!(count_cpu_list("0-3,8,10-11"), 7);
        assert_eq!(count_cpu_list("0"), 1);
    }

    #[test]
    fn slug_and_levels() {
        let mut m = Machine::detect();
        m.cpu_model = "AMD EPYC 7B13 64-Core Processor".into();
        assert_eq!(m.slug(), "amd-epyc-7b13-64");
        m.cpu_model = "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz".into();
        assert_eq!(m.slug(), "intel-xeon-platinum-8375c");
        m.caches = vec![
            Cache {
                level: 1,
                kind: "Data".into(),
                size_bytes: 32 << 10,
                shared_by_cpus: 1,
            },
            Cache {
                level: 2,
                kind: "Unified".into(),
                size_bytes: 512 << 10,
                shared_by_cpus: 1,
            },
            Cache {
                level: 3,
                kind: "Unified".into(),
                size_bytes: 32 << 20,
                shared_by_cpus: 2,
            },
        ];
        assert_eq!(level_for(&m, 20 << 10, 1), "L1");
        assert_eq!(level_for(&m, 40 << 10, 2), "L1");
        assert_eq!(level_for(&m, 400 << 10, 1), "L2");
        assert_eq!(level_for(&m, 4 << 20, 1), "L3");
        assert_eq!(level_for(&m, 40 << 20, 1), "DRAM");
        assert!(m.summary().contains("L1d 32 KiB"));
    }
}
