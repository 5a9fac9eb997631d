//! [`grouped_bars`]: one group per x label, one bar per series (LoMa per class segment, Fig. 3).

use super::style::*;
use anyhow::ensure;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

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
