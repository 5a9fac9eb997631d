//! Where a run's outputs go when `--out` is not given: one folder per experiment,
//! `<results>/<bank>/<experiment>/`, named from the bank and the command, so that results of
//! different commands, banks and settings live side by side. The records of one bank are
//! shared by its experiments (`<results>/<bank>/records.jsonl`), so a sweep reuses the runs a
//! table already made.
//!
//! The name: the methods (`all` for `--method all`, else the method or group names joined by
//! `+`: `table1`, `zoo`, `los`, …),
//! then the kind of run (`-delta-sweep`, `-tau-sweep`, `-<param>-sweep<values>`, `-grid-…`, `-tune`), then every flag that
//! changes the numbers and differs from its default (`-seeds1`, `-epochs5`, `-lr0.01`, …).

use crate::command::cli::RunArgs;
use anyhow::{Context, bail};
use bank::Bank;
use bank::lock::FolderLock;
use std::path::{Path, PathBuf};

/// The experiment folder's name for `args` (the bank folder above it is [`banks_folder`]).
pub fn experiment_name(args: &RunArgs) -> String {
    let all = args.method.iter().any(|m| m == "all");
    let methods = match (&args.config, all) {
        (Some(p), true) => p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "table".into()),
        (None, true) => "all".into(),
        (_, false) => args.method.join("+"),
    };
    let mut name = match (args.tune, all && args.config.is_none()) {
        (true, true) => "tune".to_string(),
        (true, false) => format!("{methods}-tune"),
        (false, _) => methods,
    };
    if args.sweep_delta {
        name.push_str("-delta-sweep");
        if let Some(d) = &args.deltas {
            name.push_str(&format!("-deltas{}", list(d)));
        }
    }
    if args.sweep_tau {
        name.push_str("-tau-sweep");
    }
    if let Some(sw) = &args.sweep {
        let values: Vec<String> = sw.values.iter().map(|v| v.to_string()).collect();
        name.push_str(&format!("-{}-sweep{}", sw.param, values.join("_")));
    }
    if let Some(g) = &args.grid {
        name.push_str(&format!("-grid-lr{}-wd{}", list(&g.lr), list(&g.wd)));
    }
    for part in overrides(args) {
        name.push('-');
        name.push_str(&part);
    }
    name.replace(['/', '\\', ' '], "_")
}

/// The folder of a set of banks: the bank name, or the names joined by `+`.
pub fn banks_folder(names: &[String]) -> String {
    names.join("+").replace(['/', '\\', ' '], "_")
}

fn list(v: &[f32]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("_")
}

/// Every flag that changes the tables and differs from its default, as a name part.
fn overrides(a: &RunArgs) -> Vec<String> {
    let mut p = Vec::new();
    let mut opt = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            p.push(format!("{name}{v}"));
        }
    };
    opt("seeds", (a.seeds != 3).then(|| a.seeds.to_string()));
    opt("seed", (a.seed != 0).then(|| a.seed.to_string()));
    opt("lr", a.lr.map(|v| v.to_string()));
    opt("wd", a.wd.map(|v| v.to_string()));
    opt("momentum", a.momentum.map(|v| v.to_string()));
    opt("epochs", a.epochs.map(|v| v.to_string()));
    opt("batch", a.batch_size.map(|v| v.to_string()));
    opt("init-", a.init.map(|v| format!("{v:?}").to_lowercase()));
    opt(
        "schedule-",
        a.schedule.map(|v| format!("{v:?}").to_lowercase()),
    );
    opt(
        "recipe-",
        (a.recipe != crate::method::Recipe::Los).then(|| "source".to_string()),
    );
    opt("delta", a.delta.map(|v| v.to_string()));
    opt("tau", a.tau.map(|v| v.to_string()));
    opt(
        "maxnorm-",
        a.maxnorm_every.map(|v| format!("{v:?}").to_lowercase()),
    );
    opt("many", a.many_above.map(|v| v.to_string()));
    opt("few", a.few_below.map(|v| v.to_string()));
    let flags = [
        (a.oracle, "oracle"),
        (a.no_tta, "no-tta"),
        (a.no_shuffle, "no-shuffle"),
        (a.one_pass, "one-pass"),
        (a.no_views, "no-views"),
        (
            a.tune && a.tune_on == crate::command::cli::TuneOn::Test,
            "on-test",
        ),
    ];
    for (on, name) in flags {
        if on {
            p.push(name.to_string());
        }
    }
    if a.device != crate::engine::device::DeviceChoice::Cpu {
        p.push(format!("device-{:?}", a.device).to_lowercase());
    }
    p
}

