//! Stage 1: end-to-end representation learning of a backbone + linear classifier with plain
//! cross-entropy and weight decay (the LTWB recipe LOS builds on): SGD momentum 0.9 with coupled
//! weight decay in PyTorch's order (`g = grad + wd·w; buf = m·buf + g; w -= lr·buf`), cosine
//! learning rate to 0 stepped after each epoch, random crop (zero padding) + horizontal flip
//! (random-resized-crop + flip for image files), BatchNorm in train mode (batch statistics,
//! running statistics updated with momentum 0.1).
//!
//! Deterministic for a seed: the weight init (PyTorch's default `U(±1/√fan_in)` for conv and
//! linear weights and linear biases, BN weight 1 / bias 0), the epoch permutation and every
//! augmentation are drawn from seeded generators.
//!
//! The checkpoint is a safetensors file with torchvision-style keys (`conv1.weight`,
//! `bn1.running_mean`, `bn1.num_batches_tracked`, `fc.weight`, ...), loadable by
//! [`crate::checkpoint::load_state_dict`] and by PyTorch's `load_state_dict`. It is rewritten
//! atomically (`<file>.tmp` + rename) after every epoch, together with the resume state
//! `<file>.resume.safetensors` (momentum buffers `momentum.<key>`) and `<file>.resume.json`
//! (epoch, recipe, log); `resume = true` continues from the last finished epoch.

use crate::backbones::{Arch, Backbone, flip_lr};
use crate::datasets::{Labeled, Normalize};
use crate::error::{ExtractError, Result};
use crate::run::batch_input;
use crate::stage1_cpu::SmallCnnCpu;
use candle_core::{D, DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The training recipe (everything that changes the weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Zero padding of the random crop (small images).
    pub crop_padding: usize,
    pub seed: u64,
}

impl Recipe {
    /// Cosine annealing to 0 over `epochs` (PyTorch `CosineAnnealingLR`, stepped after the epoch).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let t = epoch as f64 / self.epochs.max(1) as f64;
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based.
    pub epoch: usize,
    pub lr: f64,
    pub loss: f64,
    /// Train-mode top-1 on the augmented batches, in %.
    pub train_acc: f64,
    pub secs: f64,
}

/// What `<checkpoint>.resume.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResumeState {
    pub arch: String,
    pub num_classes: usize,
    pub recipe: Recipe,
    /// Finished epochs.
    pub epoch: usize,
    pub steps: usize,
    pub log: Vec<EpochLog>,
    /// Seconds spent training so far (over all sessions).
    pub train_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage1Report {
    pub checkpoint: PathBuf,
    pub arch: String,
    pub recipe: Recipe,
    pub train_rows: usize,
    pub parameters: usize,
    pub log: Vec<EpochLog>,
    /// Training wall time over all sessions (s).
    pub train_secs: f64,
    /// Epoch this run started from (0 unless resumed).
    pub resumed_from: usize,
    /// Test top-1 (%), BatchNorm in eval mode, the final epoch (no selection).
    pub test_top1: f64,
    /// The same with flip test-time augmentation (mean of the two views' logits).
    pub test_top1_flip: f64,
    pub test_rows: usize,
}

/// Progress for the caller's UI.
#[derive(Debug, Clone)]
pub enum TrainEvent<'a> {
    EpochStart {
        epoch: usize,
        epochs: usize,
        rows: usize,
    },
    Advance {
        done: usize,
        loss: f64,
    },
    EpochEnd(&'a EpochLog),
    Evaluating {
        rows: usize,
    },
}

/// The sidecar paths of a checkpoint.
pub fn resume_paths(ckpt: &Path) -> (PathBuf, PathBuf) {
    let s = ckpt.as_os_str().to_string_lossy();
    (
        PathBuf::from(format!("{s}.resume.json")),
        PathBuf::from(format!("{s}.resume.safetensors")),
    )
}

fn is_buffer(key: &str) -> bool {
    key.ends_with("running_mean") || key.ends_with("running_var")
}

fn fnv(key: &str) -> u64 {
    let mut h = bank::Fnv::default();
    h.write(key.as_bytes());
    h.0
}

/// PyTorch's default init, drawn from a generator seeded by (seed, key).
fn init_weights(vars: &[(String, Var)], seed: u64, head: &str) -> Result<()> {
    let fan_in = |key: &str| -> Option<usize> {
        let w = vars.iter().find(|(k, _)| k == key)?;
        Some(w.1.dims().iter().skip(1).product())
    };
    for (key, var) in vars {
        let n = var.elem_count();
        let bound = if key.ends_with(".weight") && var.rank() >= 2 {
            1.0 / (fan_in(key).unwrap_or(1) as f64).sqrt()
        } else if key == &format!("{head}.bias") {
            1.0 / (fan_in(&format!("{head}.weight")).unwrap_or(1) as f64).sqrt()
        } else {
            continue; // BN weight 1 / bias 0, running stats 0 / 1: the VarMap's constants.
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ fnv(key));
        let v: Vec<f32> = (0..n)
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect();
        var.set(&Tensor::from_vec(v, var.shape(), var.device())?)?;
    }
    Ok(())
}

fn write_atomic(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    candle_core::safetensors::save(tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| ExtractError::io(path, e))
}

fn write_json_atomic(value: &impl Serialize, path: &Path) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let text = serde_json::to_string_pretty(value).expect("serialisable");
    std::fs::write(&tmp, text + "\n").map_err(|e| ExtractError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ExtractError::io(path, e))
}

