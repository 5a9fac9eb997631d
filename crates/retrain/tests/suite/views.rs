//! Training on the bank's train views (`train_views.safetensors`): each epoch every row is
//! one of its views, drawn from a seeded stream; checked by hand on a tiny split, for any
//! `--jobs`, under `--one-pass`, and resumed only with the same views.

use bank::write::{RawTensor, save_tensors};
use bank::{Features, Split, Views};
use retrain::engine::head::HeadState;
use retrain::engine::linalg::Parallelism;
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
    let b = bank::Bank::open(dir).unwrap();
    let x = b.train.features();
    let views: Vec<(String, RawTensor)> = (0..3)
        .map(|v| {
            let noisy: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(j, a)| a + 0.3 * ((j * 7 + v * 13) as f32).sin())
                .collect();
            (format!("view{v}"), f32s(&[b.train.rows, b.dim], &noisy))
        })
        .collect();
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
    dir.to_path_buf()
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
