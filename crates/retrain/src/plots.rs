//! Figures for the report, drawn with `plotters`: every function writes `<stem>.png` and
//! `<stem>.svg`, each atomically (a temporary file in the same folder, then a rename).
//!
//! - [`line_plot`]: lines with markers, e.g. accuracy (All / Many / Medium / Few) against the
//!   smooth factor δ (the paper's Fig. 4).
//! - [`heatmap`]: a grid with the value printed in every cell, e.g. accuracy over
//!   learning rate × weight decay (Fig. 5); missing cells are grey and read "n/a".
//! - [`grouped_bars`]: one group per x label (class segment or class), one bar per series
//!   (method), e.g. LoMa per class group per method (Fig. 3).
//!
//! Text in the PNG is rasterised with `ab_glyph` from DejaVu Sans embedded in the binary
//! (`assets/DejaVuSans.ttf`, Bitstream Vera licence in `assets/DejaVuSans-LICENSE.txt`), so
//! nothing depends on the fonts installed where it runs. The SVG names the family
//! `sans-serif` and leaves the glyphs to the viewer. The PNG is encoded with the `png` crate
//! from plotters' RGB buffer (plotters' own encoder would pull in `image` 0.24).
//!
//! Bad input (no series, mismatched lengths, non-finite values) is an error, never a panic.

use anyhow::{Context, anyhow, bail, ensure};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One line of a [`line_plot`]: a legend label and its (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

const FONT_FAMILY: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

// Even pixel sizes only: plotters' ab_glyph path truncates `size / 2 + glyph top` to an
// integer, which at odd sizes lifts short glyphs such as '.' one pixel off the baseline.
const TITLE_PX: f64 = 26.0;
const DESC_PX: f64 = 20.0;
const TICK_PX: f64 = 16.0;
const LEGEND_PX: f64 = 16.0;
const CELL_PX: f64 = 16.0;

/// Tableau 10: distinguishable, and still distinct for most colour-vision deficiencies.
const PALETTE: [RGBColor; 10] = [
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
const MISSING: RGBColor = RGBColor(200, 200, 200);

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Register the embedded font once per process (plotters keeps a global font table).
fn ensure_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    ensure!(ok, "the embedded font DejaVuSans.ttf could not be parsed");
    Ok(())
}

fn font(px: f64) -> TextStyle<'static> {
    (FONT_FAMILY, px).into_font().color(&BLACK)
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// A figure that can be drawn on any backend (bitmap for PNG, SVG).
trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>;
}

fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut name = stem.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(ext);
    stem.with_file_name(name)
}

/// Draw `fig` twice and write `<stem>.png` and `<stem>.svg`.
fn save(stem: &Path, fig: &impl Figure) -> anyhow::Result<()> {
    ensure_font()?;
    ensure!(
        stem.file_name().is_some(),
        "figure path {} has no file name",
        stem.display()
    );
    let (w, h) = fig.size();

    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        fig.draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    let png_path = with_ext(stem, "png");
    bank::write::write_atomic(&png_path, |tmp| {
        let file = std::io::BufWriter::new(std::fs::File::create(tmp)?);
        let mut enc = png::Encoder::new(file, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(&rgb)
            .map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    })
    .with_context(|| format!("writing {}", png_path.display()))?;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        fig.draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    let svg_path = with_ext(stem, "svg");
    bank::write::write_atomic(&svg_path, |tmp| std::fs::write(tmp, svg.as_bytes()))
        .with_context(|| format!("writing {}", svg_path.display()))?;
    Ok(())
}

/// The title, shrunk until it fits the width; returns the area below it.
fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> anyhow::Result<DrawingArea<DB, Shift>> {
    let width = root.dim_in_pixel().0;
    let mut px = TITLE_PX;
    while px > 12.0 {
        let (tw, _) = root
            .estimate_text_size(title, &font(px))
            .map_err(draw_err)?;
        if tw + 20 <= width {
            break;
        }
        px -= 2.0;
    }
    let area = root.titled(title, font(px)).map_err(draw_err)?;
    Ok(area.margin(4, 0, 0, 0))
}

fn text_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    px: f64,
) -> anyhow::Result<u32> {
    Ok(area
        .estimate_text_size(text, &font(px))
        .map_err(draw_err)?
        .0)
}

