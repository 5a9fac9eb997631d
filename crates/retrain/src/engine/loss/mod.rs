//! Losses of the Table 1 rows, one file per family; [`LossFn`] binds a [`Loss`] to the
//! per-class constants of a bank and dispatches with one `match`.

mod focal;
mod sigmoid_bce;
mod softmax_bce;
mod softmax_ce;
pub mod weights;

pub use focal::focal;
pub use sigmoid_bce::sigmoid_bce;
pub use softmax_bce::softmax_bce;
pub use softmax_ce::{CeTerms, softmax_ce};

use crate::engine::cancel::Cancel;
use crate::engine::linalg::Parallelism;
use crate::method::custom::{Ctx, CustomFn};
use crate::method::{CbForm, Head, Loss, Method, Reweight};
use rand::SeedableRng;
use rand_distr::Distribution;
use rayon::prelude::*;

/// Rows per chunk of the loss computation (see [`LossFn::loss_and_grad_par`]).
pub const LOSS_CHUNK_ROWS: usize = 64;

/// A loss bound to a bank's class counts (and the head's logit scale, for LDAM and GCL),
/// with its re-weighting and, for GCL, its noise.
#[derive(Debug, Clone)]
pub struct LossFn {
    pub loss: Loss,
    pub num_classes: usize,
    /// The named per-class constants of the loss.
    pub terms: Terms,
    /// Re-weighting w_c (empty: none), applied from epoch `weights_from`.
    reweight: Vec<f32>,
    reweight_from: f32,
    weights_on: bool,
    noise: Option<Noise>,
    /// A custom loss's callback and what it is told; the next step's index.
    custom: Option<Custom>,
    steps: usize,
}

/// The callback of a custom loss (the one its row carries, attached by
/// [`LossFn::for_method`]) and what it is told.
#[derive(Debug, Clone)]
struct Custom {
    f: Option<CustomFn>,
    ctx: Ctx,
    /// The token of the run this loss trains in: a callback's error cancels that run only.
    cancel: Cancel,
}

/// The per-class constants a loss adds to the logits (empty vectors: absent), computed once.
#[derive(Debug, Clone, Default)]
pub struct Terms {
    /// o_c, added: τ log n_c (balanced softmax), τ log π_c (VS), log(π_c + 1e-9) (LADE),
    /// log π_c − log(1 − π_c) (balanced BCE).
    pub offset: Vec<f32>,
    /// m_c, multiplied: 1/a_c (CDT), Δ_c (VS).
    pub scale: Vec<f32>,
    /// μ_c, subtracted from the true class: s·m_c (LDAM), s·margin (GCL).
    pub margin: Vec<f32>,
    /// ε_c: label-aware smoothing of rows of class c.
    pub smoothing: Vec<f32>,
    /// w_c: class-balanced weights (Cui et al.), mean over B.
    pub weight: Vec<f32>,
    /// s·noise_mul·σ_c: the scale of GCL's noise per class.
    pub noise_scale: Vec<f32>,
    /// LADE: −log(π_c + 1e-9) + log(1/K + 1e-9) and π_c.
    pub lade_shift: Vec<f32>,
    pub prior: Vec<f32>,
}

/// GCL's noise: |clamp(ε, −1, 1)|·s·noise_mul·σ_c with ε ~ N(0, (1/3)²), drawn per step for
/// every row and class from a seeded stream.
#[derive(Debug, Clone)]
struct Noise {
    rng: rand_chacha::ChaCha8Rng,
    values: Vec<f32>,
}

/// A constant of a row as the decimal number it was written as (0.3, not 0.300000011920929):
/// the per-class constants are computed in f64 from the value in the TOML.
pub fn dec(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}

fn some(v: &[f32]) -> Option<&[f32]> {
    (!v.is_empty()).then_some(v)
}

impl LossFn {
    /// The loss of `method` (its loss, head scale and re-weighting) on a bank's counts.
    pub fn for_method(method: &Method, train_counts: &[usize]) -> LossFn {
        let mut f = LossFn::new(method.loss, method.head, train_counts);
        if let Some(c) = &mut f.custom {
            c.f = method.custom.clone();
        }
        let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
        f.reweight = match method.reweight {
            Reweight::None => Vec::new(),
            Reweight::ClassBalanced { beta, .. } => {
                to32(weights::class_balanced_weights(train_counts, dec(beta)))
            }
            Reweight::Power { gamma, .. } => to32(weights::power_weights(train_counts, dec(gamma))),
            Reweight::Prior { rho, .. } => to32(weights::prior_weights(train_counts, dec(rho))),
        };
        f.reweight_from = method.reweight.from();
        f.weights_on = !f.reweight.is_empty() && f.reweight_from == 0.0;
        f
    }

