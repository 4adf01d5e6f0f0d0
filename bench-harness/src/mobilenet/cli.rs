//! `sepconv-bench mobilenet`: runs the whole network repeatedly and prints per-layer times
//! (measured inside the whole forwards, and each layer alone beside them), end-to-end latency
//! and the top-5 classes.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use rand::rngs::StdRng;
use rand::SeedableRng;
use sepconv::{Isa, Kernels};

use super::{network, parse_alpha, top_k, ModelError, NetRunner, Weights, FUSION_BAND_ROWS};
use crate::cases::random_vec;
use crate::machine::Machine;
use crate::measure::median;

/// Seed of the default random weights and of the input images.
pub const SEED: u64 = 0x5EED;

/// Arguments of `sepconv-bench mobilenet`.
#[derive(Args, Clone, Debug)]
pub struct MobilenetArgs {
    /// Width multiplier: 1.0, 0.75, 0.5 or 0.25.
    #[arg(long, default_value = "1.0")]
    pub alpha: String,
    /// Input resolution: 224, 192, 160 or 128.
    #[arg(long, default_value_t = 224)]
    pub resolution: usize,
    /// Threads for the operators (0 = all CPUs).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Images per inference.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// ISA to run (portable, avx2, avx512, neon; default: the best, or SEPCONV_ISA).
    #[arg(long)]
    pub isa: Option<String>,
    /// Unfolded weights from a .safetensors file with Keras' MobileNet tensor names (default:
    /// seeded random weights and batch norm).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Write the weights used (unfolded) to this .safetensors file and continue.
    #[arg(long)]
    pub save_weights: Option<PathBuf>,
    /// Conv MobileNet (paper Table 4): standard 3x3 convolutions instead of separable blocks.
    #[arg(long)]
    pub conv: bool,
    /// Exactly this many timed inferences (after 2 warm-up ones).
    #[arg(long, conflicts_with = "budget_ms")]
    pub runs: Option<usize>,
    /// Time budget in milliseconds for the timed inferences (default 3000; at least 5 runs).
    #[arg(long)]
    pub budget_ms: Option<u64>,
    /// Also time each layer alone: after every timed inference, each layer twice on the buffers
    /// the network gives it, the second time timed (its caches warm from itself). Prints the
    /// median beside the layer's time inside the inferences, and which layers the network's data
    /// movement slows most. Each round then costs about three inferences. The network then runs
    /// layer by layer (no `--fuse`).
    #[arg(long)]
    pub alone: bool,
    /// GEMM micro-kernel by name, instead of the ISA's production one (a registered variant of
    /// the same ISA, e.g. gemm_f32_14x16_avx512): to see which tile suits this CPU.
    #[arg(long)]
    pub gemm_kernel: Option<String>,
    /// Depthwise kernel by name (either stride; the other stride follows with the same channel
    /// tile), instead of the ISA's production one.
    #[arg(long)]
    pub dw_kernel: Option<String>,
    /// Run the first LAYERS layers as a pipeline of row bands: each layer produces only the
    /// rows the next one reads, into windows of a few rows that stay in cache, instead of whole
    /// activations. `auto`: through the last layer whose input is larger than this core's L2
    /// (MobileNet v1 1.0-224: 8 layers with a 1 MiB L2); 0: layer by layer. `--alone` runs
    /// layer by layer.
    #[arg(long, default_value = "auto")]
    pub fuse: String,
    /// Output rows per call of each fused layer.
    #[arg(long, default_value_t = FUSION_BAND_ROWS)]
    pub band: usize,
    /// Run pointwise layers together with the depthwise layer after them in row bands
    /// (`NetRunner::fuse_pairs`), so the depthwise layer reads the pointwise output while it is
    /// in cache. `auto` (one thread, batch 1): the pairs after the fused prefix whose depthwise
    /// layer has stride 2 and whose weights take less than a quarter of L2, each band the
    /// fewest rows from `--band` on that hold whole GEMM row tiles (the results then equal
    /// layer by layer's, bit for bit); `none`; or the pointwise layers' indices, comma-separated
    /// (2 = conv_pw_1, 4 = conv_pw_2, ...), with bands of `--band` rows.
    #[arg(long, default_value = "auto")]
    pub pairs: String,
    /// Lay every activation out densely, without the line of padding per pixel that 512- and
    /// 1024-channel activations get by default (`NetRunner::pad_pixels`).
    #[arg(long)]
    pub dense: bool,
}