/// Marker shape for series `i`: circle, triangle, square, diamond (so that lines stay apart
/// in grey-scale print too).
fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    i: usize,
    (x, y): (i32, i32),
    c: RGBColor,
) -> anyhow::Result<()> {
    let style = c.filled();
    let r = 5;
    match i % 4 {
        0 => area.draw(&Circle::new((x, y), r, style)),
        1 => area.draw(&TriangleMarker::new((x, y), r + 2, style)),
        2 => area.draw(&Rectangle::new([(x - r, y - r), (x + r, y + r)], style)),
        _ => area.draw(&Polygon::new(
            vec![
                (x, y - r - 1),
                (x + r + 1, y),
                (x, y + r + 1),
                (x - r - 1, y),
            ],
            style,
        )),
    }
    .map_err(draw_err)
}

enum Swatch {
    LineMarker,
    Box,
}

/// A legend panel: one row per label with its swatch, framed.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    labels: &[&str],
    swatch: Swatch,
) -> anyhow::Result<()> {
    let row_h = (LEGEND_PX * 1.6) as i32;
    let (w, _) = area.dim_in_pixel();
    let top = 10;
    let h = row_h * labels.len() as i32 + 12;
    area.draw(&Rectangle::new(
        [(4, top), (w as i32 - 6, top + h)],
        ShapeStyle::from(&BLACK.mix(0.5)).stroke_width(1),
    ))
    .map_err(draw_err)?;
    for (i, label) in labels.iter().enumerate() {
        let y = top + 6 + row_h * i as i32 + row_h / 2;
        let c = colour(i);
        match swatch {
            Swatch::LineMarker => {
                area.draw(&PathElement::new(vec![(12, y), (44, y)], c.stroke_width(2)))
                    .map_err(draw_err)?;
                draw_marker(area, i, (28, y), c)?;
            }
            Swatch::Box => {
                area.draw(&Rectangle::new([(14, y - 7), (40, y + 7)], c.filled()))
                    .map_err(draw_err)?;
            }
        }
        area.draw(&Text::new(
            label.to_string(),
            (52, y),
            font(LEGEND_PX).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(draw_err)?;
    }
    Ok(())
}

fn legend_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    labels: &[&str],
) -> anyhow::Result<u32> {
    let mut w = 0;
    for l in labels {
        w = w.max(text_width(area, l, LEGEND_PX)?);
    }
    Ok(w + 72)
}

/// `lo..hi` widened by `frac` of its span on each side (and made non-empty).
fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    if hi > lo {
        let p = (hi - lo) * frac;
        (lo - p, hi + p)
    } else {
        let p = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - p, hi + p)
    }
}

/// Tick text for a value: about four significant digits, no trailing noise.
fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    let s = if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

/// Cell text: three significant digits.
fn fmt_cell(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-2..1e4).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// An axis of `n` unit cells over `[0, n)` whose ticks sit at the centres of the listed cells
/// (plotters' `with_key_points` loses the value formatter on f64 axes).
#[derive(Clone)]
struct Cells {
    n: usize,
    ticks: Vec<f64>,
}

impl Cells {
    fn every(n: usize, step: usize) -> Cells {
        Cells {
            n,
            ticks: (0..n)
                .step_by(step.max(1))
                .map(|i| i as f64 + 0.5)
                .collect(),
        }
    }
}

impl Ranged for Cells {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = v / self.n as f64;
        limit.0 + (t * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        0.0..self.n as f64
    }
}

