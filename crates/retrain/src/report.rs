//! The `run` command end to end: plan → stage-1 head → runs → tables → files and stdout.

use crate::analysis::{
    delta_figure, grid_figure, loma_frame, segment_figures, segment_frame, segment_means,
};
use crate::cli::{Plan, RunArgs, TuneOn};
use crate::device::DeviceBank;
use crate::head::HeadState;
use crate::linalg::Parallelism;
use crate::method::Head;
use crate::records::{self, Appender, CODE_ID, Line, Stored, job_key};
use crate::runner::{Job, RunOptions, RunRecord, run_jobs};
use crate::stage1::fit_stage1_head;
use crate::tables::{
    Row, aggregate, per_class_frame, record_label, render, runs_frame, table_frame, write_csv,
};
use bank::{Bank, ShotGroup};
use indicatif::{ProgressBar, ProgressStyle};
use polars::prelude::{Column, DataFrame, PolarsResult};
use std::collections::HashMap;
use std::io::Write;

/// The stage-1 head of the bank, or one fitted with plain CE when the bank has none.
pub fn stage1_head(bank: &Bank, threads: usize, log: &dyn Fn(&str)) -> HeadState {
    match &bank.head {
        Some(h) => HeadState::from_linear(
            Head::Linear,
            h.num_classes,
            h.dim,
            h.weight.clone(),
            h.bias.clone(),
        ),
        None => {
            log(&format!(
                "{}: no head.safetensors: fitting a stage-1 head with plain CE (≥ 30 epochs and ≥ 2000 steps, lr 0.05, seed 0)",
                bank.dir.display()
            ));
            fit_stage1_head(
                &bank.train,
                &bank.train_counts,
                30,
                0.05,
                0,
                Parallelism::Rayon(threads),
            )
        }
    }
}

/// Everything one bank produced.
struct BankRun<'a> {
    bank: &'a Bank,
    groups: Vec<ShotGroup>,
    records: Vec<RunRecord>,
    rows: Vec<Row>,
    new_runs: usize,
    wall: f64,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let log = |s: &str| eprintln!("retrain: {s}");
    let plan: Plan = args.plan(&log)?;
    let opts = RunOptions {
        threads: plan.threads,
        shuffle: !args.no_shuffle,
        oracle: args.oracle,
        tta: !args.no_tta,
        one_pass: args.one_pass,
        select_on_val: true,
        on_device: plan.device.is_some(),
    };
    // resume: the runs already recorded in the output folder (all shards' files)
    let mut done = if args.rerun {
        HashMap::new()
    } else {
        let recorded = records::read_all(&plan.out)?;
        if recorded.old_format > 0 {
            log(&format!(
                "{}: {} records of an older ltbench format are ignored (their runs are rerun)",
                plan.out.display(),
                recorded.old_format
            ));
        }
        recorded.runs
    };
    let file = args
        .shard
        .map(|s| s.file_name())
        .unwrap_or_else(|| "records.jsonl".into());
    let appender = Appender::open(&plan.out.join(file))?;
    let mut runs = Vec::new();
    let mut tuned: Vec<(String, Row, String)> = Vec::new();
    let mut tune_rows: Vec<(Row, bool, String)> = Vec::new();
    for bank in &plan.banks {
        let jobs = if args.tune {
            let (jobs, rows) = tune(args, &plan, bank, opts, &mut done, &appender, &log)?;
            for (row, chosen, split) in &rows {
                if *chosen {
                    tuned.push((bank.name(), row.clone(), split.clone()));
                }
            }
            tune_rows.extend(rows);
            jobs
        } else {
            plan.jobs.clone()
        };
        runs.push(run_bank(
            args, &plan, bank, &jobs, opts, &mut done, &appender, &log,
        )?);
    }
    for r in &mut runs {
        for row in &mut r.rows {
            if let Some((_, _, split)) = tuned
                .iter()
                .find(|(b, t, _)| *b == row.bank && t.method == row.method)
            {
                row.selection = format!("{}; lr, wd tuned on {split}", row.selection);
            }
        }
    }
    if !tune_rows.is_empty() && args.shard.is_none() {
        write_csv(&plan.out.join("tune.csv"), &mut tune_frame(&tune_rows)?)?;
    }
    if let Some(s) = args.shard {
        let total: usize = runs.iter().map(|r| r.new_runs).sum();
        println!(
            "shard {}/{}: {} new runs; run the same command without --shard (same --out, holding every shard's records file) to build the tables",
            s.index, s.count, total
        );
        return Ok(());
    }
    write_outputs(args, &plan, &runs)
}

