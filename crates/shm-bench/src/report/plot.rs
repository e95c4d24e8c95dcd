//! `--plot PATH.svg`: latency (ping-pong p50) and throughput (stream bytes/s) against
//! message size, log–log, one line per transport, with the floors as grey lines.

use std::fs;
use std::path::Path;

use plotters::prelude::*;

use super::{fmt_ns, fmt_rate, Report};
use crate::config::Pattern;
use crate::error::BenchError;

/// Width and height of the SVG in pixels.
const SIZE: (u32, u32) = (1200, 500);

type Series = Vec<(String, Vec<(f64, f64)>)>;

/// Line colours, distinct on white (the later ones for the ring transports).
const COLORS: [RGBColor; 8] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// An axis label for a size in bytes (the log axis puts ticks at powers of ten).
fn axis_size(x: f64) -> String {
    if x >= 1e6 {
        format!("{} MB", x / 1e6)
    } else if x >= 1e3 {
        format!("{} kB", x / 1e3)
    } else {
        format!("{x} B")
    }
}

/// Per transport, the points (size, value) of `pattern`.
fn series(report: &Report, pattern: Pattern, value: fn(&super::ResultRow) -> f64) -> Series {
    let mut out: Series = Vec::new();
    for r in report.results.iter().filter(|r| r.pattern == pattern) {
        let v = value(r);
        if !(v.is_finite() && v > 0.0) {
            continue;
        }
        let point = (r.size as f64, v);
        match out.iter_mut().find(|(name, _)| *name == r.transport) {
            Some((_, pts)) => pts.push(point),
            None => out.push((r.transport.clone(), vec![point])),
        }
    }
    for (_, pts) in &mut out {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// The x (sizes) and y ranges covering all series and the floor, padded for log axes.
fn bounds(series: &Series, floor: f64) -> Option<((f64, f64), (f64, f64))> {
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return None;
    }
    if floor.is_finite() && floor > 0.0 {
        y0 = y0.min(floor);
        y1 = y1.max(floor);
    }
    Some(((x0 / 1.5, x1 * 1.5), (y0 / 2.0, y1 * 2.0)))
}

fn draw_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    series: &Series,
    floor: (&str, f64),
    y_fmt: fn(f64) -> String,
) -> Result<(), String> {
    let Some(((x0, x1), (y0, y1))) = bounds(series, floor.1) else {
        area.titled(&format!("{title}: no data"), ("sans-serif", 18))
            .map_err(|e| e.to_string())?;
        return Ok(());
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("message size")
        .y_desc(y_desc)
        .x_label_formatter(&|x| axis_size(*x))
        .y_label_formatter(&|y| y_fmt(*y))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    if floor.1.is_finite() && floor.1 > 0.0 {
        let grey = RGBColor(80, 80, 80);
        chart
            .draw_series(DashedLineSeries::new(
                [(x0, floor.1), (x1, floor.1)],
                6,
                4,
                grey.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(floor.0)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The plot as SVG text.
pub fn to_svg(report: &Report) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(SIZE.0 / 2);
        let lat = series(report, Pattern::PingPong, |r| r.p50_ns);
        draw_chart(
            &left,
            "ping-pong round trip (p50)",
            "round trip",
            &lat,
            ("cache-line floor", report.floors.cacheline_rtt_ns),
            fmt_ns,
        )?;
        let thr = series(report, Pattern::Stream, |r| r.bytes_per_s);
        draw_chart(
            &right,
            "stream throughput",
            "payload bytes/s",
            &thr,
            ("memcpy floor", report.floors.memcpy_bytes_per_s),
            |b| format!("{}B/s", fmt_rate(b).trim_end()),
        )?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Writes the plot as SVG to `path`.
pub fn write(report: &Report, path: &Path) -> Result<(), BenchError> {
    let svg = to_svg(report).map_err(|e| BenchError::Output {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    fs::write(path, svg).map_err(|source| BenchError::Output {
        path: path.display().to_string(),
        source,
    })
}
