//! The paper's analysis outputs, computed from run records: LoMa / RSD per class and per class
//! segment (Fig. 3), the δ sweep (Fig. 4), the lr × wd grid (Fig. 5), per-class accuracy.
//!
//! - LoMa_i = mean of logit i over test samples of class i − mean of logit i over the test
//!   samples of the other classes; `loma_norm_i` = LoMa_i / mean_j LoMa_j (the "1-norm
//!   regularised" LoMa of Fig. 3, comparable across methods);
//! - RSD_i = std of logit i over the test samples of class i (population std) / LoMa_i;
//! - segments: classes sorted by train count (descending), cut into 10 segments of K/10
//!   classes (10 classes each for K = 100, as in Fig. 3).

use crate::output::tables::mean_std;
use crate::run::RunRecord;
use bank::Bank;
use polars::prelude::*;

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
