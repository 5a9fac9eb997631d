//! The statistical evidence of a table, through the real binary, each number checked by hand
//! from the files the run wrote (never from the engine's own formulas): the 95 % bootstrap
//! interval of All has the binomial width and is fixed by `--bootstrap-seed`; the t-interval
//! over seeds, the `vs` column and `vs_baseline_*`, and top5 / hmean / gmean / macro precision
//! and F1 agree with runs.csv and predictions.parquet; `predictions.parquet` holds every run's
//! test rows, agrees with runs.csv and the `predictions/` sidecars, and survives a resume;
//! `retrain compare` (two folders, or `--baseline M A`) writes compare.csv with Δ, McNemar's
//! counts and p by hand, zero against itself, and names a fresh-init vanilla-fc significant;
//! bad compare inputs exit 2 with one line and write no compare.csv; prior-shift.csv is
//! Σ_c q_c·acc_c of per-class.csv, and the `prior-correct` row (and `--prior-correct`)
//! behaves as PC-softmax should.

use retrain::command::synth::SynthSpec;
use retrain::engine::linalg::Parallelism;
use retrain::output::predictions::{RunCorrect, read};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (the default bank `features/fmnist-lt-ir100` is under it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `retrain args` in `dir`, which must succeed.
fn ok_in(dir: &Path, args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_retrain"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "retrain {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `retrain args` on the committed default bank (run from the repository root).
fn ok(args: &[&str]) -> Output {
    ok_in(&root(), args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A small synthetic bank: 10 classes, 16 dimensions, 500 balanced test rows, a stage-1 head.
fn bank(dir: &Path) -> PathBuf {
    let spec = SynthSpec {
        classes: 10,
        dim: 16,
        ir: 20.0,
        img_max: 200,
        test_per_class: 50,
        val_per_class: 0,
        separation: 1.0,
        latent_dim: 8,
        ambient_noise: 0.5,
        stage1_epochs: 10,
        stage1_lr: 0.05,
        seed: 5,
        f16: false,
    };
    retrain::command::synth::write_synthetic_bank(&spec, dir, true, Parallelism::None).unwrap();
    dir.to_path_buf()
}

// ---- reading CSVs by hand ---------------------------------------------------------------------

/// The rows of a CSV file (RFC 4180 quoting: runs.csv has JSON cells), each as column → cell.
fn csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut records: Vec<Vec<String>> = Vec::new();
    let (mut record, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => record.push(std::mem::take(&mut cell)),
            ('\n', false) => {
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
            }
            ('\r', false) => {}
            (c, _) => cell.push(c),
        }
    }
    if !cell.is_empty() || !record.is_empty() {
        record.push(cell);
        records.push(record);
    }
    let header = records.remove(0);
    records
        .into_iter()
        .map(|r| {
            assert_eq!(
                r.len(),
                header.len(),
                "{}: ragged row {r:?}",
                path.display()
            );
            header.iter().cloned().zip(r).collect()
        })
        .collect()
}

/// A numeric cell (`None` when blank).
fn num(row: &BTreeMap<String, String>, col: &str) -> Option<f64> {
    let v = row
        .get(col)
        .unwrap_or_else(|| panic!("no column `{col}` in {row:?}"));
    (!v.is_empty()).then(|| {
        v.parse()
            .unwrap_or_else(|_| panic!("`{col}` = `{v}` is not a number"))
    })
}
fn f(row: &BTreeMap<String, String>, col: &str) -> f64 {
    num(row, col).unwrap_or_else(|| panic!("`{col}` is blank in {row:?}"))
}

/// The row of `method` in a table with a `method` column.
fn row<'a>(rows: &'a [BTreeMap<String, String>], method: &str) -> &'a BTreeMap<String, String> {
    rows.iter()
        .find(|r| r["method"] == method)
        .unwrap_or_else(|| panic!("no row `{method}`"))
}

/// Test `all` of every run in runs.csv: (method, seed) → accuracy (percent).
fn test_all(out: &Path) -> BTreeMap<(String, u64), f64> {
    csv(&out.join("runs.csv"))
        .iter()
        .filter(|r| r["split"] == "test" && r["group"] == "all")
        .map(|r| {
            (
                (r["method"].clone(), r["seed"].parse().unwrap()),
                f(r, "accuracy"),
            )
        })
        .collect()
}

/// per-class.csv of `method`: class → (train count, group, mean accuracy over the seeds).
fn per_class(out: &Path, method: &str) -> BTreeMap<usize, (f64, String, f64)> {
    let mut acc: BTreeMap<usize, (f64, String, Vec<f64>)> = BTreeMap::new();
    for r in csv(&out.join("per-class.csv")) {
        if r["method"] == method {
            let e = acc.entry(r["class"].parse().unwrap()).or_insert((
                f(&r, "train_count"),
                r["group"].clone(),
                Vec::new(),
            ));
            e.2.push(f(&r, "accuracy"));
        }
    }
    assert!(!acc.is_empty(), "no per-class rows of `{method}`");
    acc.into_iter()
        .map(|(c, (n, g, v))| (c, (n, g, v.iter().sum::<f64>() / v.len() as f64)))
        .collect()
}

/// The labels of `<bank>/test.safetensors`, read directly.
fn test_labels(bank: &Path) -> Vec<u32> {
    let bytes = std::fs::read(bank.join("test.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("labels").unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::I64);
    t.data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect()
}

/// What `read` returns, in a comparable form.
fn runs_of(path: &Path) -> (Vec<u32>, Vec<(String, String, String, u64, Vec<bool>)>) {
    let (labels, runs) = read(path).unwrap();
    let runs = runs
        .into_iter()
        .map(
            |RunCorrect {
                 bank,
                 method,
                 params,
                 seed,
                 correct,
             }| { (bank, method, params, seed, correct) },
        )
        .collect();
    (labels, runs)
}

/// McNemar's exact two-sided p by hand: min(1, 2·P(X ≤ min(b, c))), X ~ Bin(b + c, ½), with
/// ln C(n, k) = ln n! − ln k! − ln (n − k)!.
fn mcnemar_by_hand(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let ln_fact: Vec<f64> = std::iter::once(0.0)
        .chain((1..=n).scan(0.0, |acc, i| {
            *acc += (i as f64).ln();
            Some(*acc)
        }))
        .collect();
    let ln_terms: Vec<f64> = (0..=b.min(c))
        .map(|k| {
            ln_fact[n as usize]
                - ln_fact[k as usize]
                - ln_fact[(n - k) as usize]
                - n as f64 * 2f64.ln()
        })
        .collect();
    let max = ln_terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let tail = max.exp() * ln_terms.iter().map(|t| (t - max).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

/// Rows right on A only, right on B only, summed over the runs paired by seed.
fn discordant_by_hand(
    a: &[(String, String, String, u64, Vec<bool>)],
    b: &[&(String, String, String, u64, Vec<bool>)],
) -> (u64, u64) {
    let (mut x, mut y) = (0, 0);
    for rb in b {
        let ra = a
            .iter()
            .find(|ra| ra.1 == rb.1 && ra.3 == rb.3)
            .unwrap_or_else(|| panic!("{} seed {} not on side A", rb.1, rb.3));
        for (p, q) in ra.4.iter().zip(&rb.4) {
            x += (*p && !*q) as u64;
            y += (!*p && *q) as u64;
        }
    }
    (x, y)
}

const CI: [&str; 8] = [
    "all_ci_lo",
    "all_ci_hi",
    "many_ci_lo",
    "many_ci_hi",
    "medium_ci_lo",
    "medium_ci_hi",
    "few_ci_lo",
    "few_ci_hi",
];

// ---- table1.csv: intervals -------------------------------------------------------------------

/// (a) On the default bank (10 000 test rows), the bootstrap interval of All has the width of
/// the binomial one, 1.96·√(p(1 − p)/n), within 25 %; each group's interval holds its point;
/// the same command gives the same intervals, another `--bootstrap-seed` other ones, and
/// `--bootstrap 0` none. One seed: no t-interval.
#[test]
fn the_all_interval_has_the_binomial_width_and_is_fixed_by_the_bootstrap_seed() {
    let t = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = t.path().join(name);
        let mut args = vec![
            "--method",
            "vanilla-fc",
            "--seeds",
            "1",
            "--no-plots",
            "-q",
            "--out",
            s(&out),
        ];
        args.extend(extra);
        ok(&args);
        row(&csv(&out.join("table1.csv")), "vanilla-fc").clone()
    };
    let first = run("first", &[]);
    let n = test_labels(&root().join("features/fmnist-lt-ir100")).len();
    assert_eq!(n, 10_000, "the default bank's test rows");
    let p = f(&first, "all") / 100.0;
    let binomial = 1.96 * (p * (1.0 - p) / n as f64).sqrt() * 100.0;
    let half = (f(&first, "all_ci_hi") - f(&first, "all_ci_lo")) / 2.0;
    println!(
        "All = {:.2} %: bootstrap half-width {half:.4}, binomial {binomial:.4}",
        100.0 * p
    );
    assert!(
        (half / binomial - 1.0).abs() <= 0.25,
        "half-width {half} vs binomial {binomial}"
    );
    for g in ["all", "many", "medium", "few"] {
        let (lo, hi, x) = (
            f(&first, &format!("{g}_ci_lo")),
            f(&first, &format!("{g}_ci_hi")),
            f(&first, g),
        );
        assert!(lo < x && x < hi, "{g}: {x} not inside [{lo}, {hi}]");
    }
    for c in ["all_t_lo", "all_t_hi"] {
        assert_eq!(num(&first, c), None, "{c}: one seed has no t-interval");
    }
    let again = run("again", &[]);
    for c in CI {
        assert_eq!(
            first[c], again[c],
            "{c}: the same command, the same interval"
        );
    }
    let other = run("other", &["--bootstrap-seed", "1"]);
    assert_ne!(
        (&first["all_ci_lo"], &first["all_ci_hi"]),
        (&other["all_ci_lo"], &other["all_ci_hi"]),
        "another bootstrap seed, other resamples"
    );
    assert_eq!(
        first["all"], other["all"],
        "the point estimate does not move"
    );
    let none = run("none", &["--bootstrap", "0"]);
    for c in CI {
        assert_eq!(num(&none, c), None, "{c} with --bootstrap 0");
    }
}

/// The t-interval over seeds is mean ± t₀.₉₇₅,ₙ₋₁·s/√n of runs.csv's per-seed All (n = 2:
/// t = 12.7062); `vs_baseline_delta` is the difference of the rows' All, its interval excludes
/// 0 for logit-adjust against vanilla-fc (▲ on stdout), and `--baseline logit-adjust` turns it
/// round (▼ for vanilla-fc); the baseline's own `vs_baseline_*` are blank.
#[test]
fn t_interval_and_vs_baseline_agree_with_the_runs_by_hand() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "--method",
            "vanilla-fc,logit-adjust",
            "--seeds",
            "2",
            "--no-plots",
            "-q",
            "--out",
            s(out),
        ];
        args.extend(extra);
        ok(&args)
    };
    let o = run(&out, &[]);
    let table = csv(&out.join("table1.csv"));
    let runs = test_all(&out);
    let v: Vec<f64> = (0..2)
        .map(|s| runs[&("vanilla-fc".to_string(), s)])
        .collect();
    let mean = (v[0] + v[1]) / 2.0;
    let sd = ((v[0] - mean).powi(2) + (v[1] - mean).powi(2)).sqrt(); // n − 1 = 1
    let half = 12.706_204_736 * sd / 2f64.sqrt();
    let vf = row(&table, "vanilla-fc");
    assert!((f(vf, "all") - mean).abs() < 1e-3);
    assert!((f(vf, "all_t_lo") - (mean - half)).abs() < 1e-3, "{vf:?}");
    assert!((f(vf, "all_t_hi") - (mean + half)).abs() < 1e-3, "{vf:?}");
    let la = row(&table, "logit-adjust");
    // logit-adjust is post-hoc on the stage-1 head: one deterministic run
    assert_eq!(f(la, "n_seeds"), 1.0);
    assert_eq!(num(la, "all_t_lo"), None);
    let d = f(la, "vs_baseline_delta");
    assert!((d - (f(la, "all") - f(vf, "all"))).abs() < 1e-3, "{la:?}");
    let (lo, hi) = (f(la, "vs_baseline_lo"), f(la, "vs_baseline_hi"));
    assert!(0.0 < lo && lo < d && d < hi, "{la:?}");
    assert!(f(la, "vs_baseline_p") <= 0.05);
    for c in [
        "vs_baseline_delta",
        "vs_baseline_lo",
        "vs_baseline_hi",
        "vs_baseline_p",
    ] {
        assert_eq!(num(vf, c), None, "{c}: the baseline against itself");
    }
    let text = stdout(&o);
    let line = |text: &str, m: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(&format!("{m} ")))
            .unwrap_or_else(|| panic!("no line `{m}` in\n{text}"))
            .to_string()
    };
    assert!(line(&text, "logit-adjust").contains('▲'), "{text}");
    assert!(
        !line(&text, "vanilla-fc").contains(['▲', '▼', '=']),
        "{text}"
    );

    let flipped = t.path().join("flipped");
    let o = run(&flipped, &["--baseline", "logit-adjust"]);
    let text = stdout(&o);
    assert!(line(&text, "vanilla-fc").contains('▼'), "{text}");
    let table = csv(&flipped.join("table1.csv"));
    let (vf, la) = (row(&table, "vanilla-fc"), row(&table, "logit-adjust"));
    let d = f(vf, "vs_baseline_delta");
    assert!((d - (f(vf, "all") - f(la, "all"))).abs() < 1e-3, "{vf:?}");
    assert!(f(vf, "vs_baseline_hi") < 0.0, "{vf:?}");
    assert_eq!(num(la, "vs_baseline_delta"), None);
}

