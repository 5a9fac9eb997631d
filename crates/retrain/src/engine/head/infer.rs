//! The inference form of a head: one linear map after an input transform, then DisAlign's
//! gate and a correction after it.

use super::NORM_EPS;
use crate::engine::linalg::{Parallelism, dot, matmul_abt, norm};

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

pub(super) fn sigmoid(a: f32) -> f32 {
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
