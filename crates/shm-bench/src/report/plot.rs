//! `--plot PATH.svg`: four log–log panels against message size — ping-pong round trip
//! (p50), stream throughput (payload bytes/s), and the speed-up over `pipe` of each —
//! with one legend below the panels, outside the data.
//!
//! Every transport keeps one colour and one marker in all panels. The plot shows the
//! few transports a user compares ([`PLOT_DEFAULT`]: pipe, unix socket, our default
//! ring, our zero-copy ring, and the peers when built), the floors as dashed grey lines;
//! the table has everything. When the run measured none of the default set, the plot
//! shows all it measured. Nominal figures (payload not really moved) get hollow markers
//! and "(nominal)" in the legend.

use std::fs;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{fmt_ns, fmt_rate, Report, ResultRow};
use crate::config::Pattern;
use crate::error::BenchError;
use crate::transport::is_floor;

/// Width and height of the SVG in pixels.
const SIZE: (u32, u32) = (1300, 960);

/// Height of the legend strip under the panels.
const LEGEND_HEIGHT: u32 = 90;

/// The transports the plot shows by default, in legend order.
pub const PLOT_DEFAULT: [&str; 7] = [
    "pipe",
    "unix-socket",
    "shm-default",
    "shm-zero-copy",
    "iceoryx2",
    "shmem-ipc",
    "ipc-channel",
];

/// Colours, distinct on white and from each other (Tableau 10).
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Marker shapes, cycled with the colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Marker {
    Circle,
    Square,
    Triangle,
    Cross,
    Diamond,
}

const MARKERS: [Marker; 5] = [
    Marker::Circle,
    Marker::Square,
    Marker::Triangle,
    Marker::Cross,
    Marker::Diamond,
];

/// How one transport is drawn.
#[derive(Clone, Debug)]
struct Style {
    name: String,
    color: RGBColor,
    marker: Marker,
    nominal: bool,
}

/// One transport's points in one panel.
type Series = Vec<(usize, Vec<(f64, f64)>)>;

/// The transports to draw and their styles: the default set present in the report (all
/// non-floor transports if none is), each with its own colour and marker.
fn styles(report: &Report) -> Vec<Style> {
    let byte_rows = || {
        report
            .results
            .iter()
            .filter(|r| matches!(r.pattern, Pattern::PingPong | Pattern::Stream))
            .filter(|r| !is_floor(&r.transport))
    };
    let mut names: Vec<(&str, bool)> = Vec::new();
    for name in PLOT_DEFAULT {
        if let Some(r) = byte_rows().find(|r| r.transport == name) {
            names.push((name, r.nominal));
        }
    }
    if names.is_empty() {
        for r in byte_rows() {
            if !names.iter().any(|(n, _)| *n == r.transport) {
                names.push((&r.transport, r.nominal));
            }
        }
    }
    names
        .into_iter()
        .enumerate()
        .map(|(i, (name, nominal))| Style {
            name: name.to_string(),
            color: COLORS[i % COLORS.len()],
            marker: MARKERS[i % MARKERS.len()],
            nominal,
        })
        .collect()
}

/// Per drawn transport, its points (size, value) of `pattern`.
fn series(
    report: &Report,
    styles: &[Style],
    pattern: Pattern,
    value: fn(&ResultRow) -> Option<f64>,
) -> Series {
    let mut out: Series = Vec::new();
    for (i, style) in styles.iter().enumerate() {
        let mut pts: Vec<(f64, f64)> = report
            .results
            .iter()
            .filter(|r| r.pattern == pattern && r.transport == style.name)
            .filter_map(|r| value(r).map(|v| (r.size as f64, v)))
            .filter(|&(_, v)| v.is_finite() && v > 0.0)
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !pts.is_empty() {
            out.push((i, pts));
        }
    }
    out
}

/// The x (sizes) and y ranges covering all series and the reference line, padded for
/// log axes.
fn bounds(series: &Series, line: f64) -> Option<((f64, f64), (f64, f64))> {
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
    if line.is_finite() && line > 0.0 {
        y0 = y0.min(line);
        y1 = y1.max(line);
    }
    Some(((x0 / 1.5, x1 * 1.5), (y0 / 2.0, y1 * 2.0)))
}

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

/// How the marker of `style` is painted: filled, or hollow for nominal figures.
fn paint(style: &Style) -> ShapeStyle {
    if style.nominal {
        ShapeStyle::from(style.color).stroke_width(1)
    } else {
        style.color.filled()
    }
}

/// Builds the marker of `$style` at `$at` (pixel offsets around the point) as `$e` and
/// evaluates `$body` with it (the shapes are different types, hence a macro).
macro_rules! with_marker {
    ($style:expr, $at:expr, $e:ident => $body:expr) => {{
        let style: &Style = $style;
        let fill = paint(style);
        let base = EmptyElement::at($at);
        match style.marker {
            Marker::Circle => {
                let $e = base + Circle::new((0, 0), 4, fill);
                $body
            }
            Marker::Square => {
                let $e = base + Rectangle::new([(-4, -4), (4, 4)], fill);
                $body
            }
            Marker::Triangle => {
                let $e = base + Polygon::new(vec![(0, -5), (5, 4), (-5, 4)], fill);
                $body
            }
            Marker::Cross => {
                let $e = base + Cross::new((0, 0), 4, style.color.stroke_width(2));
                $body
            }
            Marker::Diamond => {
                let $e = base + Polygon::new(vec![(0, -5), (5, 0), (0, 5), (-5, 0)], fill);
                $body
            }
        }
    }};
}

