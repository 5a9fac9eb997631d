//! The training loop: setup (build, init, resume), epochs of seeded shuffles and augmented
//! batches, a checkpoint after every epoch, evaluation at the end.

use super::evaluate::evaluate;
use super::net::Net;
use super::resume::{ResumeState, resume, save_epoch};
use super::{EpochLog, Recipe, Stage1Report, TrainEvent};
use crate::error::{ExtractError, Result};
use crate::model::backbones::Arch;
use crate::source::batch::{batch_input, input_shape};
use crate::source::datasets::{Labeled, Normalize};
use crate::train::cpu::SmallCnnCpu;
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::path::Path;

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
pub(super) fn train_with(
    arch: Arch,
    num_classes: usize,
    train: &Labeled,
    test: &Labeled,
    norm: &Normalize,
    recipe: &Recipe,
    device: &Device,
    ckpt: &Path,
    resume_run: bool,
    stop_after: Option<usize>,
    cpu_pass: bool,
    progress: &mut dyn FnMut(TrainEvent),
) -> Result<Stage1Report> {
    check_recipe(recipe)?;
    let mut net = Net::build(arch, num_classes, recipe.seed, device)?;
    let parameters = net.parameters();
    let mut state = ResumeState::fresh(arch, num_classes, recipe);
    if resume_run {
        state = resume(&mut net, state, ckpt, device)?;
    }
    let resumed_from = state.epoch;
    if let Some(dir) = ckpt.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ExtractError::io(dir, e))?;
    }

    let shape = input_shape(train);
    let (c, h, w) = shape;
    let mut fast = if cpu_pass && takes_the_cpu_pass(arch, device, h, w) {
        Some(net.to_cpu_pass(c, num_classes)?)
    } else {
        None
    };
    let trainer = Trainer {
        train,
        norm,
        recipe,
        device,
        num_classes,
        shape,
    };
    let last = stop_after.unwrap_or(recipe.epochs).min(recipe.epochs);
    for epoch in state.epoch..last {
        let t0 = std::time::Instant::now();
        let lr = recipe.lr_at(epoch);
        let tally = trainer.epoch(&mut net, &mut fast, epoch, lr, &mut state.steps, progress)?;
        record_epoch(&mut state, epoch, lr, &tally, t0.elapsed().as_secs_f64());
        if let Some(f) = &fast {
            net.sync_from(f, device)?;
        }
        {
            // the checkpoint and its resume files belong together: an interrupt waits for them
            let _writing = crate::interrupt::writing();
            save_epoch(&net, &state, ckpt)?;
        }
        progress(TrainEvent::EpochEnd(state.log.last().expect("pushed")));
    }

    progress(TrainEvent::Evaluating { rows: test.len() });
    let (test_top1, test_top1_flip) = evaluate(
        net.model.as_ref(),
        test,
        norm,
        recipe.batch_size.max(256),
        device,
    )?;
    Ok(Stage1Report {
        checkpoint: ckpt.to_path_buf(),
        arch: arch.name().to_owned(),
        recipe: recipe.clone(),
        train_rows: train.len(),
        parameters,
        log: state.log,
        train_secs: state.train_secs,
        resumed_from,
        test_top1,
        test_top1_flip,
        test_rows: test.len(),
    })
}

fn check_recipe(recipe: &Recipe) -> Result<()> {
    if recipe.batch_size < 2 {
        return Err(ExtractError::Usage(
            "stage 1 needs --train-batch-size >= 2 (BatchNorm batch statistics)".into(),
        ));
    }
    if recipe.epochs == 0 {
        return Err(ExtractError::Usage("--epochs must be at least 1".into()));
    }
    Ok(())
}

/// The small CNN on the CPU trains through the hand-written pass (the same function and
/// gradients, ~16× faster than candle's autograd there); the variables are synced after
/// every epoch, so checkpoints, resume and evaluation do not depend on the path taken.
fn takes_the_cpu_pass(arch: Arch, device: &Device, h: usize, w: usize) -> bool {
    arch == Arch::SmallCnn && device.is_cpu() && h.is_multiple_of(4) && w.is_multiple_of(4)
}

/// Sums over an epoch's batches.
#[derive(Default)]
struct Tally {
    loss_sum: f64,
    correct: usize,
    seen: usize,
}