/// The state_dict to save: every variable on the CPU, plus `num_batches_tracked` per BN.
fn state_dict(vars: &[(String, Var)], steps: usize) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (k, v) in vars {
        out.insert(k.clone(), v.as_tensor().to_device(&Device::Cpu)?);
        if let Some(bn) = k.strip_suffix(".running_mean") {
            out.insert(
                format!("{bn}.num_batches_tracked"),
                Tensor::new(steps as i64, &Device::Cpu)?,
            );
        }
    }
    Ok(out)
}

/// Train `arch` + a `num_classes` head on `train`, writing `ckpt` after every epoch; evaluate
/// on `test` at the end. `resume`: continue from `ckpt`'s resume state; `stop_after`: stop
/// after that epoch (an interrupted run, for tests), the schedule still spans `recipe.epochs`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    arch: Arch,
    num_classes: usize,
    train: &Labeled,
    test: &Labeled,
    norm: &Normalize,
    recipe: &Recipe,
    device: &Device,
    ckpt: &Path,
    resume: bool,
    stop_after: Option<usize>,
    progress: &mut dyn FnMut(TrainEvent),
) -> Result<Stage1Report> {
    train_with(
        arch,
        num_classes,
        train,
        test,
        norm,
        recipe,
        device,
        ckpt,
        resume,
        stop_after,
        true,
        progress,
    )
}

