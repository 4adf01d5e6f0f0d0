//! `results.json`: what one report run measured, the format CI and other tools read.
//!
//! The schema is documented in `reports/README.md`; bump [`SCHEMA_VERSION`] on any change that
//! removes or renames a field (adding one is compatible).

#![forbid(unsafe_code)]

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::machine::{Ceiling, Machine};

/// Version of the results.json schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `sepconv-bench <version>`.
    pub tool: String,
    /// Seconds since the Unix epoch when the run started.
    pub created_unix: u64,
    /// `YYYY-MM-DD` (UTC) of the run.
    pub date: String,
    /// Source revision.
    pub git: GitInfo,
    /// Compiler and build.
    pub toolchain: Toolchain,
    /// The CPU.
    pub machine: Machine,
    /// What was asked for.
    pub settings: Settings,
    /// Ceilings measured in this run, per ISA and thread count.
    pub ceilings: Vec<Ceiling>,
    /// One row per measured layer x kernel (tier `layer`) or network x ISA (tier `net`).
    pub rows: Vec<Row>,
    /// Wall-clock seconds the run took.
    pub wall_s: f64,
}

/// The source revision a run was built from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitInfo {
    /// `git rev-parse HEAD`, or `unknown`.
    pub revision: String,
    /// Whether tracked files had uncommitted changes.
    pub dirty: bool,
}

/// The compiler and build the run used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toolchain {
    /// `rustc -V` of the compiler that built the tool.
    pub rustc: String,
    /// `release` or `debug` (a debug build's numbers mean little).
    pub profile: String,
    /// Target triple's architecture and OS.
    pub target: String,
    /// SIMD target features enabled at compile time (runtime dispatch picks the rest).
    pub target_features: Vec<String>,
}

/// The options of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `default`, `full` or `ci`.
    pub suite: String,
    /// Threads the operators used.
    pub threads: usize,
    /// ISAs measured.
    pub isas: Vec<String>,
    /// Substring filter on row ids, if any.
    pub filter: Option<String>,
    /// Time budget per row, milliseconds.
    pub budget_ms: u64,
    /// Time per ceiling probe, milliseconds.
    pub probe_ms: u64,
    /// Interleaved rounds over the layer rows (samples pooled).
    pub rounds: usize,
    /// Networks whose layers were measured.
    pub networks: Vec<String>,
}

/// One measured row: a layer (or network) on one kernel set, with its roofline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `<tier>.<op>/<isa-or-kernel>/<layer-id>`; stable, what `compare` matches on (with
    /// `threads`).
    pub id: String,
    /// `layer` or `net`.
    pub tier: String,
    /// `dwconv3x3`, `pointwise`, `conv3x3`, `fc`, `avgpool`; `mobilenet_v1` /
    /// `conv_mobilenet_v1` for networks.
    pub op: String,
    /// The ISA or baseline in the id (`avx2`, `portable`, `reference`).
    pub label: String,
    /// The ISA whose ceilings the row is set against.
    pub isa: String,
    /// The kernel that did the work.
    pub kernel: String,
    /// Layer id (or network id).
    pub layer: String,
    /// Human-readable shape.
    pub shape: String,
    /// Threads the operator could use.
    pub threads: usize,
    /// FLOPs of one call (2 per multiply-add).
    pub flops: u64,
    /// Compulsory bytes of one call (input, weights, bias, output once each).
    pub bytes: u64,
    /// Arithmetic intensity, FLOPs per compulsory byte.
    pub ai: f64,
    /// Cache level the working set fits in (`L1`, `L2`, `L3`, `DRAM`; `mixed` for networks).
    pub level: String,
    /// Timing samples taken.
    pub samples: usize,
    /// Median seconds per call.
    pub median_s: f64,
    /// Fastest sample, seconds per call.
    pub min_s: f64,
    /// Median absolute deviation, seconds per call.
    pub mad_s: f64,
    /// `flops / median_s / 1e9`.
    pub gflops: f64,
    /// FMA peak of `isa` at `threads`, measured in this run, GFLOP/s.
    pub peak_gflops: f64,
    /// Read bandwidth of `level` for `isa` at `threads`, GB/s.
    pub bandwidth_gbs: f64,
    /// Attainable bound `min(peak, ai * bandwidth)`, GFLOP/s (for networks: total FLOPs over
    /// the sum of every layer's bound time).
    pub bound_gflops: f64,
    /// `compute` when the bound is the peak, `memory` otherwise.
    pub bound: String,
    /// `100 * gflops / bound_gflops`.
    pub pct_of_bound: f64,
    /// `gflops / peak_gflops`.
    pub efficiency: f64,
    /// `flops / min_s / 1e9`: the fastest sample's rate.
    pub best_gflops: f64,
    /// `best_gflops / peak_gflops`: what `compare` tracks. Both sides are best-of measurements
    /// (noise on a shared machine only ever adds time), and dividing by the peak measured in the
    /// same run cancels most machine drift.
    pub best_efficiency: f64,
}

impl Results {
    /// Reads a results.json.
    pub fn load(path: &Path) -> Result<Results, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The ceiling of `isa` at `threads`, if measured.
    pub fn ceiling(&self, isa: &str, threads: usize) -> Option<&Ceiling> {
        self.ceilings
            .iter()
            .find(|c| c.isa == isa && c.threads == threads)
    }

    /// The row with this id.
    pub fn row(&self, id: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.id == id)
    }
}

/// `git rev-parse HEAD` and whether tracked files changed, run in `dir`.
pub fn git_info(dir: &Path) -> GitInfo {
    let run = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    GitInfo {
        revision: run(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_string()),
        dirty: run(&["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty()),
    }
}

/// The toolchain this binary was built with.
pub fn toolchain() -> Toolchain {
    let mut target_features = Vec::new();
    macro_rules! feat {
        ($($f:literal),*) => {
            $( if cfg!(target_feature = $f) { target_features.push($f.to_string()); } )*
        };
    }
    feat!("sse2", "avx", "avx2", "fma", "avx512f", "neon");
    Toolchain {
        rustc: env!("SEPCONV_BENCH_RUSTC").to_string(),
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_string(),
        target: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        target_features,
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
pub fn date_of(unix: u64) -> String {
    // Howard Hinnant's civil-from-days.
    let z = (unix / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(951_782_400), "2000-02-29");
        assert_eq!(date_of(1_704_067_199), "2023-12-31");
        assert_eq!(date_of(1_709_164_800), "2024-02-29");
    }
}
