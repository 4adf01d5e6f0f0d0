//! `sepconv-bench compare NEW.json BASELINE.json [BASELINE.json ...]`: the CI regression check.
//!
//! Rows are matched by `id` and `threads`. Each side's *efficiency* (GFLOP/s divided by the FMA
//! peak measured in the same run) is compared, which cancels most machine drift (a slower machine
//! lowers both). Both the peak and the rate are best-of measurements (the fastest timing sample,
//! `best_efficiency`): interference from other processes only ever adds time, so the fastest
//! sample is the most repeatable number on a shared machine. A row regresses when its
//! efficiency dropped by more than the threshold (default 15%). Rows only in one file are
//! listed, not failed (a machine without an ISA has no rows for it); no matched row at all fails.
//!
//! # One baseline per machine
//!
//! Efficiency against the peak cancels a machine's clock, not its memory system: an Intel Xeon
//! VM (Cascade Lake, L3 read 24 GB/s from one core) runs the memory-bound rows at half the
//! efficiency of the Zen 3 VM the first baseline was recorded on (70 GB/s), with the same code.
//! So each machine gets its own baseline, and [`pick_baseline`] takes the one recorded on a
//! machine like this one ([`MachineKey`]: CPU model, cache sizes, ISAs). When none was, the
//! rows are compared by *% of their roofline bound* instead (best GFLOP/s over `min(peak, AI x
//! bandwidth of the level the working set lives in)`, both measured in the same run), which
//! also cancels the memory system to first order; the report says which metric it used.
//!
//! # Paired: the baseline's code measured again, side by side
//!
//! Dividing by the peak does not cancel what another tenant does to the caches and the front
//! end: the FMA probe runs from registers, the kernels do not. On a shared VM whose neighbour is
//! busy for minutes, GEMM rows lost 20-33% against a recorded baseline in every rerun while the
//! probe read the usual peak (CI on 7d577df). So when a stored comparison fails, CI rebuilds the
//! baseline's own revision ([`CompareFile::clean_revision`]) and measures both builds in
//! alternating runs (`compare --paired`): both sides then see the same machine, and each row
//! counts at its best over its side's runs.

#![forbid(unsafe_code)]

use std::fmt::Write;
use std::path::Path;

use serde::Deserialize;

/// The fields `compare` reads from a results.json (others are ignored, so older and newer
/// files with extra fields still compare).
#[derive(Clone, Debug, Deserialize)]
pub struct CompareFile {
    /// Schema version of the file.
    pub schema_version: u32,
    /// The machine it was measured on (absent in hand-made files).
    #[serde(default)]
    pub machine: Option<MachineKey>,
    /// The source revision it was built from (absent in hand-made files).
    #[serde(default)]
    pub git: Option<RevisionKey>,
    /// The rows.
    pub rows: Vec<CompareRow>,
}

/// The source revision of a results file (`git` in results.json).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct RevisionKey {
    /// `git rev-parse HEAD` at build time, or `unknown`.
    pub revision: String,
    /// Whether tracked files had changed (then `revision` is not the code that ran).
    #[serde(default)]
    pub dirty: bool,
}

/// What makes two results files comparable by efficiency against the peak: the same CPU model,
/// cache sizes and ISAs (the fields of `machine` in results.json that `compare` reads).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct MachineKey {
    /// `model name`.
    pub cpu_model: String,
    /// The caches, smallest level first.
    #[serde(default)]
    pub caches: Vec<CacheKey>,
    /// ISAs sepconv can run there.
    #[serde(default)]
    pub isas: Vec<String>,
}

/// One cache level as [`MachineKey`] compares it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct CacheKey {
    /// 1, 2, 3.
    pub level: u32,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// What a comparison divides each row's best GFLOP/s by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// The FMA peak of the same run (`best_efficiency`): for a baseline from this machine.
    Peak,
    /// The row's roofline bound of the same run (`bound_gflops`): across machines.
    Bound,
    /// Best-sample GFLOP/s itself: for builds measured in alternating runs on this machine
    /// (`--paired`), where dividing by each run's own peak probe only adds that probe's noise.
    Rate,
}