/// The finished epoch into the resume state (and its log).
fn record_epoch(state: &mut ResumeState, epoch: usize, lr: f64, t: &Tally, secs: f64) {
    state.train_secs += secs;
    state.epoch = epoch + 1;
    state.log.push(EpochLog {
        epoch: epoch + 1,
        lr,
        loss: t.loss_sum / t.seen.max(1) as f64,
        train_acc: 100.0 * t.correct as f64 / t.seen.max(1) as f64,
        secs,
    });
}

/// What every epoch of a run shares.
struct Trainer<'a> {
    train: &'a Labeled,
    norm: &'a Normalize,
    recipe: &'a Recipe,
    device: &'a Device,
    num_classes: usize,
    /// (C, H, W) of an input image.
    shape: (usize, usize, usize),
}

impl Trainer<'_> {
    /// One pass over the train split in the epoch's seeded order, an SGD step per batch
    /// (`fast`: through the CPU pass, else through candle's autograd on `net`).
    fn epoch(
        &self,
        net: &mut Net,
        fast: &mut Option<SmallCnnCpu>,
        epoch: usize,
        lr: f64,
        steps: &mut usize,
        progress: &mut dyn FnMut(TrainEvent),
    ) -> Result<Tally> {
        let n = self.train.len();
        let order = epoch_order(n, self.recipe.seed, epoch);
        progress(TrainEvent::EpochStart {
            epoch: epoch + 1,
            epochs: self.recipe.epochs,
            rows: n,
        });
        let mut t = Tally::default();
        for rows in order.chunks(self.recipe.batch_size) {
            if rows.len() < 2 {
                continue; // BatchNorm cannot normalise a batch of one
            }
            let buf = self.augmented_batch(rows, epoch)?;
            let y_host: Vec<u32> = rows.iter().map(|&i| self.train.labels[i]).collect();
            let (l, pred) = match fast.as_mut() {
                Some(f) => self.cpu_step(f, &buf, &y_host, lr)?,
                None => self.autograd_step(net, buf, &y_host, lr)?,
            };
            *steps += 1;
            t.correct += pred.iter().zip(&y_host).filter(|(a, b)| a == b).count();
            t.loss_sum += l * rows.len() as f64;
            t.seen += rows.len();
            progress(TrainEvent::Advance {
                done: t.seen,
                loss: t.loss_sum / t.seen as f64,
            });
        }
        Ok(t)
    }

    /// Random crop + flip (random-resized-crop + flip for files) of `rows`, view `epoch`.
    fn augmented_batch(&self, rows: &[usize], epoch: usize) -> Result<Vec<f32>> {
        let (c, h, w) = self.shape;
        let mut buf = Vec::with_capacity(rows.len() * c * h * w);
        for (_, img) in batch_input(
            self.train,
            rows,
            self.norm,
            self.recipe.crop_padding,
            Some((epoch, self.recipe.seed)),
        ) {
            buf.extend(img?);
        }
        Ok(buf)
    }

    /// Forward, backward and SGD step through the hand-written CPU pass.
    fn cpu_step(
        &self,
        f: &mut SmallCnnCpu,
        buf: &[f32],
        y: &[u32],
        lr: f64,
    ) -> Result<(f64, Vec<u32>)> {
        let (_, h, w) = self.shape;
        let pass = f.forward_backward(buf, h, w, y)?;
        f.sgd_step(
            &pass.grads,
            lr,
            self.recipe.momentum,
            self.recipe.weight_decay,
        );
        let pred: Vec<u32> = pass
            .logits
            .chunks(self.num_classes)
            .map(|r| argmax(r) as u32)
            .collect();
        Ok((pass.loss, pred))
    }

    /// Forward, backward and SGD step through candle's autograd.
    fn autograd_step(
        &self,
        net: &mut Net,
        buf: Vec<f32>,
        y: &[u32],
        lr: f64,
    ) -> Result<(f64, Vec<u32>)> {
        let (c, h, w) = self.shape;
        let x = Tensor::from_vec(buf, (y.len(), c, h, w), self.device)?;
        let y = Tensor::from_slice(y, y.len(), self.device)?;
        net.autograd_step(&x, &y, lr, self.recipe)
    }
}

/// The epoch's permutation of the `n` train rows, seeded by (seed, epoch).
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
        seed ^ 0x5EED_0000_0000 ^ epoch as u64,
    ));
    order
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
