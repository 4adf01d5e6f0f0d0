//! `cost_ratio.md`: the paper's cost tables reproduced from the layer tables, and the cost ratio
//! of depthwise-separable vs standard convolution measured per layer and end to end.

#![forbid(unsafe_code)]

use std::fmt::Write;

use crate::cases::bench_id;
use crate::results::{Results, Row};
use crate::roofline::{fmt_time, header};
use crate::workloads::{
    conv_mobilenet_v1, mobilenet_v1, mobilenet_v2, Layer, Network, Op, V1_BLOCKS,
};

/// The paper's "Conv MobileNet" / MobileNet mult-add ratio (Table 4: 4866 M / 569 M).
pub const PAPER_NET_RATIO: f64 = 4866.0 / 569.0;

/// One published number and ours.
struct Cmp {
    what: String,
    ours: f64,
    paper: f64,
    /// Decimals the paper prints.
    decimals: usize,
    /// Unit after the numbers (`M`, `x`).
    unit: &'static str,
    /// Replaces the verdict when the comparison needs a word of explanation.
    note: Option<&'static str>,
}

impl Cmp {
    fn new(what: impl Into<String>, ours: f64, paper: f64, decimals: usize) -> Cmp {
        Cmp {
            what: what.into(),
            ours,
            paper,
            decimals,
            unit: "M",
            note: None,
        }
    }

    fn unit(mut self, unit: &'static str) -> Cmp {
        self.unit = unit;
        self
    }

    fn note(mut self, note: &'static str) -> Cmp {
        self.note = Some(note);
        self
    }

    fn diff_pct(&self) -> f64 {
        100.0 * (self.ours / self.paper - 1.0)
    }

    /// Within 2%, or the same once rounded as the paper prints it.
    fn ok(&self) -> bool {
        let scale = 10f64.powi(self.decimals as i32);
        self.diff_pct().abs() <= 2.0 || (self.ours * scale).round() == (self.paper * scale).round()
    }

    fn line(&self) -> String {
        let (d, unit) = (self.decimals + 1, self.unit);
        format!(
            "| {} | {:.d$} {unit} | {:.p$} {unit} | {:+.2}% | {} |",
            self.what,
            self.ours,
            self.paper,
            self.diff_pct(),
            if let Some(note) = self.note {
                note
            } else if self.ok() {
                if self.diff_pct().abs() <= 2.0 {
                    "yes"
                } else {
                    "yes, at the paper's precision"
                }
            } else {
                "**no**"
            },
            p = self.decimals,
        )
    }
}

fn table(s: &mut String, title: &str, rows: &[Cmp]) {
    let _ = writeln!(s, "| {title} | ours | paper | difference | within 2% |");
    let _ = writeln!(s, "|---|---:|---:|---:|---|");
    for r in rows {
        let _ = writeln!(s, "{}", r.line());
    }
    s.push('\n');
}

fn m(n: &Network) -> f64 {
    n.macs() as f64 / 1e6
}

fn p(n: &Network) -> f64 {
    n.params() as f64 / 1e6
}

