//! PyTorch SGD with momentum and coupled weight decay, in place, and the cosine schedule.
//!
//! `g = ∂ + wd·p; buf = μ·buf + g (buf = g at the first step); p −= lr·buf` — the update order
//! of `torch.optim.SGD` (dampening 0, no Nesterov); the bias is decayed too.

use crate::engine::linalg::Parallelism;

/// One parameter tensor's SGD step; `buf` starts at zeros, which makes the first step `buf = g`.
pub fn sgd_step(param: &mut [f32], grad: &[f32], buf: &mut [f32], lr: f32, momentum: f32, wd: f32) {
    for ((p, g), m) in param.iter_mut().zip(grad).zip(buf.iter_mut()) {
        let g = g + wd * *p;
        *m = momentum * *m + g;
        *p -= lr * *m;
    }
}

/// [`sgd_step`] split over threads when `par` has several and the tensor is large
/// (elementwise, so the result is the same).
pub fn sgd_step_par(
    param: &mut [f32],
    grad: &[f32],
    buf: &mut [f32],
    lr: f32,
    momentum: f32,
    wd: f32,
    par: Parallelism,
) {
    const CHUNK: usize = 1 << 15;
    match par {
        Parallelism::Rayon(n) if n != 1 && param.len() > 4 * CHUNK => {
            use rayon::prelude::*;
            crate::engine::linalg::threaded::note(crate::engine::linalg::threaded::Branch::Sgd);
            param
                .par_chunks_mut(CHUNK)
                .zip(grad.par_chunks(CHUNK))
                .zip(buf.par_chunks_mut(CHUNK))
                .for_each(|((p, g), m)| sgd_step(p, g, m, lr, momentum, wd));
        }
        _ => sgd_step(param, grad, buf, lr, momentum, wd),
    }
}

/// Cosine annealing to 0: `lr (1 + cos(π t / T)) / 2`.
pub fn cosine_lr(base: f32, t: usize, total: usize) -> f32 {
    (0.5 * base as f64 * (1.0 + (std::f64::consts::PI * t as f64 / total.max(1) as f64).cos()))
        as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn los_schedule_values() {
        // LOS stage 2: 5e-4, 4.969e-4, …, 3.08e-6 over 20 epochs
        assert!((cosine_lr(5e-4, 0, 20) - 5e-4).abs() < 1e-12);
        assert!((cosine_lr(5e-4, 1, 20) - 4.969e-4).abs() < 1e-7);
        assert!((cosine_lr(5e-4, 19, 20) - 3.08e-6).abs() < 1e-8);
    }

    #[test]
    fn momentum_and_decay_by_hand() {
        let mut p = vec![1.0f32];
        let mut buf = vec![0.0f32];
        sgd_step(&mut p, &[0.5], &mut buf, 0.1, 0.9, 0.1); // g = 0.6, buf = 0.6, p = 0.94
        assert!((p[0] - 0.94).abs() < 1e-6);
        sgd_step(&mut p, &[0.5], &mut buf, 0.1, 0.9, 0.1); // g = 0.594, buf = 1.134, p = 0.8266
        assert!((p[0] - 0.8266).abs() < 1e-6);
    }
}
