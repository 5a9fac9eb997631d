//! `results/` keeps every result: without `--out`, each command writes its own experiment
//! folder `<results>/<bank>/<experiment>/` with a README.md, the bank's records are shared
//! (a sweep resumes the table's runs), `index.md` lists each experiment once, newest first,
//! and rerunning a command rewrites only its own folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

fn run(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_retrain"))
        .args(args)
        .output()
        .expect("run retrain");
    assert!(
        o.status.success(),
        "retrain {args:?}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir` with its content and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let m = std::fs::metadata(&p).unwrap().modified().unwrap();
            out.insert(p.clone(), (std::fs::read(&p).unwrap(), m));
        }
    }
    out
}

#[test]
fn four_commands_leave_four_experiment_folders_and_a_rerun_touches_only_its_own() {
    let t = tempfile::tempdir().unwrap();
    let bank = t.path().join("toy");
    let o = run(&[
        "synth",
        "--out",
        s(&bank),
        "--classes",
        "10",
        "--dim",
        "16",
        "--img-max",
        "80",
        "--ir",
        "10",
        "--test-per-class",
        "10",
        "--latent-dim",
        "8",
        "--stage1-epochs",
        "3",
    ]);
    drop(o);
    let root = t.path().join("results");
    let common = [
        "--bank",
        s(&bank),
        "--results",
        s(&root),
        "--epochs",
        "2",
        "-q",
    ];
    let go = |extra: &[&str]| {
        let mut a = common.to_vec();
        a.extend_from_slice(extra);
        run(&a)
    };
    // the four commands of the README, one after another
    let table1: &[&str] = &["--method", "table1", "--seeds", "3"];
    go(table1);
    let sweep = go(&["--method", "los", "--sweep-delta"]);
    go(&[
        "--method",
        "tau-norm,logit-adjust",
        "--sweep-tau",
        "--seeds",
        "1",
    ]);
    go(&["--method", "los", "--grid", "lr=1e-4,1e-3:wd=0,5e-3"]);
    // the sweep reused the table's LOS runs (δ = 0.98) from the shared records
    let log = String::from_utf8_lossy(&sweep.stderr);
    assert!(log.contains("resuming: 3 of 33 runs"), "{log}");
    let b = root.join("toy");
    assert!(b.join("records.jsonl").exists());
    let folders = [
        (
            "table1-epochs2",
            vec!["table1.csv", "per-class.csv", "loma-toy.png"],
        ),
        (
            "los-delta-sweep-epochs2",
            vec!["table1.csv", "los-delta-sweep.csv", "los-delta-sweep.png"],
        ),
        (
            "tau-norm+logit-adjust-tau-sweep-seeds1-epochs2",
            vec!["tau-norm-tau-sweep.csv", "logit-adjust-tau-sweep.csv"],
        ),
        (
            "los-grid-lr0.0001_0.001-wd0_0.005-epochs2",
            vec!["los-grid.csv", "los-grid-toy.png"],
        ),
    ];
    for (f, files) in &folders {
        for file in files
            .iter()
            .chain(&["README.md", "config.json", "runs.csv"])
        {
            assert!(b.join(f).join(file).exists(), "{f}/{file}");
        }
        let readme = std::fs::read_to_string(b.join(f).join("README.md")).unwrap();
        assert!(readme.contains("retrain --bank"), "{readme}");
        assert!(readme.contains("code identity: src-"));
        assert!(readme.contains("| [table1.csv](table1.csv) |"));
    }
    // Table 1 has its 14 rows, not the sweep's
    let t1 = std::fs::read_to_string(b.join("table1-epochs2/table1.csv")).unwrap();
    assert_eq!(t1.lines().count(), 15);
    let index = std::fs::read_to_string(root.join("index.md")).unwrap();
    let rows: Vec<&str> = index.lines().filter(|l| l.starts_with("| 20")).collect();
    assert_eq!(rows.len(), 4, "{index}");
    assert!(rows[3].contains("table1-epochs2"), "oldest last:\n{index}");

    // rerun Table 1: it resumes, and rewrites its own folder only
    let before: Vec<_> = folders[1..]
        .iter()
        .map(|(f, _)| snapshot(&b.join(f)))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = go(table1);
    assert!(String::from_utf8_lossy(&again.stdout).contains("(0 new)"));
    let after: Vec<_> = folders[1..]
        .iter()
        .map(|(f, _)| snapshot(&b.join(f)))
        .collect();
    assert_eq!(before, after, "another experiment's files changed");
    let index = std::fs::read_to_string(root.join("index.md")).unwrap();
    let rows: Vec<&str> = index.lines().filter(|l| l.starts_with("| 20")).collect();
    assert_eq!(rows.len(), 4, "one entry per experiment:\n{index}");
    assert!(rows[0].contains("table1-epochs2"), "newest first:\n{index}");
}

#[test]
fn explicit_out_keeps_records_in_it_and_writes_no_index() {
    let t = tempfile::tempdir().unwrap();
    let bank = t.path().join("toy");
    run(&[
        "synth",
        "--out",
        s(&bank),
        "--classes",
        "5",
        "--dim",
        "8",
        "--img-max",
        "40",
        "--ir",
        "5",
        "--test-per-class",
        "5",
        "--latent-dim",
        "4",
        "--stage1-epochs",
        "2",
    ]);
    let out = t.path().join("mine");
    let root = t.path().join("results");
    run(&[
        "--bank",
        s(&bank),
        "--out",
        s(&out),
        "--results",
        s(&root),
        "--method",
        "vanilla-fc",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "-q",
        "--no-plots",
    ]);
    assert!(out.join("records.jsonl").exists());
    assert!(out.join("README.md").exists());
    assert!(
        !root.exists(),
        "--out writes nothing under the results root"
    );
}

#[test]
fn a_broken_index_stops_the_run_before_anything_is_written() {
    let t = tempfile::tempdir().unwrap();
    let bank = t.path().join("toy");
    run(&[
        "synth",
        "--out",
        s(&bank),
        "--classes",
        "5",
        "--dim",
        "8",
        "--img-max",
        "40",
        "--ir",
        "5",
        "--test-per-class",
        "5",
        "--latent-dim",
        "4",
        "--stage1-epochs",
        "2",
    ]);
    let root = t.path().join("results");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.json"), "{ not json").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_retrain"))
        .args([
            "--bank",
            s(&bank),
            "--results",
            s(&root),
            "--method",
            "vanilla-fc",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.trim().lines().last().unwrap();
    assert!(last.contains("index.json: not an ltbench index"), "{err}");
    let names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["index.json"],
        "the refused run wrote into the results root"
    );
}
