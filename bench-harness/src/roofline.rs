//! `roofline.md` and the terminal summary.

#![forbid(unsafe_code)]

use std::fmt::Write;

use crate::machine::{human_bytes, LEVELS};
use crate::results::{Results, Row};

/// Seconds as `12.3 us` / `4.56 ms` / `1.23 s`.
pub fn fmt_time(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// The header lines every report file starts with.
pub fn header(r: &Results) -> String {
    let warning = r
        .machine
        .emulation_warning()
        .map(|w| format!("> **{w}**\n\n"))
        .unwrap_or_default();
    warning + &format!(
        "- Machine: {}\n- Run: {} UTC, suite `{}`, {} thread(s), ISAs {}, {} ms per row in {} round(s){}; took {:.0} s\n- Source: `{}`{}; {} ({} build)\n",
        r.machine.summary(),
        r.date,
        r.settings.suite,
        r.settings.threads,
        r.settings.isas.join(", "),
        r.settings.budget_ms,
        r.settings.rounds,
        r.settings
            .filter
            .as_ref()
            .map(|f| format!(", filter `{f}`"))
            .unwrap_or_default(),
        r.wall_s,
        r.git.revision,
        if r.git.dirty { " (uncommitted changes)" } else { "" },
        r.toolchain.rustc,
        r.toolchain.profile,
    )
}

/// The ceilings table (Markdown).
pub fn ceilings_table(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| ISA | threads | FMA peak GFLOP/s | L1 GB/s | L2 GB/s | L3 GB/s | DRAM GB/s |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for c in &r.ceilings {
        let _ = write!(
            s,
            "| {} | {} | {:.1} |",
            c.isa, c.threads, c.fma_peak_gflops
        );
        for l in LEVELS {
            let _ = write!(s, " {:.1} |", c.bandwidth(l));
        }
        s.push('\n');
    }
    if let Some(c) = r.ceilings.first() {
        let sizes: Vec<String> = LEVELS
            .iter()
            .map(|l| {
                format!(
                    "{l} {}",
                    human_bytes(c.bandwidth_bytes_per_thread.get(*l).copied().unwrap_or(0))
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "\nBandwidth: each thread sums its own buffer ({} per thread at 1 thread) with the \
             ISA's widest loads. FMA peak: >= 10 independent FMA chains on the ISA's widest \
             vectors (portable: the baseline target's multiply + add). Best of many 4 ms trials; \
             the FMA peak is probed at the start of the run and again at the end, and the \
             larger kept{}.",
            sizes.join(", "),
            end_note(r)
        );
    }
    let steady: Vec<String> = r
        .ceilings
        .iter()
        .filter(|c| !c.steadiness().is_empty())
        .map(|c| format!("{} x{}: {}", c.isa, c.threads, c.steadiness_text()))
        .collect();
    if !steady.is_empty() {
        let _ = writeln!(
            s,
            "\nSteadiness, median / best trial of each probe (1.00: every trial alike): {}. \
             On a shared machine the cache bandwidths can wander far more than the FMA peak, \
             and every kernel that loads from cache is exposed to that: compare a row's median \
             / best with these.",
            steady.join("; ")
        );
    }
    s
}

/// Where the FMA probe at the end of the run beat the one at the start: `" (the end's: avx2 x1
/// 102.5 GFLOP/s, ...)"`, else empty.
fn end_note(r: &Results) -> String {
    let later: Vec<String> = r
        .ceilings
        .iter()
        .filter(|c| c.fma_peak_end_gflops > 0.0 && c.fma_peak_end_gflops >= c.fma_peak_gflops)
        .map(|c| {
            format!(
                "{} x{} {:.1} GFLOP/s",
                c.isa, c.threads, c.fma_peak_end_gflops
            )
        })
        .collect();
    if later.is_empty() {
        String::new()
    } else {
        format!(" (the end's: {})", later.join(", "))
    }
}

fn row_line(r: &Row) -> String {
    format!(
        "| `{}` | {} | {} | {:.1} | {:.2} | {:.1} | {} | {} | {:.2} | {:.1} | {:.1} | {} | {:.1} |",
        r.id,
        r.shape,
        r.kernel,
        r.flops as f64 / 1e6,
        r.bytes as f64 / 1e6,
        r.ai,
        r.level,
        fmt_time(r.median_s),
        r.gflops,
        r.peak_gflops,
        r.bound_gflops,
        r.bound,
        r.pct_of_bound,
    )
}

/// `roofline.md`.
pub fn roofline_md(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Roofline: sepconv kernels on this machine\n");
    s.push_str(&header(r));
    let _ = writeln!(s, "\n## Ceilings measured in this run\n");
    s.push_str(&ceilings_table(r));
    let _ = writeln!(
        s,
        "\n## Layers\n\nFLOPs = 2 x multiply-adds. Bytes = compulsory traffic (input, weights, bias, \
         output once each, f32). AI = FLOPs / byte. Level = the cache the working set fits in \
         (L1/L2 per core, times the threads; L3 shared). Bound = min(FMA peak, AI x bandwidth of \
         that level), both measured above for the row's ISA and thread count. Activations are \
         64-byte aligned, in `Shape::padded_strides` (a 64-byte line after each pixel of 512 or \
         1024 channels), as the MobileNet runner lays them out. `reference` rows (the naive f64 \
         oracle) are set against the portable ceilings.\n"
    );
    let _ = writeln!(
        s,
        "| id | shape | kernel | MFLOP | MB | AI | level | median | GFLOP/s | peak | bound | bound by | % of bound |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|"
    );
    for row in r.rows.iter().filter(|x| x.tier == "layer") {
        let _ = writeln!(s, "{}", row_line(row));
    }
    let nets: Vec<&Row> = r.rows.iter().filter(|x| x.tier == "net").collect();
    if !nets.is_empty() {
        let _ = writeln!(
            s,
            "\n## Whole networks\n\nBound = total FLOPs / the sum of every layer's bound time \
             (each layer at its own roofline bound, back to back).\n"
        );
        let _ = writeln!(
            s,
            "| id | network | MFLOP | median | GFLOP/s | peak | bound | % of bound |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
        for n in nets {
            let _ = writeln!(
                s,
                "| `{}` | {} | {:.0} | {} | {:.2} | {:.1} | {:.1} | {:.1} |",
                n.id,
                n.shape,
                n.flops as f64 / 1e6,
                fmt_time(n.median_s),
                n.gflops,
                n.peak_gflops,
                n.bound_gflops,
                n.pct_of_bound
            );
        }
    }
    s
}

/// The terminal summary: ceilings, then one line per row, then totals per op and ISA.
pub fn terminal_summary(r: &Results) -> String {
    let mut s = String::new();
    if let Some(w) = r.machine.emulation_warning() {
        let _ = writeln!(s, "{w}\n");
    }
    let _ = writeln!(s, "{}", r.machine.summary());
    let _ = writeln!(s, "\nceilings (GFLOP/s, GB/s):");
    for c in &r.ceilings {
        let _ = writeln!(
            s,
            "  {:<9} x{}  FMA {:7.1}   L1 {:6.0}  L2 {:6.0}  L3 {:6.0}  DRAM {:5.1}",
            c.isa,
            c.threads,
            c.fma_peak_gflops,
            c.bandwidth("L1"),
            c.bandwidth("L2"),
            c.bandwidth("L3"),
            c.bandwidth("DRAM")
        );
    }
    let width = r
        .rows
        .iter()
        .map(|x| x.id.len())
        .max()
        .unwrap_or(10)
        .min(64);
    let _ = writeln!(
        s,
        "\n{:<width$}  {:>10}  {:>8}  {:>6}  {:>5}  {:>8}",
        "id", "median", "GFLOP/s", "level", "AI", "% bound"
    );
    for x in &r.rows {
        let _ = writeln!(
            s,
            "{:<width$}  {:>10}  {:>8.2}  {:>6}  {:>5.1}  {:>7.1}%",
            x.id,
            fmt_time(x.median_s),
            x.gflops,
            x.level,
            x.ai,
            x.pct_of_bound
        );
    }
    s
}
