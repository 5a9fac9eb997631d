//! Classifier heads g(W, f(x)): parameters, forward and backward on a minibatch, and the
//! inference form after post-hoc rules.
//!
//! - Linear: `z = x Wᵀ + b`; `∂W = Gᵀ x`, `∂b = Σ_rows G`.
//! - Cosine: `z = s x̂ Ŵᵀ` (x̂, ŵ_i unit rows, no bias); with `∂Ŵ = s Gᵀ x̂`,
//!   `∂w_i = (∂ŵ_i − (∂ŵ_i·ŵ_i) ŵ_i) / ‖w_i‖`.
//! - LWS: `z = c ⊙ (x Wᵀ + b)`, W and b frozen; `∂c_k = Σ_rows G_k u_k`; with
//!   `train_linear` (MiSLAS) also `∂W = (G ⊙ c)ᵀ x`, `∂b = Σ_rows G ⊙ c`.
//! - DisAlign (cvpods `DisAlignLinear`): `u = x Wᵀ + b` frozen, `g_i = sigmoid(x_i·v + c)`,
//!   `z = u + g ⊙ (s ⊙ u + t)`; `∂s_k = Σ_i G_ik g_i u_ik`, `∂t_k = Σ_i G_ik g_i`, and with
//!   `h_i = Σ_k G_ik (s_k u_ik + t_k) · g_i (1 − g_i)`: `∂v = Σ_i h_i x_i`, `∂c = Σ_i h_i`.
//! - NCM: not trained; only its inference form ([`HeadState::ncm`], [`HeadState::eval_head`]).
//!
//! # Shapes
//! `weight` [K, D] (nn.Linear layout), `bias` [K], `scales` [K], `shift` [K], `gate` [D + 1]
//! (v, then c); minibatches [B, D].

mod infer;
mod step;
#[cfg(test)]
mod tests;

pub use infer::{EvalHead, Gate, normalize_rows};
pub use step::{StepBuffers, backward, forward};

use crate::engine::linalg::norm;
use crate::method::{Head, NcmDistance, NcmFeatures, PostHoc};
use rand::Rng;

/// F.normalize's epsilon.
pub(crate) const NORM_EPS: f32 = 1e-12;

/// Trainable state of a head.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadState {
    pub kind: Head,
    pub num_classes: usize,
    pub dim: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    /// LWS and DisAlign scales (empty for other heads).
    pub scales: Vec<f32>,
    /// DisAlign's shift t [K] and gate (v [D], c) [D + 1] (empty for other heads).
    pub shift: Vec<f32>,
    pub gate: Vec<f32>,
    /// NCM's centring vector [D] (`cl2n`: the mean train feature; empty otherwise).
    pub center: Vec<f32>,
}

/// cvpods `DisAlignLinear`: `torch.nn.init.constant_(self.confidence_layer.weight, 0.1)`.
pub const DISALIGN_GATE_WEIGHT: f32 = 0.1;

impl HeadState {
    /// A head of `kind` starting from a linear classifier (the stage-1 head, or a fresh one).
    pub fn from_linear(
        kind: Head,
        num_classes: usize,
        dim: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    ) -> HeadState {
        assert_eq!(weight.len(), num_classes * dim);
        assert_eq!(bias.len(), num_classes);
        let scales = if matches!(kind, Head::Lws { .. } | Head::DisAlign) {
            vec![1.0; num_classes]
        } else {
            Vec::new()
        };
        // the gate's bias c starts at 0 here; a run draws it (`with_disalign_gate_bias`)
        let (shift, gate) = if kind == Head::DisAlign {
            let mut gate = vec![DISALIGN_GATE_WEIGHT; dim + 1];
            gate[dim] = 0.0;
            (vec![0.0; num_classes], gate)
        } else {
            (Vec::new(), Vec::new())
        };
        let bias = if matches!(kind, Head::Cosine { .. }) {
            vec![0.0; num_classes]
        } else {
            bias
        };
        HeadState {
            kind,
            num_classes,
            dim,
            weight,
            bias,
            scales,
            shift,
            gate,
            center: Vec::new(),
        }
    }

