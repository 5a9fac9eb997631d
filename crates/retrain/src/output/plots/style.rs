//! What every figure shares: the embedded font, sizes, the palette and markers, the legend,
//! tick and cell formats, the categorical axis, and [`save`] (PNG + SVG, atomically).

use anyhow::{Context, anyhow, ensure};
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

pub(super) const FONT_FAMILY: &str = "sans-serif";
pub(super) static FONT_BYTES: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

// Even pixel sizes only: plotters' ab_glyph path truncates `size / 2 + glyph top` to an
// integer, which at odd sizes lifts short glyphs such as '.' one pixel off the baseline.
pub(super) const TITLE_PX: f64 = 26.0;
pub(super) const DESC_PX: f64 = 20.0;
pub(super) const TICK_PX: f64 = 16.0;
pub(super) const LEGEND_PX: f64 = 16.0;
pub(super) const CELL_PX: f64 = 16.0;

/// Tableau 10, then ten darker, distinct hues: 20 colours. With the marker of
/// [`marker_polygon`] every series up to 100 gets its own (colour, marker) pair, and the first
/// ten stay distinct for most colour-vision deficiencies.
pub(super) const PALETTE: [RGBColor; 20] = [
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
    RGBColor(10, 50, 110),
    RGBColor(160, 80, 0),
    RGBColor(0, 95, 40),
    RGBColor(120, 0, 20),
    RGBColor(70, 0, 130),
    RGBColor(0, 0, 0),
    RGBColor(110, 110, 0),
    RGBColor(0, 120, 120),
    RGBColor(230, 190, 0),
    RGBColor(190, 20, 120),
];
/// How many series a figure may colour apart; the per-class views switch from grouped bars
/// to a method × class heat map above it.
pub const DISTINCT_SERIES: usize = 10;
pub(super) const MISSING: RGBColor = RGBColor(200, 200, 200);

pub(super) fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Register the embedded font once per process (plotters keeps a global font table).
pub(super) fn ensure_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    ensure!(ok, "the embedded font DejaVuSans.ttf could not be parsed");
    Ok(())
}

pub(super) fn font(px: f64) -> TextStyle<'static> {
    (FONT_FAMILY, px).into_font().color(&BLACK)
}

pub(super) fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// A figure that can be drawn on any backend (bitmap for PNG, SVG).
pub(super) trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>;
}

pub(super) fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut name = stem.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(ext);
    stem.with_file_name(name)
}

/// Draw `fig` twice and write `<stem>.png` and `<stem>.svg`.
pub(super) fn save(stem: &Path, fig: &impl Figure) -> anyhow::Result<()> {
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
pub(super) fn titled<DB: DrawingBackend>(
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

pub(super) fn text_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    px: f64,
) -> anyhow::Result<u32> {
    Ok(area
        .estimate_text_size(text, &font(px))
        .map_err(draw_err)?
        .0)
}

/// Marker of series `i` as a polygon around (0, 0), radius about `r`: circle, triangle,
/// square, diamond, inverted triangle (so that lines stay apart in grey-scale print too). The
/// shape advances once more every 20 series, so (colour, marker) pairs repeat only after 100.
pub(super) fn marker_polygon(i: usize, r: i32) -> Vec<(i32, i32)> {
    let shape = (i + i / PALETTE.len()) % 5;
    let rf = r as f64;
    let around = |n: usize, rad: f64, phase: f64| -> Vec<(i32, i32)> {
        (0..n)
            .map(|k| {
                let a = phase + k as f64 * std::f64::consts::TAU / n as f64;
                (
                    (rad * a.cos()).round() as i32,
                    (rad * a.sin()).round() as i32,
                )
            })
            .collect()
    };
    match shape {
        0 => around(16, rf, 0.0),
        1 => around(3, rf + 2.0, -std::f64::consts::FRAC_PI_2),
        2 => vec![(-r, -r), (r, -r), (r, r), (-r, r)],
        3 => vec![(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)],
        _ => around(3, rf + 2.0, std::f64::consts::FRAC_PI_2),
    }
}

/// The marker of series `i` at (x, y) in pixels.
pub(super) fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    i: usize,
    (x, y): (i32, i32),
    c: RGBColor,
) -> anyhow::Result<()> {
    let pts = marker_polygon(i, 5)
        .into_iter()
        .map(|(dx, dy)| (x + dx, y + dy))
        .collect::<Vec<_>>();
    area.draw(&Polygon::new(pts, c.filled())).map_err(draw_err)
}

pub(super) enum Swatch {
    LineMarker,
    Box,
}

/// A legend panel: one row per label with its swatch, framed.
pub(super) fn draw_legend<DB: DrawingBackend>(
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

pub(super) fn legend_width<DB: DrawingBackend>(
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
pub(super) fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    if hi > lo {
        let p = (hi - lo) * frac;
        (lo - p, hi + p)
    } else {
        let p = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - p, hi + p)
    }
}

/// Tick text for a value: about four significant digits, no trailing noise.
pub(super) fn fmt_tick(v: f64) -> String {
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

/// The decimals of every cell of a map whose largest magnitude is `max`: one format for the
/// whole map (an accuracy map reads 0.0, 9.3, 96.2, not 0.000, 9.30, 96.2); `None`: the map
/// needs scientific notation.
pub(super) fn cell_decimals(max: f64) -> Option<usize> {
    match max {
        m if !(m.is_finite()) || m >= 1e4 => None,
        m if m >= 10.0 => Some(1),
        m if m >= 1.0 => Some(2),
        m if m >= 1e-2 || m == 0.0 => Some(3),
        _ => None,
    }
}

/// Cell text with the map's decimals (see [`cell_decimals`]).
pub(super) fn fmt_cell(v: f64, decimals: Option<usize>) -> String {
    match decimals {
        Some(d) => format!("{v:.d$}"),
        None => format!("{v:.2e}"),
    }
}

/// An axis of `n` unit cells over `[0, n)` whose ticks sit at the centres of the listed cells
/// (plotters' `with_key_points` loses the value formatter on f64 axes).
#[derive(Clone)]
pub(super) struct Cells {
    n: usize,
    ticks: Vec<f64>,
}

impl Cells {
    pub(super) fn every(n: usize, step: usize) -> Cells {
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
pub(super) fn cell_label(labels: &[String], v: f64) -> String {
    let i = (v - 0.5).round();
    if i >= 0.0 && (i as usize) < labels.len() {
        labels[i as usize].clone()
    } else {
        String::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Line plot
