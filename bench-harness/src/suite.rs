//! The report's suite: which layers, kernels and networks to measure, and the run itself
//! (ceilings first, then every row, with progress), producing [`Results`].

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use sepconv::probe::fma_peak_stats;
use sepconv::{Isa, Kernels};

use crate::cases::{bench_id, Case, LAYER_TIER, NET_TIER};
use crate::machine::{level_for, measure_ceiling, Ceiling, Machine};
use crate::measure::{sample, Budget, Timing};
use crate::mobilenet::{NetRunner, FUSION_BAND_ROWS};
use crate::results::{date_of, git_info, toolchain, Results, Row, Settings, SCHEMA_VERSION};
use crate::workloads::{
    conv_mobilenet_v1, mobilenet_v1, mobilenet_v2, Layer, Network, Op, V1_ALPHAS, V1_RESOLUTIONS,
};

/// Which suite to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuiteKind {
    /// MobileNet v1 1.0-224: every layer, the standard convs of Conv MobileNet, the reference
    /// depthwise baseline and both whole networks, on every ISA. A few minutes on 2 cores.
    Default,
    /// Every width multiplier and resolution of v1, Conv MobileNet for each, MobileNet v2, and
    /// whole networks for each v1 variant. Long.
    Full,
    /// The short CI suite: the depthwise, pointwise, stem and classifier layers of v1 1.0-224 on
    /// every SIMD ISA, shorter budgets; no standard convs, baselines or whole networks.
    Ci,
}

impl SuiteKind {
    /// `default`, `full`, `ci`.
    pub fn name(self) -> &'static str {
        match self {
            SuiteKind::Default => "default",
            SuiteKind::Full => "full",
            SuiteKind::Ci => "ci",
        }
    }

    /// Default time budget per row.
    pub fn default_budget(self) -> Duration {
        match self {
            SuiteKind::Default => Duration::from_millis(400),
            SuiteKind::Full => Duration::from_millis(1000),
            SuiteKind::Ci => Duration::from_millis(600),
        }
    }

    /// Default interleaved rounds over the layer rows.
    pub fn default_rounds(self) -> usize {
        match self {
            SuiteKind::Ci => 6,
            _ => 3,
        }
    }

    /// Default time per ceiling probe.
    pub fn default_probe(self) -> Duration {
        Duration::from_millis(250)
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The suite.
    pub kind: SuiteKind,
    /// Threads for the operators (ceilings are also measured at 1 and at all CPUs).
    pub threads: usize,
    /// ISAs to measure.
    pub isas: Vec<Isa>,
    /// Substring a row id must contain.
    pub filter: Option<String>,
    /// Time budget per row.
    pub budget: Duration,
    /// Time per ceiling probe.
    pub probe: Duration,
    /// Networks whose layers are measured (separable ones; their Conv MobileNet twins' standard
    /// convs are measured too unless the suite is `ci`).
    pub networks: Vec<Network>,
    /// Whole networks to time end to end: `(separable, standard)` pairs.
    pub whole: Vec<(Network, Network)>,
    /// Measure the reference depthwise baseline.
    pub reference: bool,
    /// Interleaved rounds over the layer rows (the budget is split between them).
    pub rounds: usize,
}

