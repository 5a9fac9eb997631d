//! The intervals and marks of a table's rows: for every row, the 95 % bootstrap interval of
//! All / Many / Medium / Few (the same resamples for every row, pooled over the row's seeds),
//! and the paired bootstrap difference of All against the baseline row (▲ / ▼ / = at α = 0.05).

use super::bootstrap::{Resamples, interval, p_value};
use crate::output::tables::{Row, config_key};
use crate::run::RunRecord;
use bank::ShotGroup;

pub use super::row::RowEvidence;

/// The pooled-over-seeds statistics of each resample of the runs `runs` (per-row
/// correctness): [b] of (All, [Many, Medium, Few]) in percent; `None` when a run has no
/// predictions.
pub fn pooled(
    res: &Resamples,
    runs: &[&RunRecord],
    labels: &[u32],
    groups: &[ShotGroup],
) -> Option<Vec<(f64, Vec<f64>)>> {
    let group: Vec<Option<usize>> = groups
        .iter()
        .map(|g| ShotGroup::ALL.iter().position(|x| x == g))
        .collect();
    let corrects: Vec<Vec<bool>> = runs
        .iter()
        .map(|r| {
            let p = r.test.predictions.as_ref()?;
            Some(p.pred.iter().zip(labels).map(|(a, b)| a == b).collect())
        })
        .collect::<Option<_>>()?;
    let refs: Vec<&[bool]> = corrects.iter().map(|c| &c[..]).collect();
    pooled_correct(res, &refs, &group)
}

/// [`pooled`] from per-row correctness; `group[c]` is the index (0 Many, 1 Medium, 2 Few) of
/// class c's group.
pub fn pooled_correct(
    res: &Resamples,
    runs: &[&[bool]],
    group: &[Option<usize>],
) -> Option<Vec<(f64, Vec<f64>)>> {
    let mut sum: Option<Vec<(f64, Vec<f64>)>> = None;
    for correct in runs {
        let cc = res.class_correct(&res.arrange(correct));
        let st = res.stats(&cc, group, 3);
        sum = Some(match sum {
            None => st,
            Some(mut acc) => {
                for ((a, g), (b, h)) in acc.iter_mut().zip(st) {
                    *a += b;
                    g.iter_mut().zip(h).for_each(|(x, y)| *x += y);
                }
                acc
            }
        });
    }
    let n = runs.len() as f64;
    sum.map(|v| {
        v.into_iter()
            .map(|(a, g)| {
                (
                    100.0 * a / n,
                    g.into_iter().map(|x| 100.0 * x / n).collect(),
                )
            })
            .collect()
    })
}

/// The evidence of every row of one bank's table (rows in [`crate::output::tables::aggregate`]
/// order, built from `records`), with `baseline` (a method name) as the reference of the
/// marks, `b` resamples seeded by `seed`.
pub fn annotate(
    rows: &[Row],
    records: &[RunRecord],
    labels: &[u32],
    k: usize,
    groups: &[ShotGroup],
    baseline: &str,
    b: usize,
    seed: u64,
) -> Vec<RowEvidence> {
    if b == 0 || records.is_empty() {
        return vec![RowEvidence::default(); rows.len()];
    }
    let res = Resamples::new(labels, k, b, seed);
    let stats: Vec<Option<Vec<(f64, Vec<f64>)>>> = rows
        .iter()
        .map(|row| {
            let key = config_key(&row.config);
            let runs: Vec<&RunRecord> = records
                .iter()
                .filter(|r| config_key(&r.method) == key)
                .collect();
            pooled(&res, &runs, labels, groups)
        })
        .collect();
    // the baseline: the first row of that method (with its own parameters)
    let base = rows
        .iter()
        .position(|r| r.method == baseline)
        .and_then(|i| stats[i].as_ref().map(|s| (i, s)));
    stats
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let Some(st) = st else {
                return RowEvidence::default();
            };
            let col = |g: usize| -> Vec<f64> {
                st.iter()
                    .map(|(a, m)| if g == 0 { *a } else { m[g - 1] })
                    .collect()
            };
            let ci = [0, 1, 2, 3].map(|g| interval(&col(g)));
            let vs_baseline = match base {
                Some((bi, bs)) if bi != i => {
                    let d: Vec<f64> = st.iter().zip(bs).map(|(x, y)| x.0 - y.0).collect();
                    let point = rows[i].acc[0].0.unwrap_or(f64::NAN)
                        - rows[bi].acc[0].0.unwrap_or(f64::NAN);
                    interval(&d).map(|iv| (point, iv, p_value(&d)))
                }
                _ => None,
            };
            RowEvidence { ci, vs_baseline }
        })
        .collect()
}
