//! `sepconv-bench`: the report tool (`report`), the CI regression check (`compare`), the whole
//! network (`mobilenet`), and the analytic tables (`cost`, `layers`).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sepconv::Isa;
use sepconv_bench::compare::{compare, pick_baseline, CompareFile, Comparison, Metric};
use sepconv_bench::suite::{Plan, SuiteKind};
use sepconv_bench::{cost_ratio, report, roofline, suite, workloads};

#[derive(Parser)]
#[command(
    name = "sepconv-bench",
    version,
    about = "Benchmarks, machine ceilings, roofline reports and MobileNet cost tables for sepconv"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the suite on every ISA this CPU has; write roofline.md, results.json, roofline.svg and
    /// cost_ratio.md to reports/<date>_<cpu>/ and print a summary.
    Report(ReportArgs),
    /// Compare a results.json with a baseline by row id: fail (exit 1) when any row's efficiency
    /// (GFLOP/s / peak measured in the same run) dropped by more than the threshold. Of several
    /// baselines the one recorded on a machine like this one is used; when none was, the first,
    /// by % of each row's roofline bound instead of % of peak.
    Compare {
        /// The new results.json.
        new: PathBuf,
        /// Baseline results.json files, one per machine (e.g. reports/baselines/*.json).
        #[arg(required = true)]
        baselines: Vec<PathBuf>,
        /// Largest allowed relative drop in efficiency (0.15 = 15%).
        #[arg(long, default_value_t = 0.15)]
        threshold: f64,
        /// Another results.json of the same build (repeatable): each row counts at its best
        /// over NEW and the reruns, so a row fails only when every run measured it slow.
        #[arg(long)]
        rerun: Vec<PathBuf>,
        /// BASELINES are runs of the baseline's revision made on this machine alongside NEW and
        /// its reruns: compare each row's best GFLOP/s over each side's runs.
        #[arg(long, conflicts_with = "baseline_revision")]
        paired: bool,
        /// Print the revision the picked baseline was recorded from (to rebuild it), and exit;
        /// exit 2 when it is unknown or was dirty.
        #[arg(long)]
        baseline_revision: bool,
    },
    /// Rewrite the four report files from an existing results.json (no measuring).
    Render {
        /// The results.json to render.
        results: PathBuf,
        /// Directory to write into (default: the results file's directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the paper's cost tables reproduced from the layer tables (no measuring).
    Cost,
    /// Measure the machine's ceilings only: FMA peak per ISA (1 and all threads) and read
    /// bandwidth over a sweep of buffer sizes (where do the cache levels end?).
    Probe {
        /// Milliseconds per probe.
        #[arg(long, default_value_t = 200)]
        probe_ms: u64,
    },
    /// Run the whole MobileNet v1 (or Conv MobileNet) forward: per-layer time, share and GFLOP/s
    /// inside whole inferences, end-to-end latency (median, min, max) against the FMA peak
    /// measured in the same run, and the top-5 classes.
    Mobilenet(sepconv_bench::mobilenet::cli::MobilenetArgs),
    /// List the workload layers: id, shape, mult-adds, parameters, arithmetic intensity.
    Layers {
        /// Only layers whose id contains this.
        filter: Option<String>,
    },
}

#[derive(Args)]
struct ReportArgs {
    /// Only rows whose id contains this, e.g. `avx2`, `dwconv3x3`, `r224_pw1`.
    filter: Option<String>,
    /// Everything: every width multiplier and resolution, MobileNet v2, all whole networks (long).
    #[arg(long, conflicts_with = "ci")]
    full: bool,
    /// The short CI suite (MobileNet v1 1.0-224 dw/pw/stem/fc layers on every SIMD ISA, short
    /// budgets; add `--isa portable,...` to include the portable kernels).
    #[arg(long)]
    ci: bool,
    /// Threads for the operators (0 = all CPUs). Ceilings are measured at 1 and all CPUs too.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// ISAs to measure, comma-separated (default: every ISA this CPU has).
    #[arg(long, value_delimiter = ',')]
    isa: Vec<String>,
    /// Directory to write the four files into (default: reports/<date>_<cpu>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Time budget per row in milliseconds (default: 400; --full 1000; --ci 600).
    #[arg(long)]
    budget_ms: Option<u64>,
    /// Time per ceiling probe in milliseconds (default: 250).
    #[arg(long)]
    probe_ms: Option<u64>,
    /// Interleaved rounds over the layer rows, sharing the budget (default: 3; --ci 6).
    #[arg(long)]
    rounds: Option<usize>,
}

