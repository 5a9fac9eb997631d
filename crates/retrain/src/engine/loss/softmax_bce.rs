//! Class-weighted binary cross-entropy on *softmax probabilities* over all K outputs — the
//! `"softmax"` branch of LTWB's `CB_loss` (vandit15's PyTorch port), which produced the
//! class-balanced numbers LTWB and the LOS paper report:
//! `L = (1/(B K)) Σ_i Σ_c w_{y_i} · BCE(p_ic, 1{c = y_i})`, p = softmax(z), with PyTorch's
//! `binary_cross_entropy` semantics (log clamped at −100).
//!
//! Gradient (PyTorch's BCE backward, then softmax): with
//! `a_c = w (p_c − t_c) / max(p_c (1 − p_c), 1e-12) / (B K)`, `∂L/∂z_k = p_k (a_k − Σ_c a_c p_c)`.
//!
//! `batch` is the size of the whole minibatch (the mean's denominator); `z`/`y` may hold a
//! chunk of its rows.
//!
//! # Shapes
//! `z`, `grad`: [B, K]; `y`: [B]; `weight`: [K].

pub fn softmax_bce(
    z: &[f32],
    y: &[u32],
    k: usize,
    weight: &[f32],
    grad: &mut [f32],
    batch: usize,
) -> f64 {
    // the rows may be a chunk of the batch: normalise by the whole batch
    let b = batch;
    let norm = 1.0 / (b * k) as f64;
    let mut total = 0.0f64;
    let mut p = vec![0.0f64; k];
    for (i, &yi) in y.iter().enumerate() {
        let yi = yi as usize;
        let w = weight[yi] as f64;
        let row = &z[i * k..(i + 1) * k];
        let g = &mut grad[i * k..(i + 1) * k];
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f64;
        for (pc, &zc) in p.iter_mut().zip(row) {
            *pc = ((zc - max) as f64).exp();
            sum += *pc;
        }
        let mut dot = 0.0;
        for (c, pc) in p.iter_mut().enumerate() {
            *pc /= sum;
            let t = if c == yi { 1.0 } else { 0.0 };
            let l = if c == yi {
                pc.ln().max(-100.0)
            } else {
                (-*pc).ln_1p().max(-100.0)
            };
            total -= w * l;
            let a = w * (*pc - t) / (*pc * (1.0 - *pc)).max(1e-12) * norm;
            g[c] = a as f32;
            dot += a * *pc;
        }
        for (gc, pc) in g.iter_mut().zip(&p) {
            *gc = (pc * (*gc as f64 - dot)) as f32;
        }
    }
    total * norm
}
