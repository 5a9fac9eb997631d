//! After the runs: every table, figure and note of the `run` command written into `--out`
//! (each file atomically), `config.json`, and the text of the tables (the CLI prints it).

use crate::command::cli::RunArgs;
use crate::command::execute::BankRun;
use crate::command::plan::Plan;
use crate::output::figures::{delta_figure, grid_figure, segment_figures};
use crate::output::loma::{loma_frame, segment_frame, segment_means};
use crate::output::notebook::{Entry, update_index, write_readme};
use crate::output::records::{self, CODE_ID};
use crate::output::sweeps::{best_cell_note, grid_frame, sweep_frame};
use crate::output::tables::{
    Row, STALE, per_class_frame, record_label, runs_frame, table_frame, write_csv,
};
use crate::output::text::render;
use crate::run::RunRecord;
use polars::prelude::DataFrame;
use std::io::Write;
use std::path::Path;

/// Write every output of the banks' runs and print their tables.
/// Writes the files and returns the text the CLI prints on stdout (the tables, the notes and
/// the list of files); nothing is printed here.
pub fn write_outputs(args: &RunArgs, plan: &Plan, runs: &[BankRun]) -> anyhow::Result<String> {
    let out_dir = &plan.out;
    let all_rows: Vec<Row> = runs.iter().flat_map(|r| r.rows.iter().cloned()).collect();
    write_csv(
        &out_dir.join("table1.csv"),
        &mut table_frame(&all_rows, &plan.swept)?,
    )?;
    write_predictions(&out_dir.join("predictions.parquet"), plan, runs)?;
    let mut figures = write_run_tables(args, plan, runs)?;
    write_prior_shift(args, plan, runs, &mut figures)?;
    let notes = write_sweeps(args, plan, runs, &all_rows, &mut figures)?;
    write_config(args, plan, runs)?;
    write_notebook(args, plan, runs, &all_rows, &figures)?;
    let mut text = Vec::new();
    tables_text(&mut text, args, plan, runs, &notes, &figures)?;
    Ok(String::from_utf8(text)?)
}

/// With `--test-prior`: `prior-shift.csv` and one figure per bank (accuracy against prior).
fn write_prior_shift(
    args: &RunArgs,
    plan: &Plan,
    runs: &[BankRun],
    figures: &mut Vec<String>,
) -> anyhow::Result<()> {
    use crate::output::priors::{figure, frame, shifted};
    if args.test_prior.is_empty() {
        return Ok(());
    }
    let mut lines = Vec::new();
    for r in runs {
        lines.extend(shifted(
            &r.bank.name(),
            &r.bank.train_counts,
            &r.groups,
            &r.rows,
            &r.records,
            &args.test_prior,
            &|row| row.label(&plan.swept),
        ));
    }
    write_csv(&plan.out.join("prior-shift.csv"), &mut frame(&lines)?)?;
    if !args.no_plots {
        for r in runs {
            let stem = format!("prior-shift-{}", r.bank.name());
            figure(&plan.out.join(&stem), &r.bank.name(), &lines)?;
            figures.push(format!("{stem}.png"));
        }
    }
    Ok(())
}

/// `predictions.parquet`: every run's per-row test predictions (runs recorded by an older
/// build without them are left out).
fn write_predictions(path: &Path, plan: &Plan, runs: &[BankRun]) -> anyhow::Result<()> {
    use crate::output::predictions::{RunPredictions, frame, write_parquet};
    let mut all: Option<DataFrame> = None;
    for r in runs {
        let preds: Vec<RunPredictions> = r
            .records
            .iter()
            .filter_map(|rec| {
                Some(RunPredictions {
                    method: &rec.method.name,
                    params: record_label(rec, &plan.swept)
                        .trim_start_matches(rec.method.name.as_str())
                        .trim()
                        .to_string(),
                    seed: rec.seed,
                    predictions: rec.test.predictions.as_ref()?,
                })
            })
            .collect();
        stack(
            &mut all,
            frame(&r.bank.name(), &r.bank.test.labels, &preds)?,
        )?;
    }
    if let Some(mut df) = all {
        write_parquet(path, &mut df)?;
    }
    Ok(())
}