/// Tick label of a cell centre `v` on an axis of `labels`.
fn cell_label(labels: &[String], v: f64) -> String {
    let i = (v - 0.5).round();
    if i >= 0.0 && (i as usize) < labels.len() {
        labels[i as usize].clone()
    } else {
        String::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Line plot

struct LinePlot<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: Vec<Series>,
    x: (f64, f64),
    y: (f64, f64),
}

/// Lines with markers, e.g. accuracy (All/Many/Medium/Few) vs δ (Fig. 4 of the paper), one
/// colour (and marker shape) per series. Points are drawn in increasing x.
///
/// Errors: no series, a series without points, a non-finite coordinate.
pub fn line_plot(
    stem: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> anyhow::Result<()> {
    ensure!(!series.is_empty(), "line plot '{title}': no series");
    let (mut xlo, mut xhi, mut ylo, mut yhi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let mut sorted = Vec::with_capacity(series.len());
    for s in series {
        ensure!(
            !s.points.is_empty(),
            "line plot '{title}': series '{}' has no points",
            s.label
        );
        for &(x, y) in &s.points {
            if !x.is_finite() || !y.is_finite() {
                bail!(
                    "line plot '{title}': series '{}' has a non-finite point ({x}, {y})",
                    s.label
                );
            }
            xlo = xlo.min(x);
            xhi = xhi.max(x);
            ylo = ylo.min(y);
            yhi = yhi.max(y);
        }
        let mut p = s.clone();
        p.points.sort_by(|a, b| a.0.total_cmp(&b.0));
        sorted.push(p);
    }
    let fig = LinePlot {
        title,
        x_label,
        y_label,
        series: sorted,
        x: padded(xlo, xhi, 0.03),
        y: padded(ylo, yhi, 0.06),
    };
    save(stem, &fig)
}

impl Figure for LinePlot<'_> {
    fn size(&self) -> (u32, u32) {
        (1000, 620)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let area = titled(root, self.title)?;
        let labels: Vec<&str> = self.series.iter().map(|s| s.label.as_str()).collect();
        let lw = legend_width(&area, &labels)?;
        let (plot, legend) = area.split_horizontally(area.dim_in_pixel().0 - lw);
        let x_fmt = |v: &f64| fmt_tick(*v);
        let y_fmt = |v: &f64| fmt_tick(*v);
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(56)
            .y_label_area_size(80)
            .build_cartesian_2d(self.x.0..self.x.1, self.y.0..self.y.1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .axis_desc_style(font(DESC_PX))
            .label_style(font(TICK_PX))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .light_line_style(BLACK.mix(0.06))
            .bold_line_style(BLACK.mix(0.15))
            .draw()
            .map_err(draw_err)?;
        for (i, s) in self.series.iter().enumerate() {
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                .map_err(draw_err)?;
        }
        for (i, s) in self.series.iter().enumerate() {
            let style = colour(i).filled();
            let pts = s.points.iter().copied();
            let r = 5;
            match i % 4 {
                0 => chart
                    .draw_series(pts.map(|p| EmptyElement::at(p) + Circle::new((0, 0), r, style))),
                1 => chart.draw_series(
                    pts.map(|p| EmptyElement::at(p) + TriangleMarker::new((0, 0), r + 2, style)),
                ),
                2 => chart.draw_series(
                    pts.map(|p| EmptyElement::at(p) + Rectangle::new([(-r, -r), (r, r)], style)),
                ),
                _ => chart.draw_series(pts.map(|p| {
                    EmptyElement::at(p)
                        + Polygon::new(
                            vec![(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)],
                            style,
                        )
                })),
            }
            .map_err(draw_err)?;
        }
        draw_legend(&legend, &labels, Swatch::LineMarker)
    }
}

// ---------------------------------------------------------------------------------------------
// Heat map

struct Heatmap<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    x_ticks: &'a [String],
    y_ticks: &'a [String],
    values: &'a [Vec<Option<f64>>],
    range: Option<(f64, f64)>,
}

/// Viridis, linearly interpolated between nine anchors; `t` in [0, 1].
fn viridis(t: f64) -> RGBColor {
    const A: [(f64, f64, f64); 9] = [
        (68.0, 1.0, 84.0),
        (71.0, 44.0, 122.0),
        (59.0, 81.0, 139.0),
        (44.0, 113.0, 142.0),
        (33.0, 144.0, 141.0),
        (39.0, 173.0, 129.0),
        (92.0, 200.0, 99.0),
        (170.0, 220.0, 50.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let f = t * (A.len() - 1) as f64;
    let i = (f.floor() as usize).min(A.len() - 2);
    let u = f - i as f64;
    let l = |a: f64, b: f64| (a + (b - a) * u).round() as u8;
    RGBColor(
        l(A[i].0, A[i + 1].0),
        l(A[i].1, A[i + 1].1),
        l(A[i].2, A[i + 1].2),
    )
}

fn text_on(c: RGBColor) -> RGBColor {
    let lum = 0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64;
    if lum < 140.0 { WHITE } else { BLACK }
}

/// Heat map with the value printed in each cell (lr × wd grid, Fig. 5); `None` cells grey.
/// `values[y][x]`: row `y` is labelled `y_ticks[y]` (row 0 at the top), column `x` is
/// labelled `x_ticks[x]`. A colour bar on the right maps colour to value.
///
/// Errors: no ticks, `values` not `y_ticks.len()` rows of `x_ticks.len()` cells, a non-finite
/// value.
pub fn heatmap(
    stem: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    x_ticks: &[String],
    y_ticks: &[String],
    values: &[Vec<Option<f64>>], /* [y][x] */
) -> anyhow::Result<()> {
    ensure!(
        !x_ticks.is_empty() && !y_ticks.is_empty(),
        "heat map '{title}': needs at least one x tick and one y tick (got {} and {})",
        x_ticks.len(),
        y_ticks.len()
    );
    ensure!(
        values.len() == y_ticks.len(),
        "heat map '{title}': {} rows of values for {} y ticks",
        values.len(),
        y_ticks.len()
    );
    let mut range: Option<(f64, f64)> = None;
    for (j, row) in values.iter().enumerate() {
        ensure!(
            row.len() == x_ticks.len(),
            "heat map '{title}': row {j} has {} values for {} x ticks",
            row.len(),
            x_ticks.len()
        );
        for v in row.iter().flatten() {
            ensure!(
                v.is_finite(),
                "heat map '{title}': row {j} has a non-finite value {v}"
            );
            range = Some(match range {
                None => (*v, *v),
                Some((lo, hi)) => (lo.min(*v), hi.max(*v)),
            });
        }
    }
    let fig = Heatmap {
        title,
        x_label,
        y_label,
        x_ticks,
        y_ticks,
        values,
        range,
    };
    save(stem, &fig)
}

impl Figure for Heatmap<'_> {
    fn size(&self) -> (u32, u32) {
        let (nx, ny) = (self.x_ticks.len() as u32, self.y_ticks.len() as u32);
        let w = (330 + nx * 95).clamp(760, 2400);
        let h = (230 + ny * 58).clamp(520, 1800);
        (w, h)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let area = titled(root, self.title)?;
        let (nx, ny) = (self.x_ticks.len(), self.y_ticks.len());
        let (plot, bar) = area.split_horizontally(area.dim_in_pixel().0 - 130);
        let mut ylw = 0;
        for t in self.y_ticks {
            ylw = ylw.max(text_width(&area, t, TICK_PX)?);
        }
        // Row j is drawn between y = ny-j-1 and ny-j, so that row 0 is at the top.
        let y_labels: Vec<String> = self.y_ticks.iter().rev().cloned().collect();
        let x_fmt = |v: &f64| cell_label(self.x_ticks, *v);
        let y_fmt = |v: &f64| cell_label(&y_labels, *v);
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(56)
            .y_label_area_size(ylw + 44)
            .build_cartesian_2d(Cells::every(nx, 1), Cells::every(ny, 1))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .axis_desc_style(font(DESC_PX))
            .label_style(font(TICK_PX))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()
            .map_err(draw_err)?;
        let norm = |v: f64| match self.range {
            Some((lo, hi)) if hi > lo => (v - lo) / (hi - lo),
            _ => 0.5,
        };
        for (j, row) in self.values.iter().enumerate() {
            let y0 = (ny - 1 - j) as f64;
            for (i, v) in row.iter().enumerate() {
                let x0 = i as f64;
                let (fill, text) = match v {
                    Some(v) => (viridis(norm(*v)), fmt_cell(*v)),
                    None => (MISSING, "n/a".to_string()),
                };
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0, y0), (x0 + 1.0, y0 + 1.0)],
                        fill.filled(),
                    )))
                    .map_err(draw_err)?;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0, y0), (x0 + 1.0, y0 + 1.0)],
                        WHITE.stroke_width(1),
                    )))
                    .map_err(draw_err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        text,
                        (x0 + 0.5, y0 + 0.5),
                        font(CELL_PX)
                            .color(&text_on(fill))
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )))
                    .map_err(draw_err)?;
            }
        }
        self.draw_colour_bar(&bar)
    }
}