    /// DisAlign's gate bias c drawn as nn.Linear's bias, U(−1/√D, 1/√D) (cvpods leaves the
    /// confidence layer's bias at its default init). A no-op for other heads.
    pub fn with_disalign_gate_bias(mut self, rng: &mut impl Rng) -> HeadState {
        if self.kind == Head::DisAlign {
            let bound = 1.0 / (self.dim as f32).sqrt();
            self.gate[self.dim] = rng.random_range(-bound..bound);
        }
        self
    }

    /// PyTorch nn.Linear default init: W, b ~ U(−1/√D, 1/√D).
    pub fn fresh(kind: Head, num_classes: usize, dim: usize, rng: &mut impl Rng) -> HeadState {
        let bound = 1.0 / (dim as f32).sqrt();
        let weight = (0..num_classes * dim)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let bias = (0..num_classes)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        HeadState::from_linear(kind, num_classes, dim, weight, bias)
    }

    /// LIFT's class-mean head (`trainer.py`: the mean of the raw features of class c, then
    /// `F.normalize`): row c = μ_c/‖μ_c‖ · `radius`; b = 0. A class without rows gets a zero
    /// row.
    pub fn class_mean(
        kind: Head,
        num_classes: usize,
        features: &[f32],
        labels: &[u32],
        radius: f32,
    ) -> HeadState {
        let d = features.len() / labels.len().max(1);
        let sums = class_sums(num_classes, d, features.chunks_exact(d), labels);
        let mut weight = vec![0.0f32; num_classes * d];
        for (w, s) in weight.chunks_exact_mut(d).zip(sums.chunks_exact(d)) {
            let n = s.iter().map(|v| v * v).sum::<f64>().sqrt();
            if n > 0.0 {
                w.iter_mut()
                    .zip(s)
                    .for_each(|(w, s)| *w = (s / n * radius as f64) as f32);
            }
        }
        HeadState::from_linear(kind, num_classes, d, weight, vec![0.0; num_classes])
    }

    /// Decoupling's NCM (`run_networks.py` centroids, `KNNClassifier`): the train features
    /// transformed as `features` says (centred on their mean for `cl2n`, then L2-normalised),
    /// the centroids their class means, not re-normalised. `weight` holds the centroids,
    /// `center` the mean for `cl2n`. A class without rows gets a zero centroid.
    pub fn ncm(
        features_kind: NcmFeatures,
        distance: NcmDistance,
        num_classes: usize,
        features: &[f32],
        labels: &[u32],
    ) -> HeadState {
        let n = labels.len().max(1);
        let d = features.len() / n;
        let center: Vec<f32> = if features_kind == NcmFeatures::Cl2n {
            let mut m = vec![0.0f64; d];
            for x in features.chunks_exact(d) {
                m.iter_mut().zip(x).for_each(|(m, &v)| *m += v as f64);
            }
            m.iter().map(|v| (v / n as f64) as f32).collect()
        } else {
            Vec::new()
        };
        let transformed = features
            .chunks_exact(d)
            .map(|x| ncm_transform(x, &center, features_kind));
        let sums = class_sums(num_classes, d, transformed, labels);
        let mut counts = vec![0usize; num_classes];
        labels.iter().for_each(|&y| counts[y as usize] += 1);
        let mut weight = vec![0.0f32; num_classes * d];
        for ((w, s), &c) in weight
            .chunks_exact_mut(d)
            .zip(sums.chunks_exact(d))
            .zip(&counts)
        {
            if c > 0 {
                w.iter_mut()
                    .zip(s)
                    .for_each(|(w, s)| *w = (s / c as f64) as f32);
            }
        }
        let kind = Head::Ncm {
            features: features_kind,
            distance,
        };
        let mut h = HeadState::from_linear(kind, num_classes, d, weight, vec![0.0; num_classes]);
        h.center = center;
        h
    }

    /// Row norms ‖w_i‖.
    pub fn row_norms(&self) -> Vec<f32> {
        self.weight.chunks_exact(self.dim).map(norm).collect()
    }