/// `--tune`: run the lr × wd grid (`--grid`, or [`DEFAULT_TUNE_GRID`]) of every trainable
/// method on the selection split — the bank's val split, else a held-out 20 % of train
/// ([`held_out_bank`]), or test with `--tune-on test` (an oracle, labelled so) — and return
/// the plan's jobs with each method's best cell, plus the grid rows (row, chosen, split).
#[allow(clippy::type_complexity)]
fn tune(
    args: &RunArgs,
    plan: &Plan,
    bank: &Bank,
    opts: RunOptions,
    done: &mut HashMap<String, Stored>,
    appender: &Appender,
    log: &dyn Fn(&str),
) -> anyhow::Result<(Vec<Job>, Vec<(Row, bool, String)>)> {
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
    let run = run_bank(
        args,
        plan,
        &select_bank,
        &grid_jobs,
        opts,
        done,
        appender,
        log,
    )?;
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
    }
}

fn tune_frame(rows: &[(Row, bool, String)]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            Column::new(
                "bank".into(),
                rows.iter().map(|r| r.0.bank.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "method".into(),
                rows.iter().map(|r| r.0.method.clone()).collect::<Vec<_>>(),
            ),
            Column::new("lr".into(), rows.iter().map(|r| r.0.lr).collect::<Vec<_>>()),
            Column::new("wd".into(), rows.iter().map(|r| r.0.wd).collect::<Vec<_>>()),
            Column::new(
                "n_seeds".into(),
                rows.iter().map(|r| r.0.n_seeds as u32).collect::<Vec<_>>(),
            ),
            Column::new(
                "selection_split".into(),
                rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "val_all".into(),
                rows.iter().map(|r| r.0.val_all.map(r4)).collect::<Vec<_>>(),
            ),
            Column::new(
                "val_balanced".into(),
                rows.iter()
                    .map(|r| r.0.val_balanced.map(r4))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "test_all".into(),
                rows.iter()
                    .map(|r| r.0.acc[0].0.map(r4))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "chosen".into(),
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            ),
        ],
    )
}