/// top5, hmean, gmean, macro_precision, macro_f1 and the groups' F1 of table1.csv, recomputed
/// from predictions.parquet's `label`, `pred` and `top5` (and per-class.csv's groups).
#[test]
fn the_extra_columns_agree_with_the_predictions_by_hand() {
    use polars::prelude::*;
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    ok(&[
        "--method",
        "vanilla-fc,logit-adjust",
        "--seeds",
        "1",
        "--no-plots",
        "-q",
        "--out",
        s(&out),
    ]);
    let df = ParquetReader::new(std::fs::File::open(out.join("predictions.parquet")).unwrap())
        .finish()
        .unwrap();
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "bank", "method", "params", "seed", "row", "label", "pred", "correct", "p_true", "top5"
        ]
    );
    let n = df.height();
    let strs = df.column("method").unwrap().str().unwrap();
    let method: Vec<&str> = (0..n).map(|i| strs.get(i).unwrap()).collect();
    let label: Vec<u32> = df
        .column("label")
        .unwrap()
        .u32()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let pred: Vec<u32> = df
        .column("pred")
        .unwrap()
        .u32()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let bools = df.column("correct").unwrap().bool().unwrap();
    let correct: Vec<bool> = (0..n).map(|i| bools.get(i).unwrap()).collect();
    let top5: Vec<Vec<u32>> = df
        .column("top5")
        .unwrap()
        .list()
        .unwrap()
        .no_null_series_iter()
        .map(|s| s.u32().unwrap().into_no_null_iter().collect())
        .collect();
    let p_true: Vec<f32> = df
        .column("p_true")
        .unwrap()
        .f32()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let table = csv(&out.join("table1.csv"));
    for m in ["vanilla-fc", "logit-adjust"] {
        let rows: Vec<usize> = (0..method.len()).filter(|&i| method[i] == m).collect();
        assert_eq!(rows.len(), 10_000, "{m}: one seed, every test row");
        let classes = per_class(&out, m);
        let k = classes.len();
        let (mut count, mut right, mut predicted) = (vec![0.0; k], vec![0.0; k], vec![0.0; k]);
        let mut in_top5 = 0usize;
        for &i in &rows {
            let (y, p) = (label[i] as usize, pred[i] as usize);
            assert_eq!(
                correct[i],
                y == p,
                "{m} row {i}: `correct` is pred == label"
            );
            assert!(
                (0.0..=1.0).contains(&p_true[i]),
                "{m} row {i}: p_true {}",
                p_true[i]
            );
            assert_eq!(top5[i].len(), 5);
            assert_eq!(
                top5[i][0] as usize, p,
                "{m} row {i}: the top-1 is the first of top5"
            );
            count[y] += 1.0;
            predicted[p] += 1.0;
            right[y] += (y == p) as u8 as f64;
            in_top5 += top5[i].contains(&label[i]) as usize;
        }
        let r = row(&table, m);
        let close = |col: &str, want: f64| {
            let got = f(r, col);
            assert!(
                (got - want).abs() < 1e-3,
                "{m} {col}: table {got}, by hand {want}"
            );
        };
        close("top5", 100.0 * in_top5 as f64 / rows.len() as f64);
        let recall: Vec<f64> = (0..k).map(|c| right[c] / count[c]).collect();
        for c in 0..k {
            close_to(
                classes[&c].2,
                100.0 * recall[c],
                &format!("{m} class {c} accuracy"),
            );
        }
        let hmean = if recall.contains(&0.0) {
            0.0
        } else {
            k as f64 / recall.iter().map(|a| 1.0 / a).sum::<f64>()
        };
        let gmean = recall.iter().product::<f64>().powf(1.0 / k as f64);
        close("hmean", 100.0 * hmean);
        close("gmean", 100.0 * gmean);
        let f1 = |cs: &[usize]| {
            cs.iter()
                .map(|&c| 2.0 * right[c] / (predicted[c] + count[c]))
                .sum::<f64>()
                / cs.len() as f64
        };
        let all: Vec<usize> = (0..k).collect();
        let precision = all
            .iter()
            .map(|&c| {
                if predicted[c] > 0.0 {
                    right[c] / predicted[c]
                } else {
                    0.0
                }
            })
            .sum::<f64>()
            / k as f64;
        close("macro_precision", 100.0 * precision);
        close("macro_f1", 100.0 * f1(&all));
        for g in ["many", "medium", "few"] {
            let cs: Vec<usize> = all.iter().copied().filter(|c| classes[c].1 == g).collect();
            close(&format!("{g}_f1"), 100.0 * f1(&cs));
        }
    }
}

