//! `--tune`: pick lr and wd per method on a selection split (val, a held-out 20 % of train, or
//! test as a labelled oracle) before the real runs.

use crate::command::cli::{RunArgs, TuneOn};
use crate::command::execute::{Records, run_bank};
use crate::command::plan::Plan;
use crate::output::sweeps::TuneRow;
use crate::output::tables::Row;
use crate::run::{Job, RunOptions};
use bank::Bank;
use std::collections::HashMap;

/// `--tune`: run the lr × wd grid (`--grid`, or [`DEFAULT_TUNE_GRID`]) of every trainable
/// method on the selection split — the bank's val split, else a held-out 20 % of train
/// ([`held_out_bank`]), or test with `--tune-on test` (an oracle, labelled so) — and return
/// the plan's jobs with each method's best cell, plus the grid rows (row, chosen, split).
pub fn tune(
    args: &RunArgs,
    plan: &Plan,
    bank: &Bank,
    opts: RunOptions,
    rec: &mut Records,
    log: &dyn Fn(&str),
) -> anyhow::Result<(Vec<Job>, Vec<TuneRow>)> {
    let grid = args
        .grid
        .clone()
        .unwrap_or_else(|| DEFAULT_TUNE_GRID.parse().expect("default grid"));
    let (select_bank, split) = match args.tune_on {
        TuneOn::Test => (bank.clone(), "test (ORACLE: selected on test)".to_string()),
        TuneOn::Val if bank.val.is_some() => (bank.clone(), "val".to_string()),
        TuneOn::Val => (held_out_bank(bank), "a held-out 20 % of train".to_string()),
    };
    log(&format!(
        "tuning lr × wd ({} cells) of each trainable method on {split} of {}",
        grid.cells().len(),
        bank.name()
    ));
    let tunable = |j: &Job| !j.method.seed_independent();
    let grid_jobs: Vec<Job> = plan
        .jobs
        .iter()
        .filter(|j| tunable(j))
        .flat_map(|j| {
            grid.cells().into_iter().map(move |(lr, wd)| {
                let mut j = j.clone();
                j.method.hyper.lr = lr;
                j.method.hyper.wd = wd;
                j
            })
        })
        .collect();
    let run = run_bank(args, plan, &select_bank, &grid_jobs, opts, rec, log)?;
    // mean per-class accuracy: the held-out slice of a long-tailed train split is itself
    // long-tailed, and its micro top-1 would reward head-biased cells
    let score = |r: &Row| match args.tune_on {
        TuneOn::Test => r.acc[0].0,
        TuneOn::Val => r.val_balanced,
    };
    let mut out = Vec::new();
    let mut best: HashMap<String, (f32, f32)> = HashMap::new();
    for m in plan.methods.iter().filter(|m| !m.seed_independent()) {
        let cells: Vec<&Row> = run.rows.iter().filter(|r| r.method == m.name).collect();
        let pick = cells
            .iter()
            .filter_map(|r| Some((score(r)?, *r)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, r)| r);
        for r in &cells {
            let chosen = pick.is_some_and(|p| std::ptr::eq(p, *r));
            out.push(((*r).clone(), chosen, split.clone()));
        }
        if let Some(p) = pick {
            best.insert(m.name.clone(), (p.lr as f32, p.wd as f32));
        }
    }
    let jobs = plan
        .jobs
        .iter()
        .map(|j| {
            let mut j = j.clone();
            if let Some(&(lr, wd)) = best.get(&j.method.name) {
                j.method.hyper.lr = lr;
                j.method.hyper.wd = wd;
            }
            j
        })
        .collect();
    Ok((jobs, out))
}

/// The default `--tune` grid.
pub const DEFAULT_TUNE_GRID: &str = "lr=1e-4,5e-4,1e-3,5e-3,1e-2:wd=0,5e-4,5e-3";

/// A bank for tuning without a val split: every 5th training row of each class with at least
/// 5 rows (positions 4, 9, 14, … within the class, in file order) becomes `val`; the rest is
/// `train`. Deterministic; every class keeps ≥ 80 % of its rows.
pub fn held_out_bank(bank: &Bank) -> Bank {
    let (k, d) = (bank.num_classes, bank.dim);
    let mut pos = vec![0usize; k];
    let (mut tr, mut ho) = (Vec::new(), Vec::new());
    for (i, &l) in bank.train.labels.iter().enumerate() {
        let l = l as usize;
        if bank.train_counts[l] >= 5 && pos[l] % 5 == 4 {
            ho.push(i)
        } else {
            tr.push(i)
        }
        pos[l] += 1;
    }
    let x = bank.train.features();
    let take = |rows: &[usize], name: &str| bank::Split {
        path: bank.dir.join(format!("train.safetensors ({name})")),
        rows: rows.len(),
        dim: d,
        features: bank::Features::Owned(
            rows.iter()
                .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
                .collect(),
        ),
        features_flip: None,
        labels: rows.iter().map(|&i| bank.train.labels[i]).collect(),
    };
    let train = take(&tr, "tuning train");
    let val = take(&ho, "held-out");
    let mut meta = bank.meta.clone();
    meta.dataset = Some(format!("{}-tune-holdout", bank.name()));
    meta.train_counts = None;
    Bank {
        dir: bank.dir.clone(),
        train_counts: train.class_counts(k),
        train,
        val: Some(val),
        test: bank.test.clone(),
        head: bank.head.clone(),
        meta,
        num_classes: k,
        dim: d,
        shots: bank.shots,
        // the cells are scored on the cached features: no views for a subset of the rows
        train_views: None,
    }
}
