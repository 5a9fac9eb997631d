//! Training on the bank's train views (`train_views.safetensors`): each epoch every row is
//! one of its views, drawn from a seeded stream; checked by hand on a tiny split, for any
//! `--jobs`, under `--one-pass` (each row its drawn view, not a fixed one), resumed only with
//! the same views (other views in the same folder are new runs), and recorded in the results
//! folder (config.json, README, the table's title, `retrain compare`'s header).

use bank::write::{RawTensor, save_tensors};
use bank::{Features, Split, Views};
use retrain::engine::head::HeadState;
use retrain::engine::linalg::Parallelism;
use retrain::engine::multihead::train_many;
use retrain::engine::sampler::view_choices;
use retrain::engine::trainer::{TrainOptions, train};
use retrain::method::table::MethodTable;
use retrain::method::{Head, Method};
use safetensors::Dtype;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn f32s(shape: &[usize], v: &[f32]) -> RawTensor {
    RawTensor {
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn los() -> Method {
    let t = MethodTable::embedded();
    let mut spec = t.methods.iter().find(|m| m.name == "los").unwrap().clone();
    spec.hyper = Default::default();
    let hyper = retrain::method::Hyper {
        epochs: 2,
        batch_size: 4,
        lr: 0.1,
        ..retrain::method::los_defaults()
    };
    spec.check(&hyper).unwrap()
}

/// 8 rows, K = 2, D = 3; view v of row i is the feature plus (v + 1)·(1, −1, 0.5).
#[test]
fn each_epoch_every_row_is_the_view_the_stream_chose() {
    let t = tempfile::tempdir().unwrap();
    let (n, d) = (8, 3);
    let x: Vec<f32> = (0..n * d).map(|i| ((i as f32) * 0.7).sin()).collect();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 2).collect();
    let view = |v: usize| -> Vec<f32> {
        let s = [1.0, -1.0, 0.5];
        (0..n * d)
            .map(|j| x[j] + (v as f32 + 1.0) * s[j % d])
            .collect()
    };
    let path = t.path().join("train_views.safetensors");
    save_tensors(
        &path,
        vec![
            ("view0", f32s(&[n, d], &view(0))),
            ("view1", f32s(&[n, d], &view(1))),
        ],
    )
    .unwrap();
    let views = Views::read(&path).unwrap();
    assert_eq!((views.count, views.rows, views.dim), (2, n, d));
    let split = |f: Vec<f32>| Split {
        path: "train".into(),
        rows: n,
        dim: d,
        features: Features::Owned(f),
        features_flip: None,
        labels: labels.clone(),
    };
    let mut m = los();
    m.hyper.epochs = 1;
    let head = HeadState::fresh(
        Head::Linear,
        2,
        d,
        &mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1),
    );
    let opts = TrainOptions {
        shuffle: false,
        record_steps: true,
        par: Parallelism::None,
        views: Some(&views),
        cancel: None,
    };
    let with = train(
        &split(x.clone()),
        &[4, 4],
        head.clone(),
        &m,
        7,
        &opts,
        |_, _| {},
    );
    // by hand: the epoch trains on the matrix whose row i is view choice[i] of row i
    let choice = view_choices(7, 0, n, 2);
    assert!(choice.iter().all(|&c| c < 2));
    assert!(choice.contains(&0) && choice.contains(&1), "{choice:?}");
    let x0: Vec<f32> = (0..n)
        .flat_map(|i| view(choice[i] as usize)[i * d..(i + 1) * d].to_vec())
        .collect();
    let plain = TrainOptions {
        views: None,
        ..opts
    };
    let by_hand = train(&split(x0), &[4, 4], head.clone(), &m, 7, &plain, |_, _| {});
    assert_eq!(with.step_loss, by_hand.step_loss);
    assert_eq!(with.head, by_hand.head);
    // the choices differ between epochs and over many rows are even
    assert_ne!(view_choices(7, 0, 64, 2), view_choices(7, 1, 64, 2));
    assert_ne!(view_choices(7, 0, 64, 2), view_choices(8, 0, 64, 2));
    let ones: u32 = view_choices(3, 0, 10_000, 2).iter().sum();
    assert!((ones as i64 - 5000).abs() < 200, "{ones}");
    // and training on views is not training on the features
    let features = train(&split(x), &[4, 4], head, &m, 7, &plain, |_, _| {});
    assert_ne!(features.step_loss, with.step_loss);
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_retrain"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A synthetic bank with 3 views: its train features plus seeded noise.
fn bank_with_views(dir: &Path) -> PathBuf {
    let spec = retrain::command::synth::SynthSpec {
        classes: 6,
        dim: 16,
        ir: 10.0,
        img_max: 60,
        test_per_class: 10,
        val_per_class: 0,
        separation: 1.0,
        latent_dim: 6,
        ambient_noise: 0.5,
        stage1_epochs: 3,
        stage1_lr: 0.05,
        seed: 3,
        f16: false,
    };
    retrain::command::synth::write_synthetic_bank(&spec, dir, true, Parallelism::None).unwrap();
    write_views(dir, 0.3);
    dir.to_path_buf()
}

/// `dir/train_views.safetensors`: 3 views, train's features plus `amplitude` × seeded noise.
fn write_views(dir: &Path, amplitude: f32) {
    let b = bank::Bank::open(dir).unwrap();
    let x = b.train.features();
    let views: Vec<(String, RawTensor)> = (0..3)
        .map(|v| {
            let noisy: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(j, a)| a + amplitude * ((j * 7 + v * 13) as f32).sin())
                .collect();
            (format!("view{v}"), f32s(&[b.train.rows, b.dim], &noisy))
        })
        .collect();
    drop(b);
    save_tensors(
        &dir.join("train_views.safetensors"),
        views
            .iter()
            .map(|(n, t)| {
                (
                    n.as_str(),
                    RawTensor {
                        dtype: t.dtype,
                        shape: t.shape.clone(),
                        bytes: t.bytes.clone(),
                    },
                )
            })
            .collect(),
    )
    .unwrap();
}

