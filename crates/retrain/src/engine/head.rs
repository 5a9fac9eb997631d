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

use crate::engine::linalg::{Parallelism, dot, matmul_abt, matmul_atb, norm};
use crate::method::{Head, NcmDistance, NcmFeatures, PostHoc};
use rand::Rng;

/// F.normalize's epsilon.
const NORM_EPS: f32 = 1e-12;

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

/// A head ready for inference: `z = x' Wᵀ + b − [‖x'‖²]`, x' = x, x − μ, or either
/// L2-normalised, then DisAlign's gate when it has one, then `after_gate` added.
#[derive(Debug, Clone)]
pub struct EvalHead {
    pub num_classes: usize,
    pub dim: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub normalize_input: bool,
    /// Subtracted from every input row before the normalisation (NCM `cl2n`).
    pub center: Option<Vec<f32>>,
    /// Subtract ‖x'‖² from every row's logits (NCM's `l2` distance).
    pub minus_sq_norm: bool,
    pub gate: Option<Gate>,
    /// Added to the logits after the gate (a prior correction of a gated head) [K].
    pub after_gate: Option<Vec<f32>>,
}

/// DisAlign's input-dependent calibration (cvpods `DisAlignLinear`):
/// `z' = z + σ(vᵀx + c)·(s ⊙ z + t)`.
#[derive(Debug, Clone)]
pub struct Gate {
    pub v: Vec<f32>,
    pub c: f32,
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

impl Gate {
    /// σ(vᵀx + c) of one feature row.
    pub fn value(&self, x: &[f32]) -> f32 {
        sigmoid(dot(x, &self.v) + self.c)
    }

    /// Apply to the logits `z` [rows, K] of the feature rows `x` [rows, D].
    pub fn apply(&self, x: &[f32], z: &mut [f32], k: usize) {
        let d = self.v.len();
        for (zr, xr) in z.chunks_exact_mut(k).zip(x.chunks_exact(d)) {
            let g = self.value(xr);
            for ((zc, s), t) in zr.iter_mut().zip(&self.scale).zip(&self.shift) {
                *zc += g * (s * *zc + t);
            }
        }
    }
}

fn sigmoid(a: f32) -> f32 {
    1.0 / (1.0 + (-a).exp())
}

impl EvalHead {
    /// Add `delta` [K] to the final logits: into the bias, or after the gate of a gated head
    /// (a prior correction must not pass through DisAlign's gate).
    pub fn add_to_logits(&mut self, delta: &[f32]) {
        let target = match &self.gate {
            Some(_) => self
                .after_gate
                .get_or_insert_with(|| vec![0.0; delta.len()]),
            None => &mut self.bias,
        };
        target.iter_mut().zip(delta).for_each(|(b, d)| *b += d);
    }