/// Runs the command; returns the text to print.
pub fn run(a: &MobilenetArgs) -> Result<String, ModelError> {
    let alpha = parse_alpha(&a.alpha)?;
    let net = network(alpha, a.resolution, a.conv)?;
    let k = match &a.isa {
        Some(name) => {
            let isa = Isa::from_name(name).ok_or_else(|| {
                ModelError::Unsupported(format!(
                    "unknown ISA {name:?} (portable, avx2, avx512, neon)"
                ))
            })?;
            Kernels::for_isa(isa).ok_or(ModelError::Kernel(sepconv::Error::IsaUnavailable(isa)))?
        }
        None => Kernels::try_best()?,
    };
    let threads = if a.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        a.threads
    };
    let mut k = k.with_threads(threads)?;
    if let Some(name) = &a.gemm_kernel {
        let g = sepconv::registry::GEMM_KERNELS
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| ModelError::Unsupported(format!("no GEMM kernel named {name:?}")))?;
        k = k.with_gemm_kernel(g)?;
    }
    if let Some(name) = &a.dw_kernel {
        let d = sepconv::registry::DW_KERNELS
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| {
                ModelError::Unsupported(format!("no depthwise kernel named {name:?}"))
            })?;
        k = k.with_dw_kernel(d)?;
    }
    let (weights, source) = match &a.weights {
        Some(p) => (Weights::load(p)?, p.display().to_string()),
        None => (
            Weights::random(&net, SEED),
            format!("random (seed {SEED:#x}), batch norm folded"),
        ),
    };
    if let Some(p) = &a.save_weights {
        weights.save(p)?;
    }
    let mut runner = NetRunner::with_weights(k, &net, &weights, a.batch)?;
    let fuse = match a.fuse.as_str() {
        _ if a.alone => 0,
        "auto" => runner.auto_fusion(Machine::detect().cache_sizes()[1]),
        n => n.parse().map_err(|_| {
            ModelError::Unsupported(format!("--fuse {n:?}: a number of layers, or auto"))
        })?,
    };
    runner.fuse_rows(fuse, a.band)?;
    let pairs = match a.pairs.as_str() {
        _ if a.alone => Vec::new(),
        "auto" => runner.auto_pairs(Machine::detect().cache_sizes()[1], a.band),
        "none" => Vec::new(),
        list => (list.split(','))
            .map(|i| i.trim().parse().map(|i| (i, a.band)))
            .collect::<Result<_, _>>()
            .map_err(|_| {
                ModelError::Unsupported(format!(
                    "--pairs {list:?}: auto, none or layer indices (2,4,..)"
                ))
            })?,
    };
    runner.fuse_pairs(&pairs)?;
    runner.pad_pixels(!a.dense);
    let mut rng = StdRng::seed_from_u64(SEED + 1);
    let len = runner.input_mut().len();
    runner
        .input_mut()
        .copy_from_slice(&random_vec(&mut rng, len, 1.0));

    let isa = k.isa();
    let peak_before = sepconv::probe::fma_peak_gflops(isa, threads).unwrap_or(0.0);
    for _ in 0..2 {
        runner.run()?;
    }
    let n_stages = runner.layers().count() + 1;
    let mut per_layer: Vec<Vec<f64>> = vec![Vec::new(); n_stages];
    let mut total = Vec::new();
    let mut times = vec![0.0; n_stages];
    let mut alone: Vec<Vec<f64>> = vec![Vec::new(); if a.alone { n_stages - 1 } else { 0 }];
    let budget = Duration::from_millis(a.budget_ms.unwrap_or(3000));
    let start = Instant::now();
    loop {
        let done = match a.runs {
            Some(r) => total.len() >= r.max(1),
            None => total.len() >= 5 && start.elapsed() >= budget || total.len() >= 100_000,
        };
        if done {
            break;
        }
        times.fill(0.0);
        let t0 = Instant::now();
        runner.run_timed(&mut times)?;
        total.push(t0.elapsed().as_secs_f64());
        for (s, &t) in per_layer.iter_mut().zip(&times) {
            s.push(t);
        }
        // Interleaved with the inferences, so both see the machine in the same phase.
        for (i, s) in alone.iter_mut().enumerate() {
            runner.run_layer(i)?;
            let t0 = Instant::now();
            runner.run_layer(i)?;
            s.push(t0.elapsed().as_secs_f64());
        }
    }
    let alone: Vec<f64> = alone.iter_mut().map(|s| median(s)).collect();
    // After the runs: the FMA peak again, and how steady the core's FMA and L1 throughput were
    // (median / best trial), to read the latency median against.
    let d = sepconv::probe::DEFAULT_DURATION;
    let fma_after = sepconv::probe::fma_peak_stats(isa, threads, d);
    let l1_after = sepconv::probe::read_bandwidth_stats(isa, 16 << 10, threads, d);
    let peak_after = fma_after.map_or(0.0, |s| s.best);
    let peak = peak_before.max(peak_after);
    let steady = |s: Option<sepconv::probe::ProbeStats>| {
        s.filter(|s| s.best > 0.0)
            .map_or_else(|| "-".to_string(), |s| format!("{:.2}", s.median / s.best))
    };

    let batch = a.batch as f64;
    let mut o = String::new();
    let dw = |s| k.dw_kernel(s).name;
    let _ = writeln!(
        o,
        "{}: batch {}, {isa}, {threads} thread{} ({}, {} / {})",
        net.name,
        a.batch,
        if threads == 1 { "" } else { "s" },
        k.gemm_kernel().name,
        dw(1),
        dw(2)
    );
    let _ = writeln!(
        o,
        "{:.1} M mult-adds and {:.2} M weights per image; weights: {source}",
        net.macs() as f64 / 1e6,
        net.params() as f64 / 1e6
    );
    let _ = writeln!(
        o,
        "FMA peak {peak:.1} GFLOP/s ({threads} thread{}, measured in this run: {peak_before:.1} \
         before, {peak_after:.1} after; the larger is used); {} timed runs; steadiness after \
         them (median / best probe trial): FMA {}, L1 reads {}",
        if threads == 1 { "" } else { "s" },
        total.len(),
        steady(fma_after),
        steady(l1_after)
    );
    if let Some((layers, band, windows)) = runner.fused() {
        let _ =
            writeln!(
            o,
            "first {layers} layers fused in row bands: {band} output rows per call; windows of \
             {windows:?} rows{} (a layer's time below is its share inside the pipeline{})",
            if threads > 1 { " per thread" } else { "" },
            if threads > 1 { ", on the first thread's slab of rows" } else { "" }
        );
    }
    let pairs = runner.fused_pairs();
    if !pairs.is_empty() {
        let names: Vec<&str> = runner.layers().map(|(n, _)| n).collect();
        let list: Vec<String> = (pairs.iter())
            .map(|&(i, band, in_place)| {
                let place = if in_place { ", in place" } else { "" };
                format!("{} + {} ({band} rows{place})", names[i], names[i + 1])
            })
            .collect();
        let _ = writeln!(o, "fused in row bands: {}", list.join(", "));
    }
    let padded = (runner.out_pixel_strides().iter())
        .zip(runner.layers())
        .filter(|(&p, (_, l))| p != l.cout)
        .count();
    if padded > 0 {
        let _ = writeln!(
            o,
            "{padded} activations (512 or 1024 channels) padded by a 64-byte line per pixel \
             (--dense: none)"
        );
    }
    let _ = writeln!(o);
    if a.alone {
        let _ = writeln!(
            o,
            "layer times: median inside the whole inferences (share, GFLOP/s and % of peak from \
             it) and median of the layer alone (run twice after each inference, the second timed)"
        );
    }
    let _ = writeln!(
        o,
        "{:<24} {:<30} {:>8} {:>10}{} {:>7} {:>8} {:>7}",
        "layer",
        "shape",
        "MFLOP",
        "median ms",
        if a.alone { "  alone ms" } else { "" },
        "share %",
        "GFLOP/s",
        "% peak"
    );
    let medians: Vec<f64> = per_layer.iter_mut().map(|s| median(s)).collect();
    let sum: f64 = medians.iter().sum();
    let mut rows: Vec<(String, String, f64)> = runner
        .layers()
        .map(|(name, l)| {
            (
                name.to_string(),
                l.shape_str(),
                l.flops() as f64 * batch / 1e6,
            )
        })
        .collect();
    rows.push((
        "softmax".into(),
        format!("{} classes", runner.classes()),
        0.0,
    ));
    for (i, ((name, shape, mflop), &t)) in rows.iter().zip(&medians).enumerate() {
        let gflops = if t > 0.0 { mflop / 1e3 / t } else { 0.0 };
        let alone_ms = match alone.get(i) {
            Some(t) => format!(" {:>9.4}", t * 1e3),
            None if a.alone => format!(" {:>9}", "-"),
            None => String::new(),
        };
        let _ = writeln!(
            o,
            "{name:<24} {shape:<30} {mflop:>8.2} {:>10.4}{alone_ms} {:>7.2} {gflops:>8.1} {:>7.1}",
            t * 1e3,
            100.0 * t / sum,
            pct(gflops, peak)
        );
    }
    let flops = net.flops() as f64 * batch;
    let alone_sum: f64 = alone.iter().sum();
    let _ = writeln!(
        o,
        "{:<24} {:<30} {:>8.2} {:>10.4}{} {:>7.2} {:>8.1} {:>7.1}",
        "sum of layer medians",
        "",
        flops / 1e6,
        sum * 1e3,
        if a.alone {
            format!(" {:>9.4}", alone_sum * 1e3)
        } else {
            String::new()
        },
        100.0,
        flops / 1e9 / sum,
        pct(flops / 1e9 / sum, peak)
    );
    if a.alone {
        // Where the network's data movement costs most: the layers slowest inside it against
        // alone.
        let mut extra: Vec<(f64, &str)> = alone
            .iter()
            .zip(&medians)
            .zip(&rows)
            .map(|((a, t), (name, ..))| (t - a, name.as_str()))
            .collect();
        extra.sort_by(|a, b| b.0.total_cmp(&a.0));
        let most: Vec<String> = extra
            .iter()
            .take(4)
            .map(|(d, name)| format!("{name} {:+.3}", d * 1e3))
            .collect();
        let _ = writeln!(
            o,
            "inside the network the layers took {:+.3} ms against alone (sum of medians); most: \
             {} ms",
            (sum - medians.last().copied().unwrap_or(0.0) - alone_sum) * 1e3,
            most.join(", ")
        );
    }
    let (lo, hi) = total.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &t| {
        (lo.min(t), hi.max(t))
    });
    let med = median(&mut total);
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "end-to-end latency (batch {}): median {:.3} ms, min {:.3} ms, max {:.3} ms over {} runs; \
         {:.1} GFLOP/s at the median = {:.1}% of the FMA peak{}",
        a.batch,
        med * 1e3,
        lo * 1e3,
        hi * 1e3,
        per_layer[0].len(),
        flops / 1e9 / med,
        pct(flops / 1e9 / med, peak),
        if a.batch > 1 {
            format!(" ({:.3} ms per image)", med * 1e3 / batch)
        } else {
            String::new()
        }
    );
    let probs = runner.probabilities();
    let shown = a.batch.min(4);
    for (i, p) in probs.chunks_exact(runner.classes()).take(shown).enumerate() {
        let top: Vec<String> = top_k(p, 5)
            .iter()
            .map(|(c, v)| format!("{c} ({v:.4})"))
            .collect();
        let _ = writeln!(o, "top-5 classes, image {i}: {}", top.join(", "));
    }
    if a.batch > shown {
        let _ = writeln!(o, "({} more images not shown)", a.batch - shown);
    }
    Ok(o)
}

fn pct(gflops: f64, peak: f64) -> f64 {
    if peak > 0.0 {
        100.0 * gflops / peak
    } else {
        0.0
    }
}