impl Plan {
    /// The plan of a suite on every available ISA (or `isas`), with `threads` threads. The CI
    /// suite leaves out the portable kernels where a SIMD ISA exists (they are the fallback, not
    /// what any x86_64 or AArch64 machine runs, and their long calls are the noisiest rows on a
    /// shared machine); name them with `isas` to include them.
    pub fn new(kind: SuiteKind, threads: usize, isas: Option<Vec<Isa>>) -> Plan {
        let isas = isas.unwrap_or_else(|| {
            let all = Isa::available();
            if kind == SuiteKind::Ci && all.len() > 1 {
                all.into_iter().filter(|&i| i != Isa::Portable).collect()
            } else {
                all
            }
        });
        let v1_all: Vec<(u32, usize)> = V1_ALPHAS
            .iter()
            .flat_map(|&a| V1_RESOLUTIONS.iter().map(move |&r| (a, r)))
            .collect();
        let (networks, whole, reference) = match kind {
            SuiteKind::Default => (
                vec![mobilenet_v1(100, 224)],
                vec![(mobilenet_v1(100, 224), conv_mobilenet_v1(100, 224))],
                true,
            ),
            SuiteKind::Full => {
                let mut n: Vec<Network> = v1_all.iter().map(|&(a, r)| mobilenet_v1(a, r)).collect();
                n.push(mobilenet_v2());
                let w = v1_all
                    .iter()
                    .map(|&(a, r)| (mobilenet_v1(a, r), conv_mobilenet_v1(a, r)))
                    .collect();
                (n, w, true)
            }
            SuiteKind::Ci => (vec![mobilenet_v1(100, 224)], vec![], false),
        };
        Plan {
            kind,
            threads: threads.max(1),
            isas,
            filter: None,
            budget: kind.default_budget(),
            probe: kind.default_probe(),
            networks,
            whole,
            reference,
            rounds: kind.default_rounds(),
        }
    }

    /// The layers to measure, each once, in network order: the separable networks' layers and
    /// (except in CI) the standard convs of their Conv MobileNet twins.
    pub fn layers(&self) -> Vec<Layer> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for n in &self.networks {
            let mut layers = n.layers.clone();
            if self.kind != SuiteKind::Ci && n.id.starts_with("mbv1_") {
                let std = conv_mobilenet_v1(n.alpha_pct, n.resolution);
                layers.extend(std.layers.into_iter().filter(|l| l.id.contains("_std")));
            }
            if self.kind == SuiteKind::Ci {
                layers.retain(|l| l.op != Op::AvgPool);
            }
            for l in layers {
                if seen.insert(l.id.clone()) {
                    out.push(l);
                }
            }
        }
        out
    }

    fn wanted(&self, id: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| id.contains(f))
    }
}

/// One thing to measure.
enum Job {
    Layer { k: Kernels, layer: Layer },
    Reference { layer: Layer },
    Net { k: Kernels, net: Network },
}

impl Job {
    fn id(&self) -> String {
        match self {
            Job::Layer { k, layer } => {
                bench_id("layer", layer.op.name(), k.isa().name(), &layer.id)
            }
            Job::Reference { layer } => bench_id("layer", layer.op.name(), "reference", &layer.id),
            Job::Net { k, net } => bench_id(NET_TIER, net_op(net), k.isa().name(), &net.id),
        }
    }
}

/// `mobilenet_v1` or `conv_mobilenet_v1`.
pub fn net_op(net: &Network) -> &'static str {
    if net.id.starts_with("mbv1conv_") {
        "conv_mobilenet_v1"
    } else {
        "mobilenet_v1"
    }
}