impl Heatmap<'_> {
    fn draw_colour_bar<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> anyhow::Result<()> {
        let Some((lo, hi)) = self.range else {
            return Ok(());
        };
        let (lo_v, hi_v) = if hi > lo {
            (lo, hi)
        } else {
            padded(lo, hi, 0.0)
        };
        let y_fmt = |v: &f64| format!(" {}", fmt_tick(*v));
        let mut chart = ChartBuilder::on(area)
            .margin_top(12)
            .margin_bottom(12 + 56)
            .margin_left(4)
            .margin_right(8)
            .right_y_label_area_size(70)
            .build_cartesian_2d(0.0..1.0, lo_v..hi_v)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .label_style(font(TICK_PX))
            .y_label_formatter(&y_fmt)
            .y_labels(6)
            .draw()
            .map_err(draw_err)?;
        const STEPS: usize = 100;
        let step = (hi_v - lo_v) / STEPS as f64;
        chart
            .draw_series((0..STEPS).map(|s| {
                let a = lo_v + s as f64 * step;
                let t = (s as f64 + 0.5) / STEPS as f64;
                Rectangle::new([(0.0, a), (1.0, a + step)], viridis(t).filled())
            }))
            .map_err(draw_err)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Grouped bars

struct GroupedBars<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    groups: &'a [String],
    series: &'a [(String, Vec<Option<f64>>)],
    y: (f64, f64),
}

