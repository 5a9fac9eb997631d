//! The real `retrain` binary on small banks in temporary folders: a full table, a bank
//! written the way a PyTorch user writes one, determinism, and every bad input the bank
//! contract names (one line naming the file and field, exit code 2, no table written).

use safetensors::Dtype;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn retrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_retrain"))
}

fn run(args: &[&str]) -> Output {
    let out = retrain().args(args).output().expect("run retrain");
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A raw tensor for writing test files with any dtype.
use bank::write::RawTensor as T;
fn f32s(shape: &[usize], v: &[f32]) -> T {
    T {
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}
fn i64s(v: &[i64]) -> T {
    T {
        dtype: Dtype::I64,
        shape: vec![v.len()],
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}
fn save(path: &Path, tensors: Vec<(&str, T)>) {
    bank::write::save_tensors(path, tensors).unwrap();
}

/// A tiny separable bank as PyTorch would save it: K = 3, D = 4, counts 30/12/4.
fn pytorch_bank(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mk = |counts: &[usize], shift: f32| {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (c, &n) in counts.iter().enumerate() {
            for i in 0..n {
                let j = (i as f32 + shift) * 0.37;
                let mut row = vec![j.sin() * 0.3, j.cos() * 0.3, (j * 1.7).sin() * 0.3, 0.1];
                row[c] += 1.5;
                x.extend(row);
                y.push(c as i64);
            }
        }
        (x, y)
    };
    let (x, y) = mk(&[30, 12, 4], 0.0);
    save(
        &dir.join("train.safetensors"),
        vec![("features", f32s(&[y.len(), 4], &x)), ("labels", i64s(&y))],
    );
    let (x, y) = mk(&[10, 10, 10], 0.5);
    save(
        &dir.join("test.safetensors"),
        vec![("features", f32s(&[y.len(), 4], &x)), ("labels", i64s(&y))],
    );
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn full_table_on_a_small_synthetic_bank() {
    let t = tmp();
    let bank = t.path().join("bank");
    let o = run(&[
        "synth",
        "--out",
        s(&bank),
        "--classes",
        "10",
        "--dim",
        "16",
        "--img-max",
        "60",
        "--ir",
        "10",
        "--test-per-class",
        "20",
        "--latent-dim",
        "8",
        "--stage1-epochs",
        "5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = t.path().join("results");
    let o = run(&[
        "--bank",
        s(&bank),
        "--method",
        "table1",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--out",
        s(&out),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for m in [
        "vanilla-fc",
        "vanilla-cosine",
        "lws",
        "ldam",
        "balanced-softmax",
        "re-sampling",
        "focal",
        "class-balanced",
        "maxnorm",
        "tau-norm",
        "logit-adjust",
        "los",
    ] {
        assert!(stdout.contains(m), "stdout lacks {m}:\n{stdout}");
    }
    let table = std::fs::read_to_string(out.join("table1.csv")).unwrap();
    let mut lines = table.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("method,n_seeds,all,all_std,many,medium,few")
    );
    // 12 methods + 2 reference rows (stage1, logreg-balanced)
    assert_eq!(lines.count(), 14);
    // the 4 deterministic rows (stage1, logreg-balanced, tau-norm, logit-adjust) run once:
    // (10 × 2 + 4) runs × 4 groups (test only)
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 1 + 24 * 4);
    let per_class = std::fs::read_to_string(out.join("per-class.csv")).unwrap();
    assert_eq!(per_class.lines().count(), 1 + 24 * 10);
    let loma = std::fs::read_to_string(out.join("loma.csv")).unwrap();
    assert!(loma.starts_with("bank,method,seed,class,train_count,loma,loma_norm,rsd"));
    assert_eq!(loma.lines().count(), 1 + 24 * 10);
    assert!(out.join("config.json").exists());
    for f in [
        "loma-bank.png",
        "loma-bank.svg",
        "rsd-bank.png",
        "per-class-accuracy-bank.png",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
}

#[test]
fn delta_sweep_grid_and_two_banks() {
    let t = tmp();
    let (a, b) = (t.path().join("ira"), t.path().join("irb"));
    pytorch_bank(&a);
    pytorch_bank(&b);
    let out = t.path().join("res");
    let banks = format!("{},{}", s(&a), s(&b));
    let o = run(&[
        "--bank",
        &banks,
        "--method",
        "los",
        "--sweep-delta",
        "--deltas",
        "0,0.5,0.9",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--out",
        s(&out),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sweep = std::fs::read_to_string(out.join("los-delta-sweep.csv")).unwrap();
    let mut lines = sweep.lines();
    assert_eq!(
        lines.next().unwrap(),
        "bank,delta,n_seeds,all,all_std,many,medium,few"
    );
    assert_eq!(lines.count(), 6, "2 banks × 3 δ");
    assert!(out.join("los-delta-sweep.png").exists() && out.join("los-delta-sweep.svg").exists());
    let table = std::fs::read_to_string(out.join("table1.csv")).unwrap();
    assert!(table.lines().next().unwrap().contains(",bank"));

    let out = t.path().join("grid");
    let o = run(&[
        "--bank",
        s(&a),
        "--method",
        "vanilla-fc",
        "--grid",
        "lr=0.001,0.01:wd=0,0.0005",
        "--seeds",
        "1",
        "--epochs",
        "2",
        "--out",
        s(&out),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let grid = std::fs::read_to_string(out.join("vanilla-fc-grid.csv")).unwrap();
    assert_eq!(grid.lines().count(), 1 + 4);
    assert!(out.join("vanilla-fc-grid-ira.png").exists());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("ORACLE"),
        "no val split: the best cell is labelled an oracle"
    );
}

#[test]
fn tune_selects_on_a_held_out_slice_or_labels_test_as_oracle() {
    let t = tmp();
    let bank = t.path().join("pt");
    pytorch_bank(&bank);
    let out = t.path().join("tuned");
    let o = run(&[
        "--bank",
        s(&bank),
        "--method",
        "vanilla-fc,los,logit-adjust",
        "--tune",
        "--grid",
        "lr=0.001,0.1:wd=0",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--out",
        s(&out),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tune = std::fs::read_to_string(out.join("tune.csv")).unwrap();
    assert_eq!(
        tune.lines().count(),
        1 + 2 * 2,
        "2 trainable methods × 2 cells:\n{tune}"
    );
    assert_eq!(
        tune.lines().filter(|l| l.ends_with(",true")).count(),
        2,
        "one chosen cell per method:\n{tune}"
    );
    let table = std::fs::read_to_string(out.join("table1.csv")).unwrap();
    assert!(
        table.contains("tuned on a held-out 20 % of train"),
        "{table}"
    );
    let o = run(&[
        "--bank",
        s(&bank),
        "--method",
        "vanilla-fc",
        "--tune",
        "--tune-on",
        "test",
        "--grid",
        "lr=0.001,0.1:wd=0",
        "--seeds",
        "1",
        "--epochs",
        "2",
        "--out",
        s(&t.path().join("oracle")),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = std::fs::read_to_string(t.path().join("oracle/table1.csv")).unwrap();
    assert!(table.contains("ORACLE"), "{table}");
}

#[test]
fn a_bank_of_two_pytorch_files_loads_and_trains() {
    let t = tmp();
    let bank = t.path().join("pt");
    pytorch_bank(&bank);
    let out = t.path().join("res");
    let o = run(&[
        "--bank",
        s(&bank),
        "--method",
        "los,vanilla-fc,logit-adjust",
        "--seeds",
        "1",
        "--out",
        s(&out),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("fitting a stage-1 head"),
        "{}",
        stderr(&o)
    );
    let table = std::fs::read_to_string(out.join("table1.csv")).unwrap();
    let vanilla = table.lines().find(|l| l.starts_with("vanilla-fc")).unwrap();
    let all: f64 = vanilla.split(',').nth(2).unwrap().parse().unwrap();
    assert!(all > 80.0, "separable bank, got {all}: {vanilla}");
    // K = 3 derived; counts 30/12/4 are all "medium"/"few" under 100/20: many is empty → blank
    let many = vanilla.split(',').nth(4).unwrap();
    assert_eq!(many, "", "empty group must be empty, not 0: {vanilla}");
}

#[test]
fn same_seed_same_numbers_with_one_or_two_jobs() {
    let t = tmp();
    let bank = t.path().join("pt");
    pytorch_bank(&bank);
    let go = |jobs: &str, out: &str| {
        let out = t.path().join(out);
        let o = run(&[
            "--bank",
            s(&bank),
            "--method",
            "all",
            "--seeds",
            "2",
            "--epochs",
            "3",
            "--jobs",
            jobs,
            "--out",
            s(&out),
            "-q",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        // drop the wall-time column
        std::fs::read_to_string(out.join("runs.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect::<Vec<_>>()
    };
    let a = go("1", "a");
    let b = go("2", "b");
    let c = go("2", "c");
    assert_eq!(a, b);
    assert_eq!(b, c);
}

// ---- bad inputs -------------------------------------------------------------------------

/// Run on a broken bank; expect exit 2, one stderr line containing every `needle`, and no
/// table written.
fn expect_error(bank: &Path, extra: &[&str], needles: &[&str]) {
    let out = bank.parent().unwrap().join("out");
    let mut args = vec![
        "--bank",
        s(bank),
        "--method",
        "vanilla-fc",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--out",
        s(&out),
        "-q",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    let e = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected exit 2, got {:?}: {e}",
        o.status.code()
    );
    let lines: Vec<&str> = e
        .lines()
        .filter(|l| !l.contains("fitting a stage-1 head"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected:\n{e}");
    for n in needles {
        assert!(lines[0].contains(n), "error line lacks `{n}`: {}", lines[0]);
    }
    assert!(!e.contains("panicked"), "{e}");
    assert!(!out.join("table1.csv").exists(), "no table on error");
}

fn broken(f: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf) {
    let t = tmp();
    let bank = t.path().join("bank");
    pytorch_bank(&bank);
    f(&bank);
    (t, bank)
}

#[test]
fn missing_labels_tensor() {
    let (_t, b) = broken(|b| {
        save(
            &b.join("train.safetensors"),
            vec![("features", f32s(&[2, 4], &[0.0; 8]))],
        )
    });
    expect_error(&b, &[], &["train.safetensors", "labels"]);
}

#[test]
fn wrong_rank_features() {
    let (_t, b) = broken(|b| {
        save(
            &b.join("test.safetensors"),
            vec![
                ("features", f32s(&[2, 2, 2], &[0.0; 8])),
                ("labels", i64s(&[0, 1])),
            ],
        )
    });
    expect_error(&b, &[], &["test.safetensors", "features", "rank 3"]);
}

#[test]
fn row_count_mismatch() {
    let (_t, b) = broken(|b| {
        save(
            &b.join("test.safetensors"),
            vec![
                ("features", f32s(&[2, 4], &[0.0; 8])),
                ("labels", i64s(&[0, 1, 2])),
            ],
        )
    });
    expect_error(
        &b,
        &[],
        &["test.safetensors", "features", "labels", "2", "3"],
    );
}

#[test]
fn dim_mismatch_between_splits() {
    let (_t, b) = broken(|b| {
        save(
            &b.join("test.safetensors"),
            vec![
                ("features", f32s(&[2, 3], &[0.0; 6])),
                ("labels", i64s(&[0, 1])),
            ],
        )
    });
    expect_error(&b, &[], &["test.safetensors", "features", "dimension 3"]);
}

#[test]
fn dim_mismatch_with_head() {
    let (_t, b) = broken(|b| {
        save(
            &b.join("head.safetensors"),
            vec![
                ("weight", f32s(&[3, 5], &[0.0; 15])),
                ("bias", f32s(&[3], &[0.0; 3])),
            ],
        )
    });
    expect_error(&b, &[], &["head.safetensors", "weight", "dimension 5"]);
}

#[test]
fn label_out_of_range() {
    let (_t, b) = broken(|b| std::fs::write(b.join("meta.json"), r#"{"num_classes": 2}"#).unwrap());
    expect_error(&b, &[], &["labels", "out of range 0..2"]);
}

#[test]
fn negative_label() {
    let (_t, b) = broken(|b| {
        save(
            &b.join("test.safetensors"),
            vec![
                ("features", f32s(&[2, 4], &[0.0; 8])),
                ("labels", i64s(&[0, -1])),
            ],
        )
    });
    expect_error(&b, &[], &["test.safetensors", "labels", "negative"]);
}

#[test]
fn nan_in_features() {
    let (_t, b) = broken(|b| {
        let mut x = vec![0.0f32; 8];
        x[5] = f32::NAN;
        save(
            &b.join("test.safetensors"),
            vec![("features", f32s(&[2, 4], &x)), ("labels", i64s(&[0, 1]))],
        );
    });
    expect_error(
        &b,
        &[],
        &["test.safetensors", "features", "[1, 1]", "not finite"],
    );
}

#[test]
fn class_without_training_sample() {
    let (_t, b) = broken(|b| std::fs::write(b.join("meta.json"), r#"{"num_classes": 4}"#).unwrap());
    expect_error(
        &b,
        &[],
        &["train.safetensors", "class 3 has no training sample"],
    );
}

#[test]
fn truncated_file() {
    let (_t, b) = broken(|b| {
        let p = b.join("train.safetensors");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
    });
    expect_error(&b, &[], &["train.safetensors", "truncated or corrupt"]);
}

#[test]
fn not_a_safetensors_file() {
    let (_t, b) = broken(|b| std::fs::write(b.join("train.safetensors"), b"hello").unwrap());
    expect_error(&b, &[], &["train.safetensors", "truncated or corrupt"]);
}

#[test]
fn missing_test_split() {
    let (_t, b) = broken(|b| std::fs::remove_file(b.join("test.safetensors")).unwrap());
    expect_error(&b, &[], &["missing test.safetensors"]);
}

#[test]
fn malformed_meta_json() {
    let (_t, b) = broken(|b| {
        std::fs::write(b.join("meta.json"), "{\n  \"num_classes\": \"three\"\n}").unwrap()
    });
    expect_error(&b, &[], &["meta.json", "num_classes"]);
}

#[test]
fn meta_contradicting_the_labels() {
    let (_t, b) =
        broken(|b| std::fs::write(b.join("meta.json"), r#"{"train_counts": [1, 2, 3]}"#).unwrap());
    expect_error(&b, &[], &["meta.json", "train_counts"]);
}

#[test]
fn bad_command_line_values() {
    let t = tmp();
    let bank = t.path().join("bank");
    pytorch_bank(&bank);
    expect_error(&bank, &["--delta", "1.5"], &["--delta", "[0, 1)"]);
    expect_error(&bank, &["--lr=-1"], &["lr"]);
    expect_error(&bank, &["--batch-size", "0"], &["batch_size"]);
    expect_error(&bank, &["--method", "nope"], &["unknown method `nope`"]);
    let missing = t.path().join("nope");
    let o = run(&["--bank", s(&missing), "--seeds", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("nope") && stderr(&o).contains("no such bank folder"),
        "{}",
        stderr(&o)
    );
    // output "folder" that is a file
    let file = t.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let o = run(&[
        "--bank",
        s(&bank),
        "--method",
        "vanilla-fc",
        "--seeds",
        "1",
        "--out",
        s(&file),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--out") && stderr(&o).contains("not a folder"),
        "{}",
        stderr(&o)
    );
}

// ---- durable runs ------------------------------------------------------------------------

pub(crate) fn small_synth(dir: &Path) {
    let o = run(&[
        "synth",
        "--out",
        s(dir),
        "--classes",
        "20",
        "--dim",
        "32",
        "--img-max",
        "200",
        "--ir",
        "20",
        "--test-per-class",
        "20",
        "--latent-dim",
        "8",
        "--stage1-epochs",
        "5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

const SWEEP: &[&str] = &[
    "--method",
    "los,vanilla-fc,balanced-softmax,focal",
    "--seeds",
    "6",
    "--epochs",
    "12",
    "--jobs",
    "1",
    "-q",
];

fn sweep_args<'a>(bank: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["--bank", s(bank), "--out", s(out)];
    a.extend_from_slice(SWEEP);
    a.extend_from_slice(extra);
    a
}

#[test]
fn a_sweep_killed_with_sigkill_resumes_to_the_same_table() {
    let t = tmp();
    let bank = t.path().join("bank");
    small_synth(&bank);
    let whole = t.path().join("whole");
    let o = run(&sweep_args(&bank, &whole, &[]));
    assert!(o.status.success(), "{}", stderr(&o));

    let killed = t.path().join("killed");
    let mut child = retrain()
        .args(sweep_args(&bank, &killed, &[]))
        .spawn()
        .unwrap();
    let records = killed.join("records.jsonl");
    let t0 = std::time::Instant::now();
    loop {
        let n = std::fs::read_to_string(&records)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if n >= 3 || t0.elapsed().as_secs() > 120 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the sweep finished before it could be killed; make it longer"
    );
    assert!(!killed.join("table1.csv").exists());

    let o = run(&sweep_args(&bank, &killed, &[]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming:"), "{}", stderr(&o));
    for f in ["table1.csv", "per-class.csv"] {
        assert_eq!(
            std::fs::read_to_string(whole.join(f)).unwrap(),
            std::fs::read_to_string(killed.join(f)).unwrap(),
            "{f}"
        );
    }
    // a rerun with everything recorded runs nothing new
    let o = run(&sweep_args(&bank, &killed, &[]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(0 new)"));
}

#[test]
fn shards_merge_into_the_same_table_as_one_run() {
    let t = tmp();
    let bank = t.path().join("bank");
    small_synth(&bank);
    let whole = t.path().join("whole");
    assert!(run(&sweep_args(&bank, &whole, &[])).status.success());
    let sharded = t.path().join("sharded");
    for sh in ["0/3", "1/3", "2/3"] {
        let o = run(&sweep_args(&bank, &sharded, &["--shard", sh]));
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            !sharded.join("table1.csv").exists(),
            "a shard writes no table"
        );
    }
    assert!(sharded.join("records.shard-2-of-3.jsonl").exists());
    let o = run(&sweep_args(&bank, &sharded, &[]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(0 new)"));
    for f in ["table1.csv", "per-class.csv"] {
        assert_eq!(
            std::fs::read_to_string(whole.join(f)).unwrap(),
            std::fs::read_to_string(sharded.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn one_pass_gives_the_same_tables_as_separate_runs() {
    let t = tmp();
    let bank = t.path().join("bank");
    let o = run(&[
        "synth",
        "--out",
        s(&bank),
        "--classes",
        "100",
        "--dim",
        "64",
        "--img-max",
        "60",
        "--ir",
        "10",
        "--test-per-class",
        "5",
        "--latent-dim",
        "16",
        "--stage1-epochs",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let go = |extra: &[&str], out: &str| {
        let out = t.path().join(out);
        let mut a = vec![
            "--bank",
            s(&bank),
            "--seeds",
            "2",
            "--epochs",
            "3",
            "--out",
            s(&out),
            "-q",
            "--no-plots",
        ];
        a.extend_from_slice(extra);
        let o = run(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        ["table1.csv", "per-class.csv"].map(|f| std::fs::read_to_string(out.join(f)).unwrap())
    };
    let single = go(&["--jobs", "1"], "single");
    let one_pass = go(&["--one-pass", "--jobs", "2"], "one-pass");
    assert_eq!(single, one_pass);
}

#[test]
fn device_cuda_without_a_cuda_build_is_one_line_and_auto_falls_back_to_the_same_numbers() {
    if candle_core::utils::cuda_is_available() {
        return; // a CUDA build: the GPU run covers it
    }
    let (t, bank) = broken(|_| {});
    expect_error(
        &bank,
        &["--device", "cuda"],
        &["--device cuda", "built without CUDA"],
    );
    let go = |extra: &[&str], out: &str| {
        let out = t.path().join(out);
        let mut args = vec![
            "--bank",
            s(&bank),
            "--method",
            "all",
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--out",
            s(&out),
            "-q",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let runs = std::fs::read_to_string(out.join("runs.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect::<Vec<_>>();
        (runs, stderr(&o))
    };
    let (cpu, _) = go(&[], "cpu");
    let (auto, log) = go(&["--device", "auto"], "auto");
    assert!(
        log.contains("--device auto") && log.contains("using the CPU"),
        "{log}"
    );
    assert_eq!(cpu, auto);
}
