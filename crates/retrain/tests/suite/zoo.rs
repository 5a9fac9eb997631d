//! The stage-2 zoo end to end, through the real binary: every row of `baselines/zoo.toml` and
//! of Table 1 runs on a bank without a stage-1 head and resumes; `--method table1` is the
//! paper's rows alone and `--method all` prints them first, then the zoo, each group under
//! its label; `--sweep PARAM=…` and `--sweep-tau` work on zoo rows with no code of their own.

use retrain::command::synth::SynthSpec;
use retrain::engine::linalg::Parallelism;
use retrain::method::table::MethodTable;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ok(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_retrain"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "retrain {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn bank(dir: &Path) -> PathBuf {
    let spec = SynthSpec {
        classes: 8,
        dim: 12,
        ir: 20.0,
        img_max: 80,
        test_per_class: 10,
        val_per_class: 0,
        separation: 1.0,
        latent_dim: 6,
        ambient_noise: 0.5,
        stage1_epochs: 3,
        stage1_lr: 0.05,
        seed: 5,
        f16: false,
    };
    retrain::command::synth::write_synthetic_bank(&spec, dir, true, Parallelism::None).unwrap();
    dir.to_path_buf()
}

/// The `method` column and the `all` column of a table1.csv.
fn table(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |n: &str| header.iter().position(|c| *c == n).unwrap();
    let (m, a) = (at("method"), at("all"));
    lines
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[m].to_string(), c[a].to_string())
        })
        .collect()
}

#[test]
fn every_row_runs_on_a_bank_without_a_stage1_head_and_resumes() {
    let t = tempfile::tempdir().unwrap();
    let b = bank(&t.path().join("bank"));
    std::fs::remove_file(b.join("head.safetensors")).unwrap();
    let out = t.path().join("out");
    let args = [
        "--bank",
        s(&b),
        "--method",
        "all",
        "--seeds",
        "1",
        "--epochs",
        "2",
        "--out",
        s(&out),
        "-q",
        "--no-plots",
    ];
    let first = ok(&args);
    assert!(String::from_utf8_lossy(&first.stderr).contains("stage-1 head"));
    let rows = table(&out.join("table1.csv"));
    let names = MethodTable::embedded();
    assert_eq!(
        rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        names.names(),
        "every row, in table order"
    );
    for (m, acc) in &rows {
        let a: f64 = acc.parse().unwrap_or_else(|_| panic!("{m}: all = `{acc}`"));
        assert!((0.0..=100.0).contains(&a), "{m}: {a}");
    }
    let before = std::fs::read_to_string(out.join("table1.csv")).unwrap();
    let again = ok(&args);
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(log.contains("resuming"), "{log}");
    assert_eq!(
        std::fs::read_to_string(out.join("table1.csv")).unwrap(),
        before,
        "a resumed table is the same table"
    );
}