/// Runs the plan: machine description, ceilings, then every row, with a progress bar on stderr.
pub fn run(plan: &Plan, workspace: &std::path::Path) -> Results {
    let started = Instant::now();
    let created_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let machine = Machine::detect();

    let mut jobs = Vec::new();
    let layers = plan.layers();
    for &isa in &plan.isas {
        let Some(k) = Kernels::for_isa(isa).and_then(|k| k.with_threads(plan.threads).ok()) else {
            continue;
        };
        jobs.extend(layers.iter().map(|l| Job::Layer {
            k,
            layer: l.clone(),
        }));
    }
    if plan.reference {
        jobs.extend(
            layers
                .iter()
                .filter(|l| l.op == Op::Depthwise3x3)
                .map(|l| Job::Reference { layer: l.clone() }),
        );
    }
    for &isa in &plan.isas {
        let Some(k) = Kernels::for_isa(isa).and_then(|k| k.with_threads(plan.threads).ok()) else {
            continue;
        };
        for (sep, std) in &plan.whole {
            jobs.push(Job::Net {
                k,
                net: sep.clone(),
            });
            jobs.push(Job::Net {
                k,
                net: std.clone(),
            });
        }
    }
    jobs.retain(|j| plan.wanted(&j.id()));

    // Ceilings for every ISA at 1 thread, all CPUs, and the run's thread count.
    let mut thread_counts = vec![1, machine.logical_cpus, plan.threads];
    thread_counts.sort_unstable();
    thread_counts.dedup();
    let ceiling_isas: Vec<Isa> = {
        let mut v = plan.isas.clone();
        if plan.reference && !v.contains(&Isa::Portable) {
            v.insert(0, Isa::Portable);
        }
        v
    };
    let n_ceilings = ceiling_isas.len() * thread_counts.len();

    let n_nets = jobs.iter().filter(|j| matches!(j, Job::Net { .. })).count();
    let steps = 2 * n_ceilings + (jobs.len() - n_nets) * plan.rounds.max(1) + n_nets;
    let pb = ProgressBar::new(steps as u64);
    pb.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:32}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let note = |msg: String| {
        if pb.is_hidden() {
            eprintln!("{msg}");
        } else {
            pb.println(msg);
        }
    };
    note(format!("sepconv-bench: {}", machine.summary()));
    note(format!(
        "suite {}: {} ceilings, {} rows, {} thread(s), {} ms per row in {} round(s)",
        plan.kind.name(),
        n_ceilings,
        jobs.len(),
        plan.threads,
        plan.budget.as_millis(),
        plan.rounds.max(1),
    ));

    let mut ceilings: Vec<Ceiling> = Vec::new();
    for &isa in &ceiling_isas {
        for &t in &thread_counts {
            pb.set_message(format!("ceilings {isa} x{t}"));
            if let Some(c) = measure_ceiling(&machine, isa, t, plan.probe) {
                note(format!(
                    "  ceiling {:<8} {t} thread(s): FMA {:7.1} GFLOP/s; read GB/s L1 {:.0}, L2 {:.0}, L3 {:.0}, DRAM {:.1}",
                    isa.name(),
                    c.fma_peak_gflops,
                    c.bandwidth("L1"),
                    c.bandwidth("L2"),
                    c.bandwidth("L3"),
                    c.bandwidth("DRAM"),
                ));
                note(format!(
                    "  {:<17} median / best trial: {}",
                    "",
                    c.steadiness_text()
                ));
                ceilings.push(c);
            }
            pb.inc(1);
        }
    }

    // Layer rows are measured in `rounds` interleaved rounds, their samples pooled: a burst of
    // load from other processes then spreads over many rows instead of sinking one.
    let rounds = plan.rounds.max(1);
    let round_budget = Budget::new(plan.budget / rounds as u32);
    let net_budget = Budget::new(plan.budget);
    let mut pooled: Vec<(Vec<f64>, usize)> = vec![(Vec::new(), 1); jobs.len()];
    let mut infos: Vec<Option<CaseInfo>> = vec![None; jobs.len()];
    for round in 0..rounds {
        for (i, job) in jobs.iter().enumerate() {
            let is_net = matches!(job, Job::Net { .. });
            if is_net && round > 0 {
                continue;
            }
            let id = job.id();
            pb.set_message(if rounds > 1 && !is_net {
                format!("{id} (round {}/{rounds})", round + 1)
            } else {
                id.clone()
            });
            let seed = 0x5EED + i as u64;
            let measured = match job {
                Job::Layer { k, layer } => match Case::new(*k, layer, seed) {
                    Ok(mut case) => {
                        infos[i] = Some(CaseInfo::of(&case));
                        // With several threads, timed inside the pool as an engine calls it
                        // (`Kernels::run_in_pool`): no wake-up from outside per call.
                        Some(k.run_in_pool(|| sample(&round_budget, || case.run())))
                    }
                    Err(e) => {
                        if round == 0 {
                            note(format!("  skipped {id}: {e}"));
                        }
                        None
                    }
                },
                Job::Reference { layer } => Case::reference(layer, seed).map(|mut case| {
                    infos[i] = Some(CaseInfo::of(&case));
                    sample(&round_budget, || case.run())
                }),
                Job::Net { k, net } => match NetRunner::new(*k, net, seed).and_then(|mut r| {
                    // As `sepconv-bench mobilenet` runs by default: the leading layers whose
                    // inputs exceed L2 fused in row bands, and the pairs `auto_pairs` picks.
                    let l2 = machine.cache_sizes()[1];
                    r.fuse_rows(r.auto_fusion(l2), FUSION_BAND_ROWS)?;
                    r.fuse_pairs(&r.auto_pairs(l2, FUSION_BAND_ROWS))
                        .map(|()| r)
                }) {
                    Ok(mut runner) => Some(sample(&net_budget, || {
                        std::hint::black_box(runner.run().expect("shapes checked when built"));
                    })),
                    Err(e) => {
                        note(format!("  skipped {id}: {e}"));
                        None
                    }
                },
            };
            if let Some((samples, calls)) = measured {
                pooled[i].0.extend(samples);
                pooled[i].1 = calls;
            }
            pb.inc(1);
        }
    }
    // The FMA peak once more at the end, the larger kept: a slow phase of the machine during
    // the first probe would set every row against too low a ceiling (seen on the Zen 3 VM: a
    // 100 ms probe at 82 instead of 102 GFLOP/s, and rows at 115-120% of that "peak").
    for c in &mut ceilings {
        pb.set_message(format!("ceilings {} x{} (end of run)", c.isa, c.threads));
        let end = Isa::from_name(&c.isa).and_then(|isa| fma_peak_stats(isa, c.threads, plan.probe));
        if let Some(end) = end {
            c.fma_peak_end_gflops = end.best;
            if end.best > c.fma_peak_gflops {
                note(format!(
                    "  ceiling {:<8} {} thread(s): FMA {:.1} GFLOP/s at the end of the run \
                     (start {:.1}): the end's is kept",
                    c.isa, c.threads, end.best, c.fma_peak_gflops
                ));
                c.fma_peak_gflops = end.best;
            }
        }
        pb.inc(1);
    }
    let mut rows = Vec::new();
    for ((job, (samples, calls)), info) in jobs.iter().zip(pooled).zip(&infos) {
        if samples.is_empty() {
            continue;
        }
        let t = Timing::from_samples(samples, calls);
        match (job, info) {
            (Job::Net { k, net }, _) => rows.push(net_row(&machine, &ceilings, *k, net, t)),
            (_, Some(info)) => rows.push(layer_row(&machine, &ceilings, info, t)),
            (_, None) => {}
        }
    }
    pb.finish_and_clear();

    Results {
        schema_version: SCHEMA_VERSION,
        tool: format!("sepconv-bench {}", env!("CARGO_PKG_VERSION")),
        created_unix,
        date: date_of(created_unix),
        git: git_info(workspace),
        toolchain: toolchain(),
        settings: Settings {
            suite: plan.kind.name().to_string(),
            threads: plan.threads,
            isas: plan.isas.iter().map(|i| i.name().to_string()).collect(),
            filter: plan.filter.clone(),
            budget_ms: plan.budget.as_millis() as u64,
            probe_ms: plan.probe.as_millis() as u64,
            rounds: plan.rounds.max(1),
            networks: plan.networks.iter().map(|n| n.id.clone()).collect(),
        },
        machine,
        ceilings,
        rows,
        wall_s: started.elapsed().as_secs_f64(),
    }
}