impl Metric {
    /// The metric's name in the report.
    fn name(self) -> &'static str {
        match self {
            Metric::Peak => "efficiency (GFLOP/s / measured peak)",
            Metric::Bound => "% of roofline bound (GFLOP/s / min(peak, AI x bandwidth), measured)",
            Metric::Rate => "best GFLOP/s (both builds measured alongside, on this machine)",
        }
    }
}

/// Which of `baselines` to compare `new` against, by index: the first one recorded on a machine
/// like `new`'s, compared by [`Metric::Peak`]; else the first one, by [`Metric::Bound`]. `None`
/// when `baselines` is empty.
pub fn pick_baseline(new: &CompareFile, baselines: &[CompareFile]) -> Option<(usize, Metric)> {
    match baselines
        .iter()
        .position(|b| b.machine.is_some() && b.machine == new.machine)
    {
        Some(i) => Some((i, Metric::Peak)),
        None => (!baselines.is_empty()).then_some((0, Metric::Bound)),
    }
}

/// One row as `compare` reads it.
#[derive(Clone, Debug, Deserialize)]
pub struct CompareRow {
    /// Bench id.
    pub id: String,
    /// Threads.
    pub threads: usize,
    /// Median GFLOP/s.
    pub gflops: f64,
    /// Median GFLOP/s / peak of the same run.
    pub efficiency: f64,
    /// Best-sample GFLOP/s.
    #[serde(default)]
    pub best_gflops: Option<f64>,
    /// Best-sample GFLOP/s / peak of the same run: what is compared (the median's efficiency
    /// where a file lacks it).
    #[serde(default)]
    pub best_efficiency: Option<f64>,
    /// The row's roofline bound in GFLOP/s, from the same run's ceilings.
    #[serde(default)]
    pub bound_gflops: Option<f64>,
}

impl CompareRow {
    fn eff(&self) -> f64 {
        self.best_efficiency.unwrap_or(self.efficiency)
    }

    /// The row's score under `metric` (`Bound` falls back to `Peak` where a file lacks the
    /// bound).
    fn score(&self, metric: Metric) -> f64 {
        match (metric, self.bound_gflops) {
            (Metric::Bound, Some(b)) if b > 0.0 => self.rate() / b,
            (Metric::Rate, _) => self.rate(),
            _ => self.eff(),
        }
    }

    fn rate(&self) -> f64 {
        self.best_gflops.unwrap_or(self.gflops)
    }
}

impl CompareFile {
    /// The revision this file was measured from, when that is exactly a commit (known, not
    /// dirty): what CI rebuilds to measure a baseline's code again on its own machine.
    pub fn clean_revision(&self) -> Option<&str> {
        self.git
            .as_ref()
            .filter(|g| !g.dirty && g.revision.len() >= 7)
            .filter(|g| g.revision.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|g| g.revision.as_str())
    }

    /// Each row at its best over `self` and `reruns` (matched by id and threads): the highest
    /// score under `metric` any run measured. A re-measurement only ever clears a row that
    /// interference slowed (it only adds time); a real regression is slow in every run.
    pub fn best_of(mut self, reruns: &[CompareFile], metric: Metric) -> CompareFile {
        for row in &mut self.rows {
            for other in reruns {
                if let Some(o) = other
                    .rows
                    .iter()
                    .find(|o| o.id == row.id && o.threads == row.threads)
                {
                    if o.score(metric) > row.score(metric) {
                        *row = o.clone();
                    }
                }
            }
        }
        self
    }

