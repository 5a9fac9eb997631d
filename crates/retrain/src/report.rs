//! The `run` command end to end: plan → stage-1 head → runs → tables → files and stdout.

use crate::cli::{Plan, RunArgs};
use crate::head::HeadState;
use crate::linalg::Parallelism;
use crate::method::Head;
use crate::records::{self, Appender, Line, job_key};
use crate::runner::{Job, RunOptions, RunRecord, run_jobs};
use crate::stage1::fit_stage1_head;
use crate::tables::{aggregate, per_class_frame, render, runs_frame, table_frame, write_csv};
use bank::{Bank, ShotGroup};
use indicatif::{ProgressBar, ProgressStyle};
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

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let log = |s: &str| eprintln!("retrain: {s}");
    let plan: Plan = args.plan(&log)?;
    let bank = &plan.bank;
    let groups: Vec<ShotGroup> = bank.shots.groups(&bank.train_counts);
    let count = |g| groups.iter().filter(|&&x| x == g).count();
    let stage1 = stage1_head(bank, plan.threads, &log);
    eprintln!(
        "retrain: bank {} ({}): K={} D={}, train {} rows (max {}, min {}), test {}{}{}; many>{} ({}), medium ({}), few<{} ({})",
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
    );
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(plan.jobs.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs ({per_sec}, eta {eta})",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let opts = RunOptions {
        threads: plan.threads,
        shuffle: !args.no_shuffle,
        oracle: args.oracle,
        tta: !args.no_tta,
    };
    // resume: skip the runs already recorded in the output folder (all shards' files)
    let fingerprint = bank.fingerprint();
    let keys: Vec<String> = plan
        .jobs
        .iter()
        .map(|j| job_key(&fingerprint, j, &opts))
        .collect();
    let mut done = if args.rerun {
        HashMap::new()
    } else {
        records::read_all(&plan.out)?
    };
    let owns = |i: &usize| args.shard.is_none_or(|s| s.owns(*i));
    let owned = (0..plan.jobs.len()).filter(owns).count();
    let todo: Vec<usize> = (0..plan.jobs.len())
        .filter(owns)
        .filter(|&i| !done.contains_key(&keys[i]))
        .collect();
    if todo.len() < owned {
        log(&format!(
            "resuming: {} of {} runs already recorded in {}",
            owned - todo.len(),
            owned,
            plan.out.display()
        ));
    }
    let file = args
        .shard
        .map(|s| s.file_name())
        .unwrap_or_else(|| "records.jsonl".into());
    let appender = Appender::open(&plan.out.join(file))?;
    let append_error = std::sync::Mutex::new(None);
    let todo_jobs: Vec<Job> = todo.iter().map(|&i| plan.jobs[i].clone()).collect();
    bar.set_length(todo_jobs.len() as u64);
    let bank_name = bank.name();
    let fresh = run_jobs(bank, &groups, &stage1, &todo_jobs, opts, &|i, rec| {
        let line = Line {
            key: keys[todo[i]].clone(),
            bank: bank_name.clone(),
            record: rec.clone(),
        };
        if let Err(e) = appender.append(&line) {
            append_error.lock().unwrap().get_or_insert(e);
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    if let Some(e) = append_error.into_inner().unwrap() {
        return Err(e);
    }
    let wall = started.elapsed().as_secs_f64();
    for (&i, rec) in todo.iter().zip(fresh) {
        done.insert(keys[i].clone(), rec);
    }
    if let Some(s) = args.shard {
        println!(
            "shard {}/{}: {} runs done ({} new) in {:.1} s; run the same command without --shard (same --out, holding every shard's records file) to build the tables",
            s.index,
            s.count,
            owned,
            todo.len(),
            wall
        );
        return Ok(());
    }
    // the tables: exactly the planned runs, in plan order
    let records: Vec<RunRecord> = keys
        .iter()
        .map(|k| done.remove(k).expect("every planned run is recorded"))
        .collect();

    let rows = aggregate(&records);
    std::fs::create_dir_all(&plan.out)?;
    write_csv(&plan.out.join("table1.csv"), &mut table_frame(&rows)?)?;
    write_csv(&plan.out.join("runs.csv"), &mut runs_frame(bank, &records)?)?;
    write_csv(
        &plan.out.join("per-class.csv"),
        &mut per_class_frame(bank, &groups, &records)?,
    )?;
    if plan.sweep_delta {
        for m in &plan.methods {
            let sub: Vec<_> = rows
                .iter()
                .filter(|r| r.method == m.name)
                .cloned()
                .collect();
            write_csv(
                &plan.out.join(format!("{}-delta-sweep.csv", m.name)),
                &mut sweep_frame(&bank.name(), &sub, "delta")?,
            )?;
        }
    }
    if plan.sweep_tau {
        for m in &plan.methods {
            let sub: Vec<_> = rows
                .iter()
                .filter(|r| r.method == m.name)
                .cloned()
                .collect();
            write_csv(
                &plan.out.join(format!("{}-tau-sweep.csv", m.name)),
                &mut sweep_frame(&bank.name(), &sub, "tau")?,
            )?;
        }
    }
    let config = serde_json::json!({
        "bank": bank.dir.display().to_string(),
        "bank_fingerprint": bank.fingerprint(),
        "shots": bank.shots,
        "methods": plan.methods,
        "seeds": args.seeds,
        "first_seed": args.seed,
        "tta": !args.no_tta,
        "shuffle": !args.no_shuffle,
        "selection": if bank.val.is_some() { "best val epoch" } else { "final epoch" },
        "version": env!("CARGO_PKG_VERSION"),
    });
    bank::write::write_atomic(&plan.out.join("config.json"), |tmp| {
        std::fs::write(tmp, serde_json::to_string_pretty(&config)?)
    })?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Top-1 accuracy (%) on {} test, mean ± std over {} seed(s); {}; {} runs ({} new) in {:.1} s",
        bank.name(),
        args.seeds,
        if bank.val.is_some() {
            "head selected on val"
        } else {
            "final epoch"
        },
        records.len(),
        todo.len(),
        wall
    )?;
    write!(out, "{}", render(&rows, &plan.swept))?;
    if args.oracle {
        writeln!(
            out,
            "oracle (best test epoch; selection on test, for comparison with published numbers only):"
        )?;
        for r in &rows {
            writeln!(
                out,
                "  {:<18} {:6.2}",
                r.method,
                r.oracle_all.unwrap_or(f64::NAN)
            )?;
        }
    }
    writeln!(
        out,
        "wrote {}/table1.csv, runs.csv, per-class.csv, config.json (run records: records.jsonl)",
        plan.out.display()
    )?;
    Ok(())
}

fn sweep_frame(
    bank: &str,
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
            Column::new("bank".into(), vec![bank.to_string(); rows.len()]),
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
