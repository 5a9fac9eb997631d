//! Sigmoid binary cross-entropy on one-hot targets, class-weighted (CB TF repo, `sigmoid`) and
//! with per-class offsets (balanced BCE, o_c = log π_c − log(1 − π_c)):
//! `L = (1/B) Σ_i w_{y_i} Σ_c BCE(z_ic + o_c, 1{c = y_i})`,
//! `BCE(z, t) = max(z, 0) − z t + log(1 + e^(−|z|))`.
//!
//! Gradient: `∂L/∂z_ic = w_{y_i} (σ(z_ic + o_c) − 1{c = y_i}) / B`.
//!
//! `batch` is the size of the whole minibatch (the mean's denominator); `z`/`y` may hold a
//! chunk of its rows.
//!
//! # Shapes
//! `z`, `grad`: [B, K]; `y`: [B]; `weight`, `offset`: [K] (absent: ones, zeros).

pub fn sigmoid_bce(
    z: &[f32],
    y: &[u32],
    k: usize,
    weight: Option<&[f32]>,
    offset: Option<&[f32]>,
    grad: &mut [f32],
    batch: usize,
) -> f64 {
    // the rows may be a chunk of the batch: normalise by the whole batch
    let b = batch;
    let inv_b = 1.0 / b as f32;
    let mut total = 0.0f64;
    for (i, &yi) in y.iter().enumerate() {
        let yi = yi as usize;
        let w = weight.map_or(1.0, |w| w[yi]);
        let row = &z[i * k..(i + 1) * k];
        let g = &mut grad[i * k..(i + 1) * k];
        let mut row_loss = 0.0f32;
        for (c, (&zc, gc)) in row.iter().zip(g.iter_mut()).enumerate() {
            let zc = zc + offset.map_or(0.0, |o| o[c]);
            let t = if c == yi { 1.0 } else { 0.0 };
            row_loss += zc.max(0.0) - zc * t + (-zc.abs()).exp().ln_1p();
            let sig = 1.0 / (1.0 + (-zc).exp());
            *gc = w * (sig - t) * inv_b;
        }
        total += (w * row_loss) as f64;
    }
    total / b as f64
}
