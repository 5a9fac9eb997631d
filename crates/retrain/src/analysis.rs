//! The paper's analysis outputs, computed from run records: LoMa / RSD per class and per class
//! segment (Fig. 3), the δ sweep (Fig. 4), the lr × wd grid (Fig. 5), per-class accuracy.
//!
//! - LoMa_i = mean of logit i over test samples of class i − mean of logit i over the test
//!   samples of the other classes; `loma_norm_i` = LoMa_i / mean_j LoMa_j (the "1-norm
//!   regularised" LoMa of Fig. 3, comparable across methods);
//! - RSD_i = std of logit i over the test samples of class i (population std) / LoMa_i;
//! - segments: classes sorted by train count (descending), cut into 10 segments of K/10
//!   classes (10 classes each for K = 100, as in Fig. 3).

use crate::plots::{Series, grouped_bars, heatmap, line_plot};
use crate::runner::RunRecord;
use crate::tables::{Row, mean_std};
use bank::Bank;
use polars::prelude::*;
use std::path::Path;

/// Class segments: indices of classes sorted by train count (descending, ties by index),
/// in 10 segments (fewer when K < 10).
pub fn segments(train_counts: &[usize]) -> Vec<Vec<usize>> {
    let k = train_counts.len();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| train_counts[b].cmp(&train_counts[a]).then(a.cmp(&b)));
    let n_seg = k.min(10);
    (0..n_seg)
        .map(|s| order[s * k / n_seg..(s + 1) * k / n_seg].to_vec())
        .collect()
}

/// LoMa divided by its mean over classes (NaN classes skipped in the mean).
pub fn loma_norm(loma: &[f64]) -> Vec<f64> {
    let v: Vec<f64> = loma.iter().copied().filter(|x| x.is_finite()).collect();
    let m = mean_std(&v).0.unwrap_or(f64::NAN);
    loma.iter().map(|l| l / m).collect()
}

fn fin(x: f64) -> Option<f64> {
    x.is_finite().then(|| (x * 1e6).round() / 1e6)
}

/// `loma.csv`: one row per run × class.
pub fn loma_frame(
    bank: &Bank,
    records: &[RunRecord],
    label: &dyn Fn(&RunRecord) -> String,
) -> PolarsResult<DataFrame> {
    let (mut b, mut method, mut seed, mut class, mut count, mut loma, mut norm, mut rsd) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for r in records {
        let ln = loma_norm(&r.test.loma);
        for c in 0..bank.num_classes {
            b.push(bank.name());
            method.push(label(r));
            seed.push(r.seed);
            class.push(c as u32);
            count.push(bank.train_counts[c] as u32);
            loma.push(fin(r.test.loma[c]));
            norm.push(fin(ln[c]));
            rsd.push(fin(r.test.rsd[c]));
        }
    }
    DataFrame::new(
        method.len(),
        vec![
            Column::new("bank".into(), b),
            Column::new("method".into(), method),
            Column::new("seed".into(), seed),
            Column::new("class".into(), class),
            Column::new("train_count".into(), count),
            Column::new("loma".into(), loma),
            Column::new("loma_norm".into(), norm),
            Column::new("rsd".into(), rsd),
        ],
    )
}

/// Per method label and segment: means over the segment's classes and the seeds.
pub struct SegmentMeans {
    pub labels: Vec<String>,
    pub segment_names: Vec<String>,
    /// [method][segment]
    pub loma_norm: Vec<Vec<Option<f64>>>,
    pub rsd: Vec<Vec<Option<f64>>>,
    pub accuracy: Vec<Vec<Option<f64>>>,
}

pub fn segment_means(
    bank: &Bank,
    records: &[RunRecord],
    label: &dyn Fn(&RunRecord) -> String,
) -> SegmentMeans {
    let segs = segments(&bank.train_counts);
    let mut labels: Vec<String> = Vec::new();
    for r in records {
        let l = label(r);
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    let mean_over = |f: &dyn Fn(&RunRecord, usize) -> f64, l: &str, seg: &[usize]| -> Option<f64> {
        let v: Vec<f64> = records
            .iter()
            .filter(|r| label(r) == l)
            .flat_map(|r| seg.iter().map(move |&c| f(r, c)))
            .filter(|x| x.is_finite())
            .collect();
        mean_std(&v).0
    };
    let table = |f: &dyn Fn(&RunRecord, usize) -> f64| -> Vec<Vec<Option<f64>>> {
        labels
            .iter()
            .map(|l| segs.iter().map(|s| mean_over(f, l, s)).collect())
            .collect()
    };
    let segment_names = segs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let lo = s.iter().map(|&c| bank.train_counts[c]).min().unwrap_or(0);
            let hi = s.iter().map(|&c| bank.train_counts[c]).max().unwrap_or(0);
            if s.len() == 1 {
                format!("class {} (n={hi})", s[0])
            } else {
                format!("{}-{} (n {hi}..{lo})", i * s.len(), (i + 1) * s.len() - 1)
            }
        })
        .collect();
    SegmentMeans {
        loma_norm: table(&|r, c| loma_norm(&r.test.loma)[c]),
        rsd: table(&|r, c| r.test.rsd[c]),
        accuracy: table(&|r, c| 100.0 * r.test.class_accuracy(c)),
        labels,
        segment_names,
    }
}