/// [`train`]; `cpu_pass: false` keeps the small CNN on candle's autograd (tests compare the two).
#[allow(clippy::too_many_arguments)]
fn train_with(
    arch: Arch,
    num_classes: usize,
    train: &Labeled,
    test: &Labeled,
    norm: &Normalize,
    recipe: &Recipe,
    device: &Device,
    ckpt: &Path,
    resume: bool,
    stop_after: Option<usize>,
    cpu_pass: bool,
    progress: &mut dyn FnMut(TrainEvent),
) -> Result<Stage1Report> {
    if recipe.batch_size < 2 {
        return Err(ExtractError::Usage(
            "stage 1 needs --train-batch-size >= 2 (BatchNorm batch statistics)".into(),
        ));
    }
    if recipe.epochs == 0 {
        return Err(ExtractError::Usage("--epochs must be at least 1".into()));
    }
    let vm = VarMap::new();
    let model = arch.build(
        Some(num_classes),
        VarBuilder::from_varmap(&vm, DType::F32, device),
    )?;
    let mut vars: Vec<(String, Var)> = vm
        .data()
        .lock()
        .expect("varmap lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    init_weights(&vars, recipe.seed, arch.head_name())?;
    let trainable: Vec<usize> = (0..vars.len())
        .filter(|&i| !is_buffer(&vars[i].0))
        .collect();
    let parameters = trainable.iter().map(|&i| vars[i].1.elem_count()).sum();
    let mut momentum: Vec<Tensor> = trainable
        .iter()
        .map(|&i| vars[i].1.as_tensor().zeros_like())
        .collect::<candle_core::Result<_>>()?;

    let (json_path, mom_path) = resume_paths(ckpt);
    let mut state = ResumeState {
        arch: arch.name().to_owned(),
        num_classes,
        recipe: recipe.clone(),
        epoch: 0,
        steps: 0,
        log: Vec::new(),
        train_secs: 0.0,
    };
    if resume && json_path.is_file() {
        let text =
            std::fs::read_to_string(&json_path).map_err(|e| ExtractError::io(&json_path, e))?;
        let saved: ResumeState = serde_json::from_str(&text)
            .map_err(|e| ExtractError::format(&json_path, e.to_string()))?;
        if saved.recipe != *recipe || saved.arch != state.arch || saved.num_classes != num_classes {
            return Err(ExtractError::Usage(format!(
                "--resume: {} was made with arch {} K={} recipe {:?}, this run asks for arch {} K={} recipe {:?}",
                json_path.display(),
                saved.arch,
                saved.num_classes,
                saved.recipe,
                state.arch,
                num_classes,
                recipe
            )));
        }
        let w = candle_core::safetensors::load(ckpt, device)?;
        let m = candle_core::safetensors::load(&mom_path, device)?;
        for (k, v) in &vars {
            let t = w.get(k).ok_or_else(|| {
                ExtractError::format(ckpt, format!("--resume: tensor `{k}` is missing"))
            })?;
            v.set(t)?;
        }
        for (j, &i) in trainable.iter().enumerate() {
            let key = format!("momentum.{}", vars[i].0);
            momentum[j] = m
                .get(&key)
                .ok_or_else(|| {
                    ExtractError::format(&mom_path, format!("--resume: `{key}` is missing"))
                })?
                .clone();
        }
        state = saved;
    } else if resume {
        return Err(ExtractError::Usage(format!(
            "--resume: no resume state at {}",
            json_path.display()
        )));
    }
    let resumed_from = state.epoch;
    if let Some(dir) = ckpt.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ExtractError::io(dir, e))?;
    }

    let (c, h, w) = match &train.images {
        crate::datasets::Images::Raw(r) => (r.channels, r.height, r.width),
        crate::datasets::Images::Files(_) => (
            3,
            crate::transform::CROP as usize,
            crate::transform::CROP as usize,
        ),
    };
    let n = train.len();
    let last = stop_after.unwrap_or(recipe.epochs).min(recipe.epochs);
    // The small CNN on the CPU trains through the hand-written pass (the same function and
    // gradients, ~16× faster than candle's autograd there); the variables are synced after
    // every epoch, so checkpoints, resume and evaluation do not depend on the path taken.
    let small_cnn_cpu =
        arch == Arch::SmallCnn && device.is_cpu() && h.is_multiple_of(4) && w.is_multiple_of(4);
    let mut fast = if cpu_pass && small_cnn_cpu {
        let mut f = SmallCnnCpu::new(c, num_classes);
        for (k, v) in &vars {
            f.set(k, &v.as_tensor().flatten_all()?.to_vec1::<f32>()?)?;
        }
        for (j, &i) in trainable.iter().enumerate() {
            f.set(
                &format!("momentum.{}", vars[i].0),
                &momentum[j].flatten_all()?.to_vec1::<f32>()?,
            )?;
        }
        Some(f)
    } else {
        None
    };
    for epoch in state.epoch..last {
        let t0 = std::time::Instant::now();
        let lr = recipe.lr_at(epoch);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
            recipe.seed ^ 0x5EED_0000_0000 ^ epoch as u64,
        ));
        progress(TrainEvent::EpochStart {
            epoch: epoch + 1,
            epochs: recipe.epochs,
            rows: n,
        });
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for rows in order.chunks(recipe.batch_size) {
            if rows.len() < 2 {
                continue; // BatchNorm cannot normalise a batch of one
            }
            let mut buf = Vec::with_capacity(rows.len() * c * h * w);
            for (_, img) in batch_input(
                train,
                rows,
                norm,
                recipe.crop_padding,
                Some((epoch, recipe.seed)),
            ) {
                buf.extend(img?);
            }
            let y_host: Vec<u32> = rows.iter().map(|&i| train.labels[i]).collect();
            let (l, pred) = match fast.as_mut() {
                Some(f) => {
                    let pass = f.forward_backward(&buf, h, w, &y_host)?;
                    f.sgd_step(&pass.grads, lr, recipe.momentum, recipe.weight_decay);
                    let pred: Vec<u32> = pass
                        .logits
                        .chunks(num_classes)
                        .map(|r| argmax(r) as u32)
                        .collect();
                    (pass.loss, pred)
                }
                None => {
                    let x = Tensor::from_vec(buf, (rows.len(), c, h, w), device)?;
                    let y = Tensor::from_slice(&y_host, rows.len(), device)?;
                    let feats = model.features_t(&x, true)?;
                    let logits = model.head().expect("built with a head").forward(&feats)?;
                    let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                    let grads = loss.backward()?;
                    for (j, &i) in trainable.iter().enumerate() {
                        let var = &vars[i].1;
                        let wt = var.as_tensor().detach();
                        let g = match grads.get(var) {
                            Some(g) => g.detach(),
                            None => wt.zeros_like()?,
                        };
                        let g = (g + (&wt * recipe.weight_decay)?)?;
                        let b = ((&momentum[j] * recipe.momentum)? + g)?.detach();
                        var.set(&(wt - (&b * lr)?)?)?;
                        momentum[j] = b;
                    }
                    let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
                    (loss.to_scalar::<f32>()? as f64, pred)
                }
            };
            state.steps += 1;
            correct += pred.iter().zip(&y_host).filter(|(a, b)| a == b).count();
            loss_sum += l * rows.len() as f64;
            seen += rows.len();
            progress(TrainEvent::Advance {
                done: seen,
                loss: loss_sum / seen as f64,
            });
        }
        let secs = t0.elapsed().as_secs_f64();
        state.train_secs += secs;
        state.epoch = epoch + 1;
        state.log.push(EpochLog {
            epoch: epoch + 1,
            lr,
            loss: loss_sum / seen.max(1) as f64,
            train_acc: 100.0 * correct as f64 / seen.max(1) as f64,
            secs,
        });
        if let Some(f) = &fast {
            for (k, v) in &vars {
                let data = f.get(k).expect("every small-CNN variable is known");
                v.set(&Tensor::from_slice(data, v.shape(), device)?)?;
            }
            for (j, &i) in trainable.iter().enumerate() {
                let data = f
                    .get(&format!("momentum.{}", vars[i].0))
                    .expect("every small-CNN parameter has a momentum buffer");
                momentum[j] = Tensor::from_slice(data, vars[i].1.shape(), device)?;
            }
        }
        // Momentum, then weights, then the json that names the finished epoch.
        let mut m = HashMap::new();
        for (j, &i) in trainable.iter().enumerate() {
            m.insert(
                format!("momentum.{}", vars[i].0),
                momentum[j].to_device(&Device::Cpu)?,
            );
        }
        write_atomic(&m, &mom_path)?;
        write_atomic(&state_dict(&vars, state.steps)?, ckpt)?;
        write_json_atomic(&state, &json_path)?;
        progress(TrainEvent::EpochEnd(state.log.last().expect("pushed")));
    }

    progress(TrainEvent::Evaluating { rows: test.len() });
    let (test_top1, test_top1_flip) = evaluate(
        model.as_ref(),
        test,
        norm,
        recipe.batch_size.max(256),
        device,
    )?;
    Ok(Stage1Report {
        checkpoint: ckpt.to_path_buf(),
        arch: arch.name().to_owned(),
        recipe: recipe.clone(),
        train_rows: n,
        parameters,
        log: state.log,
        train_secs: state.train_secs,
        resumed_from,
        test_top1,
        test_top1_flip,
        test_rows: test.len(),
    })
}