fn close_to(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 1e-3, "{what}: {got} vs {want} by hand");
}

// ---- predictions.parquet ---------------------------------------------------------------------

/// (b) predictions.parquet: one run per (method, seed) of runs.csv, each with every test row of
/// the bank's test.safetensors in order, its share of correct rows the run's test All; the
/// `predictions/` sidecars hold the same runs; a resumed command leaves the same contents.
#[test]
fn predictions_parquet_holds_every_run_agrees_with_runs_csv_and_survives_a_resume() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let args = [
        "--method",
        "vanilla-fc,los,logit-adjust",
        "--seeds",
        "2",
        "--no-plots",
        "-q",
        "--out",
        s(&out),
    ];
    ok(&args);
    let labels = test_labels(&root().join("features/fmnist-lt-ir100"));
    let (got_labels, runs) = runs_of(&out.join("predictions.parquet"));
    assert_eq!(
        got_labels, labels,
        "the test labels of the bank, in row order"
    );
    let all = test_all(&out);
    assert_eq!(
        runs.len(),
        all.len(),
        "one run per (method, seed) of runs.csv: {:?}",
        all.keys().collect::<Vec<_>>()
    );
    for (b, m, params, seed, correct) in &runs {
        assert_eq!(b, "fmnist-lt-ir100");
        assert_eq!(params, "", "{m}: no swept parameter");
        assert_eq!(correct.len(), labels.len(), "{m} seed {seed}");
        let acc = all
            .get(&(m.clone(), *seed))
            .unwrap_or_else(|| panic!("{m} seed {seed} is not in runs.csv"));
        let share = correct.iter().filter(|&&c| c).count() as f64 / correct.len() as f64;
        assert!(
            (share - acc / 100.0).abs() < 1e-4,
            "{m} seed {seed}: {share} of the rows right, runs.csv says {acc} %"
        );
    }
    // the sidecars: one per run, the same correct counts
    let mut from_sidecars: Vec<usize> = std::fs::read_dir(out.join("predictions"))
        .unwrap()
        .map(|e| {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let pred = st.tensor("pred").unwrap();
            assert_eq!(pred.shape(), [labels.len()]);
            assert_eq!(st.tensor("top5").unwrap().shape(), [labels.len(), 5]);
            pred.data()
                .chunks_exact(4)
                .zip(&labels)
                .filter(|(c, y)| u32::from_le_bytes((*c).try_into().unwrap()) == **y)
                .count()
        })
        .collect();
    let mut from_parquet: Vec<usize> = runs
        .iter()
        .map(|r| r.4.iter().filter(|&&c| c).count())
        .collect();
    from_sidecars.sort();
    from_parquet.sort();
    assert_eq!(
        from_sidecars, from_parquet,
        "the sidecars hold the same runs"
    );

    let again = ok(&args);
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(log.contains("resuming"), "{log}");
    assert_eq!(
        runs_of(&out.join("predictions.parquet")),
        (labels, runs),
        "a resumed table has the same predictions"
    );
}

