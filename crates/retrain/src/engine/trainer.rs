//! One re-training run: a [`Method`] on the training split from an initial head, for a seed.
//!
//! The loop is the LOS stage-2 loop on cached features: per epoch, draw the row order, go
//! through it in minibatches (the last one partial), forward, loss gradient, backward, SGD
//! with momentum and weight decay, optional MaxNorm projection; the cosine learning rate is
//! stepped after each epoch (or per step).

use crate::engine::head::{HeadState, StepBuffers, backward, forward};
use crate::engine::linalg::Parallelism;
use crate::engine::loss::LossFn;
use crate::engine::optim::{cosine_lr, sgd_step, sgd_step_par};
use crate::engine::sampler::EpochSampler;
use crate::method::{Constraint, Head, Hyper, Method, ProjectEvery, Schedule};
use bank::Split;

/// How a run executes (not part of the method: it does not change the numbers, except
/// `shuffle`, which exists for parity tests against unshuffled PyTorch loops).
#[derive(Debug, Clone, Copy)]
pub struct TrainOptions<'a> {
    pub shuffle: bool,
    /// Keep every minibatch loss (parity tests).
    pub record_steps: bool,
    pub par: Parallelism,
    /// Train on these augmented views of the train rows: in each epoch every row is one of
    /// its views ([`crate::engine::sampler::view_choices`]), not its cached feature.
    pub views: Option<&'a bank::Views>,
    /// The token of the run this training belongs to: checked before each epoch, and
    /// cancelled by a custom loss that fails (`None`: a token of this training's own).
    pub cancel: Option<&'a crate::engine::cancel::Cancel>,
}

impl Default for TrainOptions<'_> {
    fn default() -> Self {
        TrainOptions {
            shuffle: true,
            record_steps: false,
            par: Parallelism::None,
            views: None,
            cancel: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub head: HeadState,
    /// Mean minibatch loss per epoch.
    pub epoch_loss: Vec<f64>,
    /// Every minibatch loss, when recorded.
    pub step_loss: Vec<f64>,
}

/// The state of one training run between steps: the head, its momentum buffers and the
/// reusable minibatch buffers. [`train`] drives it; benches call [`Trainer::step`] directly.
pub struct Trainer<'a> {
    pub head: HeadState,
    features: &'a [f32],
    labels: &'a [u32],
    method: &'a Method,
    loss: LossFn,
    buf: StepBuffers,
    /// Momentum of weight, bias, scales, shift, gate.
    momentum: [Vec<f32>; 5],
    maxnorm: Option<(f32, ProjectEvery)>,
    par: Parallelism,
    /// The train views and this epoch's choice of view per row (empty: the features).
    views: Option<&'a bank::Views>,
    choice: Vec<u32>,
}