/// Index of the largest value (the first one on ties, as `argmax`).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Top-1 (%) with BatchNorm in eval mode: the test view, and the mean of the test view's and its
/// flip's logits.
pub fn evaluate(
    model: &dyn Backbone,
    data: &Labeled,
    norm: &Normalize,
    batch_size: usize,
    device: &Device,
) -> Result<(f64, f64)> {
    let (c, h, w) = match &data.images {
        crate::datasets::Images::Raw(r) => (r.channels, r.height, r.width),
        crate::datasets::Images::Files(_) => (
            3,
            crate::transform::CROP as usize,
            crate::transform::CROP as usize,
        ),
    };
    let all: Vec<usize> = (0..data.len()).collect();
    let (mut plain, mut flip) = (0usize, 0usize);
    for rows in all.chunks(batch_size.max(1)) {
        let mut buf = Vec::with_capacity(rows.len() * c * h * w);
        for (_, img) in batch_input(data, rows, norm, 0, None) {
            buf.extend(img?);
        }
        let x = Tensor::from_vec(buf, (rows.len(), c, h, w), device)?;
        let a = model.logits(&x)?;
        let b = model.logits(&flip_lr(&x)?)?;
        let pa: Vec<u32> = a.argmax(D::Minus1)?.to_vec1()?;
        let pb: Vec<u32> = (a + b)?.argmax(D::Minus1)?.to_vec1()?;
        for (k, &i) in rows.iter().enumerate() {
            plain += (pa[k] == data.labels[i]) as usize;
            flip += (pb[k] == data.labels[i]) as usize;
        }
    }
    let n = data.len().max(1) as f64;
    Ok((100.0 * plain as f64 / n, 100.0 * flip as f64 / n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::{Images, RawImages};

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

    /// Trains, writes a loadable torchvision-style checkpoint, and an interrupted run resumed
    /// ends with the same weights as an uninterrupted one.
    #[test]
    fn trains_writes_a_loadable_checkpoint_and_resumes_identically() {
        let dir = tempfile::tempdir().unwrap();
        let (tr, te) = (toy(32), toy(16));
        let norm = Normalize::fmnist();
        let dev = Device::Cpu;
        let run = |path: &Path, resume: bool, stop: Option<usize>| {
            train(
                Arch::SmallCnn,
                2,
                &tr,
                &te,
                &norm,
                &recipe(2),
                &dev,
                path,
                resume,
                stop,
                &mut |_| {},
            )
            .unwrap()
        };
        let full = dir.path().join("full.safetensors");
        let r = run(&full, false, None);
        assert_eq!(r.log.len(), 2);
        assert!(r.log.iter().all(|l| l.loss.is_finite()));
        assert!((0.0..=100.0).contains(&r.test_top1));
        let sd = crate::checkpoint::load_state_dict(&full).unwrap();
        for k in [
            "conv1.weight",
            "bn1.running_mean",
            "bn3.running_var",
            "fc.weight",
            "fc.bias",
        ] {
            assert!(sd.contains_key(k), "{k}");
        }
        let raw = candle_core::safetensors::load(&full, &Device::Cpu).unwrap();
        assert_eq!(
            raw["bn1.num_batches_tracked"].to_scalar::<i64>().unwrap(),
            8
        );
        // The checkpoint loads through the extraction path, head included.
        let (_, k, _) = crate::run::load_backbone(Arch::SmallCnn, Some(&full), 0, &dev).unwrap();
        assert_eq!(k, Some(2));

        let part = dir.path().join("part.safetensors");
        assert_eq!(run(&part, false, Some(1)).log.len(), 1);
        let again = run(&part, true, None);
        assert_eq!((again.resumed_from, again.log.len()), (1, 2));
        let b = candle_core::safetensors::load(&part, &Device::Cpu).unwrap();
        for key in ["conv2.weight", "bn2.running_var", "fc.weight"] {
            let d = (&raw[key] - &b[key]).unwrap().abs().unwrap();
            let d = d.flatten_all().unwrap().max(0).unwrap();
            assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "{key}");
        }
        // candle's autograd (with the max-pool fix) trains the same weights as the CPU pass.
        let slow = dir.path().join("slow.safetensors");
        let rs = train_with(
            Arch::SmallCnn,
            2,
            &tr,
            &te,
            &norm,
            &recipe(2),
            &dev,
            &slow,
            false,
            None,
            false,
            &mut |_| {},
        )
        .unwrap();
        assert!((rs.log[1].loss - r.log[1].loss).abs() < 1e-4 * r.log[1].loss.max(1.0));
        let c = candle_core::safetensors::load(&slow, &Device::Cpu).unwrap();
        for key in [
            "conv1.weight",
            "conv3.weight",
            "bn2.weight",
            "bn3.running_var",
            "fc.weight",
        ] {
            let d = (&raw[key] - &c[key]).unwrap().abs().unwrap();
            let d = d.flatten_all().unwrap().max(0).unwrap();
            let scale = raw[key]
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap();
            let (d, scale) = (
                d.to_scalar::<f32>().unwrap(),
                scale.to_scalar::<f32>().unwrap(),
            );
            assert!(d <= 1e-3 * scale, "{key}: {d} (scale {scale})");
        }
        // A different recipe does not resume.
        let mut other = recipe(3);
        other.lr = 0.1;
        let e = train(
            Arch::SmallCnn,
            2,
            &tr,
            &te,
            &norm,
            &other,
            &dev,
            &part,
            true,
            None,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--resume"), "{e}");
    }
}