// ---- retrain compare ---------------------------------------------------------------------------

const METHODS: &str = "vanilla-fc,los,re-sampling";

/// `retrain --bank <b> --method METHODS --seeds 2 --epochs 3 --out <out> [extra]`.
fn run_synth(b: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "--bank",
        s(b),
        "--method",
        METHODS,
        "--seeds",
        "2",
        "--epochs",
        "3",
        "--no-plots",
        "-q",
        "--out",
        s(out),
    ];
    args.extend(extra);
    ok_in(b.parent().unwrap(), &args);
}

fn compare_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let rows = csv(path);
    assert!(!rows.is_empty(), "{}: no rows", path.display());
    rows
}

/// The methods named on compare's `significant (α = 0.05, All): ...` line.
fn significant(text: &str) -> Vec<String> {
    let l = text
        .lines()
        .find_map(|l| l.strip_prefix("significant (α = 0.05, All): "))
        .unwrap_or_else(|| panic!("no `significant` line in\n{text}"));
    if l == "none" {
        Vec::new()
    } else {
        l.split(", ").map(String::from).collect()
    }
}

/// (c) A folder against itself: every Δ and its interval 0, every p (bootstrap and McNemar)
/// 1, no discordant row, nothing significant.
#[test]
fn compare_of_a_folder_with_itself_is_zero_with_p_one() {
    let t = tempfile::tempdir().unwrap();
    let b = bank(&t.path().join("bank"));
    let a = t.path().join("a");
    run_synth(&b, &a, &[]);
    let o = ok_in(t.path(), &["compare", s(&a), s(&a)]);
    assert!(significant(&stdout(&o)).is_empty(), "{}", stdout(&o));
    let rows = compare_csv(&a.join("compare.csv"));
    assert_eq!(
        rows.iter()
            .map(|r| r["method"].as_str())
            .collect::<Vec<_>>(),
        METHODS.split(',').collect::<Vec<_>>()
    );
    for r in &rows {
        assert_eq!(r["against"], r["method"]);
        assert_eq!(f(r, "seeds"), 2.0);
        for g in ["all", "many", "medium", "few"] {
            for c in [
                format!("delta_{g}"),
                format!("delta_{g}_lo"),
                format!("delta_{g}_hi"),
            ] {
                assert_eq!(f(r, &c), 0.0, "{}: {c}", r["method"]);
            }
            assert_eq!(f(r, &format!("p_{g}")), 1.0, "{}: p_{g}", r["method"]);
        }
        assert_eq!((f(r, "mcnemar_b"), f(r, "mcnemar_c")), (0.0, 0.0));
        assert_eq!(f(r, "mcnemar_p"), 1.0);
    }
}