    pub fn new(loss: Loss, head: Head, train_counts: &[usize]) -> LossFn {
        let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let scale = match head {
            Head::Cosine { scale } => dec(scale),
            _ => 1.0,
        };
        let k = train_counts.len();
        let log_pi = weights::log_priors(train_counts);
        let mut t = Terms::default();
        match loss {
            Loss::BalancedSoftmax { tau } => {
                t.offset = to32(
                    weights::log_counts(train_counts)
                        .into_iter()
                        .map(|v| dec(tau) * v)
                        .collect(),
                )
            }
            Loss::Ldam { max_margin } => {
                t.margin = to32(
                    weights::ldam_margins(train_counts, dec(max_margin))
                        .into_iter()
                        .map(|m| m * scale)
                        .collect(),
                )
            }
            Loss::ClassBalanced { beta, .. } => {
                t.weight = to32(weights::class_balanced_weights(train_counts, dec(beta)))
            }
            Loss::Las {
                eps_head,
                eps_tail,
                shape,
                power,
            } => {
                t.smoothing = to32(weights::las_smoothing(
                    train_counts,
                    dec(eps_head),
                    dec(eps_tail),
                    shape,
                    dec(power),
                ))
            }
            Loss::Cdt { gamma } => t.scale = to32(weights::cdt_scales(train_counts, dec(gamma))),
            Loss::Vs { gamma, tau } => {
                t.scale = to32(weights::vs_scales(train_counts, dec(gamma)));
                t.offset = to32(log_pi.iter().map(|v| dec(tau) * v).collect());
            }
            Loss::Lade { .. } => {
                let total: usize = train_counts.iter().sum();
                let pi: Vec<f64> = train_counts
                    .iter()
                    .map(|&n| n as f64 / total as f64)
                    .collect();
                t.offset = to32(pi.iter().map(|p| (p + 1e-9).ln()).collect());
                let log_uniform = (1.0 / k as f64 + 1e-9).ln();
                t.lade_shift = to32(pi.iter().map(|p| log_uniform - (p + 1e-9).ln()).collect());
                t.prior = to32(pi);
            }
            Loss::BalBce => t.offset = to32(weights::bal_bce_offsets(train_counts)),
            Loss::Gcl {
                margin, noise_mul, ..
            } => {
                t.margin = vec![(scale * dec(margin)) as f32; k];
                t.noise_scale = to32(
                    weights::gcl_sigma(train_counts)
                        .into_iter()
                        .map(|s| s * scale * dec(noise_mul))
                        .collect(),
                );
            }
            Loss::Ce { .. } | Loss::Focal { .. } | Loss::Custom { .. } => {}
        }
        let custom = match loss {
            Loss::Custom { .. } => Some(Custom {
                f: None,
                cancel: Cancel::new(),
                ctx: Ctx {
                    class_counts: train_counts.to_vec(),
                    num_classes: k,
                    epoch: 0,
                    epochs: 1,
                    step: 0,
                    seed: 0,
                },
            }),
            _ => None,
        };
        let noise = matches!(loss, Loss::Gcl { .. }).then(|| Noise {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(0),
            values: Vec::new(),
        });
        LossFn {
            loss,
            num_classes: k,
            terms: t,
            reweight: Vec::new(),
            reweight_from: 0.0,
            weights_on: false,
            noise,
            custom,
            steps: 0,
        }
    }

    /// The run this loss trains in: a custom callback's error cancels `cancel` (a no-op for
    /// the built-in losses).
    pub fn set_cancel(&mut self, cancel: &Cancel) {
        if let Some(c) = &mut self.custom {
            c.cancel = cancel.clone();
        }
    }

    /// Seed the loss's noise stream (GCL; a no-op for the others).
    pub fn seed_noise(&mut self, seed: u64) {
        if let Some(Custom { ctx, .. }) = &mut self.custom {
            ctx.seed = seed;
        }
        if let Some(n) = &mut self.noise {
            n.rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            n.rng.set_stream(300);
        }
    }

    /// Before the steps of epoch `epoch` of `epochs`: deferred re-weighting (DRW) switches
    /// on at ⌊from·E⌋.
    pub fn start_epoch(&mut self, epoch: usize, epochs: usize) {
        if let Some(Custom { ctx, .. }) = &mut self.custom {
            (ctx.epoch, ctx.epochs) = (epoch, epochs);
        }
        let from = dec(self.reweight_from);
        let start = (from * epochs as f64 + 1e-9).floor() as usize;
        self.weights_on = !self.reweight.is_empty() && epoch >= start;
    }

