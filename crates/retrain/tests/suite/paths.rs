//! The paths of a run that no other test covers, each against an expectation computed here
//! independently (hand numbers, a naive re-implementation, or another flag that must agree):
//!
//! - resumed tables equal fresh ones for every flag that does not change training
//!   (`--many-above/--few-below`, `--jobs`, `--no-plots`, `-q`; `--one-pass` sums its wide
//!   GEMM in another order, equal to 4 decimals only, so it has records of its own);
//! - a record of another code identity is rerun, or kept and labelled with `--reuse-stale`;
//!   records of an older format are rerun;
//! - selection of the epoch on val and `--oracle` against a naive per-epoch evaluation;
//! - flip test-time augmentation: logits are the mean of both views;
//! - the committed default bank reproduces README's table, cell by cell;
//! - `--jobs 1` vs `--jobs 2`, and one run's threaded GEMMs vs the sequential ones, on the
//!   full-precision records;
//! - `--init fresh`, `--schedule cosine-step`, `--maxnorm-every epoch`, `--seed`, `--rerun`,
//!   Many/Medium/Few against per-class.csv, `--sweep-tau`, `compare --paper`.

use bank::{Bank, Features, ShotGroup, Split};
use retrain::command::synth::SynthSpec;
use retrain::engine::head::{EvalHead, HeadState};
use retrain::engine::linalg::Parallelism;
use retrain::engine::trainer::{TrainOptions, lr_at, maxnorm_limit, train};
use retrain::eval::evaluate;
use retrain::method::table::MethodTable;
use retrain::method::{Head, Method, ProjectEvery, Schedule};
use retrain::run::{Job, RunOptions, RunRecord, run_one};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retrain"))
        .args(args)
        .output()
        .expect("run retrain")
}

fn ok(args: &[&str]) -> Output {
    let o = run(args);
    assert!(
        o.status.success(),
        "retrain {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A CSV as rows of cells (RFC 4180 quotes: runs.csv holds JSON cells).
fn csv(p: &Path) -> Vec<Vec<String>> {
    read(p)
        .lines()
        .map(|l| {
            let (mut cells, mut cell, mut quoted) = (Vec::new(), String::new(), false);
            let mut chars = l.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, quoted) {
                    ('"', true) if chars.peek() == Some(&'"') => {
                        cell.push('"');
                        chars.next();
                    }
                    ('"', _) => quoted = !quoted,
                    (',', false) => cells.push(std::mem::take(&mut cell)),
                    (c, _) => cell.push(c),
                }
            }
            cells.push(cell);
            cells
        })
        .collect()
}

/// `runs.csv` without its `seconds` column (the one column a resumed run keeps from the
/// record while a fresh one measures anew).
fn runs_without_seconds(dir: &Path) -> Vec<Vec<String>> {
    let rows = csv(&dir.join("runs.csv"));
    let at = rows[0].iter().position(|c| c == "seconds").unwrap();
    rows.into_iter()
        .map(|mut r| {
            r.remove(at);
            r
        })
        .collect()
}

/// The records of a folder: key → record JSON without `seconds`, at full precision.
fn records(dir: &Path) -> BTreeMap<String, Value> {
    read(&dir.join("records.jsonl"))
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["record"].as_object_mut().unwrap().remove("seconds");
            (v["key"].as_str().unwrap().to_string(), v["record"].clone())
        })
        .collect()
}

fn spec(classes: usize, val_per_class: usize) -> SynthSpec {
    SynthSpec {
        classes,
        dim: 16,
        ir: 20.0,
        img_max: 120,
        test_per_class: 20,
        val_per_class,
        separation: 1.0,
        latent_dim: 8,
        ambient_noise: 0.5,
        stage1_epochs: 4,
        stage1_lr: 0.05,
        seed: 7,
        f16: false,
    }
}

fn synth_bank(dir: &Path, val_per_class: usize) -> PathBuf {
    retrain::command::synth::write_synthetic_bank(
        &spec(10, val_per_class),
        dir,
        true,
        Parallelism::None,
    )
    .unwrap();
    dir.to_path_buf()
}

fn method(name: &str) -> Method {
    let table = MethodTable::embedded();
    let spec = table.methods.iter().find(|m| m.name == name).unwrap();
    spec.check(&retrain::method::los_defaults()).unwrap()
}

fn stage1(bank: &Bank) -> HeadState {
    let h = bank.head.as_ref().expect("synthetic banks have a head");
    HeadState::from_linear(
        Head::Linear,
        h.num_classes,
        h.dim,
        h.weight.clone(),
        h.bias.clone(),
    )
}

// ---- resumed tables equal fresh ones ----------------------------------------------------------

const BASE: &[&str] = &[
    "--method",
    "vanilla-fc,balanced-softmax,logit-adjust",
    "--seeds",
    "2",
    "--epochs",
    "3",
    "-q",
];

fn args<'a>(bank: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["--bank", s(bank), "--out", s(out)];
    a.extend_from_slice(BASE);
    a.extend_from_slice(extra);
    a
}

