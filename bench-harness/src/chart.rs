//! `roofline.svg`: the roofline chart (log-log), drawn with plotters' SVG backend.
//!
//! Ceilings: the FMA peak of every ISA measured (horizontal lines), and one bandwidth roof per
//! cache level (L1, L2, L3, DRAM) for the best ISA, each rising until it meets that ISA's peak.
//! Points: one per layer row, coloured by op, shaped by ISA.

#![forbid(unsafe_code)]

use plotters::prelude::*;

use crate::machine::LEVELS;
use crate::results::{Results, Row};

/// Colour of an op's points.
fn op_colour(op: &str) -> RGBColor {
    match op {
        "dwconv3x3" => RGBColor(230, 115, 0),
        "pointwise" => RGBColor(31, 119, 180),
        "conv3x3" => RGBColor(44, 160, 44),
        "fc" => RGBColor(148, 103, 189),
        _ => RGBColor(120, 120, 120),
    }
}

/// Colour of a cache level's roof.
fn level_colour(level: &str) -> RGBColor {
    match level {
        "L1" => RGBColor(200, 40, 40),
        "L2" => RGBColor(210, 120, 40),
        "L3" => RGBColor(150, 110, 30),
        _ => RGBColor(90, 90, 90),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Marker {
    Circle,
    Triangle,
    Cross,
}

/// The short name of a layer for labels: `dw02`, `pw13`, `std05`, `conv01`.
fn short(layer: &str) -> &str {
    layer.rsplit('_').next().unwrap_or(layer)
}

/// Renders the chart of `r` as an SVG document.
pub fn roofline_svg(r: &Results) -> Result<String, String> {
    let threads = r.settings.threads;
    let layer_rows: Vec<&Row> = r
        .rows
        .iter()
        .filter(|x| x.tier == "layer" && x.gflops > 0.0 && x.ai > 0.0)
        .collect();
    // The best ISA measured (the settings list ISAs best last) with a ceiling at `threads`.
    let best = r
        .settings
        .isas
        .iter()
        .rev()
        .find_map(|i| r.ceiling(i, threads))
        .or_else(|| r.ceilings.iter().find(|c| c.threads == threads))
        .ok_or("no ceiling measured at the run's thread count")?;
    let peaks: Vec<(&str, f64)> = r
        .ceilings
        .iter()
        .filter(|c| c.threads == threads)
        .map(|c| (c.isa.as_str(), c.fma_peak_gflops))
        .collect();
    let max_peak = peaks
        .iter()
        .map(|p| p.1)
        .fold(best.fma_peak_gflops, f64::max);

    // Ranges: every point, every ridge point, a margin.
    let ridge_max = LEVELS
        .iter()
        .map(|l| best.fma_peak_gflops / best.bandwidth(l).max(1e-9))
        .fold(0.0, f64::max);
    let ai_min = layer_rows
        .iter()
        .map(|x| x.ai)
        .fold(f64::INFINITY, f64::min);
    let ai_max = layer_rows.iter().map(|x| x.ai).fold(0.0, f64::max);
    let x0 = (ai_min.min(0.5) / 2.0).max(1e-3);
    let x1 = (ai_max.max(ridge_max) * 2.0).max(x0 * 100.0);
    let g_min = layer_rows
        .iter()
        .map(|x| x.gflops)
        .fold(f64::INFINITY, f64::min)
        .min(max_peak / 10.0);
    let y0 = (g_min / 3.0).max(1e-4);
    let y1 = max_peak * 2.5;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1280, 860)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| format!("{e:?}"))?;
        let caption = format!(
            "{}Roofline: {} ({} thread{}), {} ceilings, {}",
            if r.machine.emulated.is_some() {
                "EMULATED, NOT SPEEDS — "
            } else {
                ""
            },
            r.machine.cpu_model,
            threads,
            if threads == 1 { "" } else { "s" },
            best.isa,
            r.date
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 22))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(75)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(|e| format!("{e:?}"))?;
        chart
            .configure_mesh()
            .x_desc("arithmetic intensity (FLOP / compulsory byte)")
            .y_desc("GFLOP/s")
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 14))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(210, 210, 210))
            .draw()
            .map_err(|e| format!("{e:?}"))?;

        let err = |e| format!("{e:?}");
        // Bandwidth roofs of the best ISA, capped at its peak.
        for level in LEVELS {
            let bw = best.bandwidth(level);
            if bw <= 0.0 {
                continue;
            }
            let ridge = best.fma_peak_gflops / bw;
            let start = x0.max(y0 / bw);
            let colour = level_colour(level);
            chart
                .draw_series(LineSeries::new(
                    vec![(start, bw * start), (ridge, best.fma_peak_gflops)],
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(format!("{level} read {bw:.0} GB/s"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        // FMA peaks, one per ISA.
        for &(isa, peak) in &peaks {
            let is_best = isa == best.isa;
            let colour = if is_best {
                BLACK
            } else {
                RGBColor(110, 110, 110)
            };
            let start = if is_best {
                best.fma_peak_gflops / best.bandwidth("DRAM").max(1e-9)
            } else {
                x0
            }
            .max(x0);
            let line = vec![(start, peak), (x1, peak)];
            if is_best {
                chart
                    .draw_series(LineSeries::new(line, colour.stroke_width(3)))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(DashedLineSeries::new(line, 8, 5, colour.stroke_width(2)))
                    .map_err(err)?;
            }
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{isa} FMA peak {peak:.1} GFLOP/s"),
                    // The best ISA's label above its line, the others' below theirs.
                    (x1 / 12.0, if is_best { peak * 1.4 } else { peak / 1.08 }),
                    ("sans-serif", 15).into_font().color(&colour),
                )))
                .map_err(err)?;
        }

        // Points.
        let marker_of = |row: &Row| -> Marker {
            if row.label == "reference" {
                Marker::Cross
            } else if row.isa == best.isa {
                Marker::Circle
            } else {
                Marker::Triangle
            }
        };
        for row in &layer_rows {
            let c = op_colour(&row.op);
            let p = (row.ai, row.gflops);
            match marker_of(row) {
                Marker::Circle => chart
                    .draw_series(std::iter::once(Circle::new(p, 5, c.filled())))
                    .map(|_| ()),
                Marker::Triangle => chart
                    .draw_series(std::iter::once(TriangleMarker::new(p, 6, c.filled())))
                    .map(|_| ()),
                Marker::Cross => chart
                    .draw_series(std::iter::once(Cross::new(p, 5, c.stroke_width(2))))
                    .map(|_| ()),
            }
            .map_err(err)?;
        }
        // Labels for the best ISA's points.
        for row in layer_rows.iter().filter(|x| marker_of(x) == Marker::Circle) {
            chart
                .draw_series(std::iter::once(Text::new(
                    short(&row.layer).to_string(),
                    (row.ai * 1.06, row.gflops * 1.04),
                    ("sans-serif", 11).into_font().color(&RGBColor(80, 80, 80)),
                )))
                .map_err(err)?;
        }

        // Legend: ops by colour, ISAs by shape.
        let mut ops: Vec<&str> = layer_rows.iter().map(|x| x.op.as_str()).collect();
        ops.sort();
        ops.dedup();
        for op in ops {
            let c = op_colour(op);
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(err)?
                .label(op.to_string())
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, c.filled()));
        }
        let mut others: Vec<&str> = layer_rows
            .iter()
            .filter(|x| marker_of(x) == Marker::Triangle)
            .map(|x| x.label.as_str())
            .collect();
        others.dedup();
        let mut shapes: Vec<(Marker, String)> = Vec::new();
        for row in &layer_rows {
            let m = marker_of(row);
            let name = if m == Marker::Triangle {
                others.join(", ")
            } else {
                row.label.clone()
            };
            if !shapes.iter().any(|s| s.0 == m) {
                shapes.push((m, name));
            }
        }
        for (m, name) in shapes {
            let s = chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(err)?
                .label(name);
            match m {
                Marker::Circle => {
                    s.legend(|(x, y)| Circle::new((x + 8, y), 5, BLACK.filled()));
                }
                Marker::Triangle => {
                    s.legend(|(x, y)| TriangleMarker::new((x + 8, y), 6, BLACK.filled()));
                }
                Marker::Cross => {
                    s.legend(|(x, y)| Cross::new((x + 8, y), 5, BLACK.stroke_width(2)));
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(160, 160, 160))
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(err)?;
        root.present().map_err(|e| format!("{e:?}"))?;
    }
    Ok(svg)
}