    /// The re-weighting w_c of the method (empty: none), whether in force yet or not.
    pub fn reweight(&self) -> &[f32] {
        &self.reweight
    }

    /// The re-weighting w_c in force now (`None` before DRW's switch, or without one).
    pub fn active_reweight(&self) -> Option<&[f32]> {
        (self.weights_on).then_some(&self.reweight[..])
    }

    /// Before a step of `rows` rows: draw the noise it uses (GCL), in row-major order.
    pub fn prepare_step(&mut self, rows: usize) {
        if let Some(Custom { ctx, .. }) = &mut self.custom {
            ctx.step = self.steps;
        }
        self.steps += 1;
        let Some(n) = &mut self.noise else { return };
        let k = self.num_classes;
        let dist = rand_distr::Normal::new(0.0f32, 1.0 / 3.0).expect("a valid normal");
        n.values.clear();
        for _ in 0..rows {
            for c in 0..k {
                let e: f32 = dist.sample(&mut n.rng);
                n.values
                    .push(e.clamp(-1.0, 1.0).abs() * self.terms.noise_scale[c]);
            }
        }
    }

    /// The noise ν [rows, K] the next step uses (GCL), after [`LossFn::prepare_step`].
    pub fn noise(&self) -> Option<&[f32]> {
        self.noise.as_ref().map(|n| &n.values[..])
    }

    /// Set the noise ν [rows, K] by hand (parity tests of GCL with a fixed draw).
    pub fn set_noise(&mut self, values: Vec<f32>) {
        if let Some(n) = &mut self.noise {
            n.values = values;
        }
    }

    /// Batch-mean loss of logits `z` [B, K] for labels `y` [B]; writes ∂L/∂z into `grad`.
    pub fn loss_and_grad(&self, z: &[f32], y: &[u32], grad: &mut [f32]) -> f64 {
        self.loss_and_grad_par(z, y, grad, Parallelism::None)
    }

    /// [`LossFn::loss_and_grad`], with the rows split over threads when `par` has several.
    /// Rows are processed in fixed chunks of [`LOSS_CHUNK_ROWS`] whose partial losses are
    /// summed in order, so the result does not depend on the number of threads. LADE's
    /// regulariser, a function of the whole batch, is added after the chunks.
    pub fn loss_and_grad_par(
        &self,
        z: &[f32],
        y: &[u32],
        grad: &mut [f32],
        par: Parallelism,
    ) -> f64 {
        let (b, k) = (y.len(), self.num_classes);
        if let Some(Custom { f, ctx, cancel }) = &self.custom {
            // the whole batch at once, on this thread: a callback's batch mean is its own
            let out = match f {
                Some(f) => f.0.loss_and_grad(&z[..b * k], y, ctx, &mut grad[..b * k]),
                // the command refuses such a row before any run
                None => Err(
                    "a custom loss without its callback (ltbench.Method.custom attaches it)".into(),
                ),
            };
            return match out {
                Ok(l) => l,
                Err(e) => {
                    cancel.cancel(&e);
                    grad[..b * k].fill(0.0);
                    f64::NAN
                }
            };
        }
        let rows = LOSS_CHUNK_ROWS;
        // PyTorch's weighted mean Σ_i w_{y_i}·CE_i / Σ_i w_{y_i}; GCL's focal form takes the
        // weighted CE per row (reduction='none') and then the plain mean over the B rows
        // (GCLLoss losses.py:12-13, 81)
        let denom = match self.loss {
            Loss::Gcl { .. } => None,
            _ => self
                .active_reweight()
                .map(|w| y.iter().map(|&c| w[c as usize] as f64).sum::<f64>()),
        };
        let noise = self.noise();
        let chunk = |((g, z), (y, ci)): ((&mut [f32], &[f32]), (&[u32], usize))| {
            let nu = noise.map(|n| &n[ci * rows * k..(ci * rows + y.len()) * k]);
            self.chunk(z, y, g, b, denom, nu)
        };
        let parts: Vec<f64> = match par {
            Parallelism::Rayon(n) if n != 1 && b > rows => {
                use crate::engine::linalg::threaded;
                threaded::note(threaded::Branch::Loss);
                grad[..b * k]
                    .par_chunks_mut(rows * k)
                    .zip(z[..b * k].par_chunks(rows * k))
                    .zip(y.par_chunks(rows).enumerate().map(|(i, y)| (y, i)))
                    .map(chunk)
                    .collect()
            }
            _ => grad[..b * k]
                .chunks_mut(rows * k)
                .zip(z[..b * k].chunks(rows * k))
                .zip(y.chunks(rows).enumerate().map(|(i, y)| (y, i)))
                .map(chunk)
                .collect(),
        };
        let mut total: f64 = parts.iter().sum();
        if let Loss::Lade { alpha, lambda } = self.loss {
            total += lade_regulariser(
                &z[..b * k],
                y,
                k,
                &self.terms,
                alpha as f64,
                lambda as f64,
                &mut grad[..b * k],
            );
        }
        total
    }

