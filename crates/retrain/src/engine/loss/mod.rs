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

use crate::engine::linalg::Parallelism;
use crate::method::{CbForm, Head, Loss};
use rayon::prelude::*;

/// Rows per chunk of the loss computation (see [`LossFn::loss_and_grad_par`]).
pub const LOSS_CHUNK_ROWS: usize = 64;

/// A loss bound to a bank's class counts (and the head's logit scale, for LDAM).
#[derive(Debug, Clone)]
pub struct LossFn {
    pub loss: Loss,
    pub num_classes: usize,
    /// log n_c (balanced softmax), s·m_c (LDAM) or w_c (class-balanced), by loss.
    class_terms: Vec<f32>,
}

impl LossFn {
    pub fn new(loss: Loss, head: Head, train_counts: &[usize]) -> LossFn {
        let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
        let class_terms = match loss {
            Loss::BalancedSoftmax => to32(weights::log_counts(train_counts)),
            Loss::Ldam { max_margin } => {
                let s = match head {
                    Head::Cosine { scale } => scale as f64,
                    _ => 1.0,
                };
                to32(
                    weights::ldam_margins(train_counts, max_margin as f64)
                        .into_iter()
                        .map(|m| m * s)
                        .collect(),
                )
            }
            Loss::ClassBalanced { beta, .. } => {
                to32(weights::class_balanced_weights(train_counts, beta as f64))
            }
            Loss::Ce { .. } | Loss::Focal { .. } => Vec::new(),
        };
        LossFn {
            loss,
            num_classes: train_counts.len(),
            class_terms,
        }
    }

    /// The per-class terms: log n_c (balanced softmax), s·m_c (LDAM), w_c (class-balanced);
    /// empty for the other losses.
    pub fn class_terms(&self) -> &[f32] {
        &self.class_terms
    }

    /// Batch-mean loss of logits `z` [B, K] for labels `y` [B]; writes ∂L/∂z into `grad`.
    pub fn loss_and_grad(&self, z: &[f32], y: &[u32], grad: &mut [f32]) -> f64 {
        self.loss_and_grad_par(z, y, grad, Parallelism::None)
    }

    /// [`LossFn::loss_and_grad`], with the rows split over threads when `par` has several.
    /// Rows are processed in fixed chunks of [`LOSS_CHUNK_ROWS`] whose partial losses are
    /// summed in order, so the result does not depend on the number of threads.
    pub fn loss_and_grad_par(
        &self,
        z: &[f32],
        y: &[u32],
        grad: &mut [f32],
        par: Parallelism,
    ) -> f64 {
        let (b, k) = (y.len(), self.num_classes);
        let rows = LOSS_CHUNK_ROWS;
        let parts: Vec<f64> = match par {
            Parallelism::Rayon(n) if n != 1 && b > rows => grad[..b * k]
                .par_chunks_mut(rows * k)
                .zip(z[..b * k].par_chunks(rows * k))
                .zip(y.par_chunks(rows))
                .map(|((g, z), y)| self.chunk(z, y, g, b))
                .collect(),
            _ => grad[..b * k]
                .chunks_mut(rows * k)
                .zip(z[..b * k].chunks(rows * k))
                .zip(y.chunks(rows))
                .map(|((g, z), y)| self.chunk(z, y, g, b))
                .collect(),
        };
        parts.iter().sum()
    }

