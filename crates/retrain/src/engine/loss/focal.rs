//! Focal loss, LDAM-DRW form (`losses.py` FocalLoss): `L = (1/B) Σ_i (1 − p_i)^γ · CE_i` with
//! `CE_i = −log p_i`, `p_i = softmax(z_i)_{y_i}`; the modulating factor is not detached.
//!
//! Gradient: `∂L_i/∂z_ic = (p_ic − 1{c = y_i}) · [(1 − p_i)^γ + γ p_i (1 − p_i)^(γ−1) CE_i]`.
//!
//! `batch` is the size of the whole minibatch (the mean's denominator); `z`/`y` may hold a
//! chunk of its rows.
//!
//! # Shapes
//! `z`, `grad`: [B, K] row-major; `y`: [B].

pub fn focal(z: &[f32], y: &[u32], k: usize, gamma: f64, grad: &mut [f32], batch: usize) -> f64 {
    // the rows may be a chunk of the batch: normalise by the whole batch
    let b = batch;
    let inv_b = 1.0 / b as f64;
    let mut total = 0.0f64;
    for (i, &yi) in y.iter().enumerate() {
        let yi = yi as usize;
        let row = &z[i * k..(i + 1) * k];
        let g = &mut grad[i * k..(i + 1) * k];
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (a, &zc) in g.iter_mut().zip(row) {
            *a = (zc - max).exp();
            sum += *a;
        }
        let ce = (sum.ln() - (row[yi] - max)) as f64;
        let p = (-ce).exp();
        let one_minus = 1.0 - p;
        let modulator = one_minus.powf(gamma);
        total += modulator * ce;
        let extra = if gamma == 0.0 || one_minus <= 0.0 {
            0.0
        } else {
            gamma * p * one_minus.powf(gamma - 1.0) * ce
        };
        let factor = ((modulator + extra) * inv_b) as f32;
        let inv_sum = 1.0 / sum;
        for (c, a) in g.iter_mut().enumerate() {
            let pc = *a * inv_sum;
            *a = factor * (pc - if c == yi { 1.0 } else { 0.0 });
        }
    }
    total * inv_b
}