#[test]
fn resumed_tables_equal_fresh_ones_for_every_flag_that_does_not_change_training() {
    let t = tempfile::tempdir().unwrap();
    let bank = synth_bank(&t.path().join("bank"), 0);
    let shared = t.path().join("shared");
    ok(&args(&bank, &shared, &["--no-plots"]));
    let flags: &[&[&str]] = &[
        &["--many-above", "60", "--few-below", "15"],
        &["--many-above", "30"],
        &["--few-below", "40"],
        &["--jobs", "1"],
        &[],
    ];
    for (i, flag) in flags.iter().enumerate() {
        let fresh = t.path().join(format!("fresh-{i}"));
        let f = ok(&args(&bank, &fresh, flag));
        let r = ok(&args(&bank, &shared, flag));
        assert!(stdout(&r).contains("(0 new)"), "{flag:?}: {}", stdout(&r));
        assert!(stdout(&f).contains("(5 new)"), "{flag:?}: {}", stdout(&f));
        for file in [
            "table1.csv",
            "per-class.csv",
            "loma.csv",
            "loma-segments.csv",
        ] {
            assert_eq!(
                read(&fresh.join(file)),
                read(&shared.join(file)),
                "{flag:?}: {file} resumed vs fresh"
            );
        }
        assert_eq!(runs_without_seconds(&fresh), runs_without_seconds(&shared));
        // stdout's table (the lines after the header) is the same too
        let table = |o: &Output| {
            stdout(o)
                .lines()
                .skip(1)
                .take(4)
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(table(&f), table(&r), "{flag:?}: stdout");
    }
    // --one-pass changes the last bits of the trained heads: its own records, the same
    // table to 4 decimals
    let o = ok(&args(&bank, &shared, &["--one-pass"]));
    assert!(stdout(&o).contains("(4 new)"), "{}", stdout(&o));
    assert_eq!(
        read(&t.path().join("fresh-4/table1.csv")),
        read(&shared.join("table1.csv"))
    );
}

#[test]
fn the_shot_threshold_example_prints_the_new_groups_on_resume() {
    // the issue's example: a resumed run with other thresholds printed the old groups
    let t = tempfile::tempdir().unwrap();
    let bank = synth_bank(&t.path().join("bank"), 0);
    let out = t.path().join("r");
    let one = [
        "--method",
        "vanilla-fc",
        "--seeds",
        "1",
        "--epochs",
        "2",
        "-q",
    ];
    let mut a = vec!["--bank", s(&bank), "--out", s(&out)];
    a.extend(one);
    let before = stdout(&ok(&a));
    a.extend(["--many-above", "80", "--few-below", "30"]);
    let resumed = stdout(&ok(&a));
    let fresh_dir = t.path().join("f");
    let mut b = vec!["--bank", s(&bank), "--out", s(&fresh_dir)];
    b.extend(one);
    b.extend(["--many-above", "80", "--few-below", "30"]);
    let fresh = stdout(&ok(&b));
    let row = |o: &str| {
        o.lines()
            .find(|l| l.starts_with("vanilla-fc"))
            .unwrap()
            .to_string()
    };
    assert_eq!(row(&resumed), row(&fresh));
    assert_ne!(
        row(&before),
        row(&fresh),
        "the thresholds must move a group"
    );
}

// ---- code identity ----------------------------------------------------------------------------

/// Rewrite every record's code identity (as a record of another build would have it).
fn set_code(dir: &Path, code: &str) {
    let text: Vec<String> = read(&dir.join("records.jsonl"))
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["code"] = code.into();
            v.to_string()
        })
        .collect();
    std::fs::write(dir.join("records.jsonl"), text.join("\n") + "\n").unwrap();
}

#[test]
fn a_record_of_another_code_identity_is_rerun_or_kept_labelled_with_reuse_stale() {
    let t = tempfile::tempdir().unwrap();
    let bank = synth_bank(&t.path().join("bank"), 0);
    let out = t.path().join("r");
    let a = args(&bank, &out, &["--no-plots"]);
    ok(&a);
    let fresh_table = read(&out.join("table1.csv"));
    let code = records_codes(&out);
    assert_eq!(code.len(), 1, "one build made every record");
    assert!(code[0].starts_with("src-"), "{code:?}");

    set_code(&out, "src-0000000000000000");
    let o = ok(&a);
    assert!(stdout(&o).contains("(5 new)"), "{}", stdout(&o));
    let log = stderr(&o);
    assert!(
        log.contains("rerunning 5 recorded by another code identity (src-0000000000000000"),
        "{log}"
    );
    assert_eq!(read(&out.join("table1.csv")), fresh_table);
    assert!(!stdout(&o).contains("[stale]"));

    // --reuse-stale keeps them, and every output says so
    let kept = t.path().join("kept");
    ok(&args(&bank, &kept, &["--no-plots"]));
    set_code(&kept, "src-1111111111111111");
    let mut b = args(&bank, &kept, &["--no-plots"]);
    b.push("--reuse-stale");
    let o = ok(&b);
    assert!(stdout(&o).contains("(0 new)"), "{}", stdout(&o));
    assert!(stderr(&o).contains("reusing 5 recorded by another code identity"));
    assert!(stdout(&o).contains("vanilla-fc [stale]"), "{}", stdout(&o));
    assert!(stdout(&o).contains("5 run(s) marked [stale]"));
    let table = csv(&kept.join("table1.csv"));
    let col = table[0].iter().position(|c| c == "stale_runs").unwrap();
    assert!(table[1..].iter().all(|r| r[col] == "2" || r[col] == "1"));
    for f in ["runs.csv", "per-class.csv"] {
        let t = csv(&kept.join(f));
        let col = t[0].iter().position(|c| c == "stale_code").unwrap();
        assert!(
            t[1..].iter().all(|r| r[col] == "src-1111111111111111"),
            "{f}"
        );
    }
    let config: Value = serde_json::from_str(&read(&kept.join("config.json"))).unwrap();
    assert_eq!(config["stale_runs_reused"], 5);
}