fn records(dir: &Path) -> BTreeMap<String, Value> {
    std::fs::read_to_string(dir.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["record"].as_object_mut().unwrap().remove("seconds");
            (v["key"].as_str().unwrap().to_string(), v["record"].clone())
        })
        .collect()
}

#[test]
fn views_runs_are_deterministic_for_any_jobs_resume_only_with_views_and_one_pass_agrees() {
    let t = tempfile::tempdir().unwrap();
    let b = bank_with_views(&t.path().join("bank"));
    let go = |out: &str, extra: &[&str]| {
        let out = t.path().join(out);
        let mut a = vec![
            "--bank",
            s(&b),
            "--method",
            "vanilla-fc,los,re-sampling,gcl",
            "--seeds",
            "2",
            "--epochs",
            "3",
            "--out",
            s(&out),
            "--no-plots",
            "-q",
        ];
        a.extend_from_slice(extra);
        (ok(&a), out)
    };
    let (log, one) = go("j1", &["--jobs", "1"]);
    assert!(log.contains("trained on 3 views per row"), "{log}");
    let (_, two) = go("j2", &["--jobs", "2"]);
    assert_eq!(records(&one), records(&two), "views: --jobs 1 = --jobs 2");
    // the same folder under --no-views runs everything anew, and again with views nothing
    let before = records(&one).len();
    let (log, _) = go("j1", &["--no-views"]);
    assert!(log.contains("views not used"), "{log}");
    let after = records(&one).len();
    assert_eq!(
        after,
        2 * before,
        "no view-trained run was resumed under --no-views"
    );
    go("j1", &[]);
    assert_eq!(records(&one).len(), after, "views again: every run resumed");
    // views change the numbers
    let (_, nv) = go("nv", &["--no-views"]);
    let tests = |d: &Path| {
        let mut v: Vec<String> = records(d).values().map(|r| r["test"].to_string()).collect();
        v.sort();
        v
    };
    let (with, without) = (tests(&two), tests(&nv));
    assert_eq!(with.len(), without.len());
    assert!(
        with.iter().all(|t| !without.contains(t)),
        "a run trained on views equals one without"
    );
    // --one-pass with views gives the tables of separate runs (to their printed precision)
    let (_, sep) = go("sep", &[]);
    let (_, pass) = go("pass", &["--one-pass"]);
    let table = |d: &Path| std::fs::read_to_string(d.join("table1.csv")).unwrap();
    assert_eq!(table(&sep), table(&pass));
}