/// What a panel shows.
struct Panel<'a> {
    title: String,
    y_desc: &'a str,
    series: Series,
    /// A dashed grey reference line (a floor, or ×1 for the speed-ups) and its label.
    line: (&'a str, f64),
    y_fmt: fn(f64) -> String,
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    styles: &[Style],
    panel: &Panel<'_>,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let Some(((x0, x1), (y0, y1))) = bounds(&panel.series, panel.line.1) else {
        area.titled(&format!("{}: no data", panel.title), ("sans-serif", 18))
            .map_err(err)?;
        return Ok(());
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("message size")
        .y_desc(panel.y_desc)
        .x_label_formatter(&|x| axis_size(*x))
        .y_label_formatter(&|y| (panel.y_fmt)(*y))
        .draw()
        .map_err(err)?;
    let (label, y) = panel.line;
    if y.is_finite() && y > 0.0 {
        let grey = RGBColor(90, 90, 90);
        chart
            .draw_series(DashedLineSeries::new(
                [(x0, y), (x1, y)],
                6,
                4,
                grey.stroke_width(1),
            ))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                label.to_string(),
                (x0 * 1.1, y * 1.15),
                ("sans-serif", 13).into_font().color(&grey),
            )))
            .map_err(err)?;
    }
    for (i, pts) in &panel.series {
        let style = &styles[*i];
        chart
            .draw_series(LineSeries::new(
                pts.iter().copied(),
                style.color.stroke_width(2),
            ))
            .map_err(err)?;
        for &p in pts {
            with_marker!(style, p, m => chart.draw_series(std::iter::once(m)).map_err(err)?);
        }
    }
    Ok(())
}

/// The legend strip: one entry per drawn transport, and the floors' dashed line.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    styles: &[Style],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let per_row = 5usize;
    let (w, _) = area.dim_in_pixel();
    let col = (w as i32 - 40) / per_row as i32;
    let font = ("sans-serif", 15).into_font();
    let entries = styles.len() + 1;
    for k in 0..entries {
        let x = 20 + (k % per_row) as i32 * col;
        let y = 20 + (k / per_row) as i32 * 28;
        if let Some(style) = styles.get(k) {
            area.draw(&PathElement::new(
                vec![(x, y), (x + 30, y)],
                style.color.stroke_width(2),
            ))
            .map_err(err)?;
            with_marker!(style, (x + 15, y), m => area.draw(&m).map_err(err)?);
            let name = if style.nominal {
                format!("{} (nominal)", style.name)
            } else {
                style.name.clone()
            };
            area.draw(&Text::new(name, (x + 38, y - 8), font.clone()))
                .map_err(err)?;
        } else {
            let grey = RGBColor(90, 90, 90);
            area.draw(&PathElement::new(
                vec![(x, y), (x + 30, y)],
                grey.stroke_width(1),
            ))
            .map_err(err)?;
            area.draw(&Text::new(
                "floors / ×1 (dashed)",
                (x + 38, y - 8),
                font.clone(),
            ))
            .map_err(err)?;
        }
    }
    Ok(())
}

/// The panel of `what`'s speed-up over pipe: its rows' `vs_pipe`, against a line at ×1.
fn speed_up<'a>(
    report: &Report,
    styles: &[Style],
    pattern: Pattern,
    what: &str,
    y_desc: &'a str,
) -> Panel<'a> {
    Panel {
        title: format!("{what}: speed-up over pipe"),
        y_desc,
        series: series(report, styles, pattern, |r| r.vs_pipe),
        line: ("×1 (pipe)", 1.0),
        y_fmt: |x| format!("×{x}"),
    }
}

/// The plot as SVG text.
pub fn to_svg(report: &Report) -> Result<String, String> {
    let styles = styles(report);
    let panels = [
        Panel {
            title: "ping-pong round trip (p50)".into(),
            y_desc: "round trip",
            series: series(report, &styles, Pattern::PingPong, |r| {
                Some(r.figures.p50_ns)
            }),
            line: ("cache-line floor", report.floors.cacheline_rtt_ns),
            y_fmt: fmt_ns,
        },
        Panel {
            title: "stream throughput".into(),
            y_desc: "payload bytes/s",
            series: series(report, &styles, Pattern::Stream, |r| {
                Some(r.figures.bytes_per_s)
            }),
            line: ("memcpy floor", report.floors.memcpy_bytes_per_s),
            y_fmt: |b| format!("{}B/s", fmt_rate(b).trim_end()),
        },
        speed_up(
            report,
            &styles,
            Pattern::PingPong,
            "round trip",
            "pipe p50 ÷ p50",
        ),
        speed_up(
            report,
            &styles,
            Pattern::Stream,
            "stream",
            "msg/s ÷ pipe msg/s",
        ),
    ];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (charts, legend) = root.split_vertically(SIZE.1 - LEGEND_HEIGHT);
        let cells = charts.split_evenly((2, 2));
        for (cell, panel) in cells.iter().zip(&panels) {
            draw_panel(cell, &styles, panel)?;
        }
        draw_legend(&legend, &styles)?;
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