/// The experiment folder's README.md and, with the default `--out`, its line in the results
/// index.
fn write_notebook(
    args: &RunArgs,
    plan: &Plan,
    runs: &[BankRun],
    all_rows: &[Row],
    figures: &[String],
) -> anyhow::Result<()> {
    let best = all_rows
        .iter()
        .filter_map(|r| Some((r.acc[0].0?, r)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let headline = match best {
        Some((v, r)) => format!(
            "{} rows; best All: {} {v:.2} on {}",
            all_rows.len(),
            r.label(&plan.swept),
            r.bank
        ),
        None => format!("{} rows", all_rows.len()),
    };
    let folder = match &plan.experiment {
        Some((_, f)) => f.clone(),
        None => plan.out.display().to_string(),
    };
    let entry = Entry {
        folder,
        banks: runs.iter().map(|r| r.bank.name()).collect(),
        command: args.provenance.made_by().to_string(),
        equivalent: args.provenance.equivalent(),
        date: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        code: CODE_ID.into(),
        git: records::GIT_REV.into(),
        fingerprints: runs
            .iter()
            .map(|r| (r.bank.name(), r.fingerprint.clone()))
            .collect(),
        views: runs
            .iter()
            .map(|r| (r.bank.name(), r.views.readme_line()))
            .collect(),
        headline,
        figures: figures.to_vec(),
    };
    write_readme(&plan.out, &entry)?;
    if let Some((root, _)) = &plan.experiment {
        update_index(root, &entry)?;
    }
    Ok(())
}

/// `runs.csv`, `per-class.csv`, `loma.csv`, `loma-segments.csv` and the per-class figures;
/// returns the figures' file names.
fn write_run_tables(args: &RunArgs, plan: &Plan, runs: &[BankRun]) -> anyhow::Result<Vec<String>> {
    let out_dir = &plan.out;
    let mut runs_df: Option<DataFrame> = None;
    let mut class_df: Option<DataFrame> = None;
    let mut loma_df: Option<DataFrame> = None;
    let mut seg_df: Option<DataFrame> = None;
    let mut figures = Vec::new();
    for r in runs {
        let label = |rec: &RunRecord| record_label(rec, &plan.swept);
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
    Ok(figures)
}

/// The sweep tables and figures of each method (`--sweep-delta`, `--sweep-tau`, `--grid`);
/// returns the notes naming each grid's best cell.
fn write_sweeps(
    args: &RunArgs,
    plan: &Plan,
    runs: &[BankRun],
    all_rows: &[Row],
    figures: &mut Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let out_dir = &plan.out;
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
        if let Some(p) = &plan.sweep {
            write_csv(
                &out_dir.join(format!("{}-{}-sweep.csv", m.name, p.replace('.', "-"))),
                &mut sweep_frame(&sub, p)?,
            )?;
        }
        if plan.grid {
            write_csv(
                &out_dir.join(format!("{}-grid.csv", m.name)),
                &mut grid_frame(&sub)?,
            )?;
            for r in runs {
                notes.push(write_grid_figure(args, out_dir, &m.name, r, &sub, figures)?);
            }
        }
    }
    Ok(notes)
}

/// One bank's lr × wd heat map of `method` (unless `--no-plots`) and its best-cell note.
fn write_grid_figure(
    args: &RunArgs,
    out_dir: &Path,
    method: &str,
    r: &BankRun,
    sub: &[Row],
    figures: &mut Vec<String>,
) -> anyhow::Result<String> {
    let bank = r.bank.name();
    let cells: Vec<Row> = sub.iter().filter(|x| x.bank == bank).cloned().collect();
    if !args.no_plots {
        grid_figure(
            &out_dir.join(format!("{method}-grid-{bank}")),
            method,
            &bank,
            &cells,
        )?;
        figures.push(format!("{method}-grid-{bank}.png"));
    }
    Ok(best_cell_note(method, &bank, &cells))
}

/// `config.json`: the banks (with the train views their heads trained on), resolved methods, seeds, switches and the code identity.
fn write_config(args: &RunArgs, plan: &Plan, runs: &[BankRun]) -> anyhow::Result<()> {
    let config = serde_json::json!({
        "banks": runs.iter().map(|r| serde_json::json!({
            "name": r.bank.name(),
            "dir": r.bank.dir.display().to_string(),
            "fingerprint": r.fingerprint,
            "views": r.views.to_json(),
            "shots": r.bank.shots,
            "selection": if r.bank.val.is_some() { "best val epoch" } else { "final epoch" },
        })).collect::<Vec<_>>(),
        "bank": runs.first().map(|r| r.bank.name()),
        "methods": plan.methods,
        "seeds": args.seeds,
        "first_seed": args.seed,
        "tta": !args.no_tta,
        "tta_off_by_recipe": plan.methods.iter().filter(|m| !m.tta).map(|m| m.name.as_str()).collect::<Vec<_>>(),
        "recipe": format!("{:?}", args.recipe).to_lowercase(),
        "prior_correct": args.prior_correct.then_some(
            "each row's final logits + log q − log p̂, p̂ its declared logit_prior (train: π, balanced: uniform); LADE run_networks.py:594-599"
        ),
        "shuffle": !args.no_shuffle,
        "device": if plan.device.is_some() { "cuda:0" } else { "cpu" },
        "version": env!("CARGO_PKG_VERSION"),
        "code": CODE_ID,
        "git": records::GIT_REV,
        "stale_runs_reused": runs.iter().flat_map(|r| &r.records).filter(|r| r.stale.is_some()).count(),
        "provenance": args.provenance,
        "loma_definition": "LoMa_i = mean logit i over test samples of class i - mean logit i over the other test samples; loma_norm = LoMa / mean over classes; RSD_i = population std of logit i over samples of class i / LoMa_i",
    });
    bank::write::write_atomic(&plan.out.join("config.json"), |tmp| {
        std::fs::write(tmp, serde_json::to_string_pretty(&config)?)
    })?;
    Ok(())
}

/// The tables, the oracle column, the notes and the list of files, as the CLI prints them
/// on stdout, into `out`.
fn tables_text(
    out: &mut dyn Write,
    args: &RunArgs,
    plan: &Plan,
    runs: &[BankRun],
    notes: &[String],
    figures: &[String],
) -> anyhow::Result<()> {
    let swept = &plan.swept;
    for r in runs {
        let baseline = args.baseline.as_deref().unwrap_or("vanilla-fc");
        let marks = r.rows.iter().any(|x| !x.evidence.mark().is_empty());
        writeln!(
            out,
            "Top-1 accuracy (%) on {} test ({}), mean over {} seed(s) (n = 1: deterministic rows) ± {}{}; {}; {} runs ({} new) in {:.1} s",
            r.bank.name(),
            r.views.title(),
            args.seeds,
            if r.rows.iter().any(|x| x.evidence.ci[0].is_some()) {
                "95 % bootstrap half-width over the test rows"
            } else {
                "std over seeds"
            },
            if marks {
                format!(
                    "; vs {baseline}: ▲ better, ▼ worse, = no difference (paired bootstrap, α = 0.05)"
                )
            } else {
                String::new()
            },
            if r.bank.val.is_some() {
                "head selected on val"
            } else {
                "final epoch"
            },
            r.records.len(),
            r.new_runs,
            r.wall
        )?;
        let group = |name: &str| {
            let g = plan.groups.iter().find(|(n, _)| n == name)?;
            let label = crate::method::table::GROUPS
                .iter()
                .find(|(id, _)| *id == g.1)
                .map_or(g.1.as_str(), |(_, l)| *l);
            Some(label.to_string())
        };
        write!(out, "{}", render(&r.rows, swept, &group))?;
        let stale = r.records.iter().filter(|x| x.stale.is_some()).count();
        if stale > 0 {
            writeln!(
                out,
                "{stale} run(s) marked {STALE} were recorded by another code identity and reused (--reuse-stale); this build is {CODE_ID}; rerun without --reuse-stale to refresh them",
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
        "wrote {}/: table1.csv, runs.csv, per-class.csv, loma.csv, loma-segments.csv, config.json, README.md{}{} (run records: {}/records.jsonl)",
        plan.out.display(),
        if figures.is_empty() { "" } else { ", " },
        figures.join(", "),
        plan.records.display()
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