/// Prints a comparison; failure when it failed.
fn verdict(c: &Comparison) -> ExitCode {
    print!("{}", c.report());
    if c.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Report(a) => run_report(a),
        Cmd::Compare {
            new,
            baselines,
            threshold,
            rerun,
            paired,
            baseline_revision,
        } => {
            let load = |p: &PathBuf| CompareFile::load(p);
            let reruns: Result<Vec<_>, _> = rerun.iter().map(load).collect();
            let bases: Result<Vec<_>, _> = baselines.iter().map(load).collect();
            match (load(&new), bases, reruns) {
                (Ok(n), Ok(bases), Ok(r)) => {
                    let Some((i, metric)) = pick_baseline(&n, &bases) else {
                        eprintln!("sepconv-bench compare: no baseline given");
                        return ExitCode::from(2);
                    };
                    if baseline_revision {
                        return match bases[i].clean_revision() {
                            Some(rev) => {
                                println!("{rev}");
                                ExitCode::SUCCESS
                            }
                            None => {
                                eprintln!(
                                    "sepconv-bench compare: {} has no clean revision",
                                    baselines[i].display()
                                );
                                ExitCode::from(2)
                            }
                        };
                    }
                    if paired {
                        println!(
                            "paired: this build ({} runs) against the baseline's revision built \
                             and measured alongside it ({} runs), each row at its best per side",
                            1 + r.len(),
                            bases.len()
                        );
                        let b = bases[0].clone().best_of(&bases[1..], Metric::Rate);
                        let c = compare(&n.best_of(&r, Metric::Rate), &b, threshold, Metric::Rate);
                        return verdict(&c);
                    }
                    let b = &bases[i];
                    let on = |f: &CompareFile| {
                        f.machine
                            .as_ref()
                            .map_or("an unrecorded machine".to_string(), |m| m.cpu_model.clone())
                    };
                    println!(
                        "baseline: {} (recorded on {}){}",
                        baselines[i].display(),
                        on(b),
                        if metric == Metric::Bound {
                            format!(
                                "; none was recorded on this machine ({}): rows compared by % of \
                                 their roofline bound",
                                on(&n)
                            )
                        } else {
                            String::new()
                        }
                    );
                    verdict(&compare(&n.best_of(&r, metric), b, threshold, metric))
                }
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    eprintln!("sepconv-bench compare: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Probe { probe_ms } => {
            let d = Duration::from_millis(probe_ms);
            let m = sepconv_bench::machine::Machine::detect();
            println!("{}", m.summary());
            let all = m.logical_cpus;
            for isa in Isa::available() {
                let stats = |t| sepconv::probe::fma_peak_stats(isa, t, d);
                let (Some(one), Some(many)) = (stats(1), stats(all)) else {
                    continue;
                };
                println!(
                    "{:<9} FMA peak {:7.1} GFLOP/s (1 thread; median trial {:.1}), {:7.1} ({all} \
                     threads; median {:.1})",
                    isa.name(),
                    one.best,
                    one.median,
                    many.best,
                    many.median
                );
            }
            println!("\nread bandwidth, GB/s, 1 thread:");
            print!("{:>10}", "bytes");
            for isa in Isa::available() {
                print!("  {:>9}", isa.name());
            }
            println!();
            let mut bytes = 8usize << 10;
            while bytes <= 256 << 20 {
                print!("{:>10}", sepconv_bench::machine::human_bytes(bytes as u64));
                for isa in Isa::available() {
                    let bw = sepconv::probe::read_bandwidth_gbs_for(isa, bytes, 1, d);
                    print!("  {:>9.1}", bw.unwrap_or(0.0));
                }
                println!();
                bytes *= 2;
            }
            ExitCode::SUCCESS
        }
        Cmd::Render { results, out } => {
            let r = match sepconv_bench::results::Results::load(&results) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("sepconv-bench render: {e}");
                    return ExitCode::from(2);
                }
            };
            let dir = out.unwrap_or_else(|| {
                results
                    .parent()
                    .map_or_else(|| PathBuf::from("."), PathBuf::from)
            });
            match report::write(&r, &dir) {
                Ok(files) => {
                    for f in files {
                        println!("{}", f.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sepconv-bench render: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Mobilenet(a) => {
            if cfg!(debug_assertions) {
                eprintln!(
                    "sepconv-bench: warning: a debug build; run with --release for real numbers"
                );
            }
            match sepconv_bench::mobilenet::cli::run(&a) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sepconv-bench mobilenet: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Cost => {
            print!("{}", cost_ratio::analytic_md());
            ExitCode::SUCCESS
        }
        Cmd::Layers { filter } => {
            let mut nets: Vec<workloads::Network> = workloads::V1_ALPHAS
                .iter()
                .flat_map(|&a| {
                    workloads::V1_RESOLUTIONS.iter().flat_map(move |&r| {
                        [
                            workloads::mobilenet_v1(a, r),
                            workloads::conv_mobilenet_v1(a, r),
                        ]
                    })
                })
                .collect();
            nets.push(workloads::mobilenet_v2());
            let mut seen = std::collections::BTreeSet::new();
            println!(
                "{:<28} {:<10} {:<30} {:>10} {:>10} {:>6}",
                "id", "op", "shape", "M madds", "K params", "AI"
            );
            for l in nets.iter().flat_map(|n| &n.layers) {
                if filter.as_deref().is_some_and(|f| !l.id.contains(f)) || !seen.insert(&l.id) {
                    continue;
                }
                println!(
                    "{:<28} {:<10} {:<30} {:>10.2} {:>10.1} {:>6.1}",
                    l.id,
                    l.op.name(),
                    l.shape_str(),
                    l.macs() as f64 / 1e6,
                    l.params() as f64 / 1e3,
                    l.arithmetic_intensity()
                );
            }
            ExitCode::SUCCESS
        }
    }
}

fn run_report(a: ReportArgs) -> ExitCode {
    let kind = if a.full {
        SuiteKind::Full
    } else if a.ci {
        SuiteKind::Ci
    } else {
        SuiteKind::Default
    };
    let isas = if a.isa.is_empty() {
        None
    } else {
        let mut v = Vec::new();
        for name in &a.isa {
            match Isa::from_name(name) {
                Some(i) if i.is_available() => v.push(i),
                Some(i) => {
                    eprintln!("sepconv-bench: this CPU (or build) cannot run {i}");
                    return ExitCode::from(2);
                }
                None => {
                    eprintln!("sepconv-bench: unknown ISA {name:?} (portable, avx2, avx512, neon)");
                    return ExitCode::from(2);
                }
            }
        }
        v.sort();
        v.dedup();
        Some(v)
    };
    let threads = if a.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        a.threads
    };
    if cfg!(debug_assertions) {
        eprintln!("sepconv-bench: warning: a debug build; run with --release for real numbers");
    }
    let mut plan = Plan::new(kind, threads, isas);
    plan.filter = a.filter;
    if let Some(ms) = a.budget_ms {
        plan.budget = Duration::from_millis(ms);
    }
    if let Some(ms) = a.probe_ms {
        plan.probe = Duration::from_millis(ms);
    }
    if let Some(r) = a.rounds {
        plan.rounds = r.max(1);
    }
    let results = suite::run(&plan, &report::workspace_root());
    print!("{}", roofline::terminal_summary(&results));
    println!();
    print!("{}", cost_ratio::explanation(&results));
    let dir = a.out.unwrap_or_else(|| report::default_dir(&results));
    match report::write(&results, &dir) {
        Ok(files) => {
            println!("\nwrote (in {:.0} s):", results.wall_s);
            for f in files {
                println!("  {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sepconv-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
