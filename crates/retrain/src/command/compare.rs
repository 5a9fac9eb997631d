//! `retrain compare`: two result folders (or every method of one against a baseline), paired
//! on the same test rows ([`crate::output::compare::folders`]); or our table next to the
//! paper's ([`crate::output::compare::compare_tables`]).

use super::cli::{CompareArgs, repo_path};
use crate::output::compare::folders::{
    Side, compare_baseline, compare_folders, frame, render, views_warning,
};
use crate::output::tables::write_csv;
use std::fmt::Write;

/// Writes `compare.csv` (or reads the paper's table) and returns the text the CLI prints on
/// stdout; nothing is printed here.
pub fn run(args: &CompareArgs) -> anyhow::Result<String> {
    if args.folders.is_empty() && args.baseline.is_none() {
        return paper(args);
    }
    let mut warning = None;
    let (diffs, dir, what) = match (&args.baseline, args.folders.as_slice()) {
        (Some(b), []) | (Some(b), [_]) => {
            let dir = args.folders.first().unwrap_or(&args.results);
            let side = Side::load(dir)?;
            let k = side.groups.len();
            super::limits::check_bootstrap("--bootstrap", args.bootstrap, side.labels.len(), k)?;
            let d = compare_baseline(&side, b, args.bootstrap, args.bootstrap_seed)?;
            (
                d,
                dir.clone(),
                format!("every method of {} against {b}", dir.display()),
            )
        }
        (None, [a, b]) => {
            let (sa, sb) = (Side::load(a)?, Side::load(b)?);
            let k = sb.groups.len();
            super::limits::check_bootstrap("--bootstrap", args.bootstrap, sb.labels.len(), k)?;
            let d = compare_folders(&sa, &sb, args.bootstrap, args.bootstrap_seed)?;
            warning = views_warning(&sa, &sb);
            (d, b.clone(), format!("{} − {}", b.display(), a.display()))
        }
        (Some(_), _) => anyhow::bail!("compare: give one folder with --baseline, or two without"),
        (None, _) => anyhow::bail!("compare: give two folders (A B), or --baseline M [A]"),
    };
    let out = args.out.clone().unwrap_or_else(|| dir.join("compare.csv"));
    write_csv(&out, &mut frame(&diffs)?)?;
    let mut text = String::new();
    if let Some(w) = warning {
        writeln!(text, "{w}")?;
    }
    writeln!(
        text,
        "Paired comparison, {what}: Δ in points, 95 % paired bootstrap interval (B = {}, the same test rows on both sides; * = excludes 0), two-sided bootstrap p, McNemar's exact test",
        args.bootstrap
    )?;
    text.push_str(&render(&diffs));
    let names: Vec<&str> = diffs
        .iter()
        .filter(|d| d.ci[0].is_some_and(|(lo, hi)| lo > 0.0 || hi < 0.0))
        .map(|d| d.method.as_str())
        .collect();
    writeln!(
        text,
        "significant (α = 0.05, All): {}",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    )?;
    writeln!(text, "wrote {}", out.display())?;
    Ok(text)
}

fn paper(args: &CompareArgs) -> anyhow::Result<String> {
    let paper_csv = match args.paper.as_str() {
        "table1" => repo_path("baselines/paper/table1.csv"),
        p => std::path::PathBuf::from(p),
    };
    let results = &args.results;
    let ours = if results.is_dir() {
        results.join("table1.csv")
    } else {
        results.to_path_buf()
    };
    anyhow::ensure!(
        ours.exists(),
        "{}: no such file (run `cargo run -p retrain` first)",
        ours.display()
    );
    crate::output::compare::compare_tables(&ours, &paper_csv)
}