/// Section 1, the analytic tables (also printed by `sepconv-bench cost`).
pub fn analytic_md() -> String {
    let mut s = String::new();
    let (v1, conv) = (mobilenet_v1(100, 224), conv_mobilenet_v1(100, 224));
    let _ = writeln!(
        s,
        "Computed from the layer tables in `bench-harness/src/workloads.rs` (multiply-adds of \
         every conv and the classifier; parameters = weights, as the paper counts them: no biases, \
         no batch norm). \"Within 2%\" also accepts a number that rounds to the paper's printed \
         value (the paper prints 0.5 M for 0.46 M).\n"
    );
    let _ = writeln!(
        s,
        "### Table 4: depthwise-separable vs full convolution MobileNet\n"
    );
    table(
        &mut s,
        "mult-adds",
        &[
            Cmp::new("MobileNet 1.0-224", m(&v1), 569.0, 0),
            Cmp::new("Conv MobileNet 1.0-224", m(&conv), 4866.0, 0),
            Cmp::new(
                "ratio Conv / separable",
                m(&conv) / m(&v1),
                PAPER_NET_RATIO,
                2,
            )
            .unit("x"),
        ],
    );
    table(
        &mut s,
        "parameters",
        &[
            Cmp::new("MobileNet 1.0-224", p(&v1), 4.2, 1),
            Cmp::new("Conv MobileNet 1.0-224", p(&conv), 29.3, 1),
        ],
    );
    let _ = writeln!(s, "### Table 6: width multiplier (resolution 224)\n");
    let w: Vec<(u32, f64, f64)> = vec![
        (100, 569.0, 4.2),
        (75, 325.0, 2.6),
        (50, 149.0, 1.3),
        (25, 41.0, 0.5),
    ];
    let nets: Vec<(u32, Network)> = w.iter().map(|&(a, ..)| (a, mobilenet_v1(a, 224))).collect();
    table(
        &mut s,
        "mult-adds",
        &w.iter()
            .zip(&nets)
            .map(|(&(_, macs, _), (_, n))| Cmp::new(n.name.clone(), m(n), macs, 0))
            .collect::<Vec<_>>(),
    );
    table(
        &mut s,
        "parameters",
        &w.iter()
            .zip(&nets)
            .map(|(&(_, _, params), (_, n))| Cmp::new(n.name.clone(), p(n), params, 1))
            .collect::<Vec<_>>(),
    );
    let _ = writeln!(s, "### Table 7: resolution (width 1.0)\n");
    table(
        &mut s,
        "mult-adds",
        &[(224, 569.0), (192, 418.0), (160, 290.0), (128, 186.0)]
            .iter()
            .map(|&(r, macs)| {
                let n = mobilenet_v1(100, r);
                Cmp::new(n.name.clone(), m(&n), macs, 0)
            })
            .collect::<Vec<_>>(),
    );
    let _ = writeln!(s, "### Table 2: where the compute is (MobileNet 1.0-224)\n");
    let share = |f: &dyn Fn(&Layer) -> bool, params: bool| {
        let (num, den) = v1.layers.iter().fold((0.0, 0.0), |(n, d), l| {
            let v = if params {
                l.params() as f64
            } else if l.op == Op::AvgPool {
                0.0
            } else {
                l.macs() as f64
            };
            (if f(l) { n + v } else { n }, d + v)
        });
        100.0 * num / den
    };
    type Kind<'a> = (&'a str, &'a dyn Fn(&Layer) -> bool, f64, f64);
    let kinds: [Kind; 4] = [
        ("Conv 1x1", &|l| l.op == Op::Pointwise, 94.86, 74.59),
        ("Conv DW 3x3", &|l| l.op == Op::Depthwise3x3, 3.06, 1.06),
        ("Conv 3x3 (stem)", &|l| l.op == Op::Conv3x3, 1.19, 0.02),
        (
            "Fully connected",
            &|l| l.op == Op::FullyConnected,
            0.18,
            24.33,
        ),
    ];
    let _ = writeln!(
        s,
        "| type | mult-adds, ours | paper | parameters, ours | paper |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for (name, f, pm, pp) in kinds {
        let _ = writeln!(
            s,
            "| {name} | {:.2}% | {pm:.2}% | {:.2}% | {pp:.2}% |",
            share(f, false),
            share(f, true)
        );
    }
    let _ = writeln!(
        s,
        "\nThe paper's stem share (1.19%) looks like a transposition of 1.91%: the stem is \
         112·112·27·32 = 10.8 M of 568.7 M multiply-adds, and the paper's own column sums to \
         99.29% with 1.19% but to 100.01% with 1.91%."
    );
    let v2 = mobilenet_v2();
    let _ = writeln!(
        s,
        "\n### MobileNet v2 1.0-224 (Sandler et al. 2018), the second layer set\n"
    );
    table(
        &mut s,
        "MobileNet v2 1.0-224",
        &[
            Cmp::new("mult-adds", m(&v2), 300.0, 0),
            Cmp::new("parameters", p(&v2), 3.4, 1)
                .note("no: 3.47 M rounds to 3.5 M; the v2 paper prints 3.4 M (not a v1 table)"),
        ],
    );
    s
}