#[allow(clippy::too_many_arguments)]
fn run_bank<'a>(
    args: &RunArgs,
    plan: &Plan,
    bank: &'a Bank,
    jobs: &[Job],
    opts: RunOptions,
    done: &mut HashMap<String, Stored>,
    appender: &Appender,
    log: &dyn Fn(&str),
) -> anyhow::Result<BankRun<'a>> {
    let groups: Vec<ShotGroup> = bank.shots.groups(&bank.train_counts);
    let count = |g| groups.iter().filter(|&&x| x == g).count();
    let stage1 = stage1_head(bank, plan.threads, log);
    log(&format!(
        "bank {} ({}): K={} D={}, train {} rows (max {}, min {}), test {}{}{}; many>{} ({}), medium ({}), few<{} ({})",
        bank.name(),
        bank.dir.display(),
        bank.num_classes,
        bank.dim,
        bank.train.rows,
        bank.train_counts.iter().max().unwrap(),
        bank.train_counts.iter().min().unwrap(),
        bank.test.rows,
        bank.val
            .as_ref()
            .map(|v| format!(", val {}", v.rows))
            .unwrap_or_default(),
        if bank.test.features_flip.is_some() && !args.no_tta {
            ", flip TTA"
        } else {
            ""
        },
        bank.shots.many_above,
        count(ShotGroup::Many),
        count(ShotGroup::Medium),
        bank.shots.few_below,
        count(ShotGroup::Few),
    ));
    let started = std::time::Instant::now();
    let fingerprint = bank.fingerprint();
    let keys: Vec<String> = jobs
        .iter()
        .map(|j| job_key(&fingerprint, j, &opts))
        .collect();
    let owns = |i: &usize| args.shard.is_none_or(|s| s.owns(*i));
    let owned: Vec<usize> = (0..jobs.len()).filter(owns).collect();
    let stale: Vec<usize> = owned
        .iter()
        .copied()
        .filter(|&i| done.get(&keys[i]).is_some_and(|s| !s.current()))
        .collect();
    let reusable = |i: &usize| match done.get(&keys[*i]) {
        Some(s) => s.current() || args.reuse_stale,
        None => false,
    };
    let todo: Vec<usize> = owned.iter().copied().filter(|i| !reusable(i)).collect();
    if todo.len() < owned.len() {
        log(&format!(
            "resuming: {} of {} runs already recorded in {}",
            owned.len() - todo.len(),
            owned.len(),
            plan.out.display()
        ));
    }
    if !stale.is_empty() {
        let codes: std::collections::BTreeSet<&str> = stale
            .iter()
            .map(|&i| done[&keys[i]].code.as_str())
            .collect();
        let codes: Vec<&str> = codes.into_iter().collect();
        log(&format!(
            "{} {} recorded by another code identity ({}; this build is {CODE_ID}){}",
            if args.reuse_stale {
                "reusing"
            } else {
                "rerunning"
            },
            stale.len(),
            codes.join(", "),
            if args.reuse_stale {
                ": --reuse-stale keeps them, labelled [stale] in every output"
            } else {
                ": --reuse-stale would keep them"
            }
        ));
    }
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(todo.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs ({per_sec}, eta {eta})",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    let append_error = std::sync::Mutex::new(None);
    let todo_jobs: Vec<Job> = todo.iter().map(|&i| jobs[i].clone()).collect();
    let bank_name = bank.name();
    let dev_bank = match (&plan.device, todo.is_empty()) {
        (Some(d), false) => Some(DeviceBank::upload(bank, d).map_err(|e| {
            anyhow::anyhow!(
                "--device: could not upload bank {} to the GPU: {}",
                bank.dir.display(),
                e.to_string().lines().next().unwrap_or("")
            )
        })?),
        _ => None,
    };
    let fresh = run_jobs(
        bank,
        &stage1,
        &todo_jobs,
        opts,
        dev_bank.as_ref(),
        &|i, rec| {
            let line = Line {
                key: keys[todo[i]].clone(),
                bank: bank_name.clone(),
                code: CODE_ID.to_string(),
                record: rec.clone(),
            };
            if let Err(e) = appender.append(&line) {
                append_error.lock().unwrap().get_or_insert(e);
            }
            bar.inc(1);
        },
    );
    drop(dev_bank);
    bar.finish_and_clear();
    if let Some(e) = append_error.into_inner().unwrap() {
        return Err(e);
    }
    let fresh = fresh?;
    for (&i, record) in todo.iter().zip(fresh) {
        let code = CODE_ID.to_string();
        done.insert(keys[i].clone(), Stored { code, record });
    }
    let records: Vec<RunRecord> = if args.shard.is_some() {
        Vec::new()
    } else {
        // exactly the planned runs, in plan order; a reused stale one carries its identity
        keys.iter()
            .map(|k| {
                let s = done.get(k).expect("every planned run is recorded");
                let mut r = s.record.clone();
                r.stale = (!s.current()).then(|| s.code.clone());
                r
            })
            .collect()
    };
    let rows = aggregate(&bank.name(), &groups, &records);
    Ok(BankRun {
        bank,
        groups,
        records,
        rows,
        new_runs: todo.len(),
        wall: started.elapsed().as_secs_f64(),
    })
}