#[test]
fn table1_is_the_paper_rows_and_all_prints_them_first_then_the_zoo_labelled() {
    let t = tempfile::tempdir().unwrap();
    let b = bank(&t.path().join("bank"));
    let run = |what: &str| {
        let out = t.path().join(what);
        let o = ok(&[
            "--bank",
            s(&b),
            "--method",
            what,
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--out",
            s(&out),
            "--no-plots",
            "-q",
        ]);
        (
            table(&out.join("table1.csv")),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };
    let table = MethodTable::embedded();
    let (t1, t1_out) = run("table1");
    assert_eq!(
        t1.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        table.group("table1")
    );
    assert!(
        !t1_out.contains("──"),
        "one group: no group labels\n{t1_out}"
    );
    let (all, all_out) = run("all");
    assert_eq!(
        &all[..t1.len()],
        &t1[..],
        "the paper rows first, the same numbers"
    );
    assert_eq!(
        all[t1.len()..]
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>(),
        table.group("zoo")
    );
    let lines: Vec<&str> = all_out.lines().collect();
    let label = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with("── ") && l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` label:\n{all_out}"))
    };
    let (paper, zoo) = (label("Table 1"), label("zoo"));
    let row = |m: &str| {
        lines
            .iter()
            .position(|l| l.split_whitespace().next() == Some(m))
            .unwrap()
    };
    assert!(paper < row("stage1") && row("los") < zoo && zoo < row("crt"));
}

#[test]
fn a_generic_sweep_and_the_tau_sweep_run_zoo_rows() {
    let t = tempfile::tempdir().unwrap();
    let b = bank(&t.path().join("bank"));
    let out = t.path().join("las");
    ok(&[
        "--bank",
        s(&b),
        "--method",
        "las",
        "--sweep",
        "eps_head=0.2,0.6",
        "--seeds",
        "1",
        "--epochs",
        "2",
        "--lr",
        "0.05",
        "--out",
        s(&out),
        "--no-plots",
        "-q",
    ]);
    let sweep = std::fs::read_to_string(out.join("las-eps_head-sweep.csv")).unwrap();
    let rows: Vec<Vec<&str>> = sweep.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0][1], "eps_head");
    assert_eq!((rows[1][1], rows[2][1]), ("0.2", "0.6"));
    assert_eq!(rows.len(), 3);
    // the two values train different heads, and each is the head of a run with the constant
    // set in the row directly (a --config table holding only that row)
    let t1 = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert_eq!(t1.lines().filter(|l| l.contains(",test,all,")).count(), 2);
    // records are appended as runs finish: find each by its constant
    let recs = records(&out);
    assert_eq!(recs.len(), 2);
    let swept: Vec<serde_json::Value> = [0.2, 0.6]
        .iter()
        .map(|e| {
            let r = recs
                .iter()
                .find(|r| (r["method"]["loss"]["eps_head"].as_f64().unwrap() - e).abs() < 1e-6);
            r.unwrap_or_else(|| panic!("eps_head {e}"))["test"].clone()
        })
        .collect();
    assert_ne!(
        swept[0], swept[1],
        "eps_head 0.2 and 0.6 gave the same head"
    );
    for (i, eps) in ["0.2", "0.6"].iter().enumerate() {
        let cfg = t.path().join(format!("las-{eps}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[defaults]\nlr = 5e-4\n[[method]]\nname = \"las\"\nloss = {{ kind = \"las\", eps_head = {eps}, eps_tail = 0.1, shape = \"concave\" }}\n"
            ),
        )
        .unwrap();
        let direct = t.path().join(format!("las-direct-{eps}"));
        ok(&[
            "--bank",
            s(&b),
            "--config",
            s(&cfg),
            "--method",
            "las",
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--lr",
            "0.05",
            "--out",
            s(&direct),
            "--no-plots",
            "-q",
        ]);
        assert_eq!(
            test_results(&direct),
            vec![swept[i].clone()],
            "eps_head {eps}"
        );
    }

    let out = t.path().join("la");
    let o = ok(&[
        "--bank",
        s(&b),
        "--method",
        "la-loss,vs",
        "--sweep-tau",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--out",
        s(&out),
        "--no-plots",
        "-q",
    ]);
    let tau = std::fs::read_to_string(out.join("la-loss-tau-sweep.csv")).unwrap();
    assert_eq!(tau.lines().count(), 22, "τ = 0, 0.1, …, 2");
    assert!(out.join("vs-tau-sweep.csv").exists());
    let taus: Vec<&str> = tau
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(taus[9], "0.9", "τ as typed: {taus:?}");
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with("vs ") && l.contains(" 1.3 ")),
        "{printed}"
    );
    // vs at τ = 1.3 is `--method vs --tau 1.3`; τ = 0 and τ = 2 differ
    let vs = |tau: f64| -> serde_json::Value {
        let recs = records(&out);
        let r = recs
            .iter()
            .find(|r| {
                r["method"]["name"] == "vs"
                    && (r["method"]["loss"]["tau"].as_f64().unwrap() - tau).abs() < 1e-6
            })
            .unwrap_or_else(|| panic!("vs at τ = {tau}"));
        r["test"].clone()
    };
    assert_ne!(vs(0.0), vs(2.0));
    let direct = t.path().join("vs-direct");
    ok(&[
        "--bank",
        s(&b),
        "--method",
        "vs",
        "--tau",
        "1.3",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--out",
        s(&direct),
        "--no-plots",
        "-q",
    ]);
    assert_eq!(test_results(&direct), vec![vs(1.3)]);
}

/// The records of a results folder (its `records.jsonl`), as JSON.
fn records(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["record"].clone())
        .collect()
}

/// Every run's test evaluation (per-class counts, NLL, LoMa, … in full precision), in record
/// order.
fn test_results(out: &Path) -> Vec<serde_json::Value> {
    records(out).iter().map(|r| r["test"].clone()).collect()
}

/// `--recipe source` evaluates each row as its source does: cRT (Decoupling: one forward per
/// image) without flips, vanilla-fc (the LOS code: `valid_base(test_aug=True)`) with them; the
/// log line and config.json say which rows dropped the flip.
#[test]
fn recipe_source_evaluates_each_row_as_its_source_does() {
    let t = tempfile::tempdir().unwrap();
    let bank = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../features/fmnist-lt-ir100");
    let run = |out: &str, extra: &[&str]| {
        let out = t.path().join(out);
        let mut args = vec!["--bank", s(&bank), "--method", "crt,vanilla-fc"];
        args.extend([
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--no-plots",
            "--out",
            s(&out),
        ]);
        args.extend(extra);
        let o = ok(&args);
        (table(&out.join("table1.csv")), out, o)
    };
    let (source, out, o) = run("source", &["--recipe", "source"]);
    let (flip, _, _) = run("flip", &[]);
    let (no_flip, _, _) = run("no-flip", &["--no-tta"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("flip TTA (not for crt: their source recipes evaluate without)"),
        "{err}"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["tta_off_by_recipe"], serde_json::json!(["crt"]));
    let all = |t: &[(String, String)], m: &str| t.iter().find(|r| r.0 == m).unwrap().1.clone();
    // cRT's recipe is its row's own (the same training under both protocols): only the
    // evaluation differs
    assert_eq!(all(&source, "crt"), all(&no_flip, "crt"));
    assert_ne!(all(&source, "crt"), all(&flip, "crt"));
    assert_eq!(all(&source, "vanilla-fc"), all(&flip, "vanilla-fc"));
}
