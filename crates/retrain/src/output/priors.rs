//! `prior-shift.csv` and its figure: every row's accuracy under each shifted test prior of
//! `--test-prior` ([`crate::eval::priors`]), mean over the row's seeds; a run evaluated with
//! PC-softmax's correction for a prior (the `prior-correct` row, `--prior-correct`) reports the
//! corrected accuracy for it.

use crate::eval::priors::{TestPrior, shifted_accuracy};
use crate::output::plots::{Series, line_plot};
use crate::output::tables::{Row, config_key};
use crate::run::RunRecord;
use bank::ShotGroup;
use polars::prelude::*;
use std::path::Path;

/// One line of prior-shift.csv: a row of the table under one prior (percent).
#[derive(Debug, Clone)]
pub struct Shifted {
    pub bank: String,
    pub method: String,
    pub prior: TestPrior,
    /// All, Many, Medium, Few.
    pub acc: [Option<f64>; 4],
}

/// The per-class accuracies of `r` under prior `p`: its corrected evaluation when it has one.
fn accuracies(r: &RunRecord, p: TestPrior) -> Vec<f64> {
    let name = p.to_string();
    match r.prior_corrected.iter().find(|(n, _)| *n == name) {
        Some((_, correct)) => correct
            .iter()
            .zip(&r.test.per_class_count)
            .map(|(&c, &t)| {
                if t == 0 {
                    f64::NAN
                } else {
                    c as f64 / t as f64
                }
            })
            .collect(),
        None => r.test.per_class(),
    }
}

/// Every row of one bank under every prior of `priors`; `label(row)` names a row.
pub fn shifted(
    bank: &str,
    train_counts: &[usize],
    groups: &[ShotGroup],
    rows: &[Row],
    records: &[RunRecord],
    priors: &[TestPrior],
    label: &dyn Fn(&Row) -> String,
) -> Vec<Shifted> {
    let mut out = Vec::new();
    for row in rows {
        let key = config_key(&row.config);
        let runs: Vec<&RunRecord> = records
            .iter()
            .filter(|r| config_key(&r.method) == key)
            .collect();
        for &p in priors {
            let q = p.weights(train_counts);
            let mut acc = [None; 4];
            for (g, slot) in acc.iter_mut().enumerate() {
                let keep = |c: usize| g == 0 || groups[c] == ShotGroup::ALL[g - 1];
                let v: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| shifted_accuracy(&q, &accuracies(r, p), &keep))
                    .collect();
                if !v.is_empty() && v.len() == runs.len() {
                    *slot = Some(100.0 * v.iter().sum::<f64>() / v.len() as f64);
                }
            }
            out.push(Shifted {
                bank: bank.into(),
                method: label(row),
                prior: p,
                acc,
            });
        }
    }
    out
}

/// `prior-shift.csv`: bank, method, prior, all, many, medium, few.
pub fn frame(lines: &[Shifted]) -> PolarsResult<DataFrame> {
    let r4 = |x: Option<f64>| x.map(|v| (v * 1e4).round() / 1e4);
    let mut cols = vec![
        Column::new(
            "bank".into(),
            lines.iter().map(|l| l.bank.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "method".into(),
            lines.iter().map(|l| l.method.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "prior".into(),
            lines
                .iter()
                .map(|l| l.prior.to_string())
                .collect::<Vec<_>>(),
        ),
    ];
    for (g, name) in ["all", "many", "medium", "few"].iter().enumerate() {
        cols.push(Column::new(
            (*name).into(),
            lines.iter().map(|l| r4(l.acc[g])).collect::<Vec<_>>(),
        ));
    }
    DataFrame::new_infer_height(cols)
}

/// The prior's position on the figure's x axis: −log₁₀ R (forward), 0 (uniform), +log₁₀ R.
pub fn axis(p: TestPrior) -> f64 {
    match p {
        TestPrior::Uniform => 0.0,
        TestPrior::Forward(r) => -(r as f64).log10(),
        TestPrior::Backward(r) => (r as f64).log10(),
    }
}

/// All against the prior, one line per method (of one bank).
pub fn figure(stem: &Path, bank: &str, lines: &[Shifted]) -> anyhow::Result<()> {
    let mut methods: Vec<&str> = Vec::new();
    for l in lines.iter().filter(|l| l.bank == bank) {
        if !methods.contains(&l.method.as_str()) {
            methods.push(&l.method);
        }
    }
    let series: Vec<Series> = methods
        .iter()
        .map(|m| Series {
            label: m.to_string(),
            points: lines
                .iter()
                .filter(|l| l.bank == bank && l.method == *m)
                .filter_map(|l| Some((axis(l.prior), l.acc[0]?)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    line_plot(
        stem,
        &format!("{bank}: test accuracy under shifted test priors"),
        "test prior: −log₁₀ R (forward-R) … 0 (uniform) … +log₁₀ R (backward-R)",
        "top-1 accuracy (%), Σ q_c acc_c",
        &series,
    )
}