    /// Reads a results.json.
    pub fn load(path: &Path) -> Result<CompareFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// One matched row.
#[derive(Clone, Debug, PartialEq)]
pub struct Matched {
    /// Bench id.
    pub id: String,
    /// Threads.
    pub threads: usize,
    /// Baseline score (best sample / peak, or / bound: [`Metric`]).
    pub base: f64,
    /// New score.
    pub new: f64,
    /// Baseline and new GFLOP/s.
    pub gflops: (f64, f64),
    /// `new / base - 1`.
    pub change: f64,
    /// `change < -threshold`.
    pub regressed: bool,
}

/// The outcome of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The threshold used (0.15 = 15%).
    pub threshold: f64,
    /// What the scores divide by.
    pub metric: Metric,
    /// Rows in both files.
    pub matched: Vec<Matched>,
    /// Ids only in the new file.
    pub only_new: Vec<String>,
    /// Ids only in the baseline.
    pub only_base: Vec<String>,
}

/// Compares `new` against `base` by `metric`.
pub fn compare(
    new: &CompareFile,
    base: &CompareFile,
    threshold: f64,
    metric: Metric,
) -> Comparison {
    let key = |r: &CompareRow| (r.id.clone(), r.threads);
    let mut matched = Vec::new();
    let mut only_new = Vec::new();
    for n in &new.rows {
        match base.rows.iter().find(|b| key(b) == key(n)) {
            Some(b) => {
                let (bs, ns) = (b.score(metric), n.score(metric));
                let change = if bs > 0.0 { ns / bs - 1.0 } else { 0.0 };
                matched.push(Matched {
                    id: n.id.clone(),
                    threads: n.threads,
                    base: bs,
                    new: ns,
                    gflops: (b.rate(), n.rate()),
                    change,
                    regressed: change < -threshold,
                });
            }
            None => only_new.push(format!("{} (x{})", n.id, n.threads)),
        }
    }
    let only_base = base
        .rows
        .iter()
        .filter(|b| !new.rows.iter().any(|n| key(n) == key(b)))
        .map(|b| format!("{} (x{})", b.id, b.threads))
        .collect();
    Comparison {
        threshold,
        metric,
        matched,
        only_new,
        only_base,
    }
}

impl Comparison {
    /// Rows that regressed.
    pub fn regressions(&self) -> Vec<&Matched> {
        self.matched.iter().filter(|m| m.regressed).collect()
    }

    /// Whether CI should fail: a regression, or nothing to compare.
    pub fn failed(&self) -> bool {
        self.matched.is_empty() || !self.regressions().is_empty()
    }

    /// The table and verdict, for the terminal.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let w = self
            .matched
            .iter()
            .map(|m| m.id.len())
            .max()
            .unwrap_or(2)
            .max(2);
        // The score columns, unless the score is the GFLOP/s already shown.
        let cols = match self.metric {
            Metric::Peak => Some(("base eff", "new eff")),
            Metric::Bound => Some(("base %bd", "new %bd")),
            Metric::Rate => None,
        };
        let scores = |b: &str, n: &str| cols.map_or(String::new(), |_| format!("  {b:>8}  {n:>8}"));
        let _ = writeln!(
            s,
            "{:<w$}  {:>3}  {:>9}  {:>9}{}  {:>8}",
            "id",
            "thr",
            "base GF/s",
            "new GF/s",
            cols.map_or(String::new(), |(b, n)| scores(b, n)),
            "change"
        );
        for m in &self.matched {
            let pct = |v: f64| format!("{:.1}%", 100.0 * v);
            let _ = writeln!(
                s,
                "{:<w$}  {:>3}  {:>9.2}  {:>9.2}{}  {:>+7.1}%{}",
                m.id,
                m.threads,
                m.gflops.0,
                m.gflops.1,
                scores(&pct(m.base), &pct(m.new)),
                100.0 * m.change,
                if m.regressed { "  REGRESSED" } else { "" }
            );
        }
        if !self.only_new.is_empty() {
            let _ = writeln!(
                s,
                "\nnew rows (not in the baseline): {}",
                self.only_new.len()
            );
            for id in &self.only_new {
                let _ = writeln!(s, "  {id}");
            }
        }
        if !self.only_base.is_empty() {
            let _ = writeln!(
                s,
                "\nbaseline rows not measured now: {}",
                self.only_base.len()
            );
            for id in &self.only_base {
                let _ = writeln!(s, "  {id}");
            }
        }
        let reg = self.regressions();
        let _ = writeln!(
            s,
            "\n{} rows compared, {} regressed by more than {:.0}% in {}{}",
            self.matched.len(),
            reg.len(),
            100.0 * self.threshold,
            self.metric.name(),
            if self.matched.is_empty() {
                ": FAIL (nothing matched)"
            } else if reg.is_empty() {
                ": OK"
            } else {
                ": FAIL"
            }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rows: &[(&str, f64)]) -> CompareFile {
        CompareFile {
            schema_version: 1,
            machine: None,
            git: None,
            rows: rows
                .iter()
                .map(|&(id, eff)| CompareRow {
                    id: id.to_string(),
                    threads: 1,
                    gflops: eff * 50.0,
                    efficiency: eff / 2.0,
                    best_gflops: Some(eff * 100.0),
                    best_efficiency: Some(eff),
                    bound_gflops: Some(100.0),
                })
                .collect(),
        }
    }

