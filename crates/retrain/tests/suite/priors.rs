//! `--prior-correct`'s two invariants, on every row of the embedded tables trained on a small
//! synthetic bank (the LADE rule itself is checked against its reference in `zoo_parity`):
//!
//! - at a uniform test prior a row whose logits estimate the balanced posterior is left as it
//!   is: its corrected per-class counts are its own;
//! - a row whose logits estimate the training posterior becomes post-hoc logit adjustment
//!   with τ = 1: its corrected counts at a uniform prior are those of the same training (same
//!   seed) evaluated with `posthoc = logit-adjust, τ = 1`.
//!
//! And the refusal of a row that declares no prior, through the real binary.

use bank::Bank;
use retrain::command::synth::SynthSpec;
use retrain::engine::head::HeadState;
use retrain::engine::linalg::Parallelism;
use retrain::eval::priors::TestPrior;
use retrain::method::table::MethodTable;
use retrain::method::{Head, LogitPrior, PostHoc};
use retrain::run::{Job, RunOptions, run_one};
use std::path::Path;
use std::process::Command;

fn bank(dir: &Path) -> Bank {
    let spec = SynthSpec {
        classes: 6,
        dim: 10,
        ir: 20.0,
        img_max: 60,
        test_per_class: 15,
        val_per_class: 0,
        separation: 1.0,
        latent_dim: 5,
        ambient_noise: 0.5,
        stage1_epochs: 3,
        stage1_lr: 0.05,
        seed: 11,
        f16: false,
    };
    retrain::command::synth::write_synthetic_bank(&spec, dir, true, Parallelism::None).unwrap();
    Bank::open(dir).unwrap()
}

fn opts(prior_correct: bool) -> RunOptions {
    let uniform = TestPrior::all()
        .iter()
        .position(|p| *p == TestPrior::Uniform)
        .unwrap();
    RunOptions {
        threads: 1,
        shuffle: true,
        oracle: false,
        tta: true,
        one_pass: false,
        select_on_val: false,
        on_device: false,
        test_priors: 1 << uniform,
        prior_correct,
        views: false,
    }
}

#[test]
fn a_balanced_row_stays_and_a_training_prior_row_becomes_logit_adjustment_at_a_uniform_prior() {
    let t = tempfile::tempdir().unwrap();
    let bank = bank(&t.path().join("bank"));
    let h = bank.head.as_ref().unwrap();
    let stage1 = HeadState::from_linear(
        Head::Linear,
        h.num_classes,
        h.dim,
        h.weight.clone(),
        h.bias.clone(),
    );
    let table = MethodTable::embedded();
    let (mut balanced, mut train) = (0, 0);
    for spec in &table.methods {
        let mut m = spec.check(&retrain::method::los_defaults()).unwrap();
        m.hyper.epochs = m.hyper.epochs.min(2);
        m.hyper.batch_size = m.hyper.batch_size.min(32);
        let job = Job {
            method: m.clone(),
            seed: 4,
        };
        let rec = run_one(
            &bank,
            &stage1,
            &job,
            opts(true),
            Parallelism::None,
            None,
            &Default::default(),
        )
        .unwrap();
        let corrected = &rec
            .prior_corrected
            .iter()
            .find(|(p, _)| p == "uniform")
            .unwrap_or_else(|| panic!("{}: no corrected evaluation", m.name))
            .1;
        match m.logit_prior.expect("every embedded row declares it") {
            LogitPrior::Balanced => {
                balanced += 1;
                assert_eq!(
                    corrected, &rec.test.per_class_correct,
                    "{}: a balanced row moved at a uniform prior",
                    m.name
                );
            }
            LogitPrior::Train => {
                train += 1;
                assert_eq!(m.posthoc, PostHoc::None, "{}", m.name);
                let mut la = m.clone();
                la.posthoc = PostHoc::LogitAdjust { tau: 1.0 };
                let job = Job {
                    method: la,
                    seed: 4,
                };
                let twin = run_one(
                    &bank,
                    &stage1,
                    &job,
                    opts(false),
                    Parallelism::None,
                    None,
                    &Default::default(),
                )
                .unwrap();
                assert_eq!(
                    corrected, &twin.test.per_class_correct,
                    "{}: corrected at a uniform prior is not logit adjustment (τ = 1)",
                    m.name
                );
                assert_ne!(
                    corrected, &rec.test.per_class_correct,
                    "{}: the correction did nothing on a head-biased bank",
                    m.name
                );
            }
        }
    }
    assert_eq!((balanced, train), (23, 8));
}

/// A row of a `--config` table that declares no prior is refused under `--prior-correct`,
/// with one line naming the file, the row and the field, before any work.
#[test]
fn a_row_without_a_declared_prior_is_refused_under_prior_correct() {
    let t = tempfile::tempdir().unwrap();
    bank(&t.path().join("bank"));
    let cfg = t.path().join("rows.toml");
    std::fs::write(&cfg, "[[method]]\nname = \"mine\"\n").unwrap();
    let out = t.path().join("out");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_retrain"))
            .args(["--bank", t.path().join("bank").to_str().unwrap()])
            .args(["--config", cfg.to_str().unwrap(), "--method", "mine"])
            .args(["--seeds", "1", "--epochs", "1", "--no-plots", "-q"])
            .args(["--out", out.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&["--prior-correct", "--test-prior", "uniform"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("rows.toml") && err.contains("`mine`") && err.contains("logit_prior"),
        "{err}"
    );
    assert!(!out.join("table1.csv").exists());
    // without the flag the row runs
    let o = run(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