fn write_outputs(args: &RunArgs, plan: &Plan, runs: &[BankRun]) -> anyhow::Result<()> {
    let out_dir = &plan.out;
    let all_rows: Vec<Row> = runs.iter().flat_map(|r| r.rows.iter().cloned()).collect();
    write_csv(&out_dir.join("table1.csv"), &mut table_frame(&all_rows)?)?;
    let mut runs_df: Option<DataFrame> = None;
    let mut class_df: Option<DataFrame> = None;
    let mut loma_df: Option<DataFrame> = None;
    let mut seg_df: Option<DataFrame> = None;
    let mut figures = Vec::new();
    let swept = &plan.swept;
    for r in runs {
        let label = |rec: &RunRecord| record_label(rec, swept);
        stack(&mut runs_df, runs_frame(r.bank, &r.groups, &r.records)?)?;
        stack(
            &mut class_df,
            per_class_frame(r.bank, &r.groups, &r.records)?,
        )?;
        stack(&mut loma_df, loma_frame(r.bank, &r.records, &label)?)?;
        let means = segment_means(r.bank, &r.records, &label);
        stack(&mut seg_df, segment_frame(r.bank, &means)?)?;
        if !args.no_plots {
            figures.extend(segment_figures(out_dir, r.bank, &means)?);
        }
    }
    for (name, df) in [
        ("runs.csv", runs_df),
        ("per-class.csv", class_df),
        ("loma.csv", loma_df),
        ("loma-segments.csv", seg_df),
    ] {
        if let Some(mut df) = df {
            write_csv(&out_dir.join(name), &mut df)?;
        }
    }
    let mut notes = Vec::new();
    for m in &plan.methods {
        let sub: Vec<Row> = all_rows
            .iter()
            .filter(|r| r.method == m.name)
            .cloned()
            .collect();
        if plan.sweep_delta {
            write_csv(
                &out_dir.join(format!("{}-delta-sweep.csv", m.name)),
                &mut sweep_frame(&sub, "delta")?,
            )?;
            if !args.no_plots {
                delta_figure(
                    &out_dir.join(format!("{}-delta-sweep", m.name)),
                    &m.name,
                    &sub,
                )?;
                figures.push(format!("{}-delta-sweep.png", m.name));
            }
        }
        if plan.sweep_tau {
            write_csv(
                &out_dir.join(format!("{}-tau-sweep.csv", m.name)),
                &mut sweep_frame(&sub, "tau")?,
            )?;
        }
        if plan.grid {
            write_csv(
                &out_dir.join(format!("{}-grid.csv", m.name)),
                &mut grid_frame(&sub)?,
            )?;
            for r in runs {
                let cells: Vec<Row> = sub
                    .iter()
                    .filter(|x| x.bank == r.bank.name())
                    .cloned()
                    .collect();
                if !args.no_plots {
                    grid_figure(
                        &out_dir.join(format!("{}-grid-{}", m.name, r.bank.name())),
                        &m.name,
                        &r.bank.name(),
                        &cells,
                    )?;
                    figures.push(format!("{}-grid-{}.png", m.name, r.bank.name()));
                }
                notes.push(best_cell_note(&m.name, &r.bank.name(), &cells));
            }
        }
    }
    let config = serde_json::json!({
        "banks": runs.iter().map(|r| serde_json::json!({
            "name": r.bank.name(),
            "dir": r.bank.dir.display().to_string(),
            "fingerprint": r.bank.fingerprint(),
            "shots": r.bank.shots,
            "selection": if r.bank.val.is_some() { "best val epoch" } else { "final epoch" },
        })).collect::<Vec<_>>(),
        "bank": runs.first().map(|r| r.bank.name()),
        "methods": plan.methods,
        "seeds": args.seeds,
        "first_seed": args.seed,
        "tta": !args.no_tta,
        "shuffle": !args.no_shuffle,
        "device": if plan.device.is_some() { "cuda:0" } else { "cpu" },
        "version": env!("CARGO_PKG_VERSION"),
        "code": CODE_ID,
        "git": records::GIT_REV,
        "stale_runs_reused": runs.iter().flat_map(|r| &r.records).filter(|r| r.stale.is_some()).count(),
        "loma_definition": "LoMa_i = mean logit i over test samples of class i - mean logit i over the other test samples; loma_norm = LoMa / mean over classes; RSD_i = population std of logit i over samples of class i / LoMa_i",
    });
    bank::write::write_atomic(&out_dir.join("config.json"), |tmp| {
        std::fs::write(tmp, serde_json::to_string_pretty(&config)?)
    })?;

    let mut out = std::io::stdout().lock();
    for r in runs {
        writeln!(
            out,
            "Top-1 accuracy (%) on {} test, mean ± std over {} seed(s) (n = 1: deterministic rows); {}; {} runs ({} new) in {:.1} s",
            r.bank.name(),
            args.seeds,
            if r.bank.val.is_some() {
                "head selected on val"
            } else {
                "final epoch"
            },
            r.records.len(),
            r.new_runs,
            r.wall
        )?;
        write!(out, "{}", render(&r.rows, swept))?;
        let stale = r.records.iter().filter(|x| x.stale.is_some()).count();
        if stale > 0 {
            writeln!(
                out,
                "{stale} run(s) marked {} were recorded by another code identity and reused (--reuse-stale); this build is {CODE_ID}; rerun without --reuse-stale to refresh them",
                crate::tables::STALE
            )?;
        }
        if args.oracle {
            writeln!(
                out,
                "oracle (best test epoch; selection on test, for comparison with published numbers only):"
            )?;
            for row in &r.rows {
                writeln!(
                    out,
                    "  {:<24} {:6.2}",
                    row.label(swept),
                    row.oracle_all.unwrap_or(f64::NAN)
                )?;
            }
        }
    }
    for n in notes {
        writeln!(out, "{n}")?;
    }
    writeln!(
        out,
        "wrote {}/: table1.csv, runs.csv, per-class.csv, loma.csv, loma-segments.csv, config.json{}{} (run records: records.jsonl)",
        out_dir.display(),
        if figures.is_empty() { "" } else { ", " },
        figures.join(", ")
    )?;
    Ok(())
}

