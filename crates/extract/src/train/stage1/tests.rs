use super::train::train_with;
use super::*;
use crate::model::backbones::Arch;
use crate::source::datasets::{Images, Labeled, Normalize, RawImages};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Two separable classes of 8×8 images (bright left half vs bright right half).
fn toy(n: usize) -> Labeled {
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let l = (i % 2) as u32;
        for _y in 0..8 {
            for x in 0..8 {
                let on = if l == 0 { x < 4 } else { x >= 4 };
                data.push(if on {
                    200 + (i % 50) as u8
                } else {
                    (i % 30) as u8
                });
            }
        }
        labels.push(l);
    }
    Labeled {
        images: Images::Raw(RawImages {
            channels: 1,
            height: 8,
            width: 8,
            data,
            present: None,
        }),
        labels,
    }
}

fn recipe(epochs: usize) -> Recipe {
    Recipe {
        epochs,
        batch_size: 8,
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 5e-3,
        crop_padding: 0,
        seed: 3,
    }
}

#[test]
fn cosine_schedule_starts_at_lr_and_ends_near_zero() {
    let r = recipe(4);
    assert_eq!(r.lr_at(0), 0.05);
    assert!((r.lr_at(2) - 0.025).abs() < 1e-12);
    assert!(r.lr_at(3) < 0.01);
}

/// The small CNN on 2 classes of [`toy`] images: 32 to train on, 16 to test on.
struct ToyRun {
    train: Labeled,
    test: Labeled,
}

impl ToyRun {
    fn new() -> ToyRun {
        ToyRun {
            train: toy(32),
            test: toy(16),
        }
    }

    /// [`train`] (the CPU pass), or candle's autograd with `cpu_pass: false`.
    fn train(
        &self,
        recipe: &Recipe,
        path: &Path,
        resume: bool,
        stop: Option<usize>,
        cpu_pass: bool,
    ) -> crate::Result<Stage1Report> {
        let (tr, te, norm, dev) = (&self.train, &self.test, &Normalize::fmnist(), &Device::Cpu);
        let quiet = &mut |_: TrainEvent| {};
        let k = 2;
        if cpu_pass {
            train(
                Arch::SmallCnn,
                k,
                tr,
                te,
                norm,
                recipe,
                dev,
                path,
                resume,
                stop,
                quiet,
            )
        } else {
            let arch = Arch::SmallCnn;
            train_with(
                arch, k, tr, te, norm, recipe, dev, path, resume, stop, false, quiet,
            )
        }
    }
}

/// The checkpoint has torchvision's keys and step count, and loads through the extraction
/// path, head included.
fn assert_loadable_checkpoint(path: &Path, raw: &HashMap<String, Tensor>) {
    let sd = crate::model::checkpoint::load_state_dict(path).unwrap();
    for k in [
        "conv1.weight",
        "bn1.running_mean",
        "bn3.running_var",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(sd.contains_key(k), "{k}");
    }
    assert_eq!(
        raw["bn1.num_batches_tracked"].to_scalar::<i64>().unwrap(),
        8
    );
    let (_, k, _) =
        crate::model::checkpoint::load_backbone(Arch::SmallCnn, Some(path), 0, &Device::Cpu)
            .unwrap();
    assert_eq!(k, Some(2));
}

fn max_abs(t: &Tensor) -> f32 {
    let m = t.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    m.to_scalar::<f32>().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

/// Trains, writes a loadable torchvision-style checkpoint, and an interrupted run resumed
/// ends with the same weights as an uninterrupted one.
#[test]
fn trains_writes_a_loadable_checkpoint_and_resumes_identically() {
    let dir = tempfile::tempdir().unwrap();
    let toy = ToyRun::new();
    let full = dir.path().join("full.safetensors");
    let r = toy.train(&recipe(2), &full, false, None, true).unwrap();
    assert_eq!(r.log.len(), 2);
    assert!(r.log.iter().all(|l| l.loss.is_finite()));
    assert!((0.0..=100.0).contains(&r.test_top1));
    let raw = candle_core::safetensors::load(&full, &Device::Cpu).unwrap();
    assert_loadable_checkpoint(&full, &raw);

    let part = dir.path().join("part.safetensors");
    let first = toy.train(&recipe(2), &part, false, Some(1), true).unwrap();
    assert_eq!(first.log.len(), 1);
    let again = toy.train(&recipe(2), &part, true, None, true).unwrap();
    assert_eq!((again.resumed_from, again.log.len()), (1, 2));
    let b = candle_core::safetensors::load(&part, &Device::Cpu).unwrap();
    for key in ["conv2.weight", "bn2.running_var", "fc.weight"] {
        assert_eq!(max_abs_diff(&raw[key], &b[key]), 0.0, "{key}");
    }

    // candle's autograd (with the max-pool fix) trains the same weights as the CPU pass.
    let slow = dir.path().join("slow.safetensors");
    let rs = toy.train(&recipe(2), &slow, false, None, false).unwrap();
    assert!((rs.log[1].loss - r.log[1].loss).abs() < 1e-4 * r.log[1].loss.max(1.0));
    let c = candle_core::safetensors::load(&slow, &Device::Cpu).unwrap();
    for key in [
        "conv1.weight",
        "conv3.weight",
        "bn2.weight",
        "bn3.running_var",
        "fc.weight",
    ] {
        let (d, scale) = (max_abs_diff(&raw[key], &c[key]), max_abs(&raw[key]));
        assert!(d <= 1e-3 * scale, "{key}: {d} (scale {scale})");
    }

    // A different recipe does not resume.
    let mut other = recipe(3);
    other.lr = 0.1;
    let e = toy
        .train(&other, &part, true, None, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--resume"), "{e}");
}