    /// The rows `y` (a chunk of a batch of `batch` rows): their share of the batch-mean loss.
    fn chunk(&self, z: &[f32], y: &[u32], grad: &mut [f32], batch: usize) -> f64 {
        let k = self.num_classes;
        let t = &self.class_terms;
        match self.loss {
            Loss::Ce { smoothing } => softmax_ce(
                z,
                y,
                k,
                CeTerms {
                    smoothing: smoothing as f64,
                    ..Default::default()
                },
                grad,
                batch,
            ),
            Loss::BalancedSoftmax => softmax_ce(
                z,
                y,
                k,
                CeTerms {
                    offset: Some(t),
                    ..Default::default()
                },
                grad,
                batch,
            ),
            Loss::Ldam { .. } => softmax_ce(
                z,
                y,
                k,
                CeTerms {
                    margin: Some(t),
                    ..Default::default()
                },
                grad,
                batch,
            ),
            Loss::ClassBalanced {
                form: CbForm::Softmax,
                ..
            } => softmax_ce(
                z,
                y,
                k,
                CeTerms {
                    weight: Some(t),
                    ..Default::default()
                },
                grad,
                batch,
            ),
            Loss::ClassBalanced {
                form: CbForm::Sigmoid,
                ..
            } => sigmoid_bce(z, y, k, t, grad, batch),
            Loss::ClassBalanced {
                form: CbForm::SoftmaxBce,
                ..
            } => softmax_bce(z, y, k, t, grad, batch),
            Loss::Focal { gamma } => focal(z, y, k, gamma as f64, grad, batch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central finite difference of the loss w.r.t. every logit, in f64 via tiny steps on f32
    /// logits of moderate size.
    fn check_gradient(loss: Loss, head: Head) {
        let counts = [50usize, 20, 8, 3];
        let f = LossFn::new(loss, head, &counts);
        let (b, k) = (3, 4);
        let z: Vec<f32> = (0..b * k)
            .map(|i| ((i as f32) * 0.731).sin() * 2.0)
            .collect();
        let y = [0u32, 2, 3];
        let mut g = vec![0.0; b * k];
        f.loss_and_grad(&z, &y, &mut g);
        let mut scratch = vec![0.0; b * k];
        for j in 0..b * k {
            let h = 1e-2f32;
            let mut zp = z.clone();
            zp[j] += h;
            let lp = f.loss_and_grad(&zp, &y, &mut scratch);
            let mut zm = z.clone();
            zm[j] -= h;
            let lm = f.loss_and_grad(&zm, &y, &mut scratch);
            let fd = (lp - lm) / (2.0 * h as f64);
            assert!(
                (fd - g[j] as f64).abs() < 2e-4 + 1e-3 * fd.abs(),
                "{loss:?} logit {j}: fd {fd} vs analytic {}",
                g[j]
            );
        }
    }

    #[test]
    fn every_loss_gradient_matches_finite_differences() {
        check_gradient(Loss::Ce { smoothing: 0.0 }, Head::Linear);
        check_gradient(Loss::Ce { smoothing: 0.98 }, Head::Linear);
        check_gradient(Loss::BalancedSoftmax, Head::Linear);
        check_gradient(Loss::Ldam { max_margin: 0.5 }, Head::Cosine { scale: 30.0 });
        check_gradient(
            Loss::ClassBalanced {
                beta: 0.9999,
                form: CbForm::Softmax,
            },
            Head::Linear,
        );
        check_gradient(
            Loss::ClassBalanced {
                beta: 0.9999,
                form: CbForm::Sigmoid,
            },
            Head::Linear,
        );
        check_gradient(
            Loss::ClassBalanced {
                beta: 0.9999,
                form: CbForm::SoftmaxBce,
            },
            Head::Linear,
        );
        check_gradient(Loss::Focal { gamma: 1.0 }, Head::Linear);
        check_gradient(Loss::Focal { gamma: 2.0 }, Head::Linear);
        check_gradient(Loss::Focal { gamma: 0.5 }, Head::Linear);
    }

    #[test]
    fn threads_do_not_change_loss_or_gradient() {
        let (b, k) = (300, 50);
        let counts: Vec<usize> = (1..=k).collect();
        let z: Vec<f32> = (0..b * k)
            .map(|i| ((i as f32) * 0.37).sin() * 3.0)
            .collect();
        let y: Vec<u32> = (0..b).map(|i| (i * 7 % k) as u32).collect();
        for loss in [
            Loss::Ce { smoothing: 0.98 },
            Loss::Focal { gamma: 1.0 },
            Loss::ClassBalanced {
                beta: 0.99,
                form: CbForm::SoftmaxBce,
            },
        ] {
            let f = LossFn::new(loss, Head::Linear, &counts);
            let (mut g1, mut g2) = (vec![0.0; b * k], vec![0.0; b * k]);
            let l1 = f.loss_and_grad_par(&z, &y, &mut g1, Parallelism::None);
            let l2 = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap()
                .install(|| f.loss_and_grad_par(&z, &y, &mut g2, Parallelism::Rayon(2)));
            assert_eq!(l1, l2, "{loss:?}");
            assert_eq!(g1, g2, "{loss:?}");
        }
    }

    #[test]
    fn plain_ce_by_hand() {
        // z = [0, ln 3] → p = [1/4, 3/4]; y = 1: CE = −ln(3/4); ∂ = p − onehot = [1/4, −1/4]
        let f = LossFn::new(Loss::Ce { smoothing: 0.0 }, Head::Linear, &[1, 1]);
        let mut g = vec![0.0; 2];
        let l = f.loss_and_grad(&[0.0, 3f32.ln()], &[1], &mut g);
        assert!((l - (4.0f64 / 3.0).ln()).abs() < 1e-6);
        assert!((g[0] - 0.25).abs() < 1e-6 && (g[1] + 0.25).abs() < 1e-6);
    }

    #[test]
    fn los_gradient_is_p_minus_smoothed_targets() {
        // uniform logits, K = 100: p = 0.01 everywhere; ∂ = p − q = 0.01 − 0.0298 (true), 0.01 − 0.0098
        let k = 100;
        let f = LossFn::new(Loss::Ce { smoothing: 0.98 }, Head::Linear, &vec![1; k]);
        let mut g = vec![0.0; k];
        f.loss_and_grad(&vec![0.0; k], &[7], &mut g);
        assert!((g[7] - (0.01 - 0.0298)).abs() < 1e-7);
        assert!((g[0] - (0.01 - 0.0098)).abs() < 1e-7);
    }

    #[test]
    fn balanced_softmax_shifts_by_log_counts() {
        // equal logits, counts [1, e²]: adjusted [0, 2]
        let f = LossFn::new(Loss::BalancedSoftmax, Head::Linear, &[1, 7]);
        let mut g = vec![0.0; 2];
        let l = f.loss_and_grad(&[0.0, 0.0], &[0], &mut g);
        let want = -(1.0f64 / (1.0 + 7.0)).ln();
        assert!((l - want).abs() < 1e-6, "{l} vs {want}");
    }

    #[test]
    fn focal_with_gamma_zero_is_ce() {
        let z = [0.3f32, -1.0, 2.0, 0.5];
        let (mut g1, mut g2) = (vec![0.0; 4], vec![0.0; 4]);
        let a = LossFn::new(Loss::Focal { gamma: 0.0 }, Head::Linear, &[1, 1, 1, 1]).loss_and_grad(
            &z,
            &[2],
            &mut g1,
        );
        let b = LossFn::new(Loss::Ce { smoothing: 0.0 }, Head::Linear, &[1, 1, 1, 1])
            .loss_and_grad(&z, &[2], &mut g2);
        assert!((a - b).abs() < 1e-6);
        for (x, y) in g1.iter().zip(&g2) {
            assert!((x - y).abs() < 1e-6);
        }
    }
}