fn records_codes(dir: &Path) -> Vec<String> {
    let mut c: Vec<String> = read(&dir.join("records.jsonl"))
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["code"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    c.sort();
    c.dedup();
    c
}

#[test]
fn records_of_an_older_format_are_rerun() {
    let t = tempfile::tempdir().unwrap();
    let bank = synth_bank(&t.path().join("bank"), 0);
    let out = t.path().join("r");
    let a = args(&bank, &out, &["--no-plots"]);
    ok(&a);
    // the format before code identities: no `code`, groups stored in the record
    let text: Vec<String> = read(&out.join("records.jsonl"))
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("code");
            v["record"]["test"]["groups"] = serde_json::json!([0.5, 0.5, 0.5]);
            v["record"]["test"]
                .as_object_mut()
                .unwrap()
                .remove("per_class_correct");
            v.to_string()
        })
        .collect();
    std::fs::write(out.join("records.jsonl"), text.join("\n") + "\n").unwrap();
    let o = ok(&a);
    assert!(stdout(&o).contains("(5 new)"), "{}", stdout(&o));
    assert!(stderr(&o).contains("5 records of an older ltbench format"));
}

// ---- selection on val and the oracle ----------------------------------------------------------

/// Logits of a linear eval head, naively, in f64.
fn naive_logits(h: &EvalHead, x: &[f32]) -> Vec<f64> {
    (0..h.num_classes)
        .map(|c| {
            h.bias[c] as f64
                + (0..h.dim)
                    .map(|j| h.weight[c * h.dim + j] as f64 * x[j] as f64)
                    .sum::<f64>()
        })
        .collect()
}

fn argmax(z: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in z.iter().enumerate() {
        if *v > z[best] {
            best = i;
        }
    }
    best
}

/// (top-1, mean per-class accuracy) of `h` on `split`, naively.
fn naive_scores(h: &EvalHead, split: &Split, k: usize) -> (f64, f64) {
    let (mut hit, mut n) = (vec![0usize; k], vec![0usize; k]);
    for i in 0..split.rows {
        let y = split.labels[i] as usize;
        n[y] += 1;
        hit[y] += (argmax(&naive_logits(h, split.row(i))) == y) as usize;
    }
    let top1 = hit.iter().sum::<usize>() as f64 / split.rows as f64;
    let present: Vec<f64> = (0..k)
        .filter(|&c| n[c] > 0)
        .map(|c| hit[c] as f64 / n[c] as f64)
        .collect();
    (top1, present.iter().sum::<f64>() / present.len() as f64)
}