/// (c) `compare A B`, A the LOS protocol (stage-1 init), B `--init fresh` with 3 epochs: a
/// row per method; Δ of each group is B's table minus A's; McNemar's counts and exact p are
/// those of predictions.parquet by hand; vanilla-fc's interval of Δ All excludes 0 and the
/// `significant` line names it.
#[test]
fn compare_of_fresh_init_against_stage1_agrees_by_hand_and_is_significant() {
    let t = tempfile::tempdir().unwrap();
    let b = bank(&t.path().join("bank"));
    let (a, fresh) = (t.path().join("stage1"), t.path().join("fresh"));
    run_synth(&b, &a, &[]);
    run_synth(&b, &fresh, &["--init", "fresh"]);
    let o = ok_in(t.path(), &["compare", s(&a), s(&fresh)]);
    let text = stdout(&o);
    println!("{text}");
    assert!(!a.join("compare.csv").exists(), "compare.csv goes into B");
    let rows = compare_csv(&fresh.join("compare.csv"));
    assert_eq!(
        rows.iter()
            .map(|r| r["method"].as_str())
            .collect::<Vec<_>>(),
        METHODS.split(',').collect::<Vec<_>>(),
        "one row per method"
    );
    let (ta, tb) = (csv(&a.join("table1.csv")), csv(&fresh.join("table1.csv")));
    let (_, ra) = runs_of(&a.join("predictions.parquet"));
    let (_, rb) = runs_of(&fresh.join("predictions.parquet"));
    for r in &rows {
        let m = r["method"].as_str();
        assert_eq!(r["against"], m);
        for g in ["all", "many", "medium", "few"] {
            let want = f(row(&tb, m), g) - f(row(&ta, m), g);
            close_to(f(r, &format!("delta_{g}")), want, &format!("{m} delta_{g}"));
            let (lo, hi) = (
                f(r, &format!("delta_{g}_lo")),
                f(r, &format!("delta_{g}_hi")),
            );
            assert!(lo <= hi, "{m} {g}: [{lo}, {hi}]");
            let p = f(r, &format!("p_{g}"));
            assert!((0.0..=1.0).contains(&p), "{m} p_{g} = {p}");
        }
        let mine: Vec<_> = rb.iter().filter(|x| x.1 == m).collect();
        assert_eq!(mine.len(), 2);
        let (bb, cc) = discordant_by_hand(&ra, &mine);
        assert_eq!(
            (f(r, "mcnemar_b"), f(r, "mcnemar_c")),
            (bb as f64, cc as f64),
            "{m}"
        );
        let p = f(r, "mcnemar_p");
        let want = mcnemar_by_hand(bb, cc);
        assert!(
            (p - want).abs() <= 1e-9 * want.max(1e-300),
            "{m}: McNemar p {p}, by hand {want}"
        );
    }
    let vf = row(&rows, "vanilla-fc");
    let (d, lo, hi) = (
        f(vf, "delta_all"),
        f(vf, "delta_all_lo"),
        f(vf, "delta_all_hi"),
    );
    println!(
        "vanilla-fc fresh − stage1: Δ All {d} [{lo}, {hi}], p {}, McNemar {}/{} p {}",
        vf["p_all"], vf["mcnemar_b"], vf["mcnemar_c"], vf["mcnemar_p"]
    );
    assert!(lo <= d && d <= hi);
    assert!(
        hi < 0.0 || lo > 0.0,
        "the interval excludes 0: [{lo}, {hi}]"
    );
    assert!(f(vf, "p_all") < 0.05);
    assert!(f(vf, "mcnemar_p") < 0.05);
    assert!(
        significant(&text).iter().any(|m| m == "vanilla-fc"),
        "{text}"
    );
}

