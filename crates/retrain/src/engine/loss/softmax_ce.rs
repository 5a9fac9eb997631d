//! Softmax cross-entropy with everything the CE-based rows need, as fields of one formula:
//!
//! `L = (1/D) Σ_i r_i · (−Σ_c q_ic log softmax(a_i)_c)`, with
//! - `a_ic = m_c·z_ic + o_c − μ_{y_i}·1{c = y_i} − ν_ic` (o = τ log n: balanced softmax / LA
//!   loss; μ = s·m: LDAM, GCL; m = 1/a: CDT; m = Δ, o = τ log π: VS; ν: GCL's noise),
//! - `q_i` = PyTorch label-smoothing targets with δ (δ = 0: one-hot; LOS: δ = 0.98), or with
//!   the row's class's ε_{y_i} (label-aware smoothing),
//! - `r_i = w_{y_i}` (class weights) or 1, and D = B, or Σ_i w_{y_i} (PyTorch's weighted mean),
//! - with `focal = γ`, each row's term times `(1 − p_i)^γ`, p_i = exp(−CE_i) detached (GCL's
//!   `focal_loss` with `train_cls`): a constant factor per row, in the loss and its gradient.
//!
//! Gradient: `∂L/∂z_ic = m_c r_i f_i (p_ic − q_ic) / D` (f_i the focal factor, or 1).
//!
//! `batch` is the size of the whole minibatch (the mean's denominator); `z`/`y` may hold a
//! chunk of its rows.
//!
//! # Shapes
//! `z`, `grad`: [B, K] row-major; `y`: [B]; `offset`, `weight`, `margin`: [K].

use super::weights::smoothed_targets;
use crate::engine::linalg;

#[derive(Debug, Clone, Copy, Default)]
pub struct CeTerms<'a> {
    /// γ of a focal factor (1 − p_i)^γ with p_i detached (GCL); `None`: no factor.
    pub focal: Option<f64>,
    pub smoothing: f64,
    /// Per-class smoothing ε_c (label-aware smoothing): row i uses ε_{y_i}.
    pub smoothing_per_class: Option<&'a [f32]>,
    pub scale: Option<&'a [f32]>,
    pub offset: Option<&'a [f32]>,
    pub margin: Option<&'a [f32]>,
    /// ν [rows, K] for these rows (GCL's scaled noise).
    pub noise: Option<&'a [f32]>,
    pub weight: Option<&'a [f32]>,
    /// The mean's denominator D when it is not the batch size (Σ_i w_{y_i}).
    pub denom: Option<f64>,
}

/// Returns the batch-mean loss and writes `∂L/∂z` into `grad`.
pub fn softmax_ce(
    z: &[f32],
    y: &[u32],
    k: usize,
    t: CeTerms<'_>,
    grad: &mut [f32],
    batch: usize,
) -> f64 {
    // the rows may be a chunk of the batch: normalise by the whole batch
    let b = batch;
    let targets = |d: f64| {
        let (q_true, q_other) = smoothed_targets(k, d);
        (q_true as f32, q_other as f32)
    };
    let fixed = targets(t.smoothing);
    let inv_b = match t.denom {
        Some(d) => (1.0 / d) as f32,
        None => 1.0 / b as f32,
    };
    let mut total = 0.0f64;
    for (i, &yi) in y.iter().enumerate() {
        let yi = yi as usize;
        let (q_true, q_other) = match t.smoothing_per_class {
            Some(e) => targets(e[yi] as f64),
            None => fixed,
        };
        let row = &z[i * k..(i + 1) * k];
        let g = &mut grad[i * k..(i + 1) * k];
        // adjusted logits into g (reused as scratch)
        g.copy_from_slice(row);
        if let Some(m) = t.scale {
            for (a, m) in g.iter_mut().zip(m) {
                *a *= m;
            }
        }
        if let Some(o) = t.offset {
            for (a, o) in g.iter_mut().zip(o) {
                *a += o;
            }
        }
        if let Some(m) = t.margin {
            g[yi] -= m[yi];
        }
        if let Some(nu) = t.noise {
            for (a, n) in g.iter_mut().zip(&nu[i * k..(i + 1) * k]) {
                *a -= n;
            }
        }
        let max = linalg::max(g);
        g.iter_mut().for_each(|a| *a -= max);
        // Σ_c q_c (a_c − max), q = q_other everywhere but q_true at y
        let dot_qa = q_other * linalg::sum(g) + (q_true - q_other) * g[yi];
        g.iter_mut().for_each(|a| *a = a.exp());
        let sum = linalg::sum(g);
        let log_sum = sum.ln();
        // −Σ q log p = −Σ q (s − log Σ) = log Σ − Σ q s   (Σ q = 1)
        let row_ce = log_sum - dot_qa;
        let mut r = t.weight.map_or(1.0, |w| w[yi]);
        if let Some(gamma) = t.focal {
            // p = exp(−r·CE) as GCL's focal_loss computes it from the (weighted) CE
            let p = (-(r as f64) * row_ce as f64).exp();
            r *= (1.0 - p).max(0.0).powf(gamma) as f32;
        }
        total += (r * row_ce) as f64;
        let scale = r * inv_b / sum;
        for (c, a) in g.iter_mut().enumerate() {
            let q = if c == yi { q_true } else { q_other };
            *a = *a * scale - q * r * inv_b;
        }
        if let Some(m) = t.scale {
            for (a, m) in g.iter_mut().zip(m) {
                *a *= m;
            }
        }
    }
    total / t.denom.unwrap_or(b as f64)
}