#[test]
fn the_epoch_is_selected_on_val_and_the_oracle_is_the_best_test_epoch() {
    let t = tempfile::tempdir().unwrap();
    let bank = Bank::open(&synth_bank(&t.path().join("bank"), 6)).unwrap();
    let k = bank.num_classes;
    let mut m = method("vanilla-fc");
    m.hyper.epochs = 8;
    m.hyper.lr = 0.05; // large enough that the epochs differ
    let job = Job {
        method: m.clone(),
        seed: 3,
    };
    let opts = RunOptions {
        threads: 1,
        shuffle: true,
        oracle: true,
        tta: true,
        one_pass: false,
        select_on_val: true,
        on_device: false,
        test_priors: 0,
        prior_correct: false,
        views: true,
    };
    let rec: RunRecord = run_one(
        &bank,
        &stage1(&bank),
        &job,
        opts,
        Parallelism::None,
        None,
        &Default::default(),
    )
    .unwrap();

    // the same training, every epoch's head scored naively
    let mut per_epoch = Vec::new();
    let topts = TrainOptions::default();
    let val = bank.val.as_ref().unwrap();
    train(
        &bank.train,
        &bank.train_counts,
        stage1(&bank),
        &m,
        3,
        &topts,
        |e, h| {
            let eh = h.eval_head(m.posthoc, &[]);
            per_epoch.push((
                e,
                naive_scores(&eh, val, k).1,
                naive_scores(&eh, &bank.test, k).0,
            ));
        },
    );
    assert_eq!(per_epoch.len(), 8);
    // ties go to the later epoch
    let pick = |f: &dyn Fn(&(usize, f64, f64)) -> f64| {
        per_epoch
            .iter()
            .fold(None::<&(usize, f64, f64)>, |b, x| match b {
                Some(b) if f(b) > f(x) => Some(b),
                _ => Some(x),
            })
            .unwrap()
    };
    let on_val = pick(&|x| x.1);
    assert_eq!(rec.selected_epoch, Some(on_val.0), "{per_epoch:?}");
    assert!(
        (rec.test.top1 - on_val.2).abs() < 1e-12,
        "test top-1 of the selected epoch"
    );
    assert!((rec.val.as_ref().unwrap().balanced() - on_val.1).abs() < 1e-12);
    let on_test = pick(&|x| x.2);
    let (best, epoch) = rec.oracle.unwrap();
    assert!((best - on_test.2).abs() < 1e-12);
    assert_eq!(epoch, on_test.0);
    assert!(best >= rec.test.top1);

    // the CLI reports the same in table1.csv, and labels the oracle column
    let out = t.path().join("r");
    let o = ok(&[
        "--bank",
        s(&bank.dir),
        "--out",
        s(&out),
        "--method",
        "vanilla-fc",
        "--seeds",
        "1",
        "--seed",
        "3",
        "--epochs",
        "8",
        "--lr",
        "0.05",
        "--oracle",
        "-q",
        "--no-plots",
    ]);
    assert!(stdout(&o).contains("head selected on val"));
    assert!(stdout(&o).contains("oracle (best test epoch"));
    let table = csv(&out.join("table1.csv"));
    let col = |n: &str| table[0].iter().position(|c| c == n).unwrap();
    let cell = |n: &str| table[1][col(n)].parse::<f64>().unwrap();
    assert!((cell("all") - 100.0 * on_val.2).abs() < 1e-4 + 1e-9);
    assert!((cell("oracle_all_best_test_epoch") - 100.0 * on_test.2).abs() < 1e-4 + 1e-9);
    assert_eq!(table[1][col("selection")], "val");
    let runs = csv(&out.join("runs.csv"));
    let sel = runs[0].iter().position(|c| c == "selected_epoch").unwrap();
    assert_eq!(runs[1][sel], on_val.0.to_string());
}

// ---- flip test-time augmentation --------------------------------------------------------------

#[test]
fn flip_tta_averages_the_logits_of_both_views() {
    // K = 3, D = 2, a linear head W = [[1, 0], [0, 1], [-1, -1]], b = 0.
    let head = EvalHead {
        num_classes: 3,
        dim: 2,
        weight: vec![1.0, 0.0, 0.0, 1.0, -1.0, -1.0],
        bias: vec![0.0; 3],
        normalize_input: false,
        center: None,
        minus_sq_norm: false,
        gate: None,
        after_gate: None,
    };
    // row 0: view z = (2, 0, -2), flip z' = (0, 3, -3): mean (1, 1.5, -2.5) → class 1
    // row 1: view (1, 0.5, -1.5), flip (-4, -3, 7): mean (-1.5, -1.25, 2.75) → class 2
    // the mean of the two views' probabilities would give class 0 for row 0
    // (softmax(2, 0, -2)_0 + softmax(0, 3, -3)_0 = 0.867 + 0.047 vs 0.117 + 0.950)... here it
    // is class 1 either way, so the NLL tells the two rules apart
    let split = Split {
        path: "test".into(),
        rows: 2,
        dim: 2,
        features: Features::Owned(vec![2.0, 0.0, 1.0, 0.5]),
        features_flip: Some(Features::Owned(vec![0.0, 3.0, -4.0, -3.0])),
        labels: vec![1, 0],
    };
    let e = evaluate(&head, &split, true, Parallelism::None);
    let mean = [[1.0f64, 1.5, -2.5], [-1.5, -1.25, 2.75]];
    let nll = |z: &[f64; 3], y: usize| {
        let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
        lse - z[y]
    };
    assert_eq!(e.top1, 0.5); // row 0 right (1), row 1 wrong (2 ≠ 0)
    assert_eq!(e.per_class_correct, vec![0, 1, 0]);
    let want = 0.5 * (nll(&mean[0], 1) + nll(&mean[1], 0));
    assert!((e.nll - want).abs() < 1e-6, "nll {} vs {want}", e.nll);
    // without TTA only the first view counts: row 0 → class 0 (wrong), row 1 → class 0 (right)
    let e = evaluate(&head, &split, false, Parallelism::None);
    assert_eq!(e.per_class_correct, vec![1, 0, 0]);
    let plain = [[2.0f64, 0.0, -2.0], [1.0, 0.5, -1.5]];
    let want = 0.5 * (nll(&plain[0], 1) + nll(&plain[1], 0));
    assert!((e.nll - want).abs() < 1e-6);
}

// ---- the committed default bank ---------------------------------------------------------------