    /// Logits of `rows` feature rows into `z` [rows, K]; `scratch` holds transformed inputs.
    pub fn logits(
        &self,
        x: &[f32],
        rows: usize,
        z: &mut [f32],
        scratch: &mut Vec<f32>,
        par: Parallelism,
    ) {
        let (k, d) = (self.num_classes, self.dim);
        let x = if self.normalize_input || self.center.is_some() {
            scratch.clear();
            scratch.extend_from_slice(&x[..rows * d]);
            if let Some(m) = &self.center {
                for row in scratch.chunks_exact_mut(d) {
                    row.iter_mut().zip(m).for_each(|(v, m)| *v -= m);
                }
            }
            if self.normalize_input {
                normalize_rows(scratch, d);
            }
            &scratch[..]
        } else {
            x
        };
        for r in z[..rows * k].chunks_exact_mut(k) {
            r.copy_from_slice(&self.bias);
        }
        matmul_abt(z, x, &self.weight, rows, k, d, true, par);
        if self.minus_sq_norm {
            for (zr, xr) in z[..rows * k].chunks_exact_mut(k).zip(x.chunks_exact(d)) {
                let sq = dot(xr, xr);
                zr.iter_mut().for_each(|v| *v -= sq);
            }
        }
        if let Some(g) = &self.gate {
            g.apply(&x[..rows * d], &mut z[..rows * k], k);
        }
        if let Some(a) = &self.after_gate {
            for zr in z[..rows * k].chunks_exact_mut(k) {
                zr.iter_mut().zip(a).for_each(|(v, a)| *v += a);
            }
        }
    }
}

/// Scale each row of `x` [_, d] to unit L2 norm (F.normalize, eps 1e-12).
pub fn normalize_rows(x: &mut [f32], d: usize) {
    for row in x.chunks_exact_mut(d) {
        let n = norm(row).max(NORM_EPS);
        row.iter_mut().for_each(|v| *v /= n);
    }
}

/// Reusable buffers of one training run (no allocation per step).
#[derive(Debug, Default)]
pub struct StepBuffers {
    /// Minibatch features [B, D] (normalised in place for cosine heads).
    pub xb: Vec<f32>,
    pub yb: Vec<u32>,
    /// Logits [B, K] and ∂L/∂z [B, K].
    pub z: Vec<f32>,
    pub g: Vec<f32>,
    /// LWS and DisAlign pre-scale logits [B, K], DisAlign's gate values [B].
    u: Vec<f32>,
    gates: Vec<f32>,
    /// Cosine: s·Ŵ [K, D] and ‖w_i‖ [K].
    what: Vec<f32>,
    norms: Vec<f32>,
    /// Gradients of weight [K, D], bias [K], scales [K], shift [K], gate [D + 1].
    pub dw: Vec<f32>,
    pub db: Vec<f32>,
    pub dc: Vec<f32>,
    pub dt: Vec<f32>,
    pub dgate: Vec<f32>,
}

impl StepBuffers {
    pub fn new(batch: usize, k: usize, d: usize) -> StepBuffers {
        StepBuffers {
            xb: vec![0.0; batch * d],
            yb: vec![0; batch],
            z: vec![0.0; batch * k],
            g: vec![0.0; batch * k],
            u: vec![0.0; batch * k],
            gates: vec![0.0; batch],
            what: vec![0.0; k * d],
            norms: vec![0.0; k],
            dw: vec![0.0; k * d],
            db: vec![0.0; k],
            dc: vec![0.0; k],
            dt: vec![0.0; k],
            dgate: vec![0.0; d + 1],
        }
    }
}

/// Forward a gathered minibatch of `b` rows (in `buf.xb`) into `buf.z`.
pub fn forward(head: &HeadState, buf: &mut StepBuffers, b: usize, par: Parallelism) {
    let (k, d) = (head.num_classes, head.dim);
    match head.kind {
        Head::Linear => {
            for r in buf.z[..b * k].chunks_exact_mut(k) {
                r.copy_from_slice(&head.bias);
            }
            matmul_abt(&mut buf.z, &buf.xb, &head.weight, b, k, d, true, par);
        }
        Head::Cosine { scale } => {
            normalize_rows(&mut buf.xb[..b * d], d);
            for ((row, out), n) in head
                .weight
                .chunks_exact(d)
                .zip(buf.what.chunks_exact_mut(d))
                .zip(buf.norms.iter_mut())
            {
                *n = norm(row).max(NORM_EPS);
                let f = scale / *n;
                out.iter_mut().zip(row).for_each(|(o, w)| *o = w * f);
            }
            matmul_abt(&mut buf.z, &buf.xb, &buf.what, b, k, d, false, par);
        }
        Head::Lws { .. } => {
            for r in buf.u[..b * k].chunks_exact_mut(k) {
                r.copy_from_slice(&head.bias);
            }
            matmul_abt(&mut buf.u, &buf.xb, &head.weight, b, k, d, true, par);
            for (zr, ur) in buf.z[..b * k]
                .chunks_exact_mut(k)
                .zip(buf.u.chunks_exact(k))
            {
                for ((z, u), c) in zr.iter_mut().zip(ur).zip(&head.scales) {
                    *z = u * c;
                }
            }
        }
        Head::Ncm { .. } => unreachable!("an NCM head is not trained (MethodSpec::check)"),
        Head::DisAlign => {
            for r in buf.u[..b * k].chunks_exact_mut(k) {
                r.copy_from_slice(&head.bias);
            }
            matmul_abt(&mut buf.u, &buf.xb, &head.weight, b, k, d, true, par);
            let (v, c) = (&head.gate[..d], head.gate[d]);
            for (i, (zr, ur)) in buf.z[..b * k]
                .chunks_exact_mut(k)
                .zip(buf.u.chunks_exact(k))
                .enumerate()
            {
                let g = sigmoid(dot(&buf.xb[i * d..(i + 1) * d], v) + c);
                buf.gates[i] = g;
                for (((z, u), s), t) in zr.iter_mut().zip(ur).zip(&head.scales).zip(&head.shift) {
                    *z = u + g * (s * u + t);
                }
            }
        }
    }
}

/// Gradients of the trainable parameters from `buf.g` = ∂L/∂z (after [`forward`]).
pub fn backward(head: &HeadState, buf: &mut StepBuffers, b: usize, par: Parallelism) {
    let (k, d) = (head.num_classes, head.dim);
    match head.kind {
        Head::Linear => {
            matmul_atb(&mut buf.dw, &buf.g, &buf.xb, b, k, d, par);
            buf.db.fill(0.0);
            for gr in buf.g[..b * k].chunks_exact(k) {
                buf.db.iter_mut().zip(gr).for_each(|(s, g)| *s += g);
            }
        }
        Head::Cosine { scale } => {
            // ∂(s ŵ) = Gᵀ x̂ → ∂ŵ = s Gᵀ x̂
            matmul_atb(&mut buf.dw, &buf.g, &buf.xb, b, k, d, par);
            for ((dwr, whr), n) in buf
                .dw
                .chunks_exact_mut(d)
                .zip(buf.what.chunks_exact(d))
                .zip(&buf.norms)
            {
                // what row = s ŵ; dwr = Gᵀx̂ row = ∂z/∂(s ŵ)
                let dot: f32 = dot(dwr, whr) / (scale * scale);
                let f = scale / n;
                dwr.iter_mut()
                    .zip(whr)
                    .for_each(|(a, w)| *a = f * (*a - dot * w));
            }
            buf.db.fill(0.0);
        }
        Head::Lws { train_linear, .. } => {
            buf.dc.fill(0.0);
            for (gr, ur) in buf.g[..b * k].chunks_exact(k).zip(buf.u.chunks_exact(k)) {
                for ((s, g), u) in buf.dc.iter_mut().zip(gr).zip(ur) {
                    *s += g * u;
                }
            }
            if train_linear {
                // ∂u = G ⊙ c, in place (G is not needed after this)
                for gr in buf.g[..b * k].chunks_exact_mut(k) {
                    gr.iter_mut().zip(&head.scales).for_each(|(g, c)| *g *= c);
                }
                matmul_atb(&mut buf.dw, &buf.g, &buf.xb, b, k, d, par);
                buf.db.fill(0.0);
                for gr in buf.g[..b * k].chunks_exact(k) {
                    buf.db.iter_mut().zip(gr).for_each(|(s, g)| *s += g);
                }
            }
        }
        Head::Ncm { .. } => unreachable!("an NCM head is not trained (MethodSpec::check)"),
        Head::DisAlign => {
            buf.dc.fill(0.0);
            buf.dt.fill(0.0);
            buf.dgate.fill(0.0);
            for (i, (gr, ur)) in buf.g[..b * k]
                .chunks_exact(k)
                .zip(buf.u.chunks_exact(k))
                .enumerate()
            {
                let g = buf.gates[i];
                let mut dg = 0.0f32;
                for (c, (gz, u)) in gr.iter().zip(ur).enumerate() {
                    buf.dc[c] += gz * g * u;
                    buf.dt[c] += gz * g;
                    dg += gz * (head.scales[c] * u + head.shift[c]);
                }
                let h = dg * g * (1.0 - g);
                let x = &buf.xb[i * d..(i + 1) * d];
                buf.dgate[..d]
                    .iter_mut()
                    .zip(x)
                    .for_each(|(s, x)| *s += h * x);
                buf.dgate[d] += h;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::Head;

    fn head(kind: Head) -> HeadState {
        let (k, d) = (3, 4);
        let w = (0..k * d).map(|i| ((i as f32) * 0.37).sin()).collect();
        let b = vec![0.1, -0.2, 0.3];
        let mut h = HeadState::from_linear(kind, k, d, w, b);
        if matches!(kind, Head::Lws { .. } | Head::DisAlign) {
            h.scales = vec![0.9, 1.2, 1.05];
        }
        if kind == Head::DisAlign {
            h.shift = vec![0.2, -0.1, 0.05];
            h.gate = vec![0.3, -0.2, 0.1, 0.4, -0.15];
        }
        h
    }

    /// loss = Σ z ⊙ R for a fixed R, so ∂L/∂z = R.
    fn loss_of(h: &HeadState, x: &[f32], r: &[f32]) -> f64 {
        let mut buf = StepBuffers::new(2, 3, 4);
        buf.xb.copy_from_slice(x);
        forward(h, &mut buf, 2, Parallelism::None);
        buf.z.iter().zip(r).map(|(z, r)| (z * r) as f64).sum()
    }

    #[test]
    fn head_gradients_match_finite_differences() {
        let x: Vec<f32> = (0..8).map(|i| ((i as f32) * 1.3).cos() + 0.5).collect();
        let r: Vec<f32> = (0..6).map(|i| ((i as f32) * 0.9).sin()).collect();
        for kind in [
            Head::Linear,
            Head::Cosine { scale: 16.0 },
            Head::Lws {
                train_linear: false,
                lr_factor: 1.0,
            },
            Head::Lws {
                train_linear: true,
                lr_factor: 1.0,
            },
            Head::DisAlign,
        ] {
            let h = head(kind);
            let mut buf = StepBuffers::new(2, 3, 4);
            buf.xb.copy_from_slice(&x);
            forward(&h, &mut buf, 2, Parallelism::None);
            buf.g.copy_from_slice(&r);
            backward(&h, &mut buf, 2, Parallelism::None);
            let eps = 1e-3f32;
            let params: Vec<(&str, usize)> = match kind {
                Head::Linear => vec![("w", 12), ("b", 3)],
                Head::Cosine { .. } => vec![("w", 12)],
                Head::Lws {
                    train_linear: false,
                    ..
                } => vec![("c", 3)],
                Head::Lws {
                    train_linear: true, ..
                } => vec![("w", 12), ("b", 3), ("c", 3)],
                Head::DisAlign => vec![("c", 3), ("t", 3), ("v", 5)],
            };
            for (name, n) in params {
                for j in 0..n {
                    let bump = |delta: f32| {
                        let mut h2 = h.clone();
                        match name {
                            "w" => h2.weight[j] += delta,
                            "b" => h2.bias[j] += delta,
                            "t" => h2.shift[j] += delta,
                            "v" => h2.gate[j] += delta,
                            _ => h2.scales[j] += delta,
                        }
                        loss_of(&h2, &x, &r)
                    };
                    let fd = (bump(eps) - bump(-eps)) / (2.0 * eps as f64);
                    let an = match name {
                        "w" => buf.dw[j],
                        "b" => buf.db[j],
                        "t" => buf.dt[j],
                        "v" => buf.dgate[j],
                        _ => buf.dc[j],
                    } as f64;
                    assert!(
                        (fd - an).abs() < 2e-2 * (1.0 + fd.abs()),
                        "{kind:?} {name}[{j}]: fd {fd} vs {an}"
                    );
                }
            }
        }
    }

    /// Two classes in 2-D, by hand: class 0 rows (3, 4) and (1, 0) normalise to (0.6, 0.8) and
    /// (1, 0), mean (0.8, 0.4), unit (2, 1)/√5; scaled to radius 2.
    #[test]
    /// Two classes in 2-D, by hand (LIFT: the mean of the raw rows, then normalised): class 0
    /// rows (3, 4) and (1, 0) have mean (2, 2), unit (1, 1)/√2; scaled to radius 2.
    fn class_mean_head_by_hand() {
        let x = [3.0f32, 4.0, 1.0, 0.0, 0.0, -2.0];
        let h = HeadState::class_mean(Head::Linear, 2, &x, &[0, 0, 1], 2.0);
        let r2 = 2f32.sqrt();
        assert!((h.weight[0] - r2).abs() < 1e-6 && (h.weight[1] - r2).abs() < 1e-6);
        assert_eq!(&h.weight[2..], &[0.0, -2.0]);
        assert_eq!(h.bias, vec![0.0, 0.0]);
    }

    /// NCM cl2n + l2 by hand: rows (3, 4), (1, 0) of class 0 and (0, −2) of class 1 have mean
    /// (4/3, 2/3); centred and normalised they are (1, 2)/√5, −(1, 2)/√5, −(1, 2)/√5, so
    /// μ_0 = 0 and μ_1 = −(1, 2)/√5. The row (3, 4) scores −‖x̂ − μ_0‖² = −1 and
    /// −‖x̂ − μ_1‖² = −‖2(1, 2)/√5‖² = −4; with `cos` (x̂·μ/D) 0 and −1/2.
    #[test]
    fn ncm_cl2n_by_hand() {
        let x = [3.0f32, 4.0, 1.0, 0.0, 0.0, -2.0];
        let l2 = HeadState::ncm(NcmFeatures::Cl2n, NcmDistance::L2, 2, &x, &[0, 0, 1]);
        assert!((l2.center[0] - 4.0 / 3.0).abs() < 1e-6 && (l2.center[1] - 2.0 / 3.0).abs() < 1e-6);
        let mut z = vec![0.0; 2];
        let e = l2.eval_head(PostHoc::None, &[0.0; 2]);
        e.logits(&x[..2], 1, &mut z, &mut Vec::new(), Parallelism::None);
        assert!(
            (z[0] + 1.0).abs() < 1e-5 && (z[1] + 4.0).abs() < 1e-5,
            "{z:?}"
        );
        let cos = HeadState::ncm(NcmFeatures::Cl2n, NcmDistance::Cos, 2, &x, &[0, 0, 1]);
        let e = cos.eval_head(PostHoc::None, &[0.0; 2]);
        e.logits(&x[..2], 1, &mut z, &mut Vec::new(), Parallelism::None);
        assert!(z[0].abs() < 1e-6 && (z[1] + 0.5).abs() < 1e-6, "{z:?}");
    }

    /// A correction added to a gated head's logits lands after the gate: the gated logits
    /// plus `delta`, exactly.
    #[test]
    fn a_correction_of_a_gated_head_is_added_after_the_gate() {
        let x: Vec<f32> = (0..8).map(|i| ((i as f32) * 1.3).cos() + 0.5).collect();
        let h = head(Head::DisAlign);
        let plain = h.eval_head(PostHoc::None, &[0.0; 3]);
        let mut shifted = plain.clone();
        let delta = [0.5f32, -1.0, 2.0];
        shifted.add_to_logits(&delta);
        assert_eq!(shifted.bias, plain.bias);
        let (mut a, mut b) = (vec![0.0; 6], vec![0.0; 6]);
        plain.logits(&x, 2, &mut a, &mut Vec::new(), Parallelism::None);
        shifted.logits(&x, 2, &mut b, &mut Vec::new(), Parallelism::None);
        for (i, (a, b)) in a.iter().zip(&b).enumerate() {
            assert!((b - a - delta[i % 3]).abs() < 1e-6);
        }
    }

    /// What the trainer sees (forward) is what inference computes (eval_head), for every head.
    #[test]
    fn inference_logits_equal_training_forward() {
        let x: Vec<f32> = (0..8).map(|i| ((i as f32) * 1.3).cos() + 0.5).collect();
        for kind in [
            Head::Linear,
            Head::Cosine { scale: 16.0 },
            Head::Lws {
                train_linear: true,
                lr_factor: 1.0,
            },
            Head::DisAlign,
        ] {
            let h = head(kind);
            let mut buf = StepBuffers::new(2, 3, 4);
            buf.xb.copy_from_slice(&x);
            forward(&h, &mut buf, 2, Parallelism::None);
            let e = h.eval_head(PostHoc::None, &[0.0; 3]);
            let mut z = vec![0.0; 6];
            e.logits(&x, 2, &mut z, &mut Vec::new(), Parallelism::None);
            for (a, b) in z.iter().zip(&buf.z) {
                assert!((a - b).abs() < 1e-5, "{kind:?}: {z:?} vs {:?}", buf.z);
            }
        }
    }

    #[test]
    fn tau_norm_with_tau_one_gives_unit_rows_and_no_bias() {
        let e = head(Head::Linear).eval_head(PostHoc::TauNorm { tau: 1.0 }, &[0.0; 3]);
        for row in e.weight.chunks_exact(4) {
            assert!((row.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
        }
        assert!(e.bias.iter().all(|&b| b == 0.0));
        // τ = 0 leaves W unchanged
        let e0 = head(Head::Linear).eval_head(PostHoc::TauNorm { tau: 0.0 }, &[0.0; 3]);
        assert_eq!(e0.weight, head(Head::Linear).weight);
    }

    #[test]
    fn logit_adjust_subtracts_tau_log_prior() {
        let lp = [(0.5f64).ln(), (0.3f64).ln(), (0.2f64).ln()];
        let e = head(Head::Linear).eval_head(PostHoc::LogitAdjust { tau: 1.0 }, &lp);
        assert!((e.bias[2] - (0.3 - (0.2f64).ln() as f32)).abs() < 1e-6);
    }
}