/// (c) `compare --baseline vanilla-fc A`: one row per other method, `against` vanilla-fc,
/// paired by seed; Δ is the difference of the table's rows, McNemar by hand.
#[test]
fn compare_against_a_baseline_is_every_other_method_against_it() {
    let t = tempfile::tempdir().unwrap();
    let b = bank(&t.path().join("bank"));
    let a = t.path().join("a");
    run_synth(&b, &a, &["--init", "fresh"]);
    let o = ok_in(t.path(), &["compare", "--baseline", "vanilla-fc", s(&a)]);
    println!("{}", stdout(&o));
    let rows = compare_csv(&a.join("compare.csv"));
    assert_eq!(
        rows.iter()
            .map(|r| r["method"].as_str())
            .collect::<Vec<_>>(),
        ["los", "re-sampling"]
    );
    let table = csv(&a.join("table1.csv"));
    let (_, runs) = runs_of(&a.join("predictions.parquet"));
    for r in &rows {
        let m = r["method"].as_str();
        assert_eq!(r["against"], "vanilla-fc");
        assert_eq!(f(r, "seeds"), 2.0);
        for g in ["all", "many", "medium", "few"] {
            let want = f(row(&table, m), g) - f(row(&table, "vanilla-fc"), g);
            close_to(f(r, &format!("delta_{g}")), want, &format!("{m} delta_{g}"));
        }
        // the baseline's runs, renamed so that they pair with the method's by seed
        let base: Vec<_> = runs
            .iter()
            .filter(|x| x.1 == "vanilla-fc")
            .map(|x| (x.0.clone(), m.to_string(), x.2.clone(), x.3, x.4.clone()))
            .collect();
        let mine: Vec<_> = runs.iter().filter(|x| x.1 == m).collect();
        let (bb, cc) = discordant_by_hand(&base, &mine);
        assert_eq!(
            (f(r, "mcnemar_b"), f(r, "mcnemar_c")),
            (bb as f64, cc as f64),
            "{m}"
        );
        let want = mcnemar_by_hand(bb, cc);
        assert!(
            (f(r, "mcnemar_p") - want).abs() <= 1e-9 * want.max(1e-300),
            "{m}"
        );
    }
}