/// The measured times of block `b` of network prefix `net` on `label`: `(dw, pw, std)` rows.
fn block_rows<'a>(
    r: &'a Results,
    net: &str,
    label: &str,
    b: usize,
) -> (Option<&'a Row>, Option<&'a Row>, Option<&'a Row>) {
    let get = |op: &str, kind: &str| {
        r.row(&bench_id(
            "layer",
            op,
            label,
            &format!("{net}_{kind}{b:02}"),
        ))
    };
    (
        get("dwconv3x3", "dw"),
        get("pointwise", "pw"),
        get("conv3x3", "std"),
    )
}

/// Labels (ISAs) that have layer rows, in the run's ISA order.
fn labels(r: &Results) -> Vec<String> {
    r.settings
        .isas
        .iter()
        .filter(|i| r.rows.iter().any(|x| &x.label == *i))
        .cloned()
        .collect()
}

/// Section 2 for one network and ISA; `None` when no block was measured.
fn per_layer_md(r: &Results, net: &Network, label: &str) -> Option<String> {
    let mut s = String::new();
    let _ = writeln!(s, "### {} on `{label}`\n", net.name);
    let _ = writeln!(
        s,
        "| block | dw input -> pw output | N | theory (dw+pw)/std = 1/N + 1/9 | theory speedup | dw | pw | std conv | measured (dw+pw)/std | measured speedup | of theory |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut any = false;
    let (mut sum_sep, mut sum_std) = (0.0, 0.0);
    for (i, &(stride, _)) in V1_BLOCKS.iter().enumerate() {
        let b = i + 1;
        let dw = net.layer(&format!("{}_dw{b:02}", net.id));
        let pw = net.layer(&format!("{}_pw{b:02}", net.id));
        let (Some(dw), Some(pw)) = (dw, pw) else {
            continue;
        };
        let n = pw.cout as f64;
        let theory = 1.0 / n + 1.0 / 9.0;
        let (rd, rp, rs) = block_rows(r, &net.id, label, b);
        let t = |x: Option<&Row>| x.map_or("—".to_string(), |x| fmt_time(x.median_s));
        let (ratio, speedup, of) = match (rd, rp, rs) {
            (Some(d), Some(p), Some(c)) => {
                any = true;
                sum_sep += d.median_s + p.median_s;
                sum_std += c.median_s;
                let ratio = (d.median_s + p.median_s) / c.median_s;
                (
                    format!("{ratio:.3}"),
                    format!("{:.2}x", 1.0 / ratio),
                    format!("{:.0}%", 100.0 * theory / ratio),
                )
            }
            _ => ("—".into(), "—".into(), "—".into()),
        };
        let _ = writeln!(
            s,
            "| {b:02} | {}x{}x{} s{stride} -> {}x{}x{} | {} | {theory:.3} | {:.2}x | {} | {} | {} | {ratio} | {speedup} | {of} |",
            dw.h,
            dw.w,
            dw.cin,
            pw.h,
            pw.w,
            pw.cout,
            pw.cout,
            1.0 / theory,
            t(rd),
            t(rp),
            t(rs),
        );
    }
    if !any {
        return None;
    }
    let blocks_theory = net
        .layers
        .iter()
        .filter(|l| l.op == Op::Depthwise3x3 || l.op == Op::Pointwise)
        .map(|l| l.macs() as f64)
        .sum::<f64>()
        / conv_mobilenet_v1(net.alpha_pct, net.resolution)
            .layers
            .iter()
            .filter(|l| l.id.contains("_std"))
            .map(|l| l.macs() as f64)
            .sum::<f64>();
    let _ = writeln!(
        s,
        "| all 13 | | | {blocks_theory:.3} | {:.2}x | | | | {:.3} | {:.2}x | {:.0}% |\n",
        1.0 / blocks_theory,
        sum_sep / sum_std,
        sum_std / sum_sep,
        100.0 * blocks_theory / (sum_sep / sum_std),
    );
    Some(s)
}

/// Section 3: whole networks, per ISA.
fn whole_md(r: &Results) -> String {
    let mut s = String::new();
    let nets: Vec<&Row> = r
        .rows
        .iter()
        .filter(|x| x.tier == "net" && x.op == "mobilenet_v1")
        .collect();
    if nets.is_empty() {
        let _ = writeln!(s, "Not measured in this run (`--ci`, or filtered out).\n");
        return s;
    }
    let _ = writeln!(
        s,
        "Both networks built from the public API (`bench-harness/src/mobilenet/`): stem conv \
         3x3 s2, 13 blocks, global average pool, fully connected, softmax; Conv MobileNet \
         replaces each depthwise + pointwise pair by one standard 3x3 conv of the same stride. \
         Seeded random weights and batch norm (folded at load) packed once, buffers allocated \
         once, batch 1, ReLU6 after every conv.\n"
    );
    let _ = writeln!(
        s,
        "| ISA | network | separable | Conv MobileNet | measured speedup | mult-add ratio (ours) | paper | of the paper's |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for sep in nets {
        let conv_id = sep
            .id
            .replace("mobilenet_v1/", "conv_mobilenet_v1/")
            .replace("/mbv1_", "/mbv1conv_");
        let Some(conv) = r.row(&conv_id) else {
            continue;
        };
        let id = &sep.layer;
        let (alpha, res) = parse_v1(id).unwrap_or((100, 224));
        let macs_ratio = m(&conv_mobilenet_v1(alpha, res)) / m(&mobilenet_v1(alpha, res));
        let speedup = conv.median_s / sep.median_s;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {speedup:.2}x | {macs_ratio:.2}x | {PAPER_NET_RATIO:.2}x | {:.0}% |",
            sep.label,
            mobilenet_v1(alpha, res).name,
            fmt_time(sep.median_s),
            fmt_time(conv.median_s),
            100.0 * speedup / PAPER_NET_RATIO,
        );
    }
    s.push('\n');
    s
}