#[test]
fn the_default_bank_reproduces_readme_s_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = read(&root.join("README.md"));
    // the block after "`cargo run -p retrain` prints the table"
    let start = readme
        .find("`cargo run -p retrain` prints the table")
        .expect("README's quick-start table");
    let block: Vec<&str> = readme[start..]
        .split("```")
        .nth(1)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(block[0].starts_with("Top-1 accuracy (%) on fmnist-lt-ir100 test"));
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("r");
    let o = Command::new(env!("CARGO_BIN_EXE_retrain"))
        .current_dir(&root)
        .args(["--out", s(&out), "-q", "--no-plots", "--no-views"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let got = stdout(&o);
    let got: Vec<&str> = got.lines().collect();
    assert!(got[0].starts_with("Top-1 accuracy (%) on fmnist-lt-ir100 test"));
    // every method row of README, character for character (the header line has timings)
    let rows: Vec<&&str> = block[1..]
        .iter()
        .filter(|l| !l.starts_with("wrote "))
        .collect();
    assert_eq!(
        rows.len(),
        34,
        "header + 2 group labels + 14 Table 1 rows + 17 zoo rows"
    );
    for want in &rows {
        assert!(
            got.contains(want),
            "README row not reproduced:\n  {want}\nretrain printed:\n{}",
            got.join("\n")
        );
    }
    // `--method table1`: exactly the README's first group, without labels
    let o = Command::new(env!("CARGO_BIN_EXE_retrain"))
        .current_dir(&root)
        .args(["--method", "table1", "--out", s(&t.path().join("t1")), "-q"])
        .args(["--no-plots", "--no-views"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let t1 = stdout(&o);
    let printed: Vec<&str> = t1
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("wrote "))
        .collect();
    let zoo_label = rows
        .iter()
        .position(|l| l.starts_with("── the stage-2 zoo"))
        .unwrap();
    let want: Vec<&str> = std::iter::once(*rows[0])
        .chain(rows[2..zoo_label].iter().map(|l| **l))
        .collect();
    assert_eq!(
        printed, want,
        "--method table1 is the paper's rows, unchanged"
    );
}

// ---- determinism on the full-precision records -------------------------------------------------

#[test]
fn jobs_and_threaded_gemms_do_not_change_the_full_precision_records() {
    let t = tempfile::tempdir().unwrap();
    let bank = synth_bank(&t.path().join("bank"), 4);
    let go = |name: &str, extra: &[&str]| {
        let out = t.path().join(name);
        let mut a = vec![
            "--bank",
            s(&bank),
            "--out",
            s(&out),
            "--epochs",
            "3",
            "-q",
            "--no-plots",
        ];
        a.extend_from_slice(extra);
        ok(&a);
        records(&out)
    };
    // many jobs: one per core with --jobs 2, all on one thread with --jobs 1
    let one = go("all-1", &["--method", "all", "--seeds", "2", "--jobs", "1"]);
    let two = go("all-2", &["--method", "all", "--seeds", "2", "--jobs", "2"]);
    // Table 1: 10 seeded rows + 4 deterministic; the zoo: 15 seeded + ncm and prior-correct
    assert_eq!(one.len(), 2 * (10 + 15) + 4 + 2);
    assert_eq!(one, two);
    // a single job: its GEMMs, loss and SGD on 2 threads vs sequential
    let one = go("los-1", &["--method", "los", "--seeds", "1", "--jobs", "1"]);
    let two = go("los-2", &["--method", "los", "--seeds", "1", "--jobs", "2"]);
    assert_eq!(one.len(), 1);
    assert_eq!(one, two);
}

/// T1's threaded half at shapes above every threading threshold: `gemm` splits a product
/// when a block's m·n_chunk·k_chunk reaches its threshold (589 824 by default; gemm-common
/// `gemm.rs:516`), the loss splits batches of more than 64 rows, SGD tensors of more than
/// 131 072 values. K = 256, D = 1024 (262 144 weights), batch 512: the head trained with two
/// threads equals the sequential one bit for bit, and every threaded branch was taken (counted
/// on the run's thread).
#[test]
fn threaded_gemms_loss_and_sgd_give_the_sequential_head() {
    use rand::{Rng, SeedableRng};
    use retrain::engine::linalg::threaded::{Branch, count};
    let (k, d, n) = (256usize, 1024usize, 1024usize);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let labels: Vec<u32> = (0..n).map(|i| (i % k) as u32).collect();
    let x: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let split = Split {
        path: "train".into(),
        rows: n,
        dim: d,
        features: Features::Owned(x),
        features_flip: None,
        labels,
    };
    let counts = split.class_counts(k);
    let table = MethodTable::embedded();
    let los = table.methods.iter().find(|m| m.name == "los").unwrap();
    let hyper = retrain::method::Hyper {
        batch_size: 512,
        epochs: 2,
        lr: 0.05,
        ..retrain::method::los_defaults()
    };
    let mut spec = los.clone();
    spec.hyper = Default::default();
    let method = spec.check(&hyper).unwrap();
    let head = HeadState::fresh(Head::Linear, k, d, &mut rng);
    let run = |par| {
        let opts = TrainOptions {
            par,
            ..Default::default()
        };
        let before = [Branch::Gemm, Branch::Loss, Branch::Sgd].map(count);
        let out = train(&split, &counts, head.clone(), &method, 0, &opts, |_, _| {});
        let after = [Branch::Gemm, Branch::Loss, Branch::Sgd].map(count);
        (out.head, [0, 1, 2].map(|i| after[i] - before[i]))
    };
    let (seq, none) = run(Parallelism::None);
    assert_eq!(
        none,
        [0, 0, 0],
        "the sequential run takes no threaded branch"
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let (thr, taken) = pool.install(|| run(Parallelism::Rayon(2)));
    // 2 epochs × 2 steps: 2 GEMMs (forward, ∂W), one loss, one SGD of W per step
    assert_eq!(taken, [8, 4, 4], "threaded branches (gemm, loss, sgd)");
    assert!(seq == thr, "two threads changed the trained head");
}

// ---- flags ------------------------------------------------------------------------------------

#[test]
fn init_fresh_is_pytorch_s_linear_range_seeded_and_used() {
    // nn.Linear's default init: weight and bias uniform in ±1/√D
    use rand::SeedableRng;
    let (k, d) = (50, 64);
    let draw = |seed| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        HeadState::fresh(Head::Linear, k, d, &mut rng)
    };
    let h = draw(1);
    let bound = 1.0 / (d as f32).sqrt();
    assert!(h.weight.iter().chain(&h.bias).all(|v| v.abs() <= bound));
    // uniform(−b, b): variance b²/3
    let var = h.weight.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / h.weight.len() as f64;
    let want = (bound as f64).powi(2) / 3.0;
    assert!((var / want - 1.0).abs() < 0.05, "variance {var} vs {want}");
    assert_eq!(draw(1).weight, h.weight);
    assert_ne!(draw(2).weight, h.weight);

    // the CLI: the init column says so, seeds differ, and the result is not the stage-1 one
    let t = tempfile::tempdir().unwrap();
    let bank = synth_bank(&t.path().join("bank"), 0);
    let go = |name: &str, extra: &[&str]| {
        let out = t.path().join(name);
        let mut a = vec![
            "--bank",
            s(&bank),
            "--out",
            s(&out),
            "--method",
            "vanilla-fc",
        ];
        a.extend_from_slice(&[
            "--seeds",
            "2",
            "--epochs",
            "1",
            "--lr",
            "1e-6",
            "-q",
            "--no-plots",
        ]);
        a.extend_from_slice(extra);
        ok(&a);
        csv(&out.join("table1.csv"))
    };
    let fresh = go("fresh", &["--init", "fresh"]);
    let stage1 = go("stage1", &[]);
    let col = |n: &str| fresh[0].iter().position(|c| c == n).unwrap();
    assert_eq!(fresh[1][col("init")], "fresh");
    assert_eq!(stage1[1][col("init")], "stage1");
    // at lr 1e-6 a random head stays near chance (10 classes), the stage-1 head does not
    let all = |t: &Vec<Vec<String>>| t[1][col("all")].parse::<f64>().unwrap();
    assert!(
        all(&fresh) < 30.0,
        "fresh head after one tiny epoch: {}",
        all(&fresh)
    );
    assert!(all(&stage1) > 50.0);
    let std = fresh[1][col("all_std")].parse::<f64>().unwrap();
    assert!(std > 0.0, "two seeds draw two different heads");
}

#[test]
fn cosine_step_follows_the_per_step_formula_and_changes_the_run() {
    let mut hp = method("los").hyper;
    hp.lr = 0.1;
    hp.epochs = 4;
    let total = 40; // 10 steps per epoch
    let cos = |t: f64, n: f64| 0.5 * 0.1 * (1.0 + (std::f64::consts::PI * t / n).cos());
    hp.schedule = Schedule::CosineStep;
    for step in [0, 1, 9, 10, 25, 39] {
        let got = lr_at(&hp, step / 10, step, total) as f64;
        assert!(
            (got - cos(step as f64, 40.0)).abs() < 1e-7,
            "step {step}: {got}"
        );
    }
    hp.schedule = Schedule::CosineEpoch;
    for step in [0, 9, 10, 39] {
        let got = lr_at(&hp, step / 10, step, total) as f64;
        assert!(
            (got - cos((step / 10) as f64, 4.0)).abs() < 1e-7,
            "step {step}: {got}"
        );
    }

    let t = tempfile::tempdir().unwrap();
    let bank = synth_bank(&t.path().join("bank"), 0);
    let go = |name: &str, extra: &[&str]| {
        let out = t.path().join(name);
        let mut a = vec!["--bank", s(&bank), "--out", s(&out), "--method", "los"];
        a.extend_from_slice(&[
            "--seeds",
            "1",
            "--epochs",
            "3",
            "--lr",
            "0.05",
            "-q",
            "--no-plots",
        ]);
        a.extend_from_slice(extra);
        ok(&a);
        (records(&out), csv(&out.join("runs.csv")))
    };
    let (per_epoch, _) = go("epoch", &[]);
    let (per_step, runs) = go("step", &["--schedule", "cosine-step"]);
    assert_ne!(per_epoch, per_step);
    let col = runs[0].iter().position(|c| c == "schedule").unwrap();
    assert_eq!(runs[1][col], "cosinestep");
}

#[test]
fn maxnorm_every_epoch_caps_the_rows_at_each_epoch_end_only() {
    let t = tempfile::tempdir().unwrap();
    let bank = Bank::open(&synth_bank(&t.path().join("bank"), 0)).unwrap();
    let mut m = method("maxnorm");
    m.hyper.epochs = 3;
    m.hyper.lr = 0.5; // rows grow past the limit within an epoch
    let (limit, _) = maxnorm_limit(&stage1(&bank), m.constraint).unwrap();
    let norms = |h: &HeadState| -> Vec<f32> { h.row_norms() };
    let cap = |every| {
        let mut m = m.clone();
        if let retrain::method::Constraint::MaxNorm { every: e, .. } = &mut m.constraint {
            *e = every;
        }
        let mut ends = Vec::new();
        let out = train(
            &bank.train,
            &bank.train_counts,
            stage1(&bank),
            &m,
            0,
            &TrainOptions::default(),
            |_, h| ends.push(norms(h)),
        );
        (ends, out.head)
    };
    let (ends, head) = cap(ProjectEvery::Epoch);
    for n in &ends {
        assert!(
            n.iter().all(|&v| v <= limit * (1.0 + 1e-5)),
            "{n:?} > {limit}"
        );
    }
    assert!(
        norms(&head).iter().any(|&v| v > 0.99 * limit),
        "some row reaches the limit"
    );
    let (_, per_step) = cap(ProjectEvery::Step);
    assert_ne!(
        per_step.weight, head.weight,
        "projecting per step is another run"
    );

    // the flag reaches the method: another record than the default (per step)
    let go = |name: &str, extra: &[&str]| {
        let out = t.path().join(name);
        let mut a = vec![
            "--bank",
            s(&bank.dir),
            "--out",
            s(&out),
            "--method",
            "maxnorm",
        ];
        a.extend_from_slice(&[
            "--seeds",
            "1",
            "--epochs",
            "3",
            "--lr",
            "0.5",
            "-q",
            "--no-plots",
        ]);
        a.extend_from_slice(extra);
        ok(&a);
        records(&out)
    };
    let step = go("step", &[]);
    let epoch = go("epoch", &["--maxnorm-every", "epoch"]);
    assert_ne!(step, epoch);
    let rec = epoch.values().next().unwrap();
    assert_eq!(rec["method"]["constraint"]["every"], "epoch", "{rec}");
}

#[test]
fn seed_picks_the_first_seed_and_rerun_reruns_everything() {
    let t = tempfile::tempdir().unwrap();
    let bank = synth_bank(&t.path().join("bank"), 0);
    let go = |name: &str, extra: &[&str]| {
        let out = t.path().join(name);
        let mut a = vec![
            "--bank",
            s(&bank),
            "--out",
            s(&out),
            "--method",
            "vanilla-fc,los",
        ];
        a.extend_from_slice(&["--epochs", "2", "-q", "--no-plots"]);
        a.extend_from_slice(extra);
        (ok(&a), out)
    };
    let (_, two) = go("two", &["--seed", "4", "--seeds", "2"]);
    let (_, one) = go("one", &["--seed", "5", "--seeds", "1"]);
    let two = records(&two);
    let one = records(&one);
    assert_eq!(one.len(), 2);
    for (k, v) in &one {
        assert_eq!(v["seed"], 5);
        assert_eq!(two.get(k), Some(v), "the seed-5 run of --seed 4 --seeds 2");
    }
    let (o, dir) = go("one", &["--seed", "5", "--seeds", "1"]);
    assert!(stdout(&o).contains("(0 new)"));
    let before = read(&dir.join("table1.csv"));
    let (o, _) = go("one", &["--seed", "5", "--seeds", "1", "--rerun"]);
    assert!(stdout(&o).contains("2 runs (2 new)"), "{}", stdout(&o));
    assert_eq!(read(&dir.join("table1.csv")), before);
}

#[test]
fn many_medium_few_are_the_means_of_per_class_accuracies_in_each_group() {
    let t = tempfile::tempdir().unwrap();
    let bank = synth_bank(&t.path().join("bank"), 0);
    let out = t.path().join("r");
    ok(&[
        "--bank",
        s(&bank),
        "--out",
        s(&out),
        "--method",
        "balanced-softmax",
        "--seeds",
        "1",
        "--epochs",
        "2",
        "--many-above",
        "50",
        "--few-below",
        "15",
        "-q",
        "--no-plots",
    ]);
    let pc = csv(&out.join("per-class.csv"));
    let col = |t: &Vec<Vec<String>>, n: &str| t[0].iter().position(|c| c == n).unwrap();
    let (tc, acc) = (col(&pc, "train_count"), col(&pc, "accuracy"));
    let mut groups: [Vec<f64>; 3] = Default::default();
    for r in &pc[1..] {
        let n: usize = r[tc].parse().unwrap();
        let g = if n > 50 {
            0
        } else if n < 15 {
            2
        } else {
            1
        };
        groups[g].push(r[acc].parse().unwrap());
    }
    assert!(
        groups.iter().all(|g| !g.is_empty()),
        "every group has classes"
    );
    let table = csv(&out.join("table1.csv"));
    for (g, name) in ["many", "medium", "few"].iter().enumerate() {
        let want = groups[g].iter().sum::<f64>() / groups[g].len() as f64;
        let got: f64 = table[1][col(&table, name)].parse().unwrap();
        assert!((got - want).abs() < 1e-3, "{name}: {got} vs {want}");
    }
    // and the library function agrees on a hand-made evaluation
    let e = retrain::eval::Evaluation {
        top1: 0.0,
        per_class_correct: vec![1, 2, 0, 3],
        per_class_count: vec![2, 4, 0, 3],
        ece: 0.0,
        nll: 0.0,
        loma: vec![],
        rsd: vec![],
        per_class_predicted: vec![],
        per_class_top5: vec![],
        predictions: None,
    };
    let gs = [
        ShotGroup::Many,
        ShotGroup::Many,
        ShotGroup::Few,
        ShotGroup::Few,
    ];
    assert_eq!(e.group_accuracy(&gs, ShotGroup::Many), Some(0.5));
    assert_eq!(e.group_accuracy(&gs, ShotGroup::Few), Some(1.0)); // class 2 has no test row
    assert_eq!(e.group_accuracy(&gs, ShotGroup::Medium), None);
}

#[test]
fn sweep_tau_at_zero_is_the_stage1_head_and_at_one_the_default_row() {
    let t = tempfile::tempdir().unwrap();
    let bank = synth_bank(&t.path().join("bank"), 0);
    let out = t.path().join("r");
    let o = ok(&[
        "--bank",
        s(&bank),
        "--out",
        s(&out),
        "--method",
        "tau-norm,logit-adjust",
        "--sweep-tau",
        "--seeds",
        "1",
        "-q",
        "--no-plots",
    ]);
    assert!(stdout(&o).contains("tau-norm"));
    let plain = t.path().join("plain");
    ok(&[
        "--bank",
        s(&bank),
        "--out",
        s(&plain),
        "--method",
        "stage1,tau-norm,logit-adjust",
        "--seeds",
        "1",
        "-q",
        "--no-plots",
    ]);
    let base = csv(&plain.join("table1.csv"));
    let row = |m: &str| base.iter().find(|r| r[0] == m).unwrap().clone();
    for m in ["tau-norm", "logit-adjust"] {
        let sweep = csv(&out.join(format!("{m}-tau-sweep.csv")));
        assert_eq!(sweep[0][..4], ["bank", "tau", "n_seeds", "all"]);
        assert_eq!(sweep.len(), 1 + 21, "τ = 0, 0.1, …, 2");
        let at = |tau: &str| sweep.iter().find(|r| r[1] == tau).unwrap().clone();
        if m == "logit-adjust" {
            // τ = 0: no adjustment, the stage-1 head itself
            assert_eq!(at("0.0")[3], row("stage1")[2], "{m} at τ = 0 vs stage1");
            assert_eq!(at("0.0")[5..8], row("stage1")[4..7]);
        }
        assert_eq!(at("1.0")[3], row(m)[2], "{m} at τ = 1 vs the table's row");
        assert_eq!(
            at("1.0")[5..8],
            row(m)[4..7],
            "{m} at τ = 1: many, medium, few"
        );
    }
}

#[test]
fn compare_paper_prints_our_cells_beside_the_published_ones() {
    let t = tempfile::tempdir().unwrap();
    let bank = synth_bank(&t.path().join("bank"), 0);
    let out = t.path().join("r");
    ok(&[
        "--bank",
        s(&bank),
        "--out",
        s(&out),
        "--method",
        "vanilla-fc,los",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "-q",
        "--no-plots",
    ]);
    let o = ok(&["compare", "--paper", "table1", "--results", s(&out)]);
    let text = stdout(&o);
    let ours = csv(&out.join("table1.csv"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let paper = csv(&root.join("baselines/paper/table1.csv"));
    for m in ["vanilla-fc", "los"] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(m))
            .unwrap_or_else(|| panic!("no {m} line in:\n{text}"));
        let o = ours.iter().find(|r| r[0] == m).unwrap();
        let p = paper.iter().find(|r| r[0] == m).unwrap();
        let ours_all: f64 = o[2].parse().unwrap();
        let paper_all: f64 = p[1].parse().unwrap();
        assert!(line.contains(&format!("{ours_all:.2}")), "{line}");
        assert!(line.contains(&format!("{paper_all:.2}")), "{line}");
        let delta = format!("{:+.2}", ours_all - paper_all);
        assert!(line.contains(&delta), "Δ {delta} in {line}");
    }
    // a method only the paper has is shown with blanks on our side
    assert!(text.contains("ldam"));
}
