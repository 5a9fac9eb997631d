//! [`heatmap`]: a grid with the value printed in every cell (lr × wd, Fig. 5; method × class).

use super::style::*;
use anyhow::ensure;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

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
        // a column is as wide as its longest tick label (≈ 9 px a character at 16 px), so
        // that labels such as "class 0 (n=6000)" never run into each other
        let widest = self
            .x_ticks
            .iter()
            .map(|t| t.chars().count())
            .max()
            .unwrap_or(0) as u32;
        let ywidest = self
            .y_ticks
            .iter()
            .map(|t| t.chars().count())
            .max()
            .unwrap_or(0) as u32;
        let col = (9 * widest + 16).max(95);
        let w = (250 + 9 * ywidest + nx * col).clamp(760, 2800);
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
        let max = (self.values.iter().flatten().flatten()).fold(0.0f64, |m, v| m.max(v.abs()));
        let decimals = cell_decimals(max);
        for (j, row) in self.values.iter().enumerate() {
            let y0 = (ny - 1 - j) as f64;
            for (i, v) in row.iter().enumerate() {
                let x0 = i as f64;
                let (fill, text) = match v {
                    Some(v) => (viridis(norm(*v)), fmt_cell(*v, decimals)),
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