/// `mbv1_a075_r192` -> `(75, 192)`.
fn parse_v1(id: &str) -> Option<(u32, usize)> {
    let mut it = id.split('_').skip(1);
    let a = it.next()?.strip_prefix('a')?.parse().ok()?;
    let r = it.next()?.strip_prefix('r')?.parse().ok()?;
    Some((a, r))
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Section 4: a generated paragraph on where and why the measured ratio departs from theory,
/// from the roofline numbers of the best ISA measured.
pub fn explanation(r: &Results) -> String {
    let Some(label) = labels(r).last().cloned() else {
        return "No sepconv rows were measured.\n".to_string();
    };
    let of = |op: &str, kind: &str| -> Vec<&Row> {
        r.rows
            .iter()
            .filter(|x| {
                x.tier == "layer"
                    && x.label == label
                    && x.op == op
                    && x.layer.starts_with("mbv1_")
                    && x.layer
                        .rsplit('_')
                        .next()
                        .is_some_and(|s| s.starts_with(kind))
            })
            .collect()
    };
    let (dw, pw, std) = (
        of("dwconv3x3", "dw"),
        of("pointwise", "pw"),
        of("conv3x3", "std"),
    );
    if dw.is_empty() || pw.is_empty() {
        return format!("Too few rows on `{label}` to explain (run without a filter).\n");
    }
    let flops = |v: &[&Row]| v.iter().map(|x| x.flops as f64).sum::<f64>();
    let secs = |v: &[&Row]| v.iter().map(|x| x.median_s).sum::<f64>();
    let rate = |v: &[&Row]| flops(v) / secs(v) / 1e9;
    let peak = dw[0].peak_gflops;
    let dw_flop_share = 100.0 * flops(&dw) / (flops(&dw) + flops(&pw));
    let dw_time_share = 100.0 * secs(&dw) / (secs(&dw) + secs(&pw));
    let dw_bound: Vec<f64> = dw.iter().map(|x| x.pct_of_bound).collect();
    let mem_bound = dw.iter().filter(|x| x.bound == "memory").count();
    let mut levels: Vec<&str> = dw.iter().map(|x| x.level.as_str()).collect();
    levels.sort();
    levels.dedup();
    let ai_lo = dw.iter().map(|x| x.ai).fold(f64::INFINITY, f64::min);
    let ai_hi = dw.iter().map(|x| x.ai).fold(0.0, f64::max);

    let mut s = String::new();
    let _ = write!(
        s,
        "On `{label}` ({} thread{}), the depthwise layers do {dw_flop_share:.1}% of the separable \
         blocks' FLOPs but take {dw_time_share:.1}% of their time. They run at {:.1} GFLOP/s \
         ({:.0}% of the {peak:.1} GFLOP/s FMA peak): with {ai_lo:.1}-{ai_hi:.1} FLOP per \
         compulsory byte, {mem_bound} of {} are memory-bound on the roofline (working sets in {}), \
         and they reach {:.0}% of their bound on average. The pointwise layers run at {:.1} \
         GFLOP/s ({:.0}% of peak).",
        r.settings.threads,
        if r.settings.threads == 1 { "" } else { "s" },
        rate(&dw),
        100.0 * rate(&dw) / peak,
        dw.len(),
        levels.join("/"),
        mean(&dw_bound),
        rate(&pw),
        100.0 * rate(&pw) / peak,
    );
    if !std.is_empty() {
        let std_rate = rate(&std);
        let sep_rate = (flops(&dw) + flops(&pw)) / (secs(&dw) + secs(&pw)) / 1e9;
        let _ = write!(
            s,
            " The standard 3x3 convolutions, one GEMM with depth 9·Cin, run at {std_rate:.1} \
             GFLOP/s ({:.0}% of peak), against {sep_rate:.1} GFLOP/s for depthwise + pointwise \
             together. The theoretical ratio 1/N + 1/9 counts multiply-adds only; the measured \
             time ratio equals it times the standard conv's GFLOP/s over the separable pair's, \
             so the measured speedup is the theoretical one times {:.2}.",
            100.0 * std_rate / peak,
            sep_rate / std_rate,
        );
        if sep_rate < std_rate {
            let _ = write!(
                s,
                " The separable pair is the slower of the two per FLOP — mostly because of the \
                 depthwise half, which has {:.0}x less arithmetic per byte than the pointwise \
                 layers and cannot keep the FMA units busy — so the speedup falls short of theory.",
                mean(&pw.iter().map(|x| x.ai).collect::<Vec<_>>())
                    / mean(&dw.iter().map(|x| x.ai).collect::<Vec<_>>()),
            );
        } else {
            let _ = write!(
                s,
                " Here the separable pair is the faster per FLOP (the standard convolution pays \
                 for its larger weights and window copies), so the speedup exceeds theory."
            );
        }
    }
    let sep_net = r
        .rows
        .iter()
        .find(|x| x.tier == "net" && x.label == label && x.op == "mobilenet_v1");
    let conv_net = r
        .rows
        .iter()
        .find(|x| x.tier == "net" && x.label == label && x.op == "conv_mobilenet_v1");
    if let (Some(a), Some(b)) = (sep_net, conv_net) {
        let speedup = b.median_s / a.median_s;
        let _ = write!(
            s,
            " End to end, the separable network is {speedup:.2}x faster than Conv MobileNet, \
             against the paper's {PAPER_NET_RATIO:.2}x fewer multiply-adds ({:.0}% of it): the \
             separable network runs at {:.1} GFLOP/s ({:.0}% of its roofline bound), Conv \
             MobileNet at {:.1} GFLOP/s ({:.0}%). The time ratio is the FLOP ratio ({:.2}x) \
             times the ratio of those rates ({:.2}): {}.",
            100.0 * speedup / PAPER_NET_RATIO,
            a.gflops,
            a.pct_of_bound,
            b.gflops,
            b.pct_of_bound,
            b.flops as f64 / a.flops as f64,
            a.gflops / b.gflops,
            if a.gflops >= b.gflops {
                "the separable network keeps the cores busier per FLOP, so it gains more than \
                 its FLOPs alone say"
            } else {
                "the separable network runs fewer FLOP per second, so it gains less than its \
                 FLOPs say"
            },
        );
    }
    let _ = writeln!(
        s,
        " Faster depthwise kernels (more output pixels per weight load, every FMA fed by at most \
         one load) move the measured ratio towards the theoretical one; faster GEMM kernels move \
         both the pointwise and the standard convolutions, and leave it where it is.\n"
    );
    s
}

/// `cost_ratio.md`.
pub fn cost_ratio_md(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# MobileNet cost ratios: the paper's tables reproduced, and measured\n"
    );
    s.push_str(&header(r));
    let _ = writeln!(s, "\n## 1. Analytic: multiply-adds and parameters\n");
    s.push_str(&analytic_md());
    let _ = writeln!(
        s,
        "## 2. Per layer: standard 3x3 conv vs depthwise + pointwise\n\n\
         For each block: a standard 3x3 conv Cin -> N with the block's stride against the \
         depthwise 3x3 (stride s) + pointwise 1x1 (Cin -> N) pair. Theory: multiply-adds, \
         (dw+pw)/std = 1/N + 1/9. Measured: median times from this run. \"of theory\" = measured \
         speedup / theoretical speedup.\n"
    );
    let mut any = false;
    for id in &r.settings.networks {
        let Some((a, res)) = parse_v1(id).filter(|_| id.starts_with("mbv1_")) else {
            continue;
        };
        let net = mobilenet_v1(a, res);
        for label in labels(r) {
            if let Some(t) = per_layer_md(r, &net, &label) {
                s.push_str(&t);
                any = true;
            }
        }
    }
    if !any {
        let _ = writeln!(
            s,
            "Not measured in this run (the standard convs are not in the `--ci` suite).\n"
        );
    }
    let _ = writeln!(
        s,
        "## 3. Whole network: separable MobileNet vs Conv MobileNet, end to end\n"
    );
    s.push_str(&whole_md(r));
    let _ = writeln!(
        s,
        "## 4. Why the measured ratio departs from the theoretical one\n"
    );
    s.push_str(&explanation(r));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analytic_tables_match_the_paper() {
        let md = analytic_md();
        let v1 = md.split("MobileNet v2").next().unwrap();
        assert!(!v1.contains("**no**") && !v1.contains("| no"), "{md}");
        assert!(
            md.contains("| MobileNet 1.0-224 | 568.7 M | 569 M |"),
            "{md}"
        );
        assert!(md.contains("Conv MobileNet 1.0-224"));
        assert!(md.contains("| Conv 1x1 | 94.86% | 94.86% |"), "{md}");
    }

    #[test]
    fn parses_v1_ids() {
        assert_eq!(parse_v1("mbv1_a075_r192"), Some((75, 192)));
        assert_eq!(parse_v1("mbv1conv_a100_r224"), Some((100, 224)));
        assert_eq!(parse_v1("mbv2"), None);
    }
}