/// 12 rows, K = 2, D = 3, one epoch in file order; view v of row i is the feature plus
/// (v + 1)·(1, −1, 0.5).
#[test]
fn one_pass_trains_every_row_on_its_drawn_view_not_a_fixed_one() {
    let (n, d, count) = (12, 3, 3);
    let x: Vec<f32> = (0..n * d).map(|i| ((i as f32) * 0.9).cos()).collect();
    let labels: Vec<u32> = (0..n as u32).map(|i| (i % 3).min(1)).collect();
    let view = |v: usize| -> Vec<f32> {
        let s = [1.0, -1.0, 0.5];
        (0..n * d)
            .map(|j| x[j] + (v as f32 + 1.0) * s[j % d])
            .collect()
    };
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("train_views.safetensors");
    let tensors: Vec<(String, RawTensor)> = (0..count)
        .map(|v| (format!("view{v}"), f32s(&[n, d], &view(v))))
        .collect();
    save_tensors(
        &path,
        tensors
            .iter()
            .map(|(k, r)| (k.as_str(), r.clone()))
            .collect(),
    )
    .unwrap();
    let views = Views::read(&path).unwrap();
    let split = |f: Vec<f32>| Split {
        path: "train".into(),
        rows: n,
        dim: d,
        features: Features::Owned(f),
        features_flip: None,
        labels: labels.clone(),
    };
    let counts = [8, 4];
    // two heads of one pass (same sampler, seed, batch size, epochs)
    let mut a = los();
    a.hyper.epochs = 1;
    let mut b = a.clone();
    b.hyper.lr = 0.03;
    let methods = [&a, &b];
    let head = HeadState::fresh(
        Head::Linear,
        2,
        d,
        &mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5),
    );
    let opts = TrainOptions {
        shuffle: false,
        record_steps: false,
        par: Parallelism::None,
        views: Some(&views),
        cancel: None,
    };
    let plain = TrainOptions {
        views: None,
        ..opts
    };
    let one_pass = |s: &Split, o: &TrainOptions| {
        train_many(
            s,
            &counts,
            vec![head.clone(); 2],
            &methods,
            7,
            o,
            |_, _, _| {},
        )
    };
    let with = one_pass(&split(x.clone()), &opts);
    let choice = view_choices(7, 0, n, count);
    for v in 0..count as u32 {
        assert!(choice.contains(&v), "every view is drawn: {choice:?}");
    }
    // not any fixed view for every row
    for v in 0..count {
        let fixed = one_pass(&split(view(v)), &plain);
        assert_ne!(
            with, fixed,
            "the one-pass trainer trained every row on view {v}, not on the view drawn for it ({choice:?})"
        );
    }
    // but exactly the matrix whose row i is view choice[i] of row i
    let chosen: Vec<f32> = (0..n)
        .flat_map(|i| view(choice[i] as usize)[i * d..(i + 1) * d].to_vec())
        .collect();
    assert_eq!(
        with,
        one_pass(&split(chosen), &plain),
        "one pass on views = one pass on the drawn views by hand"
    );
}

