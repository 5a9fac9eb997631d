//! The device path (`retrain --device cuda`, `retrain::engine::device`) against the hand-written CPU
//! engine. On a machine without a GPU the device code runs through candle's CPU backend: the
//! same tensor program that runs on CUDA, checked here for every trainable row of Table 1 and
//! of the zoo.

use bank::Bank;
use candle_core::Device;
use retrain::command::synth::SynthSpec;
use retrain::engine::device::{DeviceBank, SplitId, train_on_device};
use retrain::engine::head::HeadState;
use retrain::engine::linalg::Parallelism;
use retrain::engine::loss::weights::log_priors;
use retrain::engine::trainer::{TrainOptions, train};
use retrain::eval::device::evaluate_on_device;
use retrain::eval::evaluate;
use retrain::method::table::MethodTable;
use retrain::method::{CbForm, Constraint, Head, Loss, Method, ProjectEvery};

fn small_bank(dir: &std::path::Path) -> Bank {
    let spec = SynthSpec {
        classes: 12,
        dim: 24,
        ir: 20.0,
        img_max: 80,
        test_per_class: 10,
        val_per_class: 4,
        separation: 0.8,
        latent_dim: 8,
        ambient_noise: 0.5,
        stage1_epochs: 5,
        stage1_lr: 0.05,
        seed: 3,
        f16: false,
    };
    retrain::command::synth::write_synthetic_bank(&spec, dir, true, Parallelism::None).unwrap();
    Bank::open(dir).unwrap()
}

/// Every trainable Table 1 row, plus the loss/constraint variants the table does not use,
/// shortened to 3 epochs with a larger learning rate so that the heads move.
fn methods() -> Vec<Method> {
    let table = MethodTable::embedded();
    let defaults = retrain::method::los_defaults();
    let mut out = Vec::new();
    for spec in &table.methods {
        let mut m = spec.check(&defaults).unwrap();
        if !m.train || m.name == "logreg-balanced" {
            continue;
        }
        m.hyper.epochs = 3;
        m.hyper.lr = m.hyper.lr.max(0.02);
        m.hyper.wd = m.hyper.wd.max(1e-3);
        m.hyper.batch_size = 32;
        out.push(m.clone());
        if let Loss::ClassBalanced { beta, .. } = m.loss {
            for form in [CbForm::Sigmoid, CbForm::Softmax] {
                let mut v = m.clone();
                v.name = format!("class-balanced-{form:?}");
                v.loss = Loss::ClassBalanced { beta, form };
                out.push(v);
            }
        }
        if let Constraint::MaxNorm { thresh, .. } = m.constraint {
            let mut v = m.clone();
            v.name = "maxnorm-epoch".into();
            v.constraint = Constraint::MaxNorm {
                thresh,
                every: ProjectEvery::Epoch,
            };
            out.push(v);
        }
        if m.name == "focal" {
            let mut v = m.clone();
            v.name = "focal-gamma-2".into();
            v.loss = Loss::Focal { gamma: 2.0 };
            out.push(v);
        }
    }
    out
}

fn stage1(bank: &Bank, kind: Head) -> HeadState {
    let h = bank.head.as_ref().expect("synthetic banks have a head");
    HeadState::from_linear(kind, h.num_classes, h.dim, h.weight.clone(), h.bias.clone())
}

/// Per element: |device − cpu| ≤ tol · max(1, |cpu|).
fn assert_close(name: &str, what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{name} {what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let bound = tol * y.abs().max(1.0);
        assert!(
            (x - y).abs() <= bound,
            "{name} {what}[{i}]: device {x:e}, cpu {y:e} (|diff| > {bound:e})"
        );
    }
}