    /// The inference head: post-hoc rule applied, everything folded into one linear map
    /// (plus input normalisation for cosine heads).
    pub fn eval_head(&self, posthoc: PostHoc, log_priors: &[f64]) -> EvalHead {
        let (k, d) = (self.num_classes, self.dim);
        let mut weight = self.weight.clone();
        let mut bias = self.bias.clone();
        let mut normalize_input = false;
        let mut center = None;
        let mut minus_sq_norm = false;
        match self.kind {
            Head::Linear => {}
            // −‖x − μ‖² = 2 μ·x − ‖μ‖² − ‖x‖²; x·μ / D
            Head::Ncm { features, distance } => {
                normalize_input = features != NcmFeatures::Un;
                center = (!self.center.is_empty()).then(|| self.center.clone());
                match distance {
                    NcmDistance::L2 => {
                        for (row, b) in weight.chunks_exact_mut(d).zip(bias.iter_mut()) {
                            *b = -row.iter().map(|v| (v * v) as f64).sum::<f64>() as f32;
                            row.iter_mut().for_each(|v| *v *= 2.0);
                        }
                        minus_sq_norm = true;
                    }
                    NcmDistance::Cos => weight.iter_mut().for_each(|v| *v /= d as f32),
                }
            }
            Head::Cosine { scale } => {
                normalize_input = true;
                for row in weight.chunks_exact_mut(d) {
                    let n = norm(row).max(NORM_EPS);
                    row.iter_mut().for_each(|v| *v *= scale / n);
                }
            }
            // the gate is applied after the linear map (EvalHead::logits)
            Head::DisAlign => {}
            Head::Lws { .. } => {
                for (c, (row, b)) in weight.chunks_exact_mut(d).zip(bias.iter_mut()).enumerate() {
                    row.iter_mut().for_each(|v| *v *= self.scales[c]);
                    *b *= self.scales[c];
                }
            }
        }
        match posthoc {
            PostHoc::None => {}
            PostHoc::TauNorm { tau } => {
                for row in weight.chunks_exact_mut(d) {
                    let n = norm(row).max(NORM_EPS);
                    let f = n.powf(-tau);
                    row.iter_mut().for_each(|v| *v *= f);
                }
                bias.iter_mut().for_each(|b| *b = 0.0);
            }
            PostHoc::LogitAdjust { tau } => {
                for (b, lp) in bias.iter_mut().zip(log_priors) {
                    *b -= (tau as f64 * lp) as f32;
                }
            }
            PostHoc::PriorCorrect => {
                let uniform = vec![-(k as f64).ln(); k];
                shift_prior(&mut bias, log_priors, &uniform);
            }
        }
        debug_assert_eq!(weight.len(), k * d);
        let gate = (self.kind == Head::DisAlign).then(|| Gate {
            v: self.gate[..d].to_vec(),
            c: self.gate[d],
            scale: self.scales.clone(),
            shift: self.shift.clone(),
        });
        EvalHead {
            num_classes: k,
            dim: d,
            weight,
            bias,
            normalize_input,
            center,
            minus_sq_norm,
            gate,
            after_gate: None,
        }
    }
}

/// Σ of the rows of each class, in f64.
fn class_sums<'a>(
    k: usize,
    d: usize,
    rows: impl Iterator<Item = impl AsRef<[f32]> + 'a>,
    labels: &[u32],
) -> Vec<f64> {
    let mut sums = vec![0.0f64; k * d];
    for (x, &y) in rows.zip(labels) {
        let row = &mut sums[y as usize * d..(y as usize + 1) * d];
        row.iter_mut()
            .zip(x.as_ref())
            .for_each(|(s, &v)| *s += v as f64);
    }
    sums
}

/// NCM's feature transform of one row: minus `center` (when given), then L2-normalised
/// (`l2n`, `cl2n`; as `KNNClassifier`, x/‖x‖ with F.normalize's epsilon against 0).
fn ncm_transform(x: &[f32], center: &[f32], kind: NcmFeatures) -> Vec<f32> {
    let mut v: Vec<f32> = if center.is_empty() {
        x.to_vec()
    } else {
        x.iter().zip(center).map(|(a, m)| a - m).collect()
    };
    if kind != NcmFeatures::Un {
        let n = norm(&v).max(NORM_EPS);
        v.iter_mut().for_each(|a| *a /= n);
    }
    v
}

/// PC-softmax's correction of a bias: b_c += log q_c − log π_c (π: train priors, q: the test
/// prior).
pub fn shift_prior(bias: &mut [f32], log_train: &[f64], log_test: &[f64]) {
    for ((b, lp), lq) in bias.iter_mut().zip(log_train).zip(log_test) {
        *b += (lq - lp) as f32;
    }
}
