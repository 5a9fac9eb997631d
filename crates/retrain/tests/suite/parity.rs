//! Exact parity with PyTorch: `fixtures/tiny-trajectories.*` (copied from
//! shared/fixtures/retrain) hold PyTorch 2.15's f64 trajectories of vanilla-fc, LOS, balanced
//! softmax and focal (every minibatch loss, the final head, the test logits) and the
//! post-hoc logit-adjusted test logits, on a tiny bank (K = 4, D = 8, batch 16 in file
//! order, 3 epochs, lr 0.1, momentum 0.9, wd 5e-4, cosine per epoch stepped after the epoch).

use bank::{Features, Split};
use retrain::engine::head::HeadState;
use retrain::engine::linalg::Parallelism;
use retrain::engine::loss::weights::log_priors;
use retrain::engine::trainer::{TrainOptions, train};
use retrain::method::{Head, Hyper, Init, MethodSpec, PostHoc, Schedule};
use safetensors::SafeTensors;
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Fixture {
    bytes: Vec<u8>,
    json: serde_json::Value,
}

impl Fixture {
    fn load() -> Fixture {
        let dir = fixture_dir();
        let bytes = std::fs::read(dir.join("tiny-trajectories.safetensors"))
            .expect("parity fixture present");
        let json = serde_json::from_str(
            &std::fs::read_to_string(dir.join("tiny-trajectories.json")).unwrap(),
        )
        .unwrap();
        Fixture { bytes, json }
    }
    fn f64s(&self, name: &str) -> Vec<f64> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st
            .tensor(name)
            .unwrap_or_else(|_| panic!("fixture tensor {name}"));
        t.data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
    fn labels(&self, name: &str) -> Vec<u32> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        st.tensor(name)
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
            .collect()
    }
    fn split(&self, which: &str) -> Split {
        let x: Vec<f32> = self
            .f64s(&format!("{which}.features"))
            .iter()
            .map(|&v| v as f32)
            .collect();
        let y = self.labels(&format!("{which}.labels"));
        Split {
            path: which.into(),
            rows: y.len(),
            dim: 8,
            features: Features::Owned(x),
            features_flip: None,
            labels: y,
        }
    }
}

/// Per element: |got − want| ≤ rel · max(1, |want|) (absolute near 0, relative above 1).
fn close(got: &[f32], want: &[f64], rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (*g as f64 - w).abs();
        let bound = rel * w.abs().max(1.0);
        assert!(
            err <= bound,
            "{what}[{i}]: got {g}, PyTorch {w} (err {err:.2e} > {bound:.2e})"
        );
    }
}

fn run_method(name: &str, row: &str) {
    let fx = Fixture::load();
    let train_split = fx.split("train");
    let test_split = fx.split("test");
    let counts = train_split.class_counts(4);
    assert_eq!(counts, vec![60, 35, 17, 8]);
    let spec: MethodSpec = toml::from_str(&format!("name = \"{name}\"\n{row}")).unwrap();
    let hyper = Hyper {
        lr: 0.1,
        wd: 5e-4,
        momentum: 0.9,
        epochs: 3,
        batch_size: 16,
        init: Init::Stage1,
        schedule: Schedule::CosineEpoch,
    };
    let method = spec.check(&hyper).unwrap();
    let w0: Vec<f32> = fx
        .f64s("head_init.weight")
        .iter()
        .map(|&v| v as f32)
        .collect();
    let b0: Vec<f32> = fx
        .f64s("head_init.bias")
        .iter()
        .map(|&v| v as f32)
        .collect();
    let init = HeadState::from_linear(Head::Linear, 4, 8, w0, b0);
    let opts = TrainOptions {
        shuffle: false,
        record_steps: true,
        par: Parallelism::None,
        views: None,
        cancel: None,
    };
    let out = train(&train_split, &counts, init, &method, 0, &opts, |_, _| {});

    let want_losses: Vec<f64> = fx.json["methods"][name]["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(out.step_loss.len(), 24, "3 epochs × 8 batches (7 × 16 + 8)");
    let got_losses: Vec<f32> = out.step_loss.iter().map(|&l| l as f32).collect();
    close(&got_losses, &want_losses, 1e-5, &format!("{name} losses"));
    close(
        &out.head.weight,
        &fx.f64s(&format!("{name}.weight")),
        1e-5,
        &format!("{name} weight"),
    );
    close(
        &out.head.bias,
        &fx.f64s(&format!("{name}.bias")),
        1e-5,
        &format!("{name} bias"),
    );

    let eval = out.head.eval_head(method.posthoc, &log_priors(&counts));
    let mut z = vec![0.0; 40 * 4];
    eval.logits(
        test_split.features(),
        40,
        &mut z,
        &mut Vec::new(),
        Parallelism::None,
    );
    close(
        &z,
        &fx.f64s(&format!("{name}.test_logits")),
        1e-5,
        &format!("{name} test logits"),
    );
}

#[test]
fn vanilla_fc_matches_pytorch() {
    run_method("vanilla-fc", "");
}

#[test]
fn los_matches_pytorch() {
    run_method("los", "loss = { kind = \"ce\", smoothing = 0.98 }");
}

#[test]
fn balanced_softmax_matches_pytorch() {
    run_method("balanced-softmax", "loss = { kind = \"balanced-softmax\" }");
}

#[test]
fn focal_matches_pytorch() {
    run_method("focal", "loss = { kind = \"focal\", gamma = 1.0 }");
}

#[test]
fn posthoc_logit_adjust_matches_pytorch() {
    let fx = Fixture::load();
    let test_split = fx.split("test");
    let counts = fx.split("train").class_counts(4);
    let w0: Vec<f32> = fx
        .f64s("head_init.weight")
        .iter()
        .map(|&v| v as f32)
        .collect();
    let b0: Vec<f32> = fx
        .f64s("head_init.bias")
        .iter()
        .map(|&v| v as f32)
        .collect();
    let head = HeadState::from_linear(Head::Linear, 4, 8, w0, b0);
    let eval = head.eval_head(PostHoc::LogitAdjust { tau: 1.0 }, &log_priors(&counts));
    let mut z = vec![0.0; 40 * 4];
    eval.logits(
        test_split.features(),
        40,
        &mut z,
        &mut Vec::new(),
        Parallelism::None,
    );
    close(
        &z,
        &fx.f64s("logit-adjust.test_logits"),
        1e-5,
        "logit-adjust test logits",
    );
}
