//! [`line_plot`]: lines with markers (accuracy against δ, Fig. 4).

use super::style::*;
use anyhow::{bail, ensure};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

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
            let shape = marker_polygon(i, 5);
            chart
                .draw_series(pts.map(|p| EmptyElement::at(p) + Polygon::new(shape.clone(), style)))
                .map_err(draw_err)?;
        }
        draw_legend(&legend, &labels, Swatch::LineMarker)
    }
}