fn run_out(args: &[&str]) -> (String, String) {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// vanilla-fc, 1 seed, 2 epochs on `bank` into `out`, with `extra`: (stdout, stderr).
fn quick(bank: &Path, out: &Path, extra: &[&str]) -> (String, String) {
    let mut a = vec![
        "--bank",
        s(bank),
        "--method",
        "vanilla-fc",
        "--seeds",
        "1",
        "--epochs",
        "2",
        "--out",
        s(out),
        "--no-plots",
        "-q",
    ];
    a.extend_from_slice(extra);
    run_out(&a)
}

/// Changing the views file between two runs into one folder: the view-trained runs are new
/// runs (their records are keyed by the views' content), never the old views' records.
#[test]
fn other_views_in_the_same_folder_are_trained_anew_not_resumed() {
    let t = tempfile::tempdir().unwrap();
    let b = bank_with_views(&t.path().join("bank"));
    let out = t.path().join("r");
    quick(&b, &out, &[]);
    let before = records(&out);
    let fp1 = json(&out.join("config.json"))["banks"][0]["views"]["fingerprint"].clone();
    write_views(&b, 0.6);
    let (_, log) = quick(&b, &out, &[]);
    assert!(
        !log.contains("resuming"),
        "runs on other views resumed: {log}"
    );
    let after = records(&out);
    assert_eq!(
        after.len(),
        2 * before.len(),
        "every run on the new views is recorded beside the old ones"
    );
    let fp2 = json(&out.join("config.json"))["banks"][0]["views"]["fingerprint"].clone();
    assert_ne!(fp1, fp2, "config.json names the new views");
    let fresh: Vec<&Value> = (after.iter())
        .filter(|(k, _)| !before.contains_key(*k))
        .map(|(_, r)| &r["test"])
        .collect();
    let old: Vec<&Value> = before.values().map(|r| &r["test"]).collect();
    assert_eq!(fresh.len(), old.len());
    assert_ne!(fresh, old, "other views, other numbers");
    // and the same views again: every run resumed
    let (_, log) = quick(&b, &out, &[]);
    assert!(log.contains("resuming: 1 of 1"), "{log}");
}

/// Adds a views-transform entry to the bank's meta.json, as extract records it.
fn with_views_transform(bank: &Path) -> Value {
    let path = bank.join("meta.json");
    let mut meta = json(&path);
    let transform = serde_json::json!({"random_crop": {"size": 28, "padding": 2}, "flip": 0.5});
    meta["provenance"]["views_transform"] = transform.clone();
    std::fs::write(&path, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
    transform
}

#[test]
fn a_results_folder_says_which_views_its_heads_trained_on() {
    let t = tempfile::tempdir().unwrap();
    let b = bank_with_views(&t.path().join("bank"));
    let transform = with_views_transform(&b);
    let fingerprint = bank::Bank::open(&b).unwrap().views_fingerprint().unwrap();
    let readme = |d: &Path| std::fs::read_to_string(d.join("README.md")).unwrap();
    let views_of = |d: &Path| json(&d.join("config.json"))["banks"][0]["views"].clone();

    // with views
    let v = t.path().join("v");
    let (stdout, _) = quick(&b, &v, &[]);
    let title = stdout.lines().next().unwrap();
    assert!(
        title.contains("test (heads trained on 3 f32 augmented views per row), mean over"),
        "{title}"
    );
    assert_eq!(
        views_of(&v),
        serde_json::json!({
            "used": true,
            "count": 3,
            "dtype": "f32",
            "fingerprint": fingerprint,
            "file": "train_views.safetensors",
            "transform": {"provenance.views_transform": transform},
        })
    );
    let r = readme(&v);
    assert!(
        r.contains("heads trained on 3 f32 augmented views per row")
            && r.contains(&format!("fingerprint {fingerprint}"))
            && r.contains("padding"),
        "{r}"
    );

    // --no-views on the same bank
    let nv = t.path().join("nv");
    let (stdout, _) = quick(&b, &nv, &["--no-views"]);
    let title = stdout.lines().next().unwrap();
    assert!(
        title.contains("test (no views: --no-views, the bank has 3), mean over"),
        "{title}"
    );
    assert_eq!(views_of(&nv)["used"], false);
    assert_eq!(views_of(&nv)["available"], 3);
    assert!(
        readme(&nv).contains("no views: --no-views, the bank has 3"),
        "{}",
        readme(&nv)
    );

    // a bank without views
    std::fs::remove_file(b.join("train_views.safetensors")).unwrap();
    let none = t.path().join("none");
    let (stdout, _) = quick(&b, &none, &[]);
    assert!(
        stdout
            .lines()
            .next()
            .unwrap()
            .contains("test (no views), mean over"),
        "{stdout}"
    );
    assert_eq!(
        views_of(&none),
        serde_json::json!({"used": false, "available": 0, "why": "the bank has no train_views.safetensors"})
    );
}

#[test]
fn compare_of_a_views_folder_against_a_no_views_folder_says_so_in_its_header() {
    let t = tempfile::tempdir().unwrap();
    let b = bank_with_views(&t.path().join("bank"));
    let fingerprint = bank::Bank::open(&b).unwrap().views_fingerprint().unwrap();
    let (v, nv) = (t.path().join("v"), t.path().join("nv"));
    quick(&b, &v, &[]);
    quick(&b, &nv, &["--no-views"]);
    let compare = |a: &Path, b: &Path| {
        let out = t.path().join("compare.csv");
        run_out(&[
            "compare",
            s(a),
            s(b),
            "--bootstrap",
            "200",
            "--out",
            s(&out),
        ])
        .0
    };
    let header = compare(&nv, &v);
    let first = header.lines().next().unwrap();
    assert!(
        first.starts_with("warning: ")
            && first.contains("differ in train views")
            && first.contains(&format!(
                "A no views, B 3 f32 augmented views (fingerprint {fingerprint})"
            )),
        "{header}"
    );
    assert!(
        header
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("Paired comparison"),
        "{header}"
    );
    // the same views on both sides: no warning
    let same = compare(&v, &v);
    assert!(same.starts_with("Paired comparison"), "{same}");
}