    /// The rows `y` (a chunk of a batch of `batch` rows): their share of the batch-mean loss.
    fn chunk(
        &self,
        z: &[f32],
        y: &[u32],
        grad: &mut [f32],
        batch: usize,
        denom: Option<f64>,
        noise: Option<&[f32]>,
    ) -> f64 {
        let k = self.num_classes;
        let t = &self.terms;
        let focal_gamma = match self.loss {
            Loss::Gcl { gamma, .. } if gamma != 0.0 => Some(gamma as f64),
            _ => None,
        };
        let ce = |smoothing: f32, weight: Option<&[f32]>, grad: &mut [f32]| {
            let terms = CeTerms {
                focal: focal_gamma,
                smoothing: smoothing as f64,
                smoothing_per_class: some(&t.smoothing),
                scale: some(&t.scale),
                offset: some(&t.offset),
                margin: some(&t.margin),
                noise,
                weight,
                denom,
            };
            softmax_ce(z, y, k, terms, grad, batch)
        };
        let reweight = self.active_reweight();
        match self.loss {
            Loss::Ce { smoothing } => ce(smoothing, reweight, grad),
            Loss::BalancedSoftmax { .. }
            | Loss::Ldam { .. }
            | Loss::Las { .. }
            | Loss::Cdt { .. }
            | Loss::Vs { .. }
            | Loss::Lade { .. }
            | Loss::Gcl { .. } => ce(0.0, reweight, grad),
            Loss::ClassBalanced {
                form: CbForm::Softmax,
                ..
            } => ce(0.0, some(&t.weight), grad),
            Loss::ClassBalanced {
                form: CbForm::Sigmoid,
                ..
            } => sigmoid_bce(z, y, k, some(&t.weight), None, grad, batch),
            Loss::BalBce => sigmoid_bce(z, y, k, None, some(&t.offset), grad, batch),
            Loss::ClassBalanced {
                form: CbForm::SoftmaxBce,
                ..
            } => softmax_bce(z, y, k, &t.weight, grad, batch),
            Loss::Focal { gamma } => focal(z, y, k, gamma as f64, grad, batch),
            Loss::Custom { .. } => unreachable!("a custom loss takes the whole batch"),
        }
    }
}

/// LADE's regulariser α·L on the whole batch (Hong et al., `LADELoss` with ReMINE λ), added to
/// `grad`: per class c, first_c = Σ_{i: y_i = c} z_ic / (b_c + 1e-8), second_c =
/// LSE_i(z_ic + shift_c) − log B, L = −Σ_c π_c (first_c − second_c − λ second_c²).
/// Gradient: ∂L/∂z_ic = −π_c [1{y_i = c}/(b_c + 1e-8) − (1 + 2λ second_c) P_ic], P_·c the
/// softmax over the batch of column c.
fn lade_regulariser(
    z: &[f32],
    y: &[u32],
    k: usize,
    t: &Terms,
    alpha: f64,
    lambda: f64,
    grad: &mut [f32],
) -> f64 {
    let b = y.len();
    let log_b = (b as f64).ln();
    let mut total = 0.0f64;
    for c in 0..k {
        let col = |i: usize| z[i * k + c] as f64 + t.lade_shift[c] as f64;
        let max = (0..b).map(col).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = (0..b).map(|i| (col(i) - max).exp()).sum();
        let second = max + sum.ln() - log_b;
        // no allocation per step: the class's rows counted in place
        let n_c = y.iter().filter(|&&l| l as usize == c).count() as f64 + 1e-8;
        let first: f64 = (0..b)
            .filter(|&i| y[i] as usize == c)
            .map(|i| z[i * k + c] as f64)
            .sum::<f64>()
            / n_c;
        let pi = t.prior[c] as f64;
        total -= pi * (first - second - lambda * second * second);
        let pull = 1.0 + 2.0 * lambda * second;
        for i in 0..b {
            let p = (col(i) - max).exp() / sum;
            let own = if y[i] as usize == c { 1.0 / n_c } else { 0.0 };
            grad[i * k + c] += (-alpha * pi * (own - pull * p)) as f32;
        }
    }
    alpha * total
}

#[cfg(test)]
mod tests;