    #[test]
    fn a_rerun_clears_a_row_only_where_it_was_faster() {
        let base = file(&[("a", 0.8), ("b", 0.3)]);
        let first = file(&[("a", 0.5), ("b", 0.2)]);
        let rerun = file(&[("a", 0.79), ("b", 0.1)]);
        let c = compare(
            &first.best_of(&[rerun], Metric::Peak),
            &base,
            0.15,
            Metric::Peak,
        );
        let r: Vec<_> = c.regressions().iter().map(|m| m.id.clone()).collect();
        assert_eq!(r, ["b"], "{}", c.report());
    }

    #[test]
    fn paired_runs_compare_best_against_best() {
        // The machine slowed both builds alike in some runs: each side at its best over its
        // runs, the new code is within 5% of the baseline's code; a real drop still fails.
        let base = [
            file(&[("a", 0.5)]),
            file(&[("a", 0.8)]),
            file(&[("a", 0.6)]),
        ];
        let new = [file(&[("a", 0.76)]), file(&[("a", 0.55)])];
        let best = |f: &[CompareFile]| f[0].clone().best_of(&f[1..], Metric::Rate);
        let c = compare(&best(&new), &best(&base), 0.15, Metric::Rate);
        assert!(
            !c.failed() && (c.matched[0].change + 0.05).abs() < 1e-9,
            "{}",
            c.report()
        );
        assert!(c.report().contains("best GFLOP/s"), "{}", c.report());
        let slow = [file(&[("a", 0.6)]), file(&[("a", 0.55)])];
        assert!(compare(&best(&slow), &best(&base), 0.15, Metric::Rate).failed());
    }

    #[test]
    fn only_a_clean_known_revision_is_rebuilt() {
        let with = |revision: &str, dirty| {
            let mut f = file(&[("a", 0.5)]);
            f.git = Some(RevisionKey {
                revision: revision.to_string(),
                dirty,
            });
            f
        };
        let rev = "af20f7ed84ca0c9cd99f510ea76c73a63c4065ad";
        assert_eq!(with(rev, false).clean_revision(), Some(rev));
        assert_eq!(with(rev, true).clean_revision(), None);
        assert_eq!(with("unknown", false).clean_revision(), None);
        assert_eq!(with("--help", false).clean_revision(), None);
        assert_eq!(file(&[("a", 0.5)]).clean_revision(), None);
    }

