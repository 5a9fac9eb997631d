//! Run records → Polars tables → CSV files (written atomically) and the table on stdout.
//!
//! - `runs.csv`: long format, one row per method × parameters × seed × split × group.
//! - `per-class.csv`: one row per method × parameters × seed × class (test split), with the
//!   class's train count, shot group, accuracy, LoMa and RSD.
//! - `table1.csv`: one row per method × parameters, mean and sample std over seeds.

use crate::eval::Evaluation;
use crate::method::{Method, params};
use crate::output::evidence::row::RowEvidence;
use crate::run::RunRecord;
use bank::{Bank, ShotGroup};
use polars::prelude::*;
use std::path::Path;

/// Mean and sample standard deviation (ddof 1; `None` with fewer than two values).
pub fn mean_std(xs: &[f64]) -> (Option<f64>, Option<f64>) {
    if xs.is_empty() {
        return (None, None);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let std = (xs.len() > 1)
        .then(|| (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (Some(mean), std)
}

/// One aggregated row: a configuration over its seeds.
#[derive(Debug, Clone)]
pub struct Row {
    pub bank: String,
    pub method: String,
    pub delta: Option<f64>,
    pub tau: Option<f64>,
    pub lr: f64,
    pub wd: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub init: String,
    pub n_seeds: usize,
    /// (mean, std) in percent for all, many, medium, few.
    pub acc: [(Option<f64>, Option<f64>); 4],
    pub ece: (Option<f64>, Option<f64>),
    pub nll: (Option<f64>, Option<f64>),
    /// LoMa coefficient of variation across classes (std/mean), mean over seeds.
    pub loma_cv: Option<f64>,
    pub oracle_all: Option<f64>,
    /// Mean val top-1 (%) when the bank has a val split.
    pub val_all: Option<f64>,
    /// Mean val mean-per-class accuracy (%): what selection on val maximises.
    pub val_balanced: Option<f64>,
    pub selection: String,
    /// Seeds whose record was made by another code identity (`--reuse-stale`).
    pub stale_runs: usize,
    /// The configuration of the row (its first seed's method), for any swept parameter.
    pub config: Method,
    /// Top-5, harmonic and geometric mean of per-class accuracy, macro precision, macro F1
    /// (all classes), macro F1 of Many / Medium / Few: mean over seeds, percent.
    pub more: [Option<f64>; 8],
    /// Bootstrap intervals and the comparison with the baseline row (set after aggregation:
    /// [`crate::output::evidence::table::annotate`]).
    pub evidence: RowEvidence,
}

/// The names of [`Row::more`] (table1.csv columns).
pub const MORE: [&str; 8] = [
    "top5",
    "hmean",
    "gmean",
    "macro_precision",
    "macro_f1",
    "many_f1",
    "medium_f1",
    "few_f1",
];

impl Row {
    /// The value of parameter `p` of the row: delta, tau, lr, wd, or any numeric constant
    /// of the method (`--sweep`).
    pub fn param(&self, p: &str) -> Option<f64> {
        param_value(&self.config, p)
    }

    /// The method name with the parameters that vary in this table (`los δ=0.5`).
    pub fn label(&self, swept: &[String]) -> String {
        let l = label(&self.config, swept);
        if self.stale_runs > 0 {
            format!("{l} {STALE}")
        } else {
            l
        }
    }
}

/// The label of a run's method, as [`Row::label`] gives it for its row.
pub fn record_label(r: &RunRecord, swept: &[String]) -> String {
    let l = label(&r.method, swept);
    if r.stale.is_some() {
        format!("{l} {STALE}")
    } else {
        l
    }
}

/// The label of rows and runs reused from another code identity (`--reuse-stale`).
pub const STALE: &str = "[stale]";

/// Parameter `p` of `m` as the user typed it: δ, τ, lr, wd or a `--sweep` constant.
fn param_value(m: &Method, p: &str) -> Option<f64> {
    match p {
        "delta" => m.delta().map(wide),
        "tau" => m.tau().map(wide),
        "lr" => Some(wide(m.hyper.lr)),
        "wd" => Some(wide(m.hyper.wd)),
        other => params::value(m, other).map(|v| wide(v as f32)),
    }
}

fn label(m: &Method, swept: &[String]) -> String {
    let mut s = m.name.clone();
    for p in swept {
        let sym = match p.as_str() {
            "delta" => "δ",
            "tau" => "τ",
            other => other,
        };
        if let Some(v) = param_value(m, p) {
            s.push_str(&format!(" {sym}={v}"));
        }
    }
    s
}

/// An f32 parameter as the f64 a user typed (0.1f32 → 0.1, not 0.10000000149011612).
pub fn wide(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

fn r4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// The configuration a record belongs to: its whole method (every part and constant).
fn key(r: &RunRecord) -> String {
    config_key(&r.method)
}

/// The key of a configuration (a row of the table).
pub fn config_key(m: &Method) -> String {
    serde_json::to_string(m).expect("a method serialises")
}

/// All (g = 0, micro top-1), Many, Medium, Few (g = 1, 2, 3) of an evaluation, with the shot
/// groups of the table being built.
fn group_acc(e: &Evaluation, groups: &[ShotGroup], g: usize) -> Option<f64> {
    if g == 0 {
        Some(e.top1)
    } else {
        e.group_accuracy(groups, ShotGroup::ALL[g - 1])
    }
}

/// LoMa's coefficient of variation across classes: how uneven the logit margins are.
pub fn loma_cv(e: &Evaluation) -> Option<f64> {
    let v: Vec<f64> = e.loma.iter().copied().filter(|x| x.is_finite()).collect();
    let (m, s) = mean_std(&v);
    Some(s? / m?.abs())
}

/// Aggregate one bank's records by configuration, in order of first appearance; `groups[c]`
/// is the shot group of class c.
pub fn aggregate(bank: &str, groups: &[ShotGroup], records: &[RunRecord]) -> Vec<Row> {
    let mut order: Vec<String> = Vec::new();
    let mut by: std::collections::HashMap<String, Vec<&RunRecord>> = Default::default();
    for r in records {
        let k = key(r);
        if !by.contains_key(&k) {
            order.push(k.clone());
        }
        by.entry(k).or_default().push(r);
    }
    order
        .iter()
        .map(|k| {
            let rs = &by[k];
            let m = &rs[0].method;
            let col = |f: &dyn Fn(&RunRecord) -> Option<f64>| -> (Option<f64>, Option<f64>) {
                let v: Vec<f64> = rs.iter().filter_map(|r| f(r)).collect();
                if v.len() < rs.len() {
                    (None, None)
                } else {
                    mean_std(&v)
                }
            };
            let acc = [0, 1, 2, 3]
                .map(|g| col(&|r: &RunRecord| group_acc(&r.test, groups, g).map(|a| 100.0 * a)));
            let oracle = col(&|r: &RunRecord| r.oracle.map(|(a, _)| 100.0 * a)).0;
            let all = |_: usize| true;
            let in_group = |g: ShotGroup| move |c: usize| groups[c] == g;
            let pct = |v: Option<f64>| v.map(|x| 100.0 * x);
            let more: [Option<f64>; 8] = [
                col(&|r: &RunRecord| {
                    (!r.test.per_class_top5.is_empty()).then(|| 100.0 * r.test.top5())
                })
                .0,
                col(&|r: &RunRecord| pct(r.test.hmean(&all))).0,
                col(&|r: &RunRecord| pct(r.test.gmean(&all))).0,
                col(&|r: &RunRecord| pct(r.test.macro_precision_f1(&all).map(|x| x.0))).0,
                col(&|r: &RunRecord| pct(r.test.macro_precision_f1(&all).map(|x| x.1))).0,
                col(&|r: &RunRecord| {
                    pct(r
                        .test
                        .macro_precision_f1(&in_group(ShotGroup::Many))
                        .map(|x| x.1))
                })
                .0,
                col(&|r: &RunRecord| {
                    pct(r
                        .test
                        .macro_precision_f1(&in_group(ShotGroup::Medium))
                        .map(|x| x.1))
                })
                .0,
                col(&|r: &RunRecord| {
                    pct(r
                        .test
                        .macro_precision_f1(&in_group(ShotGroup::Few))
                        .map(|x| x.1))
                })
                .0,
            ];
            Row {
                bank: bank.to_string(),
                method: m.name.clone(),
                delta: m.delta().map(wide),
                tau: m.tau().map(wide),
                lr: wide(m.hyper.lr),
                wd: wide(m.hyper.wd),
                epochs: m.hyper.epochs,
                batch_size: m.hyper.batch_size,
                init: format!("{:?}", m.hyper.init).to_lowercase(),
                n_seeds: rs.len(),
                acc,
                ece: col(&|r: &RunRecord| Some(r.test.ece)),
                nll: col(&|r: &RunRecord| Some(r.test.nll)),
                loma_cv: col(&|r: &RunRecord| loma_cv(&r.test)).0,
                oracle_all: oracle,
                val_all: col(&|r: &RunRecord| r.val.as_ref().map(|v| 100.0 * v.top1)).0,
                val_balanced: col(&|r: &RunRecord| r.val.as_ref().map(|v| 100.0 * v.balanced())).0,
                selection: if rs[0].selected_epoch.is_some() {
                    "val"
                } else {
                    "final"
                }
                .to_string(),
                stale_runs: rs.iter().filter(|r| r.stale.is_some()).count(),
                config: m.clone(),
                more,
                evidence: RowEvidence::default(),
            }
        })
        .collect()
}

fn opt(v: Option<f64>) -> Option<f64> {
    v.map(r4)
}

/// The 95 % t-interval of All over the row's seeds (n ≥ 2): mean ± t₀.₉₇₅(n − 1)·s/√n.
pub fn t_interval(r: &Row) -> Option<(f64, f64)> {
    let (m, s) = (r.acc[0].0?, r.acc[0].1?);
    let n = r.n_seeds;
    (n >= 2).then(|| {
        let h = crate::output::evidence::bootstrap::t975(n - 1) * s / (n as f64).sqrt();
        (m - h, m + h)
    })
}

/// `table1.csv`; a column for each swept parameter beyond delta, tau, lr and wd.
pub fn table_frame(rows: &[Row], swept: &[String]) -> PolarsResult<DataFrame> {
    let c = |name: &str, f: &dyn Fn(&Row) -> Option<f64>| {
        Column::new(
            name.into(),
            rows.iter().map(|r| opt(f(r))).collect::<Vec<_>>(),
        )
    };
    let mut cols = vec![
        Column::new(
            "method".into(),
            rows.iter().map(|r| r.method.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "n_seeds".into(),
            rows.iter().map(|r| r.n_seeds as u32).collect::<Vec<_>>(),
        ),
        c("all", &|r| r.acc[0].0),
        c("all_std", &|r| r.acc[0].1),
        c("many", &|r| r.acc[1].0),
        c("medium", &|r| r.acc[2].0),
        c("few", &|r| r.acc[3].0),
        c("many_std", &|r| r.acc[1].1),
        c("medium_std", &|r| r.acc[2].1),
        c("few_std", &|r| r.acc[3].1),
        c("all_ci_lo", &|r| r.evidence.ci[0].map(|x| x.0)),
        c("all_ci_hi", &|r| r.evidence.ci[0].map(|x| x.1)),
        c("many_ci_lo", &|r| r.evidence.ci[1].map(|x| x.0)),
        c("many_ci_hi", &|r| r.evidence.ci[1].map(|x| x.1)),
        c("medium_ci_lo", &|r| r.evidence.ci[2].map(|x| x.0)),
        c("medium_ci_hi", &|r| r.evidence.ci[2].map(|x| x.1)),
        c("few_ci_lo", &|r| r.evidence.ci[3].map(|x| x.0)),
        c("few_ci_hi", &|r| r.evidence.ci[3].map(|x| x.1)),
        c("all_t_lo", &|r| t_interval(r).map(|x| x.0)),
        c("all_t_hi", &|r| t_interval(r).map(|x| x.1)),
        c("vs_baseline_delta", &|r| {
            r.evidence.vs_baseline.map(|x| x.0)
        }),
        c("vs_baseline_lo", &|r| r.evidence.vs_baseline.map(|x| x.1.0)),
        c("vs_baseline_hi", &|r| r.evidence.vs_baseline.map(|x| x.1.1)),
        c("vs_baseline_p", &|r| r.evidence.vs_baseline.map(|x| x.2)),
        c("top5", &|r| r.more[0]),
        c("hmean", &|r| r.more[1]),
        c("gmean", &|r| r.more[2]),
        c("macro_precision", &|r| r.more[3]),
        c("macro_f1", &|r| r.more[4]),
        c("many_f1", &|r| r.more[5]),
        c("medium_f1", &|r| r.more[6]),
        c("few_f1", &|r| r.more[7]),
        c("ece_15bins", &|r| r.ece.0),
        c("nll", &|r| r.nll.0),
        c("loma_cv", &|r| r.loma_cv),
        c("delta", &|r| r.delta),
        c("tau", &|r| r.tau),
        c("lr", &|r| Some(r.lr)),
        c("wd", &|r| Some(r.wd)),
        Column::new(
            "epochs".into(),
            rows.iter().map(|r| r.epochs as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "batch_size".into(),
            rows.iter().map(|r| r.batch_size as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "init".into(),
            rows.iter().map(|r| r.init.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "selection".into(),
            rows.iter()
                .map(|r| r.selection.to_string())
                .collect::<Vec<_>>(),
        ),
    ];
    for p in swept {
        if !["delta", "tau", "lr", "wd"].contains(&p.as_str()) {
            cols.push(c(p, &|r| r.param(p)));
        }
    }
    if rows.iter().any(|r| r.val_all.is_some()) {
        cols.push(c("val_all", &|r| r.val_all));
        cols.push(c("val_balanced", &|r| r.val_balanced));
    }
    cols.push(Column::new(
        "bank".into(),
        rows.iter().map(|r| r.bank.clone()).collect::<Vec<_>>(),
    ));
    if rows.iter().any(|r| r.oracle_all.is_some()) {
        cols.push(c("oracle_all_best_test_epoch", &|r| r.oracle_all));
    }
    if rows.iter().any(|r| r.stale_runs > 0) {
        cols.push(Column::new(
            "stale_runs".into(),
            rows.iter().map(|r| r.stale_runs as u32).collect::<Vec<_>>(),
        ));
    }
    DataFrame::new_infer_height(cols)
}

/// `runs.csv`: long format.
pub fn runs_frame(
    bank: &Bank,
    groups: &[ShotGroup],
    records: &[RunRecord],
) -> PolarsResult<DataFrame> {
    let mut method = Vec::new();
    let (mut head, mut loss, mut sampler, mut constraint, mut posthoc) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut delta, mut tau, mut lr, mut wd, mut momentum) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut epochs, mut batch, mut init, mut schedule, mut seed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut split, mut group, mut acc, mut ece, mut nll, mut sel, mut secs) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let names = ["all", "many", "medium", "few"];
    for r in records {
        let m = &r.method;
        let evals: Vec<(&str, &Evaluation)> = std::iter::once(("test", &r.test))
            .chain(r.val.as_ref().map(|v| ("val", v)))
            .collect();
        for (sname, e) in evals {
            for (g, gname) in names.iter().enumerate() {
                method.push(m.name.clone());
                head.push(serde_json::to_string(&m.head).unwrap());
                loss.push(serde_json::to_string(&m.loss).unwrap());
                sampler.push(
                    serde_json::to_string(&m.sampler)
                        .unwrap()
                        .trim_matches('"')
                        .to_string(),
                );
                constraint.push(serde_json::to_string(&m.constraint).unwrap());
                posthoc.push(serde_json::to_string(&m.posthoc).unwrap());
                delta.push(m.delta().map(wide));
                tau.push(m.tau().map(wide));
                lr.push(wide(m.hyper.lr));
                wd.push(wide(m.hyper.wd));
                momentum.push(wide(m.hyper.momentum));
                epochs.push(m.hyper.epochs as u32);
                batch.push(m.hyper.batch_size as u32);
                init.push(format!("{:?}", m.hyper.init).to_lowercase());
                schedule.push(format!("{:?}", m.hyper.schedule).to_lowercase());
                seed.push(r.seed);
                split.push(sname.to_string());
                group.push(gname.to_string());
                acc.push(group_acc(e, groups, g).map(|a| r4(100.0 * a)));
                ece.push((g == 0).then_some(r4(e.ece)));
                nll.push((g == 0).then_some(r4(e.nll)));
                sel.push(r.selected_epoch.map(|x| x as u32));
                secs.push(r4(r.seconds));
            }
        }
    }
    let n = method.len();
    let mut cols = vec![
        Column::new("bank".into(), vec![bank.name(); n]),
        Column::new("method".into(), method),
        Column::new("head".into(), head),
        Column::new("loss".into(), loss),
        Column::new("sampler".into(), sampler),
        Column::new("constraint".into(), constraint),
        Column::new("posthoc".into(), posthoc),
        Column::new("delta".into(), delta),
        Column::new("tau".into(), tau),
        Column::new("lr".into(), lr),
        Column::new("wd".into(), wd),
        Column::new("momentum".into(), momentum),
        Column::new("epochs".into(), epochs),
        Column::new("batch_size".into(), batch),
        Column::new("init".into(), init),
        Column::new("schedule".into(), schedule),
        Column::new("seed".into(), seed),
        Column::new("split".into(), split),
        Column::new("group".into(), group),
        Column::new("accuracy".into(), acc),
        Column::new("ece_15bins".into(), ece),
        Column::new("nll".into(), nll),
        Column::new("selected_epoch".into(), sel),
        Column::new("seconds".into(), secs),
    ];
    let per_row = |r: &RunRecord| r.val.as_ref().map_or(4, |_| 8);
    stale_column(&mut cols, records, &per_row);
    DataFrame::new(n, cols)
}

/// With reused stale records (`--reuse-stale`), a `stale_code` column: the code identity of
/// each row's record (blank for this build's); `per_row(r)` is how many rows record r has.
fn stale_column(
    cols: &mut Vec<Column>,
    records: &[RunRecord],
    per_row: &dyn Fn(&RunRecord) -> usize,
) {
    if records.iter().any(|r| r.stale.is_some()) {
        let v: Vec<Option<String>> = records
            .iter()
            .flat_map(|r| std::iter::repeat_n(r.stale.clone(), per_row(r)))
            .collect();
        cols.push(Column::new("stale_code".into(), v));
    }
}

/// `per-class.csv` (test split).
pub fn per_class_frame(
    bank: &Bank,
    groups: &[ShotGroup],
    records: &[RunRecord],
) -> PolarsResult<DataFrame> {
    let (mut method, mut delta, mut tau, mut seed, mut class, mut train_count) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut test_count, mut group, mut acc, mut loma, mut rsd) =
        (vec![], vec![], vec![], vec![], vec![]);
    for r in records {
        let accuracy = r.test.per_class();
        for c in 0..bank.num_classes {
            method.push(r.method.name.clone());
            delta.push(r.method.delta().map(wide));
            tau.push(r.method.tau().map(wide));
            seed.push(r.seed);
            class.push(c as u32);
            train_count.push(bank.train_counts[c] as u32);
            test_count.push(r.test.per_class_count[c] as u32);
            group.push(groups[c].name().to_string());
            let f = |x: f64| x.is_finite().then(|| r4(x));
            acc.push(f(100.0 * accuracy[c]));
            loma.push(f(r.test.loma[c]));
            rsd.push(f(r.test.rsd[c]));
        }
    }
    let n = method.len();
    let mut cols = vec![
        Column::new("bank".into(), vec![bank.name(); n]),
        Column::new("method".into(), method),
        Column::new("delta".into(), delta),
        Column::new("tau".into(), tau),
        Column::new("seed".into(), seed),
        Column::new("class".into(), class),
        Column::new("train_count".into(), train_count),
        Column::new("test_count".into(), test_count),
        Column::new("group".into(), group),
        Column::new("accuracy".into(), acc),
        Column::new("loma".into(), loma),
        Column::new("rsd".into(), rsd),
    ];
    stale_column(&mut cols, records, &|_| bank.num_classes);
    DataFrame::new(n, cols)
}

/// Write a frame as CSV, atomically (temporary file, then rename).
pub fn write_csv(path: &Path, df: &mut DataFrame) -> anyhow::Result<()> {
    bank::write::write_atomic(path, |tmp| {
        let mut f = std::fs::File::create(tmp)?;
        CsvWriter::new(&mut f)
            .include_header(true)
            .finish(df)
            .map_err(std::io::Error::other)?;
        f.sync_all()
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert_eq!(m, Some(2.0));
        assert!((s.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[5.0]), (Some(5.0), None));
        assert_eq!(mean_std(&[]), (None, None));
    }
}