/// Grouped bar chart: for each x group (e.g. class segment "0-9", "10-19", ... or a class
/// name), one bar per series (e.g. per method). `None` leaves a gap. Bars start at 0; the y
/// axis includes 0. With many groups the x labels are turned vertical and thinned out.
///
/// Errors: no groups, no series, a series whose length is not `groups.len()`, a non-finite
/// value.
pub fn grouped_bars(
    stem: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> anyhow::Result<()> {
    ensure!(!groups.is_empty(), "bar chart '{title}': no groups");
    ensure!(!series.is_empty(), "bar chart '{title}': no series");
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for (name, vals) in series {
        ensure!(
            vals.len() == groups.len(),
            "bar chart '{title}': series '{name}' has {} values for {} groups",
            vals.len(),
            groups.len()
        );
        for v in vals.iter().flatten() {
            ensure!(
                v.is_finite(),
                "bar chart '{title}': series '{name}' has a non-finite value {v}"
            );
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    let span = if hi > lo { hi - lo } else { 1.0 };
    let y = (
        if lo < 0.0 { lo - 0.06 * span } else { 0.0 },
        if hi > 0.0 || lo == hi {
            hi + 0.08 * span
        } else {
            0.0
        },
    );
    let fig = GroupedBars {
        title,
        x_label,
        y_label,
        groups,
        series,
        y,
    };
    save(stem, &fig)
}

impl Figure for GroupedBars<'_> {
    fn size(&self) -> (u32, u32) {
        let bars = (self.groups.len() * (self.series.len() + 1)) as u32;
        ((420 + bars * 9).clamp(1000, 2600), 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let area = titled(root, self.title)?;
        let labels: Vec<&str> = self.series.iter().map(|s| s.0.as_str()).collect();
        let lw = legend_width(&area, &labels)?;
        let (plot, legend) = area.split_horizontally(area.dim_in_pixel().0 - lw);
        let ng = self.groups.len();

        // Label layout: horizontal when they fit, else vertical; every `step`-th label when
        // even vertical ones would overlap.
        let mut max_lw = 0;
        for g in self.groups {
            max_lw = max_lw.max(text_width(&area, g, TICK_PX)?);
        }
        let per_group = (plot.dim_in_pixel().0 as f64 - 120.0) / ng as f64;
        let vertical = max_lw as f64 + 6.0 > per_group;
        let step = if vertical {
            ((TICK_PX * 1.4) / per_group).ceil().max(1.0) as usize
        } else {
            1
        };
        let label_area = if vertical { max_lw + 40 } else { 56 };
        // Vertical labels are drawn below by hand: the mesh centres rotated text on the tick.
        let x_fmt = |v: &f64| {
            if vertical {
                String::new()
            } else {
                cell_label(self.groups, *v)
            }
        };
        let y_fmt = |v: &f64| fmt_tick(*v);
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(label_area)
            .y_label_area_size(80)
            .build_cartesian_2d(Cells::every(ng, step), self.y.0..self.y.1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .axis_desc_style(font(DESC_PX))
            .label_style(font(TICK_PX))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .light_line_style(BLACK.mix(0.06))
            .bold_line_style(BLACK.mix(0.15))
            .draw()
            .map_err(draw_err)?;
        let ns = self.series.len() as f64;
        let inner = 0.8;
        let w = inner / ns;
        for (s, (_, vals)) in self.series.iter().enumerate() {
            let c = colour(s);
            chart
                .draw_series(vals.iter().enumerate().filter_map(|(g, v)| {
                    let v = (*v)?;
                    let x0 = g as f64 + (1.0 - inner) / 2.0 + s as f64 * w;
                    Some(Rectangle::new([(x0, 0.0), (x0 + w, v)], c.filled()))
                }))
                .map_err(draw_err)?;
        }
        if vertical {
            let style = font(TICK_PX)
                .transform(FontTransform::Rotate90)
                .pos(Pos::new(HPos::Left, VPos::Center));
            for g in (0..ng).step_by(step) {
                let (x, y) = chart.backend_coord(&(g as f64 + 0.5, self.y.0));
                root.draw_text(&self.groups[g], &style, (x, y + 8))
                    .map_err(draw_err)?;
            }
        }
        if self.y.0 < 0.0 {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, 0.0), (ng as f64, 0.0)],
                    BLACK.stroke_width(1),
                )))
                .map_err(draw_err)?;
        }
        draw_legend(&legend, &labels, Swatch::Box)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_MAGIC: &[u8] = &[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    fn check_pair(stem: &Path, title: &str) {
        let png = std::fs::read(with_ext(stem, "png")).unwrap();
        assert!(png.len() > 1000, "png is {} bytes", png.len());
        assert_eq!(&png[..8], PNG_MAGIC);
        let svg = std::fs::read_to_string(with_ext(stem, "svg")).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.contains(title), "title missing from the svg");
        // Nothing left behind by the atomic writes.
        let dir = stem.parent().unwrap();
        for e in std::fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(!name.ends_with(".tmp"), "leftover temp file {name}");
        }
    }

    fn delta_series() -> Vec<Series> {
        let deltas = [0.0, 0.2, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99];
        ["All", "Many", "Medium", "Few"]
            .iter()
            .enumerate()
            .map(|(k, name)| Series {
                label: (*name).into(),
                points: deltas
                    .iter()
                    .map(|d| (*d, 40.0 + 10.0 * k as f64 * (1.0 - d) + 12.0 * d))
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn line_plot_writes_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("delta");
        line_plot(
            &stem,
            "Accuracy vs smooth factor",
            "smooth factor δ",
            "accuracy (%)",
            &delta_series(),
        )
        .unwrap();
        check_pair(&stem, "Accuracy vs smooth factor");
    }

    #[test]
    fn line_plot_rejects_empty_and_non_finite_input() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("bad");
        assert!(line_plot(&stem, "t", "x", "y", &[]).is_err());
        let empty = Series {
            label: "s".into(),
            points: vec![],
        };
        let err = line_plot(&stem, "t", "x", "y", &[empty]).unwrap_err();
        assert!(
            err.to_string().contains("series 's' has no points"),
            "{err}"
        );
        let nan = Series {
            label: "s".into(),
            points: vec![(0.0, f64::NAN)],
        };
        assert!(line_plot(&stem, "t", "x", "y", &[nan]).is_err());
        assert!(!with_ext(&stem, "png").exists());
    }

    #[test]
    fn line_plot_accepts_a_single_point() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("one");
        let s = Series {
            label: "only".into(),
            points: vec![(0.98, 54.9)],
        };
        line_plot(&stem, "One point", "x", "y", &[s]).unwrap();
        check_pair(&stem, "One point");
    }

    fn grid() -> (Vec<String>, Vec<String>, Vec<Vec<Option<f64>>>) {
        let lrs = ["0.001", "0.003", "0.01", "0.03", "0.1"];
        let wds = ["0", "1e-4", "5e-4", "1e-3"];
        let values = (0..wds.len())
            .map(|j| {
                (0..lrs.len())
                    .map(|i| {
                        if i == 4 && j == 3 {
                            None
                        } else {
                            Some(50.0 + i as f64 * 1.1 - j as f64 * 0.7)
                        }
                    })
                    .collect()
            })
            .collect();
        (
            lrs.iter().map(|s| s.to_string()).collect(),
            wds.iter().map(|s| s.to_string()).collect(),
            values,
        )
    }

    #[test]
    fn heatmap_writes_png_and_svg_with_missing_cells() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("grid");
        let (xt, yt, v) = grid();
        heatmap(
            &stem,
            "LOS accuracy over lr and wd",
            "learning rate",
            "weight decay",
            &xt,
            &yt,
            &v,
        )
        .unwrap();
        check_pair(&stem, "LOS accuracy over lr and wd");
        let svg = std::fs::read_to_string(with_ext(&stem, "svg")).unwrap();
        assert!(svg.contains("n/a"));
    }

    #[test]
    fn heatmap_rejects_ragged_values() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("bad");
        let (xt, yt, mut v) = grid();
        v[2].pop();
        let err = heatmap(&stem, "t", "x", "y", &xt, &yt, &v).unwrap_err();
        assert!(
            err.to_string().contains("row 2 has 4 values for 5 x ticks"),
            "{err}"
        );
        let err = heatmap(&stem, "t", "x", "y", &xt, &yt[..2], &v).unwrap_err();
        assert!(
            err.to_string().contains("4 rows of values for 2 y ticks"),
            "{err}"
        );
        assert!(heatmap(&stem, "t", "x", "y", &[], &[], &[]).is_err());
    }

    #[test]
    fn heatmap_of_all_missing_cells_still_draws() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("none");
        let t = vec!["a".to_string()];
        heatmap(&stem, "Nothing ran", "x", "y", &t, &t, &[vec![None]]).unwrap();
        check_pair(&stem, "Nothing ran");
    }

    type BarSeries = Vec<(String, Vec<Option<f64>>)>;

    fn bars() -> (Vec<String>, BarSeries) {
        let groups: Vec<String> = (0..10)
            .map(|g| format!("{}-{}", g * 10, g * 10 + 9))
            .collect();
        let series = ["vanilla-fc", "balanced-softmax", "los"]
            .iter()
            .enumerate()
            .map(|(s, m)| {
                let vals = (0..10)
                    .map(|g| Some(8.0 - g as f64 * (0.6 - 0.2 * s as f64)))
                    .collect();
                (m.to_string(), vals)
            })
            .collect();
        (groups, series)
    }

    #[test]
    fn grouped_bars_write_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("loma");
        let (g, s) = bars();
        grouped_bars(
            &stem,
            "LoMa per class group",
            "classes (by training count)",
            "LoMa",
            &g,
            &s,
        )
        .unwrap();
        check_pair(&stem, "LoMa per class group");
    }

    #[test]
    fn grouped_bars_reject_mismatched_series() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("bad");
        let (g, mut s) = bars();
        s[1].1.push(Some(1.0));
        let err = grouped_bars(&stem, "t", "x", "y", &g, &s).unwrap_err();
        assert!(
            err.to_string()
                .contains("series 'balanced-softmax' has 11 values for 10 groups"),
            "{err}"
        );
        assert!(grouped_bars(&stem, "t", "x", "y", &[], &[]).is_err());
        assert!(grouped_bars(&stem, "t", "x", "y", &g, &[]).is_err());
        s[1].1.pop();
        s[0].1[0] = Some(f64::INFINITY);
        assert!(grouped_bars(&stem, "t", "x", "y", &g, &s).is_err());
    }

    #[test]
    fn grouped_bars_with_many_groups_and_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("per-class");
        let groups: Vec<String> = (0..100).map(|c| format!("class_{c}")).collect();
        let vals: Vec<Option<f64>> = (0..100)
            .map(|c| (c % 7 != 3).then_some(90.0 - c as f64 * 0.8))
            .collect();
        grouped_bars(
            &stem,
            "Per-class accuracy",
            "class",
            "accuracy (%)",
            &groups,
            &[("los".into(), vals)],
        )
        .unwrap();
        check_pair(&stem, "Per-class accuracy");
    }

    #[test]
    fn tick_and_cell_formats_are_short() {
        assert_eq!(fmt_tick(0.5), "0.5");
        assert_eq!(fmt_tick(50.0), "50");
        assert_eq!(fmt_tick(-0.0), "0");
        assert_eq!(fmt_tick(1e-4), "1.0e-4");
        assert_eq!(fmt_cell(54.234), "54.2");
        assert_eq!(fmt_cell(0.4567), "0.457");
    }

    /// Writes one example of each figure to /tmp/plots-check for a look by eye.
    #[test]
    #[ignore]
    fn write_examples_for_inspection() {
        let dir = Path::new("/tmp/plots-check");
        std::fs::create_dir_all(dir).unwrap();
        line_plot(
            &dir.join("line"),
            "CIFAR100-LT IR=100: LOS test accuracy vs smooth factor δ",
            "smooth factor δ",
            "top-1 accuracy (%)",
            &delta_series(),
        )
        .unwrap();
        let (xt, yt, v) = grid();
        heatmap(
            &dir.join("heatmap"),
            "LOS test accuracy (%) over learning rate × weight decay",
            "learning rate",
            "weight decay",
            &xt,
            &yt,
            &v,
        )
        .unwrap();
        let (g, s) = bars();
        grouped_bars(
            &dir.join("bars"),
            "Mean LoMa per class segment (classes sorted by training count)",
            "class segment",
            "LoMa",
            &g,
            &s,
        )
        .unwrap();
        let groups: Vec<String> = (0..100).map(|c| format!("class_{c}")).collect();
        let vals: Vec<Option<f64>> = (0..100)
            .map(|c| (c % 7 != 3).then_some(90.0 - c as f64 * 0.8))
            .collect();
        let vals2: Vec<Option<f64>> = (0..100).map(|c| Some(60.0 - c as f64 * 0.3)).collect();
        grouped_bars(
            &dir.join("per-class"),
            "Per-class test accuracy",
            "class",
            "accuracy (%)",
            &groups,
            &[("vanilla-fc".into(), vals), ("los".into(), vals2)],
        )
        .unwrap();
    }
}