impl<'a> Trainer<'a> {
    pub fn new(
        split: &'a Split,
        train_counts: &[usize],
        head: HeadState,
        method: &'a Method,
        par: Parallelism,
    ) -> Trainer<'a> {
        let (k, d) = (head.num_classes, head.dim);
        let bsz = method.hyper.batch_size.min(split.rows);
        let maxnorm = maxnorm_limit(&head, method.constraint);
        Trainer {
            loss: LossFn::for_method(method, train_counts),
            buf: StepBuffers::new(bsz, k, d),
            momentum: [
                vec![0.0; k * d],
                vec![0.0; k],
                vec![0.0; k],
                vec![0.0; k],
                vec![0.0; d + 1],
            ],
            head,
            features: split.features(),
            labels: &split.labels,
            method,
            maxnorm,
            par,
            views: None,
            choice: Vec::new(),
        }
    }

    /// Train on `views` from now on (each epoch's choice set by [`Trainer::set_view_choices`]).
    pub fn with_views(mut self, views: Option<&'a bank::Views>) -> Self {
        self.views = views;
        self
    }

    /// The run this trainer belongs to: its loss cancels `cancel` when a custom callback fails.
    pub fn set_cancel(&mut self, cancel: &crate::engine::cancel::Cancel) {
        self.loss.set_cancel(cancel);
    }

    /// The view each train row uses in the coming epoch.
    pub fn set_view_choices(&mut self, choice: Vec<u32>) {
        self.choice = choice;
    }

    /// One optimiser step on the rows `batch` at learning rate `lr`; returns the batch loss.
    pub fn step(&mut self, batch: &[u32], lr: f32) -> f64 {
        let (k, d) = (self.head.num_classes, self.head.dim);
        let hp = &self.method.hyper;
        let (buf, head) = (&mut self.buf, &mut self.head);
        let b = batch.len();
        for (j, &i) in batch.iter().enumerate() {
            let i = i as usize;
            let row = &mut buf.xb[j * d..(j + 1) * d];
            match self.views {
                Some(v) => v.row_into(self.choice[i] as usize, i, row),
                None => row.copy_from_slice(&self.features[i * d..(i + 1) * d]),
            }
            buf.yb[j] = self.labels[i];
        }
        forward(head, buf, b, self.par);
        self.loss.prepare_step(b);
        let l = self.loss.loss_and_grad_par(
            &buf.z[..b * k],
            &buf.yb[..b],
            &mut buf.g[..b * k],
            self.par,
        );
        backward(head, buf, b, self.par);
        let [mw, mb, mc, mt, mg] = &mut self.momentum;
        match head.kind {
            Head::Linear
            | Head::Lws {
                train_linear: true, ..
            } => {
                // MiSLAS: W and b in their own parameter group at lr_factor · lr
                let lr = match head.kind {
                    Head::Lws { lr_factor, .. } => lr * lr_factor,
                    _ => lr,
                };
                sgd_step_par(
                    &mut head.weight,
                    &buf.dw,
                    mw,
                    lr,
                    hp.momentum,
                    hp.wd,
                    self.par,
                );
                sgd_step(&mut head.bias, &buf.db, mb, lr, hp.momentum, hp.wd);
            }
            Head::Cosine { .. } => sgd_step_par(
                &mut head.weight,
                &buf.dw,
                mw,
                lr,
                hp.momentum,
                hp.wd,
                self.par,
            ),
            Head::Lws { .. } | Head::DisAlign | Head::Ncm { .. } => {}
        }
        match head.kind {
            Head::Lws { .. } => sgd_step(&mut head.scales, &buf.dc, mc, lr, hp.momentum, hp.wd),
            Head::DisAlign => {
                sgd_step(&mut head.scales, &buf.dc, mc, lr, hp.momentum, hp.wd);
                sgd_step(&mut head.shift, &buf.dt, mt, lr, hp.momentum, hp.wd);
                sgd_step(&mut head.gate, &buf.dgate, mg, lr, hp.momentum, hp.wd);
            }
            _ => {}
        }
        if let Some((t, ProjectEvery::Step)) = self.maxnorm {
            project_rows(&mut head.weight, d, t);
        }
        l
    }

    /// Start-of-epoch work: the loss's schedule (deferred re-weighting).
    pub fn start_epoch(&mut self, epoch: usize) {
        self.loss.start_epoch(epoch, self.method.hyper.epochs);
    }

    /// Seed the loss's noise (GCL) for run seed `seed`.
    pub fn seed_noise(&mut self, seed: u64) {
        self.loss.seed_noise(seed);
    }

    /// The loss, to set its noise by hand (parity tests).
    pub fn loss_mut(&mut self) -> &mut LossFn {
        &mut self.loss
    }

    /// End-of-epoch work (the per-epoch MaxNorm projection).
    pub fn end_epoch(&mut self) {
        if let Some((t, ProjectEvery::Epoch)) = self.maxnorm {
            project_rows(&mut self.head.weight, self.head.dim, t);
        }
    }
}

