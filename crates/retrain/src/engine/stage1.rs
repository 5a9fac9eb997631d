//! The stage-1 classifier: the bank's `head.safetensors`, or — for a bank that has none, and
//! for the synthetic generator — one fitted by this engine with plain cross-entropy on the
//! training split, which is biased toward head classes just as a real stage-1 head is.

use crate::engine::head::HeadState;
use crate::engine::linalg::Parallelism;
use crate::engine::trainer::{TrainOptions, train};
use crate::method::{Head, Hyper, Init, Loss, Method, MethodSpec, Schedule};
use bank::Split;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Plain CE from a fresh head: SGD momentum 0.9, wd 5e-4, batch 128, cosine.
pub fn stage1_method(epochs: usize, lr: f32) -> Method {
    let spec = MethodSpec {
        name: "stage1-ce".into(),
        head: Head::Linear,
        loss: Loss::Ce { smoothing: 0.0 },
        sampler: Default::default(),
        constraint: Default::default(),
        posthoc: Default::default(),
        reweight: Default::default(),
        solver: Default::default(),
        train: true,
        hyper: Default::default(),
        recipe: None,
        logit_prior: Some(crate::method::LogitPrior::Train),
        logit_prior_why: None,
        tta: None,
    };
    let hyper = Hyper {
        lr,
        wd: 5e-4,
        momentum: 0.9,
        epochs,
        batch_size: 128,
        init: Init::Fresh,
        schedule: Schedule::CosineEpoch,
    };
    spec.check(&hyper).expect("the stage-1 recipe is valid")
}

/// Fewest optimiser steps of a stage-1 fit: small banks get more epochs.
pub const STAGE1_MIN_STEPS: usize = 2000;

/// Fit a linear stage-1 head with plain CE (deterministic for a seed): `epochs` epochs, or
/// more when that gives fewer than [`STAGE1_MIN_STEPS`] steps.
pub fn fit_stage1_head(
    split: &Split,
    train_counts: &[usize],
    epochs: usize,
    lr: f32,
    seed: u64,
    par: Parallelism,
) -> HeadState {
    let k = train_counts.len();
    let steps_per_epoch = split.rows.div_ceil(128);
    let epochs = epochs.max(STAGE1_MIN_STEPS.div_ceil(steps_per_epoch));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(100);
    let init = HeadState::fresh(Head::Linear, k, split.dim, &mut rng);
    let opts = TrainOptions {
        par,
        ..Default::default()
    };
    train(
        split,
        train_counts,
        init,
        &stage1_method(epochs, lr),
        seed,
        &opts,
        |_, _| {},
    )
    .head
}