/// The roofline bound of `layer` on `ceiling`: `(bound GFLOP/s, level, bandwidth, kind)`.
pub fn layer_bound(
    machine: &Machine,
    ceiling: &Ceiling,
    layer: &Layer,
    threads: usize,
) -> (f64, &'static str, f64, &'static str) {
    let level = level_for(machine, layer.compulsory_bytes(), threads);
    let bw = ceiling.bandwidth(level);
    let mem = layer.arithmetic_intensity() * bw;
    if mem < ceiling.fma_peak_gflops {
        (mem, level, bw, "memory")
    } else {
        (ceiling.fma_peak_gflops, level, bw, "compute")
    }
}

fn find_ceiling<'a>(ceilings: &'a [Ceiling], isa: &str, threads: usize) -> Option<&'a Ceiling> {
    ceilings
        .iter()
        .find(|c| c.isa == isa && c.threads == threads)
}

/// What a row needs to know about the case it measured.
#[derive(Clone)]
struct CaseInfo {
    layer: Layer,
    label: String,
    isa: Option<Isa>,
    kernel: String,
    threads: usize,
}

impl CaseInfo {
    fn of(c: &Case) -> CaseInfo {
        CaseInfo {
            layer: c.layer.clone(),
            label: c.label.clone(),
            isa: c.isa,
            kernel: c.kernel.clone(),
            threads: c.threads,
        }
    }
}