/// Train `head` in place with `method`; `on_epoch(e, &head)` runs after every epoch (for
/// selection on val). Methods with `train = false` return the head untouched.
pub fn train(
    split: &Split,
    train_counts: &[usize],
    head: HeadState,
    method: &Method,
    seed: u64,
    opts: &TrainOptions,
    mut on_epoch: impl FnMut(usize, &HeadState),
) -> TrainOutcome {
    if !method.train {
        return TrainOutcome {
            head,
            epoch_loss: Vec::new(),
            step_loss: Vec::new(),
        };
    }
    let hp = method.hyper;
    let mut sampler = EpochSampler::new(
        method.sampler,
        &split.labels,
        head.num_classes,
        seed,
        opts.shuffle,
    )
    .with_epochs(hp.epochs)
    .with_batch(hp.batch_size.min(split.rows));
    let bsz = hp.batch_size.min(split.rows);
    let mut trainer =
        Trainer::new(split, train_counts, head, method, opts.par).with_views(opts.views);
    trainer.seed_noise(seed);
    let cancel = opts.cancel.cloned().unwrap_or_default();
    trainer.set_cancel(&cancel);
    let steps_per_epoch = epoch_steps(method, split.rows);
    let total_steps = steps_per_epoch * hp.epochs;
    let mut order = Vec::with_capacity(split.rows);
    let (mut epoch_loss, mut step_loss) = (Vec::with_capacity(hp.epochs), Vec::new());
    let mut step = 0usize;
    for epoch in 0..hp.epochs {
        if cancel.is_cancelled() {
            break;
        }
        sampler.next_epoch(&mut order);
        if let Some(v) = opts.views {
            trainer.set_view_choices(crate::engine::sampler::view_choices(
                seed, epoch, split.rows, v.count,
            ));
        }
        trainer.start_epoch(epoch);
        let mut epoch_sum = 0.0;
        for batch in order.chunks(bsz) {
            let lr = lr_at(&hp, epoch, step, total_steps);
            let l = trainer.step(batch, lr);
            epoch_sum += l;
            if opts.record_steps {
                step_loss.push(l);
            }
            step += 1;
        }
        trainer.end_epoch();
        epoch_loss.push(epoch_sum / steps_per_epoch as f64);
        on_epoch(epoch, &trainer.head);
    }
    TrainOutcome {
        head: trainer.head,
        epoch_loss,
        step_loss,
    }
}

/// The optimiser steps of one epoch over `rows` training rows: ⌈N/B⌉ (the last batch
/// partial), or ⌊N/B⌋ whole batches for the class-aware sampler (Decoupling's
/// `int(N / batch_size)`).
pub fn epoch_steps(method: &Method, rows: usize) -> usize {
    let bsz = method.hyper.batch_size.min(rows).max(1);
    match method.sampler {
        crate::method::Sampler::ClassAware => rows / bsz,
        _ => rows.div_ceil(bsz),
    }
}

/// The learning rate of the step `step` (0-based, of `total_steps`) in epoch `epoch`.
pub fn lr_at(hp: &Hyper, epoch: usize, step: usize, total_steps: usize) -> f32 {
    match hp.schedule {
        Schedule::CosineEpoch => cosine_lr(hp.lr, epoch, hp.epochs),
        Schedule::CosineEpochStart => cosine_lr(hp.lr, epoch + 1, hp.epochs),
        Schedule::CosineStep => cosine_lr(hp.lr, step, total_steps),
        Schedule::Constant => hp.lr,
    }
}

/// The MaxNorm row-norm limit of a run starting from `head` (LTWB's per-layer threshold:
/// min + thresh·(max − min) of the initial row norms) and when it applies.
pub fn maxnorm_limit(head: &HeadState, constraint: Constraint) -> Option<(f32, ProjectEvery)> {
    match constraint {
        Constraint::MaxNorm { thresh, every } => {
            let norms = head.row_norms();
            let lo = norms.iter().cloned().fold(f32::INFINITY, f32::min);
            let hi = norms.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            Some((lo + thresh * (hi - lo), every))
        }
        Constraint::None => None,
    }
}

/// MaxNorm projection: rows with ‖w_i‖ > t are rescaled to norm t.
pub fn project_rows(weight: &mut [f32], d: usize, t: f32) {
    for row in weight.chunks_exact_mut(d) {
        let n = crate::engine::linalg::norm(row);
        if n > t {
            let f = t / n;
            row.iter_mut().for_each(|v| *v *= f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_caps_long_rows_only() {
        let mut w = vec![3.0, 4.0, 0.3, 0.4];
        project_rows(&mut w, 2, 1.0);
        assert!((w[0] - 0.6).abs() < 1e-6 && (w[1] - 0.8).abs() < 1e-6);
        assert_eq!(&w[2..], &[0.3, 0.4]);
    }
}
