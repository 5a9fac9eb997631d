//! `retrain compare A B` and `retrain compare --baseline M [A]`: paired comparisons of runs
//! on the same test rows, from the folders' `predictions.parquet` (which rows each run got
//! right) and `per-class.csv` (each class's shot group). For every method present on both
//! sides (matched by bank, name, params and seed): Δ All / Many / Medium / Few (B − A, points,
//! mean over the matched seeds), the paired bootstrap 95 % interval of Δ (the same resampled
//! test rows for both sides) and its two-sided p-value, and McNemar's exact test on per-row
//! correctness (discordant counts summed over the matched seeds).

use super::csv::Csv;
use crate::output::evidence::bootstrap::{Resamples, interval, p_value};
use crate::output::evidence::paired::{discordant, mcnemar_exact};
use crate::output::evidence::table::pooled_correct;
use crate::output::predictions::{RunCorrect, read};
use anyhow::bail;
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// One results folder, as a comparison sees it.
pub struct Side {
    pub dir: PathBuf,
    pub labels: Vec<u32>,
    pub runs: Vec<RunCorrect>,
    /// Shot group index of each class (0 Many, 1 Medium, 2 Few).
    pub groups: Vec<Option<usize>>,
    /// Bank name → content fingerprint, from `config.json`.
    pub fingerprints: Vec<(String, String)>,
    /// Bank name → the train views its heads trained on ([`crate::output::views::recorded`]).
    pub views: Vec<(String, String)>,
}

impl Side {
    /// `dir/predictions.parquet` and the class groups of `dir/per-class.csv`.
    pub fn load(dir: &Path) -> anyhow::Result<Side> {
        if !dir.is_dir() {
            bail!("{}: not a results folder", dir.display());
        }
        let (labels, runs) = read(&dir.join("predictions.parquet"))?;
        let k = labels.iter().max().map_or(0, |&m| m as usize + 1);
        let csv = Csv::read(&dir.join("per-class.csv"))?;
        let (c, g) = (csv.need("class")?, csv.need("group")?);
        let mut groups = vec![None; k];
        for row in &csv.rows {
            let class: usize = row[c].parse().map_err(|_| {
                anyhow::anyhow!("{}: column `class`: `{}` is not a class", csv.path, row[c])
            })?;
            if class < k {
                groups[class] = ["many", "medium", "few"].iter().position(|x| *x == row[g]);
            }
        }
        let config = dir.join("config.json");
        let (fingerprints, views) = banks(&config)?;
        Ok(Side {
            dir: dir.into(),
            labels,
            runs,
            groups,
            fingerprints,
            views,
        })
    }

    /// The configurations (bank, method, params) in first-seen order.
    fn configs(&self) -> Vec<(String, String, String)> {
        let mut v: Vec<(String, String, String)> = Vec::new();
        for r in &self.runs {
            let c = (r.bank.clone(), r.method.clone(), r.params.clone());
            if !v.contains(&c) {
                v.push(c);
            }
        }
        v
    }
}

/// Bank name → fingerprint and bank name → views of a run's `config.json`.
type Banks = (Vec<(String, String)>, Vec<(String, String)>);