/// `loma-segments.csv` in long format.
pub fn segment_frame(bank: &Bank, m: &SegmentMeans) -> PolarsResult<DataFrame> {
    let (mut method, mut seg, mut ln, mut rsd, mut acc) = (vec![], vec![], vec![], vec![], vec![]);
    for (i, l) in m.labels.iter().enumerate() {
        for (j, s) in m.segment_names.iter().enumerate() {
            method.push(l.clone());
            seg.push(s.clone());
            ln.push(m.loma_norm[i][j]);
            rsd.push(m.rsd[i][j]);
            acc.push(m.accuracy[i][j]);
        }
    }
    DataFrame::new(
        method.len(),
        vec![
            Column::new("bank".into(), vec![bank.name(); method.len()]),
            Column::new("method".into(), method),
            Column::new("segment".into(), seg),
            Column::new("loma_norm".into(), ln),
            Column::new("rsd".into(), rsd),
            Column::new("accuracy".into(), acc),
        ],
    )
}

/// Fig. 3-style figures for one bank: normalised LoMa, RSD and accuracy per class segment.
pub fn segment_figures(out: &Path, bank: &Bank, m: &SegmentMeans) -> anyhow::Result<Vec<String>> {
    let series = |t: &Vec<Vec<Option<f64>>>| {
        m.labels
            .iter()
            .cloned()
            .zip(t.iter().cloned())
            .collect::<Vec<_>>()
    };
    let name = bank.name();
    let x = "class segment (sorted by train count, head → tail)";
    let mut written = Vec::new();
    let stem = out.join(format!("loma-{name}"));
    grouped_bars(
        &stem,
        &format!("Normalised logit magnitude (LoMa / mean LoMa) per class segment — {name} test"),
        x,
        "LoMa / mean LoMa",
        &m.segment_names,
        &series(&m.loma_norm),
    )?;
    written.push(format!("loma-{name}.png"));
    let stem = out.join(format!("rsd-{name}"));
    grouped_bars(
        &stem,
        &format!("Regularised std of logits (RSD) per class segment — {name} test"),
        x,
        "RSD = std(z_i | y=i) / LoMa_i",
        &m.segment_names,
        &series(&m.rsd),
    )?;
    written.push(format!("rsd-{name}.png"));
    let stem = out.join(format!("per-class-accuracy-{name}"));
    grouped_bars(
        &stem,
        &format!("Top-1 accuracy per class segment — {name} test"),
        x,
        "accuracy (%)",
        &m.segment_names,
        &series(&m.accuracy),
    )?;
    written.push(format!("per-class-accuracy-{name}.png"));
    Ok(written)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_sort_by_count_and_cover_every_class_once() {
        let counts: Vec<usize> = (0..25).map(|c| 100 - c * 3).collect();
        let s = segments(&counts);
        assert_eq!(s.len(), 10);
        let mut all: Vec<usize> = s.concat();
        all.sort();
        assert_eq!(all, (0..25).collect::<Vec<_>>());
        assert_eq!(s[0][0], 0);
        // 10 classes → 10 segments of one class
        assert_eq!(
            segments(&[5, 50, 20, 1, 2, 3, 4, 6, 7, 8])
                .iter()
                .map(|x| x.len())
                .max(),
            Some(1)
        );
        assert_eq!(segments(&[5, 50, 20])[0], vec![1]);
    }

    #[test]
    fn normalised_loma_has_mean_one() {
        let n = loma_norm(&[1.0, 2.0, 3.0, f64::NAN]);
        assert!((n[0] - 0.5).abs() < 1e-12 && (n[2] - 1.5).abs() < 1e-12 && n[3].is_nan());
    }
}