/// The command as the user typed it (`retrain` and the arguments, shell-quoted), from the
/// process's arguments as the CLI face passes them (`std::env::args()`: the program path
/// first, dropped).
pub fn typed_command(args: impl IntoIterator<Item = String>) -> String {
    let args: Vec<String> = args.into_iter().skip(1).collect();
    let quoted =
        shlex::try_join(args.iter().map(String::as_str)).unwrap_or_else(|_| args.join(" "));
    if quoted.is_empty() {
        "retrain".into()
    } else {
        format!("retrain {quoted}")
    }
}

/// Create the folders and take this run's lock: on `out`, or with `--shard` on the shard's
/// records file (shards run side by side; they write no tables).
pub fn lock(args: &RunArgs, out: &Path, records: &Path) -> anyhow::Result<FolderLock> {
    create(records)?;
    match args.shard {
        Some(s) => FolderLock::acquire(
            records,
            &format!(".lock.shard-{}-of-{}", s.index, s.count),
            "--shard",
        ),
        None => {
            create(out)?;
            FolderLock::acquire(out, ".lock", "--out")
        }
    }
}

/// The output folder, the records folder and (default `--out`) the experiment.
pub fn folders(args: &RunArgs, banks: &[Bank]) -> (PathBuf, PathBuf, Option<(PathBuf, String)>) {
    match &args.out {
        Some(out) => (out.clone(), out.clone(), None),
        None => {
            let names: Vec<String> = banks.iter().map(|b| b.name()).collect();
            let bank_dir = banks_folder(&names);
            let name = experiment_name(args);
            let folder = format!("{bank_dir}/{name}");
            (
                args.results.join(&folder),
                args.results.join(&bank_dir),
                Some((args.results.clone(), folder)),
            )
        }
    }
}

/// `dir` exists (or is created) and is a folder.
fn create(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("--out {}: exists and is not a folder", dir.display());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--out {}: cannot create the folder", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn name(args: &[&str]) -> String {
        let cli = crate::command::cli::Cli::try_parse_from(
            std::iter::once("retrain").chain(args.iter().copied()),
        )
        .unwrap();
        experiment_name(&cli.run)
    }

    #[test]
    fn the_folder_is_named_from_the_command() {
        assert_eq!(name(&[]), "all");
        assert_eq!(name(&["--method", "all", "--seeds", "3"]), "all");
        assert_eq!(name(&["--method", "table1"]), "table1");
        assert_eq!(
            name(&["--method", "los", "--sweep-delta"]),
            "los-delta-sweep"
        );
        assert_eq!(
            name(&[
                "--method",
                "tau-norm,logit-adjust",
                "--sweep-tau",
                "--seeds",
                "1"
            ]),
            "tau-norm+logit-adjust-tau-sweep-seeds1"
        );
        assert_eq!(
            name(&["--method", "los", "--grid", "lr=1e-4,1e-3:wd=0"]),
            "los-grid-lr0.0001_0.001-wd0"
        );
        assert_eq!(
            name(&["--method", "las", "--sweep", "eps_head=0.2,0.3"]),
            "las-eps_head-sweep0.2_0.3"
        );
        assert_eq!(name(&["--tune"]), "tune");
        assert_eq!(name(&["--tune", "--grid", "lr=0.1"]), "tune-grid-lr0.1-wd0");
        assert_eq!(name(&["--method", "los", "--tune"]), "los-tune");
        assert_eq!(
            name(&[
                "--epochs", "5", "--lr", "0.01", "--no-tta", "--init", "fresh"
            ]),
            "all-lr0.01-epochs5-init-fresh-no-tta"
        );
        assert_eq!(banks_folder(&["a".into(), "b c".into()]), "a+b_c");
    }
}