    #[test]
    fn identical_results_pass() {
        let a = file(&[
            ("layer.pointwise/avx2/x", 0.8),
            ("layer.dwconv3x3/avx2/y", 0.3),
        ]);
        let c = compare(&a, &a, 0.15, Metric::Peak);
        assert!(!c.failed(), "{}", c.report());
        assert_eq!(c.matched.len(), 2);
        assert!(c.report().contains(": OK"));
    }

    #[test]
    fn a_slower_row_fails() {
        let base = file(&[
            ("layer.pointwise/avx2/x", 0.8),
            ("layer.dwconv3x3/avx2/y", 0.3),
        ]);
        let new = file(&[
            ("layer.pointwise/avx2/x", 0.8),
            ("layer.dwconv3x3/avx2/y", 0.2),
        ]);
        let c = compare(&new, &base, 0.15, Metric::Peak);
        assert!(c.failed());
        assert_eq!(c.regressions().len(), 1);
        assert_eq!(c.regressions()[0].id, "layer.dwconv3x3/avx2/y");
        assert!(c.report().contains("REGRESSED"));
        // A looser threshold lets the same drop (33%) pass.
        assert!(!compare(&new, &base, 0.4, Metric::Peak).failed());
    }

    #[test]
    fn faster_and_unmatched_rows_do_not_fail() {
        let base = file(&[("a", 0.5), ("gone", 0.5)]);
        let new = file(&[("a", 0.9), ("added", 0.1)]);
        let c = compare(&new, &base, 0.15, Metric::Peak);
        assert!(!c.failed());
        assert_eq!(c.only_new, vec!["added (x1)"]);
        assert_eq!(c.only_base, vec!["gone (x1)"]);
        // Nothing in common: fail.
        assert!(compare(&file(&[("b", 0.5)]), &base, 0.15, Metric::Peak).failed());
    }

    #[test]
    fn rows_with_other_thread_counts_do_not_match() {
        let base = file(&[("a", 0.5)]);
        let mut new = file(&[("a", 0.1)]);
        new.rows[0].threads = 2;
        let c = compare(&new, &base, 0.15, Metric::Peak);
        assert!(c.matched.is_empty() && c.failed());
    }

    fn on(mut f: CompareFile, cpu: &str) -> CompareFile {
        f.machine = Some(MachineKey {
            cpu_model: cpu.to_string(),
            caches: vec![CacheKey {
                level: 1,
                size_bytes: 32768,
            }],
            isas: vec!["avx2".to_string()],
        });
        f
    }

    #[test]
    fn the_baseline_of_this_machine_is_picked_else_the_bound_metric() {
        let zen = on(file(&[("a", 0.5)]), "AMD EPYC");
        let xeon = on(file(&[("a", 0.3)]), "Intel Xeon");
        let new = on(file(&[("a", 0.3)]), "Intel Xeon");
        let bases = [zen, xeon];
        // This machine's baseline, by % of peak, wherever it is in the list.
        assert_eq!(pick_baseline(&new, &bases), Some((1, Metric::Peak)));
        // A machine without one: the first baseline, by % of roofline bound.
        let other = on(file(&[("a", 0.3)]), "Neoverse");
        assert_eq!(pick_baseline(&other, &bases), Some((0, Metric::Bound)));
        assert!(pick_baseline(&new, &[]).is_none());
    }

    #[test]
    fn the_bound_metric_divides_by_each_rows_bound() {
        // Same % of peak, but the new machine's bound for the row is half: 2x the % of bound.
        let base = file(&[("a", 0.4)]);
        let mut new = file(&[("a", 0.4)]);
        new.rows[0].bound_gflops = Some(50.0);
        let c = compare(&new, &base, 0.15, Metric::Bound);
        assert!((c.matched[0].change - 1.0).abs() < 1e-9, "{}", c.report());
        // A row slower against its bound fails.
        new.rows[0].bound_gflops = Some(200.0);
        let c = compare(&new, &base, 0.15, Metric::Bound);
        assert!(
            c.failed() && c.report().contains("roofline bound"),
            "{}",
            c.report()
        );
    }
}