fn layer_row(machine: &Machine, ceilings: &[Ceiling], case: &CaseInfo, t: Timing) -> Row {
    let l = &case.layer;
    // The reference is scalar code: it is set against the portable ceilings.
    let isa = case.isa.unwrap_or(Isa::Portable).name();
    let roof = match find_ceiling(ceilings, isa, case.threads) {
        Some(c) => {
            let (bound_gflops, level, bandwidth_gbs, bound) =
                layer_bound(machine, c, l, case.threads);
            Roof {
                level,
                peak_gflops: c.fma_peak_gflops,
                bandwidth_gbs,
                bound_gflops,
                bound,
            }
        }
        None => Roof {
            level: "?",
            peak_gflops: 0.0,
            bandwidth_gbs: 0.0,
            bound_gflops: 0.0,
            bound: "?",
        },
    };
    let what = Measured {
        tier: LAYER_TIER,
        op: l.op.name(),
        label: &case.label,
        isa,
        kernel: case.kernel.clone(),
        layer: &l.id,
        shape: l.shape_str(),
        threads: case.threads,
        flops: l.flops(),
        bytes: l.compulsory_bytes(),
    };
    timed_row(what, roof, t)
}

fn net_row(machine: &Machine, ceilings: &[Ceiling], k: Kernels, net: &Network, t: Timing) -> Row {
    let isa = k.isa().name();
    let flops = net.flops();
    let (peak_gflops, bound_gflops) = match find_ceiling(ceilings, isa, k.threads()) {
        Some(c) => {
            // The network's bound: every layer at its own bound, back to back.
            let secs: f64 = net
                .layers
                .iter()
                .map(|l| l.flops() as f64 / (layer_bound(machine, c, l, k.threads()).0 * 1e9))
                .sum();
            (c.fma_peak_gflops, flops as f64 / secs / 1e9)
        }
        None => (0.0, 0.0),
    };
    let roof = Roof {
        level: "mixed",
        peak_gflops,
        bandwidth_gbs: 0.0,
        bound_gflops,
        bound: "layers",
    };
    let what = Measured {
        tier: NET_TIER,
        op: net_op(net),
        label: isa,
        isa,
        kernel: format!("{} + {}", k.gemm_kernel().name, k.dw_kernel(1).name),
        layer: &net.id,
        shape: format!(
            "{}: {} layers, {:.0} M mult-adds",
            net.name,
            net.layers.len(),
            net.macs() as f64 / 1e6
        ),
        threads: k.threads(),
        flops,
        bytes: net.layers.iter().map(Layer::compulsory_bytes).sum(),
    };
    timed_row(what, roof, t)
}

/// What a row measured (the [`Row`] fields of the same names).
struct Measured<'a> {
    tier: &'a str,
    op: &'a str,
    label: &'a str,
    isa: &'a str,
    kernel: String,
    layer: &'a str,
    shape: String,
    threads: usize,
    flops: u64,
    bytes: u64,
}

