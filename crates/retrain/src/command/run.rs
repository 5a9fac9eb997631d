//! The `run` command end to end: plan → (tuning) → the runs of every bank → tables, figures
//! and the text for stdout (returned: the face prints it). The steps live beside it:
//! [`super::execute`] (one bank's runs, resumed from the records), [`super::tune`]
//! (`--tune`), [`super::outputs`] (files and the tables' text).

use crate::command::cli::RunArgs;
use crate::command::execute::{BankRun, Records, run_bank};
use crate::command::outputs::write_outputs;
use crate::command::plan::Plan;
use crate::command::tune::tune;
use crate::engine::cancel::Cancel;
use crate::output::records::{self, Appender, Stored};
use crate::output::sweeps::{TuneRow, tune_frame};
use crate::output::tables::write_csv;
use crate::run::RunOptions;
use bank::lock::remove_own_temp_files;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Held while the tables and figures are written: an interrupt then waits for them.
static WRITING: Mutex<()> = Mutex::new(());

/// SIGINT / SIGTERM (Ctrl-C, `scancel`): stop at once without a half-written line or file —
/// cancel this run's token (no job starts, no run finishing now is recorded), take the
/// records file (a line being appended is finished first) and the output phase,
/// remove this process's temporary files, say how many runs are kept and how to resume, and
/// exit 130. Runs still training are dropped; a rerun of the same command resumes.
fn on_interrupt(plan: &Plan, appender: Arc<Appender>, cancel: Cancel) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let dirs = [plan.out.clone(), plan.records.clone()];
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let why = if sig == SIGINT {
                "interrupted (SIGINT)"
            } else {
                "terminated (SIGTERM)"
            };
            cancel.cancel(why);
            let _writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
            let _records = appender.hold();
            for d in &dirs {
                remove_own_temp_files(d);
            }
            eprintln!(
                "\nretrain: {}: stopped; {} runs finished in this process are kept in {} (with every earlier one); run the same command again to resume",
                why,
                appender.appended(),
                appender.path().display()
            );
            std::process::exit(130);
        }
    });
    Ok(())
}

/// The run of `args`: writes the results folder and returns the text the CLI prints on stdout
/// (the tables, or a shard's one line); nothing is written to stdout here.
pub fn run(args: &RunArgs) -> anyhow::Result<String> {
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
        test_priors: crate::eval::priors::TestPrior::all()
            .iter()
            .enumerate()
            .filter(|(_, p)| args.test_prior.contains(p))
            .fold(0u16, |m, (i, _)| m | (1 << i)),
        prior_correct: args.prior_correct,
        views: !args.no_views,
    };
    let mut done = recorded_runs(args, &plan, &log)?;
    let file = args
        .shard
        .map(|s| s.file_name())
        .unwrap_or_else(|| "records.jsonl".into());
    let appender = Arc::new(Appender::open(&plan.records.join(file))?);
    if !args.embedded {
        on_interrupt(&plan, appender.clone(), args.cancel.clone())?;
    }
    let mut rec = Records {
        done: &mut done,
        appender: &appender,
    };
    let mut runs = Vec::new();
    let mut tune_rows: Vec<TuneRow> = Vec::new();
    let mut tuned: Vec<(String, TuneRow)> = Vec::new();
    for bank in &plan.banks {
        let jobs = if args.tune {
            let (jobs, rows) = tune(args, &plan, bank, opts, &mut rec, &log)?;
            let chosen = rows.iter().filter(|r| r.1).cloned();
            tuned.extend(chosen.map(|r| (bank.name(), r)));
            tune_rows.extend(rows);
            jobs
        } else {
            plan.jobs.clone()
        };
        runs.push(run_bank(args, &plan, bank, &jobs, opts, &mut rec, &log)?);
    }
    label_tuned_rows(&mut runs, &tuned);
    // from here on an interrupt waits until every file is written
    let _writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    if !tune_rows.is_empty() && args.shard.is_none() {
        write_csv(&plan.out.join("tune.csv"), &mut tune_frame(&tune_rows)?)?;
    }
    if let Some(s) = args.shard {
        let total: usize = runs.iter().map(|r| r.new_runs).sum();
        return Ok(format!(
            "shard {}/{}: {} new runs; run the same command without --shard (same --out, holding every shard's records file) to build the tables\n",
            s.index, s.count, total
        ));
    }
    write_outputs(args, &plan, &runs)
}

/// Resume: the runs already recorded in the output folder (all shards' files), unless
/// `--rerun`.
fn recorded_runs(
    args: &RunArgs,
    plan: &Plan,
    log: &dyn Fn(&str),
) -> anyhow::Result<HashMap<String, Stored>> {
    if args.rerun {
        return Ok(HashMap::new());
    }
    let recorded = records::read_all(&plan.records)?;
    if recorded.old_format > 0 {
        log(&format!(
            "{}: {} records of an older ltbench format are ignored (their runs are rerun)",
            plan.records.display(),
            recorded.old_format
        ));
    }
    Ok(recorded.runs)
}

/// The selection of a tuned method's rows says which split chose its lr and wd; `tuned`
/// holds the chosen cell of each (bank, method).
fn label_tuned_rows(runs: &mut [BankRun], tuned: &[(String, TuneRow)]) {
    for r in runs {
        for row in &mut r.rows {
            if let Some((_, (_, _, split))) = tuned
                .iter()
                .find(|(b, (t, _, _))| *b == row.bank && t.method == row.method)
            {
                row.selection = format!("{}; lr, wd tuned on {split}", row.selection);
            }
        }
    }
}