#[test]
fn every_method_trains_the_same_head_on_the_device_path() {
    let dir = tempfile::tempdir().unwrap();
    let bank = small_bank(&dir.path().join("bank"));
    let db = DeviceBank::upload(&bank, &Device::Cpu).unwrap();
    let methods = methods();
    assert!(methods.len() >= 12 + 15, "{} methods", methods.len());
    let opts = TrainOptions {
        record_steps: true,
        ..Default::default()
    };
    for m in &methods {
        let init = stage1(&bank, m.head);
        let mut cpu_epochs = Vec::new();
        let cpu = train(
            &bank.train,
            &bank.train_counts,
            init.clone(),
            m,
            7,
            &opts,
            |e, h| cpu_epochs.push((e, h.clone())),
        );
        let mut dev_epochs = Vec::new();
        let dev = train_on_device(
            &db,
            &bank.train.labels,
            &bank.train_counts,
            init.clone(),
            m,
            7,
            &opts,
            |e, h| dev_epochs.push((e, h.clone())),
        )
        .unwrap();
        assert_ne!(cpu.head, init, "{}: the head moved", m.name);
        assert_close(&m.name, "weight", &dev.head.weight, &cpu.head.weight, 1e-4);
        assert_close(&m.name, "bias", &dev.head.bias, &cpu.head.bias, 1e-4);
        assert_close(&m.name, "scales", &dev.head.scales, &cpu.head.scales, 1e-4);
        assert_close(&m.name, "shift", &dev.head.shift, &cpu.head.shift, 1e-4);
        assert_close(&m.name, "gate", &dev.head.gate, &cpu.head.gate, 1e-4);
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        assert_close(
            &m.name,
            "step losses",
            &f(&dev.step_loss),
            &f(&cpu.step_loss),
            1e-4,
        );
        assert_close(
            &m.name,
            "epoch losses",
            &f(&dev.epoch_loss),
            &f(&cpu.epoch_loss),
            1e-4,
        );
        assert_eq!(
            dev_epochs.len(),
            cpu_epochs.len(),
            "{}: on_epoch calls",
            m.name
        );
        for ((_, a), (_, b)) in dev_epochs.iter().zip(&cpu_epochs) {
            assert_close(&m.name, "per-epoch weight", &a.weight, &b.weight, 1e-4);
        }
    }
}

#[test]
fn device_evaluation_matches_the_host_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let bank = small_bank(&dir.path().join("bank"));
    let db = DeviceBank::upload(&bank, &Device::Cpu).unwrap();
    let priors = log_priors(&bank.train_counts);
    let mut disalign = stage1(&bank, Head::DisAlign);
    disalign
        .scales
        .iter_mut()
        .enumerate()
        .for_each(|(c, s)| *s = 0.8 + 0.05 * c as f32);
    disalign
        .shift
        .iter_mut()
        .enumerate()
        .for_each(|(c, t)| *t = 0.1 * c as f32 - 0.3);
    disalign
        .gate
        .iter_mut()
        .enumerate()
        .for_each(|(j, v)| *v = 0.02 * j as f32 - 0.1);
    let disalign = disalign.eval_head(retrain::method::PostHoc::None, &priors);
    for (kind, posthoc) in [
        (Head::DisAlign, retrain::method::PostHoc::None),
        (Head::Linear, retrain::method::PostHoc::None),
        (Head::Cosine { scale: 16.0 }, retrain::method::PostHoc::None),
        (
            Head::Linear,
            retrain::method::PostHoc::LogitAdjust { tau: 1.0 },
        ),
    ] {
        let eh = if kind == Head::DisAlign {
            disalign.clone()
        } else {
            stage1(&bank, kind).eval_head(posthoc, &priors)
        };
        for (id, split) in [
            (SplitId::Test, &bank.test),
            (SplitId::Val, bank.val.as_ref().unwrap()),
        ] {
            let host = evaluate(&eh, split, true, Parallelism::None);
            let dev = evaluate_on_device(&db, id, split, &eh, true, true).unwrap();
            assert_eq!(dev.per_class_count, host.per_class_count);
            assert!(
                (dev.top1 - host.top1).abs() <= 1.0 / split.rows as f64,
                "{kind:?} {id:?} top1"
            );
            assert!(
                (dev.nll - host.nll).abs() < 1e-4 * (1.0 + host.nll),
                "{kind:?} {id:?} nll"
            );
            for (a, b) in dev.loma.iter().zip(&host.loma) {
                assert!(
                    (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                    "{kind:?} {id:?} loma"
                );
            }
        }
    }
}

#[test]
fn device_choice_cuda_without_a_cuda_build_is_one_clear_error() {
    if candle_core::utils::cuda_is_available() {
        return; // a CUDA build: covered by the GPU run
    }
    let err =
        retrain::engine::device::select(retrain::engine::device::DeviceChoice::Cuda).unwrap_err();
    assert!(err.to_string().contains("built without CUDA"), "{err}");
    let (d, notice) =
        retrain::engine::device::select(retrain::engine::device::DeviceChoice::Auto).unwrap();
    assert!(d.is_none() && notice.unwrap().contains("using the CPU"));
}