/// Bad compare inputs: exit 2, one stderr line naming the file or folder (and the field),
/// and no compare.csv anywhere (the catalogue has the same inputs; it cannot see compare.csv).
#[test]
fn bad_compare_inputs_exit_2_with_one_line_and_write_no_compare_csv() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let b = bank(&d.join("bank"));
    for (m, out) in [("vanilla-fc", "vf"), ("los", "los")] {
        ok_in(
            d,
            &[
                "--bank",
                s(&b),
                "--method",
                m,
                "--seeds",
                "1",
                "--epochs",
                "1",
                "--no-plots",
                "-q",
                "--out",
                s(&d.join(out)),
            ],
        );
    }
    let copy = |from: &str, to: &str| {
        std::fs::create_dir_all(d.join(to)).unwrap();
        for e in std::fs::read_dir(d.join(from)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, d.join(to).join(p.file_name().unwrap())).unwrap();
            }
        }
    };
    copy("vf", "nopred");
    std::fs::remove_file(d.join("nopred/predictions.parquet")).unwrap();
    copy("vf", "corrupt");
    std::fs::write(
        d.join("corrupt/predictions.parquet"),
        b"PAR1 this is not parquet",
    )
    .unwrap();
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["compare", "vf", "los"],
            &["vf and ", "los: no run in common", "method"],
        ),
        (
            &["compare", "vf", "nopred"],
            &["nopred/predictions.parquet", "cannot open"],
        ),
        (
            &["compare", "vf", "corrupt"],
            &["corrupt/predictions.parquet", "not a predictions file"],
        ),
        (
            &["compare", "corrupt", "vf"],
            &["corrupt/predictions.parquet", "not a predictions file"],
        ),
        (
            &["compare", "--baseline", "nope", "vf"],
            &[
                "--baseline",
                "`nope`",
                "vf/predictions.parquet",
                "vanilla-fc",
            ],
        ),
    ];
    let mut problems = Vec::new();
    for (args, needles) in cases {
        let o = Command::new(env!("CARGO_BIN_EXE_retrain"))
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut bad = Vec::new();
        if o.status.code() != Some(2) {
            bad.push(format!("exit {:?}", o.status.code()));
        }
        if lines.len() != 1 {
            bad.push(format!("{} stderr lines", lines.len()));
        }
        for n in needles {
            if !err.contains(n) {
                bad.push(format!("no `{n}`"));
            }
        }
        if err.contains("panicked") {
            bad.push("panicked".into());
        }
        for dir in ["vf", "los", "nopred", "corrupt"] {
            if d.join(dir).join("compare.csv").exists() {
                bad.push(format!("wrote {dir}/compare.csv"));
            }
        }
        if !bad.is_empty() {
            problems.push(format!(
                "retrain {}: {}\n  {err}",
                args.join(" "),
                bad.join("; ")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- prior-shift.csv ---------------------------------------------------------------------------

const PRIORS: &str = "uniform,forward-50,forward-10,backward-10,backward-50";

/// prior-shift.csv of `--method vanilla-fc,logit-adjust,prior-correct --seeds 2`: prior →
/// method → row; and the output folder.
fn prior_shift(
    t: &Path,
    name: &str,
    extra: &[&str],
) -> (
    BTreeMap<(String, String), BTreeMap<String, String>>,
    PathBuf,
) {
    let out = t.join(name);
    let mut args = vec![
        "--method",
        "vanilla-fc,logit-adjust,prior-correct",
        "--seeds",
        "2",
        "--test-prior",
        PRIORS,
        "--no-plots",
        "-q",
        "--out",
        s(&out),
    ];
    args.extend(extra);
    ok(&args);
    let rows = csv(&out.join("prior-shift.csv"));
    assert_eq!(rows.len(), 3 * 5, "3 methods × 5 priors");
    let by: BTreeMap<(String, String), BTreeMap<String, String>> = rows
        .into_iter()
        .map(|r| ((r["method"].clone(), r["prior"].clone()), r))
        .collect();
    assert_eq!(by.len(), 15, "one line per (method, prior)");
    (by, out)
}

/// Σ_c q_c·acc_c by hand, q of forward-R / backward-R: classes ranked by train count (most
/// first), weight R^(−rank/(K−1)) (backward: R^(−(K−1−rank)/(K−1))), normalised; over `keep`.
fn weighted(
    classes: &BTreeMap<usize, (f64, String, f64)>,
    prior: &str,
    keep: &dyn Fn(&str) -> bool,
) -> f64 {
    let k = classes.len();
    let mut by_count: Vec<usize> = classes.keys().copied().collect();
    by_count.sort_by(|a, b| {
        classes[b]
            .0
            .partial_cmp(&classes[a].0)
            .unwrap()
            .then(a.cmp(b))
    });
    let (kind, r) = prior.split_once('-').unwrap_or((prior, "1"));
    let r: f64 = r.parse().unwrap();
    let (mut s, mut w) = (0.0, 0.0);
    for (rank, c) in by_count.iter().enumerate() {
        let e = match kind {
            "uniform" => 0.0,
            "forward" => rank as f64,
            "backward" => (k - 1 - rank) as f64,
            _ => unreachable!(),
        };
        let q = r.powf(-e / (k - 1) as f64);
        if keep(&classes[c].1) {
            s += q * classes[c].2;
            w += q;
        }
    }
    s / w
}

/// (d) prior-shift.csv: under `uniform` All is the mean of per-class.csv's per-class
/// accuracies (mean over seeds); every prior and group is Σ_c q_c·acc_c by hand for the
/// uncorrected rows; the head-biased vanilla-fc gains under forward-R and loses under
/// backward-R; the `prior-correct` row is logit-adjust at uniform and no worse (−0.5 points)
/// than it at forward-50.
#[test]
fn prior_shift_is_the_prior_weighted_per_class_accuracy() {
    let t = tempfile::tempdir().unwrap();
    let (ps, out) = prior_shift(t.path(), "out", &[]);
    let at = |m: &str, p: &str, g: &str| f(&ps[&(m.to_string(), p.to_string())], g);
    for m in ["vanilla-fc", "logit-adjust", "prior-correct"] {
        let classes = per_class(&out, m);
        let mean = classes.values().map(|c| c.2).sum::<f64>() / classes.len() as f64;
        close_to(at(m, "uniform", "all"), mean, &format!("{m} uniform"));
        if m == "prior-correct" {
            continue; // corrected for each prior: not per-class.csv's accuracies
        }
        for p in PRIORS.split(',') {
            close_to(
                at(m, p, "all"),
                weighted(&classes, p, &|_| true),
                &format!("{m} {p}"),
            );
            for g in ["many", "medium", "few"] {
                let want = weighted(&classes, p, &|x| x == g);
                close_to(at(m, p, g), want, &format!("{m} {p} {g}"));
            }
        }
    }
    let vf = |p: &str| at("vanilla-fc", p, "all");
    println!(
        "vanilla-fc: forward-50 {} forward-10 {} uniform {} backward-10 {} backward-50 {}",
        vf("forward-50"),
        vf("forward-10"),
        vf("uniform"),
        vf("backward-10"),
        vf("backward-50")
    );
    assert!((vf("forward-10") - vf("uniform")).abs() > 1.0);
    assert!(vf("forward-10") > vf("backward-10"));
    assert!(vf("forward-50") > vf("backward-50"));
    for g in ["all", "many", "medium", "few"] {
        assert_eq!(
            at("prior-correct", "uniform", g),
            at("logit-adjust", "uniform", g),
            "{g}: PC-softmax at a uniform prior is logit adjustment (τ = 1)"
        );
    }
    let (pc, la) = (
        at("prior-correct", "forward-50", "all"),
        at("logit-adjust", "forward-50", "all"),
    );
    println!("forward-50: prior-correct {pc}, logit-adjust {la}");
    assert!(
        pc >= la - 0.5,
        "prior-correct {pc} vs logit-adjust {la} at forward-50"
    );
}

/// `--prior-correct` corrects every row for each prior, in prior-shift.csv only: the
/// `prior-correct` row is unchanged, vanilla-fc gains at backward-50 (its head bias removed),
/// and table1.csv's accuracies are the same as without the flag.
#[test]
fn the_prior_correct_flag_changes_only_prior_shift() {
    let t = tempfile::tempdir().unwrap();
    let (plain, a) = prior_shift(t.path(), "plain", &[]);
    let (fixed, b) = prior_shift(t.path(), "corrected", &["--prior-correct"]);
    for p in PRIORS.split(',') {
        let k = ("prior-correct".to_string(), p.to_string());
        assert_eq!(
            plain[&k], fixed[&k],
            "{p}: the prior-correct row is corrected either way"
        );
    }
    let k = ("vanilla-fc".to_string(), "backward-50".to_string());
    let (before, after) = (f(&plain[&k], "all"), f(&fixed[&k], "all"));
    println!("vanilla-fc at backward-50: {before} plain, {after} with --prior-correct");
    assert!(after > before + 1.0, "{before} → {after}");
    let (ta, tb) = (csv(&a.join("table1.csv")), csv(&b.join("table1.csv")));
    for m in ["vanilla-fc", "logit-adjust", "prior-correct"] {
        for g in ["all", "many", "medium", "few"] {
            assert_eq!(
                row(&ta, m)[g],
                row(&tb, m)[g],
                "{m} {g}: table1.csv does not move"
            );
        }
    }
}

/// One bootstrap for the whole table: every row is resampled with the same test rows. So two
/// rows that predict the same (balanced-softmax and la-loss at τ = 1) get the same interval and
/// a paired Δ of exactly [0, 0], and a row's interval does not change when other rows join it.
#[test]
fn the_bootstrap_resamples_are_shared_by_every_row() {
    let t = tempfile::tempdir().unwrap();
    let b = bank(&t.path().join("bank"));
    let run = |name: &str, methods: &str| {
        let out = t.path().join(name);
        ok(&[
            "--bank",
            s(&b),
            "--method",
            methods,
            "--baseline",
            "balanced-softmax",
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--lr",
            "0.05",
            "--out",
            s(&out),
            "--no-plots",
            "-q",
        ]);
        csv(&out.join("table1.csv"))
    };
    let both = run("both", "vanilla-fc,balanced-softmax,los,la-loss");
    let row = |t: &[BTreeMap<String, String>], m: &str| {
        t.iter().find(|r| r["method"] == m).unwrap().clone()
    };
    let (bs, la) = (row(&both, "balanced-softmax"), row(&both, "la-loss"));
    for c in ["all", "all_ci_lo", "all_ci_hi", "few_ci_lo", "few_ci_hi"] {
        assert_eq!(bs[c], la[c], "{c}");
    }
    for c in ["vs_baseline_delta", "vs_baseline_lo", "vs_baseline_hi"] {
        assert_eq!(la[c].parse::<f64>().unwrap(), 0.0, "la-loss {c}");
    }
    let alone = run("alone", "balanced-softmax,la-loss");
    for m in ["balanced-softmax", "la-loss"] {
        for c in ["all_ci_lo", "all_ci_hi", "many_ci_lo", "few_ci_hi"] {
            assert_eq!(row(&alone, m)[c], row(&both, m)[c], "{m} {c}");
        }
    }
}