/// The `banks[].name` / `banks[].fingerprint` pairs of a run's `config.json`, and each bank's
/// recorded views (`banks[].views`).
fn banks(path: &Path) -> anyhow::Result<Banks> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", path.display()))?;
    let banks = v["banks"].as_array().ok_or_else(|| {
        anyhow::anyhow!(
            "{}: field `banks`: missing (not a results folder's config)",
            path.display()
        )
    })?;
    let fingerprints = banks
        .iter()
        .map(|b| match (b["name"].as_str(), b["fingerprint"].as_str()) {
            (Some(n), Some(f)) => Ok((n.to_string(), f.to_string())),
            _ => bail!("{}: field `banks[].fingerprint`: missing", path.display()),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let views = fingerprints
        .iter()
        .zip(banks)
        .map(|((n, _), b)| (n.clone(), crate::output::views::recorded(&b["views"])))
        .collect();
    Ok((fingerprints, views))
}

/// One line when a bank both folders ran trained on other views on each side (with views
/// on one, without on the other, or other views): then Δ mixes the methods with the views.
pub fn views_warning(a: &Side, b: &Side) -> Option<String> {
    let differ: Vec<String> = a
        .views
        .iter()
        .filter_map(|(name, va)| {
            let (_, vb) = b.views.iter().find(|(n, _)| n == name)?;
            (va != vb).then(|| format!("bank `{name}`: A {va}, B {vb}"))
        })
        .collect();
    (!differ.is_empty()).then(|| {
        format!(
            "warning: {} (A) and {} (B) differ in train views ({}): Δ includes the effect of the views",
            a.dir.display(),
            b.dir.display(),
            differ.join("; ")
        )
    })
}

/// Runs pair only on the same bank: a name both folders use must have the same fingerprint.
fn check_same_banks(a: &Side, b: &Side) -> anyhow::Result<()> {
    for (name, fa) in &a.fingerprints {
        if let Some((_, fb)) = b.fingerprints.iter().find(|(n, _)| n == name) {
            if fa != fb {
                bail!(
                    "{} and {}: bank `{name}` differs (fingerprint {fa} vs {fb} in their config.json): the same name, other contents; a paired comparison needs the same bank",
                    a.dir.display(),
                    b.dir.display()
                );
            }
        }
    }
    Ok(())
}

/// One line of `compare.csv`.
#[derive(Debug, Clone)]
pub struct Diff {
    pub bank: String,
    pub method: String,
    pub params: String,
    /// The side-A method (the baseline with `--baseline`).
    pub against: String,
    pub seeds: usize,
    /// Δ (points, B − A) of All, Many, Medium, Few; its 95 % interval; its p-value.
    pub delta: [f64; 4],
    pub ci: [Option<(f64, f64)>; 4],
    pub p: [f64; 4],
    /// McNemar: rows right on A only, on B only, exact p.
    pub mcnemar: (u64, u64, f64),
    /// Bootstrap resamples behind the intervals and p-values.
    pub resamples: usize,
}

/// The resolution of a bootstrap p-value: 1/B.
fn d_b(d: &Diff) -> f64 {
    d.resamples.max(1) as f64
}

/// The paired difference of the runs `b` against the runs `a` (pairs of per-row correctness).
fn diff(
    res: &Resamples,
    pairs: &[(&RunCorrect, &RunCorrect)],
    groups: &[Option<usize>],
    names: (&str, &str, &str, &str),
) -> Diff {
    let a: Vec<&[bool]> = pairs.iter().map(|(x, _)| &x.correct[..]).collect();
    let b: Vec<&[bool]> = pairs.iter().map(|(_, y)| &y.correct[..]).collect();
    let sa = pooled_correct(res, &a, groups).expect("runs");
    let sb = pooled_correct(res, &b, groups).expect("runs");
    let stat = |s: &(f64, Vec<f64>), g: usize| if g == 0 { s.0 } else { s.1[g - 1] };
    let point = |side: &[&[bool]], g: usize| -> f64 {
        // the statistic on the test rows themselves (every multiplicity 1)
        let n = side.len() as f64;
        side.iter()
            .map(|c| group_accuracy(c, groups, g, res))
            .sum::<f64>()
            / n
    };
    let mut delta = [0.0; 4];
    let mut ci = [None; 4];
    let mut p = [0.0; 4];
    for g in 0..4 {
        let d: Vec<f64> = sa
            .iter()
            .zip(&sb)
            .map(|(x, y)| stat(y, g) - stat(x, g))
            .collect();
        delta[g] = point(&b, g) - point(&a, g);
        ci[g] = interval(&d);
        p[g] = p_value(&d);
    }
    let (mut lo, mut hi) = (0u64, 0u64);
    for (x, y) in pairs {
        let (u, v) = discordant(&x.correct, &y.correct);
        lo += u;
        hi += v;
    }
    Diff {
        bank: names.0.into(),
        method: names.1.into(),
        params: names.2.into(),
        against: names.3.into(),
        seeds: pairs.len(),
        delta,
        ci,
        p,
        mcnemar: (lo, hi, mcnemar_exact(lo, hi)),
        resamples: res.b,
    }
}

/// Accuracy (percent) of per-row correctness `c`: All (g = 0) or the mean per-class accuracy
/// of group g − 1.
fn group_accuracy(c: &[bool], groups: &[Option<usize>], g: usize, res: &Resamples) -> f64 {
    let labels = res.labels();
    if g == 0 {
        return 100.0 * c.iter().filter(|&&x| x).count() as f64 / c.len().max(1) as f64;
    }
    let k = groups.len();
    let (mut right, mut total) = (vec![0usize; k], vec![0usize; k]);
    for (&ok, &y) in c.iter().zip(labels) {
        total[y as usize] += 1;
        right[y as usize] += ok as usize;
    }
    let accs: Vec<f64> = (0..k)
        .filter(|&cl| groups[cl] == Some(g - 1) && total[cl] > 0)
        .map(|cl| right[cl] as f64 / total[cl] as f64)
        .collect();
    if accs.is_empty() {
        f64::NAN
    } else {
        100.0 * accs.iter().sum::<f64>() / accs.len() as f64
    }
}

/// `compare A B`: every configuration of B that A has too, B − A.
pub fn compare_folders(
    a: &Side,
    b: &Side,
    resamples: usize,
    seed: u64,
) -> anyhow::Result<Vec<Diff>> {
    check_same_banks(a, b)?;
    if a.labels != b.labels {
        bail!(
            "{} and {}: the test splits differ ({} vs {} rows, or other labels): a paired comparison needs the same test rows",
            a.dir.display(),
            b.dir.display(),
            a.labels.len(),
            b.labels.len()
        );
    }
    let res = Resamples::new(&b.labels, b.groups.len(), resamples, seed);
    let mut out = Vec::new();
    for (bank, method, params) in b.configs() {
        let pairs: Vec<(&RunCorrect, &RunCorrect)> = b
            .runs
            .iter()
            .filter(|r| r.bank == bank && r.method == method && r.params == params)
            .filter_map(|rb| {
                a.runs
                    .iter()
                    .find(|ra| {
                        ra.bank == bank
                            && ra.method == method
                            && ra.params == params
                            && ra.seed == rb.seed
                    })
                    .map(|ra| (ra, rb))
            })
            .collect();
        if !pairs.is_empty() {
            out.push(diff(
                &res,
                &pairs,
                &b.groups,
                (&bank, &method, &params, &method),
            ));
        }
    }
    if out.is_empty() {
        bail!(
            "{} and {}: no run in common (runs are matched by bank, method, params and seed)",
            a.dir.display(),
            b.dir.display()
        );
    }
    Ok(out)
}

/// `compare --baseline M A`: every other configuration of A against M (paired by seed; a
/// one-seed side pairs with every seed of the other).
pub fn compare_baseline(
    a: &Side,
    baseline: &str,
    resamples: usize,
    seed: u64,
) -> anyhow::Result<Vec<Diff>> {
    let base: Vec<&RunCorrect> = a.runs.iter().filter(|r| r.method == baseline).collect();
    if base.is_empty() {
        let mut names: Vec<&str> = a.runs.iter().map(|r| r.method.as_str()).collect();
        names.dedup();
        bail!(
            "--baseline: `{baseline}` is not in {} (it has: {})",
            a.dir.join("predictions.parquet").display(),
            names.join(", ")
        );
    }
    if a.runs.iter().all(|r| r.method == baseline) {
        bail!(
            "--baseline: {} holds no method other than `{baseline}`",
            a.dir.join("predictions.parquet").display()
        );
    }
    let res = Resamples::new(&a.labels, a.groups.len(), resamples, seed);
    let mut out = Vec::new();
    for (bank, method, params) in a.configs() {
        if method == baseline {
            continue;
        }
        let runs: Vec<&RunCorrect> = a
            .runs
            .iter()
            .filter(|r| r.bank == bank && r.method == method && r.params == params)
            .collect();
        let base: Vec<&RunCorrect> = base.iter().copied().filter(|r| r.bank == bank).collect();
        let pairs: Vec<(&RunCorrect, &RunCorrect)> = runs
            .iter()
            .filter_map(|r| {
                let same = base.iter().find(|x| x.seed == r.seed);
                let any = (base.len() == 1 || runs.len() == 1)
                    .then(|| base.first())
                    .flatten();
                same.or(any).map(|x| (*x, *r))
            })
            .collect();
        if !pairs.is_empty() {
            out.push(diff(
                &res,
                &pairs,
                &a.groups,
                (&bank, &method, &params, baseline),
            ));
        }
    }
    Ok(out)
}

/// `compare.csv`.
pub fn frame(diffs: &[Diff]) -> PolarsResult<DataFrame> {
    let s = |f: &dyn Fn(&Diff) -> String| diffs.iter().map(f).collect::<Vec<_>>();
    let n = |f: &dyn Fn(&Diff) -> Option<f64>| {
        diffs
            .iter()
            .map(|d| {
                f(d).filter(|x| x.is_finite())
                    .map(|x| (x * 1e4).round() / 1e4)
            })
            .collect::<Vec<_>>()
    };
    let mut cols = vec![
        Column::new("bank".into(), s(&|d| d.bank.clone())),
        Column::new("method".into(), s(&|d| d.method.clone())),
        Column::new("params".into(), s(&|d| d.params.clone())),
        Column::new("against".into(), s(&|d| d.against.clone())),
        Column::new(
            "seeds".into(),
            diffs.iter().map(|d| d.seeds as u32).collect::<Vec<_>>(),
        ),
    ];
    for (g, name) in ["all", "many", "medium", "few"].iter().enumerate() {
        cols.push(Column::new(
            format!("delta_{name}").into(),
            n(&|d| Some(d.delta[g])),
        ));
        cols.push(Column::new(
            format!("delta_{name}_lo").into(),
            n(&|d| d.ci[g].map(|x| x.0)),
        ));
        cols.push(Column::new(
            format!("delta_{name}_hi").into(),
            n(&|d| d.ci[g].map(|x| x.1)),
        ));
        cols.push(Column::new(
            format!("p_{name}").into(),
            n(&|d| Some(d.p[g])),
        ));
    }
    cols.push(Column::new(
        "mcnemar_b".into(),
        diffs.iter().map(|d| d.mcnemar.0).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "mcnemar_c".into(),
        diffs.iter().map(|d| d.mcnemar.1).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        "mcnemar_p".into(),
        diffs.iter().map(|d| d.mcnemar.2).collect::<Vec<_>>(),
    ));
    DataFrame::new_infer_height(cols)
}

/// The comparison as text for stdout (`*`: the paired bootstrap interval of Δ All excludes 0).
pub fn render(diffs: &[Diff]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<24} {:>3}  {:>22}  {:>8}  {:>7}  {:>7}  {:>7}  {:>13}  {:>9}",
        "method", "n", "Δ All [95 % CI]", "p", "Δ Many", "Δ Med", "Δ Few", "McNemar b/c", "p"
    );
    for d in diffs {
        let label = if d.params.is_empty() {
            d.method.clone()
        } else {
            format!("{} {}", d.method, d.params)
        };
        let ci = d.ci[0].map_or("—".into(), |(lo, hi)| format!("[{lo:+.2}, {hi:+.2}]"));
        let sig = d.ci[0].is_some_and(|(lo, hi)| lo > 0.0 || hi < 0.0);
        let p = if d.p[0] < 1.0 / d_b(d) {
            format!("<{:.0e}", 1.0 / d_b(d))
        } else {
            format!("{:.3}", d.p[0])
        };
        let mc = match d.mcnemar.2 {
            x if x < 1e-300 => "<1e-300".to_string(),
            x if x < 1e-3 => format!("{x:.1e}"),
            x => format!("{x:.3}"),
        };
        let _ = writeln!(
            s,
            "{:<24} {:>3}  {:>+6.2} {:>15}{}  {:>8}  {:>+7.2}  {:>+7.2}  {:>+7.2}  {:>13}  {:>9}",
            label,
            d.seeds,
            d.delta[0],
            ci,
            if sig { "*" } else { " " },
            p,
            d.delta[1],
            d.delta[2],
            d.delta[3],
            format!("{}/{}", d.mcnemar.0, d.mcnemar.1),
            mc
        );
    }
    s
}