/// The roofline a row is set against (the [`Row`] fields of the same names).
struct Roof {
    level: &'static str,
    peak_gflops: f64,
    bandwidth_gbs: f64,
    bound_gflops: f64,
    bound: &'static str,
}

/// The row of `what`, timed at `t`, against `roof`: its id, arithmetic intensity, rates and
/// ratios follow from these.
fn timed_row(what: Measured<'_>, roof: Roof, t: Timing) -> Row {
    let gflops = what.flops as f64 / t.median_s / 1e9;
    let best_gflops = what.flops as f64 / t.min_s / 1e9;
    Row {
        id: bench_id(what.tier, what.op, what.label, what.layer),
        tier: what.tier.to_string(),
        op: what.op.to_string(),
        label: what.label.to_string(),
        isa: what.isa.to_string(),
        kernel: what.kernel,
        layer: what.layer.to_string(),
        shape: what.shape,
        threads: what.threads,
        flops: what.flops,
        bytes: what.bytes,
        ai: what.flops as f64 / what.bytes as f64,
        level: roof.level.to_string(),
        samples: t.samples,
        median_s: t.median_s,
        min_s: t.min_s,
        mad_s: t.mad_s,
        gflops,
        peak_gflops: roof.peak_gflops,
        bandwidth_gbs: roof.bandwidth_gbs,
        bound_gflops: roof.bound_gflops,
        bound: roof.bound.to_string(),
        pct_of_bound: pct(gflops, roof.bound_gflops),
        efficiency: ratio(gflops, roof.peak_gflops),
        best_gflops,
        best_efficiency: ratio(best_gflops, roof.peak_gflops),
    }
}

fn pct(a: f64, b: f64) -> f64 {
    100.0 * ratio(a, b)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_list_each_layer_once() {
        let p = Plan::new(SuiteKind::Default, 1, None);
        let layers = p.layers();
        assert_eq!(layers.len(), 29 + 13);
        assert!(layers.iter().any(|l| l.id == "mbv1_a100_r224_std13"));
        let ci = Plan::new(SuiteKind::Ci, 1, None);
        assert_eq!(ci.layers().len(), 28);
        assert!(ci.whole.is_empty());
        let full = Plan::new(SuiteKind::Full, 1, None);
        assert_eq!(full.whole.len(), 16);
        assert!(full
            .layers()
            .iter()
            .any(|l| l.id == "mbv2_a100_r224_b17_proj"));
    }

    #[test]
    fn a_tiny_run_measures_rows_and_ceilings() {
        let mut p = Plan::new(SuiteKind::Ci, 1, Some(vec![Isa::Portable]));
        p.filter = Some("r224_dw13".to_string());
        p.budget = Duration::from_millis(5);
        p.probe = Duration::from_millis(10);
        let r = run(&p, std::path::Path::new("."));
        assert_eq!(r.rows.len(), 1);
        let row = &r.rows[0];
        assert_eq!(row.id, "layer.dwconv3x3/portable/mbv1_a100_r224_dw13");
        assert!(row.gflops > 0.0 && row.peak_gflops > 0.0 && row.bound_gflops > 0.0);
        let c = r
            .ceiling("portable", 1)
            .expect("portable ceiling at 1 thread");
        // The peak is the larger of the start and end probes; the medians are recorded.
        assert!(c.fma_peak_end_gflops > 0.0 && c.fma_peak_gflops >= c.fma_peak_end_gflops);
        assert!(c.fma_median_gflops > 0.0 && c.fma_median_gflops <= c.fma_peak_gflops);
        for level in ["L1", "L2", "L3", "DRAM"] {
            let m = c.bandwidth_median_gbs[level];
            assert!(m > 0.0 && m <= c.bandwidth(level), "{level}");
        }
        assert_eq!(c.steadiness().len(), 5);
        assert!(crate::roofline::roofline_md(&r).contains("Steadiness, median / best"));
    }
}
