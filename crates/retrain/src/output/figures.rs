//! The figures a run draws from its tables: per-class views of LoMa, RSD and accuracy per
//! class segment (Fig. 3), accuracy against δ (Fig. 4) and the lr × wd heat map (Fig. 5).
//! Each writes `<stem>.png` and `<stem>.svg` through [`crate::output::plots`].

use crate::output::loma::SegmentMeans;
use crate::output::plots::{DISTINCT_SERIES, Series, grouped_bars, heatmap, line_plot};
use crate::output::tables::Row;
use bank::Bank;
use std::path::Path;

/// Fig. 3-style figures for one bank: normalised LoMa, RSD and accuracy per class segment.
pub fn segment_figures(out: &Path, bank: &Bank, m: &SegmentMeans) -> anyhow::Result<Vec<String>> {
    let name = bank.name();
    let views = [
        (
            "loma",
            "Normalised logit magnitude (LoMa / mean LoMa) per class segment",
            "LoMa / mean LoMa",
            &m.loma_norm,
        ),
        (
            "rsd",
            "Regularised std of logits (RSD) per class segment",
            "RSD = std(z_i | y=i) / LoMa_i",
            &m.rsd,
        ),
        (
            "per-class-accuracy",
            "Top-1 accuracy per class segment",
            "accuracy (%)",
            &m.accuracy,
        ),
    ];
    let mut written = Vec::new();
    for (file, title, value, table) in views {
        let stem = out.join(format!("{file}-{name}"));
        per_class_view(&stem, &format!("{title} — {name} test"), value, m, table)?;
        written.push(format!("{file}-{name}.png"));
    }
    Ok(written)
}

/// One per-class view: grouped bars (one colour per method) while the methods can be told
/// apart by colour, else a method × segment heat map with the value in every cell.
fn per_class_view(
    stem: &Path,
    title: &str,
    value: &str,
    m: &SegmentMeans,
    table: &[Vec<Option<f64>>],
) -> anyhow::Result<()> {
    let x = "class segment (sorted by train count, head → tail)";
    if m.labels.len() <= DISTINCT_SERIES {
        let series: Vec<(String, Vec<Option<f64>>)> = m
            .labels
            .iter()
            .cloned()
            .zip(table.iter().cloned())
            .collect();
        grouped_bars(stem, title, x, value, &m.segment_names, &series)
    } else {
        heatmap(stem, title, x, "method", &m.segment_names, &m.labels, table)
    }
}

/// Fig. 4: accuracy (All/Many/Medium/Few) against δ, one line per bank and group.
pub fn delta_figure(stem: &Path, method: &str, rows: &[Row]) -> anyhow::Result<()> {
    let mut banks: Vec<&str> = Vec::new();
    for r in rows {
        if !banks.contains(&r.bank.as_str()) {
            banks.push(&r.bank);
        }
    }
    let mut series = Vec::new();
    for b in &banks {
        for (g, gname) in ["All", "Many", "Medium", "Few"].iter().enumerate() {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.bank == *b)
                .filter_map(|r| Some((r.delta?, r.acc[g].0?)))
                .collect();
            if points.is_empty() {
                continue;
            }
            let label = if banks.len() == 1 {
                gname.to_string()
            } else {
                format!("{b}: {gname}")
            };
            series.push(Series { label, points });
        }
    }
    line_plot(
        stem,
        &format!("{method}: test accuracy vs label-smoothing δ (mean over seeds)"),
        "δ (label smoothing)",
        "top-1 accuracy (%)",
        &series,
    )
}

/// Fig. 5: test All over the lr × wd grid of one method on one bank.
pub fn grid_figure(stem: &Path, method: &str, bank: &str, rows: &[Row]) -> anyhow::Result<()> {
    let mut lrs: Vec<f64> = rows.iter().map(|r| r.lr).collect();
    let mut wds: Vec<f64> = rows.iter().map(|r| r.wd).collect();
    lrs.sort_by(f64::total_cmp);
    lrs.dedup();
    wds.sort_by(f64::total_cmp);
    wds.dedup();
    let values: Vec<Vec<Option<f64>>> = lrs
        .iter()
        .map(|lr| {
            wds.iter()
                .map(|wd| {
                    rows.iter()
                        .find(|r| r.lr == *lr && r.wd == *wd)
                        .and_then(|r| r.acc[0].0)
                })
                .collect()
        })
        .collect();
    heatmap(
        stem,
        &format!("{method} on {bank}: test top-1 (%) over learning rate × weight decay"),
        "weight decay",
        "learning rate",
        &wds.iter().map(|v| format!("{v}")).collect::<Vec<_>>(),
        &lrs.iter().map(|v| format!("{v}")).collect::<Vec<_>>(),
        &values,
    )
}