fn stack(acc: &mut Option<DataFrame>, df: DataFrame) -> anyhow::Result<()> {
    match acc {
        Some(a) => {
            a.vstack_mut(&df)?;
        }
        None => *acc = Some(df),
    }
    Ok(())
}

/// Which grid cell to pick: on val when the bank has one, else the best test cell, labelled
/// as an oracle.
fn best_cell_note(method: &str, bank: &str, cells: &[Row]) -> String {
    let by = |f: &dyn Fn(&Row) -> Option<f64>| {
        cells
            .iter()
            .filter_map(|r| Some((f(r)?, r)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    if let Some((v, r)) = by(&|r: &Row| r.val_balanced) {
        format!(
            "{method} on {bank}: best cell on val (mean per-class accuracy): lr={} wd={} (val {v:.2}, test {:.2})",
            r.lr,
            r.wd,
            r.acc[0].0.unwrap_or(f64::NAN)
        )
    } else if let Some((v, r)) = by(&|r: &Row| r.acc[0].0) {
        format!(
            "{method} on {bank}: no val split; best test cell lr={} wd={} ({v:.2}) is an ORACLE (selected on test)",
            r.lr, r.wd
        )
    } else {
        format!("{method} on {bank}: no cell")
    }
}

fn grid_frame(rows: &[Row]) -> PolarsResult<DataFrame> {
    let f = |g: usize, std: bool| {
        rows.iter()
            .map(|r| if std { r.acc[g].1 } else { r.acc[g].0 }.map(r4))
            .collect::<Vec<_>>()
    };
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "bank".into(),
                rows.iter().map(|r| r.bank.clone()).collect::<Vec<_>>(),
            ),
            Column::new("lr".into(), rows.iter().map(|r| r.lr).collect::<Vec<_>>()),
            Column::new("wd".into(), rows.iter().map(|r| r.wd).collect::<Vec<_>>()),
            Column::new(
                "n_seeds".into(),
                rows.iter().map(|r| r.n_seeds as u32).collect::<Vec<_>>(),
            ),
            Column::new("all".into(), f(0, false)),
            Column::new("all_std".into(), f(0, true)),
            Column::new("many".into(), f(1, false)),
            Column::new("medium".into(), f(2, false)),
            Column::new("few".into(), f(3, false)),
            Column::new(
                "val_all".into(),
                rows.iter().map(|r| r.val_all.map(r4)).collect::<Vec<_>>(),
            ),
            Column::new(
                "val_balanced".into(),
                rows.iter()
                    .map(|r| r.val_balanced.map(r4))
                    .collect::<Vec<_>>(),
            ),
        ],
    )
}

fn r4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn sweep_frame(
    rows: &[crate::tables::Row],
    param: &str,
) -> polars::prelude::PolarsResult<polars::prelude::DataFrame> {
    use polars::prelude::*;
    let f = |g: usize, std: bool| {
        rows.iter()
            .map(|r| if std { r.acc[g].1 } else { r.acc[g].0 }.map(|x| (x * 1e4).round() / 1e4))
            .collect::<Vec<_>>()
    };
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "bank".into(),
                rows.iter().map(|r| r.bank.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                param.into(),
                rows.iter()
                    .map(|r| if param == "delta" { r.delta } else { r.tau })
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "n_seeds".into(),
                rows.iter().map(|r| r.n_seeds as u32).collect::<Vec<_>>(),
            ),
            Column::new("all".into(), f(0, false)),
            Column::new("all_std".into(), f(0, true)),
            Column::new("many".into(), f(1, false)),
            Column::new("medium".into(), f(2, false)),
            Column::new("few".into(), f(3, false)),
        ],
    )
}
