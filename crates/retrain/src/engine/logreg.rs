//! A strong reference row: class-balanced multinomial logistic regression with an L2 penalty,
//! fitted to convergence, full batch, by L-BFGS (written here, no solver crate).
//!
//! Objective, for features `x_i` [D], labels `y_i` in 0..K, class weights `w_c`:
//!
//! ```text
//! f(W, b) = (1 / Σ_i w_{y_i}) Σ_i w_{y_i} CE(W x_i + b, y_i) + (l2 / 2) ‖W‖²_F
//! ```
//!
//! with the "balanced" weights `w_c = N / (K n_c)` (sklearn's `class_weight="balanced"`;
//! `n_c` from `train_counts`, a class with `n_c = 0` gets weight 0). The bias is not
//! penalised. Gradient, with `P = softmax(X Wᵀ + b)` and `Y` one-hot:
//!
//! ```text
//! G = diag(w_{y_i} / Σw) (P − Y)          [N, K]
//! ∂W = Gᵀ X + l2 W,   ∂b = Σ_rows G
//! ```
//!
//! The products use [`crate::engine::linalg`] (f32 gemm) on blocks of rows, so memory stays at
//! `BLOCK × K` floats whatever N is; losses and gradients are accumulated in f64.
//!
//! The solver is L-BFGS with memory [`MEMORY`]: the two-loop recursion for the direction
//! (initial Hessian `γ I`, `γ = sᵀy / yᵀy`), a backtracking line search (halving from step 1)
//! that accepts on Armijo (`c1 = 1e-4`) or, near the optimum where f's decrease is below the
//! rounding noise of the f32 products, on Hager–Zhang's approximate Wolfe conditions, and
//! pairs with `sᵀy ≤ 0` skipped. It stops when
//! `‖∇f‖ ≤ tol · max(1, ‖∇f(θ₀)‖)` (converged), after `max_iter` iterations, or when the line
//! search cannot decrease f any more (the f32 products' rounding floor; not converged).
//!
//! # Shapes
//! `split.features()` [N, D] row-major, `split.labels` [N], `train_counts` [K]; the fitted
//! head is `Head::Linear` with `weight` [K, D] and `bias` [K].

use crate::engine::head::HeadState;
use crate::engine::linalg::{Parallelism, matmul_abt, matmul_atb};
use crate::method::Head;
use bank::Split;
use std::collections::VecDeque;

/// L-BFGS memory (number of (s, y) pairs kept).
pub const MEMORY: usize = 10;
/// Rows per block of the full-batch products.
const BLOCK: usize = 4096;
const ARMIJO_C1: f64 = 1e-4;
const MAX_BACKTRACKS: usize = 40;
/// Approximate Wolfe conditions (Hager & Zhang 2005): `σ φ'(0) ≤ φ'(α) ≤ (2δ − 1) φ'(0)` and
/// `φ(α) ≤ φ(0) + ε |φ(0)|`.
const WOLFE_SIGMA: f64 = 0.9;
const WOLFE_DELTA: f64 = 0.1;
const APPROX_WOLFE_EPS: f64 = 1e-6;

/// Options of [`fit_balanced_logreg`].
#[derive(Debug, Clone, Copy)]
pub struct LogRegOptions {
    /// L2 penalty on W (not b); defaults to `1e-4`.
    pub l2: f64,
    /// Most L-BFGS iterations; defaults to `200`.
    pub max_iter: usize,
    /// Convergence when `‖∇f‖ ≤ tol · max(1, ‖∇f(θ₀)‖)`; defaults to `1e-6`.
    pub tol: f64,
    /// Threading of the gemm products; defaults to `Parallelism::Rayon(0)` (all cores).
    pub par: Parallelism,
}

impl Default for LogRegOptions {
    fn default() -> Self {
        LogRegOptions {
            l2: 1e-4,
            max_iter: 200,
            tol: 1e-6,
            par: Parallelism::Rayon(0),
        }
    }
}

/// A fitted head and how the solver ended.
#[derive(Debug, Clone)]
pub struct LogRegFit {
    /// `Head::Linear`, weight [K, D], bias [K].
    pub head: HeadState,
    /// L-BFGS iterations taken.
    pub iterations: usize,
    /// The objective f at the returned parameters.
    pub final_loss: f64,
    /// Whether the gradient criterion was met.
    pub converged: bool,
}

/// Fit the class-balanced logistic regression (see the module docs) on `split`, with the
/// class counts `train_counts` (length K) giving the weights. Deterministic.
///
/// # Panics
/// If a label is not below `train_counts.len()` or the features are not `rows × dim` (a
/// [`bank::Split`] read from disk has been validated for both).
pub fn fit_balanced_logreg(
    split: &Split,
    train_counts: &[usize],
    opts: &LogRegOptions,
) -> LogRegFit {
    fit_logreg(split, &balanced_weights(train_counts), opts)
}

/// `w_c = N / (K n_c)` with `N = Σ n_c`; 0 for an empty class.
pub fn balanced_weights(train_counts: &[usize]) -> Vec<f64> {
    let k = train_counts.len() as f64;
    let n: usize = train_counts.iter().sum();
    train_counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                n as f64 / (k * c as f64)
            }
        })
        .collect()
}

/// The fit with arbitrary per-class weights (all ones: plain multinomial logistic regression).
pub(crate) fn fit_logreg(split: &Split, class_weights: &[f64], opts: &LogRegOptions) -> LogRegFit {
    let obj = Objective::new(split, class_weights, opts.l2, opts.par);
    let (k, d) = (obj.k, obj.d);
    let theta0 = vec![0.0; k * d + k];
    let res = lbfgs(&obj, theta0, opts.max_iter, opts.tol);
    let weight = res.theta[..k * d].iter().map(|&v| v as f32).collect();
    let bias = res.theta[k * d..].iter().map(|&v| v as f32).collect();
    LogRegFit {
        head: HeadState::from_linear(Head::Linear, k, d, weight, bias),
        iterations: res.iterations,
        final_loss: res.loss,
        converged: res.converged,
    }
}

/// f and ∇f over θ = [W (K·D, row-major), b (K)].
struct Objective<'a> {
    x: &'a [f32],
    labels: &'a [u32],
    n: usize,
    d: usize,
    k: usize,
    /// `w_{y_i} / Σ_j w_{y_j}` per class.
    row_weight: Vec<f64>,
    l2: f64,
    par: Parallelism,
}

impl<'a> Objective<'a> {
    fn new(split: &'a Split, class_weights: &[f64], l2: f64, par: Parallelism) -> Objective<'a> {
        let (n, d, k) = (split.rows, split.dim, class_weights.len());
        let x = split.features();
        assert_eq!(
            x.len(),
            n * d,
            "logreg: features hold {} values, not {n} × {d}",
            x.len()
        );
        assert_eq!(
            split.labels.len(),
            n,
            "logreg: {} labels for {n} rows",
            split.labels.len()
        );
        let mut total = 0.0;
        for &y in &split.labels {
            assert!((y as usize) < k, "logreg: label {y} is not below K = {k}");
            total += class_weights[y as usize];
        }
        let scale = if total > 0.0 { 1.0 / total } else { 0.0 };
        Objective {
            x,
            labels: &split.labels,
            n,
            d,
            k,
            row_weight: class_weights.iter().map(|w| w * scale).collect(),
            l2,
            par,
        }
    }

    /// f(θ), with ∇f written to `grad`.
    fn eval(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let (k, d) = (self.k, self.d);
        let w32: Vec<f32> = theta[..k * d].iter().map(|&v| v as f32).collect();
        let bias = &theta[k * d..];
        grad.fill(0.0);
        let mut z = vec![0f32; BLOCK.min(self.n.max(1)) * k];
        let mut dw = vec![0f32; k * d];
        let mut loss = 0.0;
        for start in (0..self.n).step_by(BLOCK) {
            let m = BLOCK.min(self.n - start);
            let xb = &self.x[start * d..(start + m) * d];
            let zb = &mut z[..m * k];
            matmul_abt(zb, xb, &w32, m, k, d, false, self.par);
            for (i, row) in zb.chunks_exact_mut(k).enumerate() {
                let y = self.labels[start + i] as usize;
                let rw = self.row_weight[y];
                // log-softmax in f64, then the weighted residual P − Y in place.
                let mut zmax = f64::NEG_INFINITY;
                for (c, v) in row.iter().enumerate() {
                    zmax = zmax.max(*v as f64 + bias[c]);
                }
                let mut sum = 0.0;
                for (c, v) in row.iter().enumerate() {
                    sum += (*v as f64 + bias[c] - zmax).exp();
                }
                let lse = zmax + sum.ln();
                loss += rw * (lse - (row[y] as f64 + bias[y]));
                for (c, v) in row.iter_mut().enumerate() {
                    let p = (*v as f64 + bias[c] - lse).exp();
                    let g = rw * (p - if c == y { 1.0 } else { 0.0 });
                    grad[k * d + c] += g;
                    *v = g as f32;
                }
            }
            matmul_atb(&mut dw, zb, xb, m, k, d, self.par);
            for (g, v) in grad[..k * d].iter_mut().zip(&dw) {
                *g += *v as f64;
            }
        }
        let mut pen = 0.0;
        for (g, w) in grad[..k * d].iter_mut().zip(&theta[..k * d]) {
            *g += self.l2 * w;
            pen += w * w;
        }
        loss + 0.5 * self.l2 * pen
    }
}

struct LbfgsResult {
    theta: Vec<f64>,
    loss: f64,
    iterations: usize,
    converged: bool,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// Minimise `obj` from `theta` (see the module docs for the method and stopping rules).
fn lbfgs(obj: &Objective, mut theta: Vec<f64>, max_iter: usize, tol: f64) -> LbfgsResult {
    let p = theta.len();
    let mut grad = vec![0.0; p];
    let mut f = obj.eval(&theta, &mut grad);
    let target = tol * norm(&grad).max(1.0);
    // (s, y, 1 / yᵀs), oldest first.
    let mut mem: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::with_capacity(MEMORY);
    let mut dir = vec![0.0; p];
    let mut alpha_buf = [0.0; MEMORY];
    let mut trial = vec![0.0; p];
    let mut trial_grad = vec![0.0; p];
    let mut iterations = 0;
    let mut converged = norm(&grad) <= target;
    while !converged && iterations < max_iter {
        // Two-loop recursion: dir = −H ∇f.
        dir.iter_mut().zip(&grad).for_each(|(d, g)| *d = -g);
        for (j, (s, y, rho)) in mem.iter().enumerate().rev() {
            let a = rho * dot(s, &dir);
            alpha_buf[j] = a;
            dir.iter_mut().zip(y).for_each(|(d, yv)| *d -= a * yv);
        }
        let gamma = match mem.back() {
            Some((s, y, _)) => dot(s, y) / dot(y, y),
            // First step: length 1 in parameter space at most.
            None => 1.0 / norm(&grad).max(1.0),
        };
        dir.iter_mut().for_each(|d| *d *= gamma);
        for (j, (s, y, rho)) in mem.iter().enumerate() {
            let b = rho * dot(y, &dir);
            let a = alpha_buf[j];
            dir.iter_mut().zip(s).for_each(|(d, sv)| *d += (a - b) * sv);
        }
        let mut slope = dot(&grad, &dir);
        if slope >= 0.0 {
            // Not a descent direction (memory gone stale): restart from steepest descent.
            mem.clear();
            let scale = 1.0 / norm(&grad).max(1.0);
            dir.iter_mut().zip(&grad).for_each(|(d, g)| *d = -g * scale);
            slope = dot(&grad, &dir);
        }

        // Backtracking line search from the full quasi-Newton step: Armijo, or, once the
        // decrease is below the rounding noise of f, Hager and Zhang's approximate Wolfe
        // conditions (which test the slope, computed more accurately than f).
        let mut step = 1.0;
        let mut accepted = None;
        let f_noise = APPROX_WOLFE_EPS * f.abs().max(1e-300);
        for _ in 0..MAX_BACKTRACKS {
            for ((t, th), dv) in trial.iter_mut().zip(&theta).zip(&dir) {
                *t = th + step * dv;
            }
            let ft = obj.eval(&trial, &mut trial_grad);
            if !ft.is_finite() {
                step *= 0.5;
                continue;
            }
            let armijo = ft <= f + ARMIJO_C1 * step * slope;
            let approx_wolfe = ft <= f + f_noise && {
                let new_slope = dot(&trial_grad, &dir);
                WOLFE_SIGMA * slope <= new_slope && new_slope <= (2.0 * WOLFE_DELTA - 1.0) * slope
            };
            if armijo || approx_wolfe {
                accepted = Some(ft);
                break;
            }
            step *= 0.5;
        }
        iterations += 1;
        let Some(ft) = accepted else {
            // No decrease at any step length: the rounding floor of the f32 products.
            break;
        };

        let s: Vec<f64> = trial.iter().zip(&theta).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = trial_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * norm(&s) * norm(&y) && sy > 0.0 {
            if mem.len() == MEMORY {
                mem.pop_front();
            }
            mem.push_back((s, y, 1.0 / sy));
        }
        std::mem::swap(&mut theta, &mut trial);
        std::mem::swap(&mut grad, &mut trial_grad);
        f = ft;
        converged = norm(&grad) <= target;
    }
    LbfgsResult {
        theta,
        loss: f,
        iterations,
        converged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bank::Features;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Normal};

    fn split(features: Vec<f32>, labels: Vec<u32>, dim: usize) -> Split {
        Split {
            path: "x".into(),
            rows: labels.len(),
            dim,
            features: Features::Owned(features),
            features_flip: None,
            labels,
        }
    }

    /// Gaussian blobs: class c has `counts[c]` points around `centres[c]` with std `sd`.
    fn blobs(centres: &[Vec<f32>], counts: &[usize], sd: f32, seed: u64) -> Split {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0f32, sd).unwrap();
        let dim = centres[0].len();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (c, (centre, &n)) in centres.iter().zip(counts).enumerate() {
            for _ in 0..n {
                x.extend(centre.iter().map(|m| m + noise.sample(&mut rng)));
                y.push(c as u32);
            }
        }
        split(x, y, dim)
    }

    fn predict(head: &HeadState, s: &Split) -> Vec<u32> {
        let (k, d) = (head.num_classes, head.dim);
        (0..s.rows)
            .map(|i| {
                let row = s.row(i);
                (0..k)
                    .map(|c| {
                        let w = &head.weight[c * d..(c + 1) * d];
                        row.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() + head.bias[c]
                    })
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap()
                    .0 as u32
            })
            .collect()
    }

    fn class_accuracy(pred: &[u32], s: &Split, c: u32) -> f64 {
        let (mut hit, mut n) = (0, 0);
        for (p, y) in pred.iter().zip(&s.labels) {
            if *y == c {
                n += 1;
                hit += (*p == c) as usize;
            }
        }
        hit as f64 / n as f64
    }

    /// f written out naively, in f64.
    fn naive_loss(s: &Split, w: &[f64], l2: f64, theta: &[f64]) -> f64 {
        let (d, k) = (s.dim, w.len());
        let total: f64 = s.labels.iter().map(|&y| w[y as usize]).sum();
        let mut f = 0.0;
        for i in 0..s.rows {
            let x = s.row(i);
            let z: Vec<f64> = (0..k)
                .map(|c| {
                    (0..d).map(|t| theta[c * d + t] * x[t] as f64).sum::<f64>() + theta[k * d + c]
                })
                .collect();
            let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            let y = s.labels[i] as usize;
            f += w[y] / total * (lse - z[y]);
        }
        f + 0.5 * l2 * theta[..k * d].iter().map(|v| v * v).sum::<f64>()
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let s = blobs(
            &[
                vec![1.0, 0.0, 0.5],
                vec![0.0, 1.0, -0.5],
                vec![-1.0, -1.0, 0.0],
            ],
            &[7, 4, 2],
            0.7,
            3,
        );
        let w = balanced_weights(&[7, 4, 2]);
        let l2 = 0.05;
        let obj = Objective::new(&s, &w, l2, Parallelism::None);
        let theta: Vec<f64> = (0..3 * 3 + 3)
            .map(|i| ((i as f64) * 0.7).sin() * 0.5)
            .collect();
        let mut grad = vec![0.0; theta.len()];
        let f = obj.eval(&theta, &mut grad);
        assert!((f - naive_loss(&s, &w, l2, &theta)).abs() < 1e-5, "f = {f}");
        let h = 1e-3;
        for j in 0..theta.len() {
            let (mut tp, mut tm) = (theta.clone(), theta.clone());
            tp[j] += h;
            tm[j] -= h;
            let fd = (naive_loss(&s, &w, l2, &tp) - naive_loss(&s, &w, l2, &tm)) / (2.0 * h);
            assert!(
                (fd - grad[j]).abs() < 1e-4 * (1.0 + fd.abs()),
                "θ[{j}]: analytic {} vs finite difference {fd}",
                grad[j]
            );
        }
    }

    #[test]
    fn fits_a_separable_three_class_problem() {
        let centres = [vec![3.0, 0.0], vec![0.0, 3.0], vec![-3.0, -3.0]];
        let s = blobs(&centres, &[60, 60, 60], 0.5, 1);
        let fit = fit_balanced_logreg(&s, &[60, 60, 60], &LogRegOptions::default());
        let pred = predict(&fit.head, &s);
        let acc = pred.iter().zip(&s.labels).filter(|(p, y)| p == y).count() as f64 / 180.0;
        assert!(acc > 0.99, "train accuracy {acc}");
        assert!(fit.final_loss < 0.1, "loss {}", fit.final_loss);
        assert_eq!(fit.head.kind, Head::Linear);
        assert_eq!((fit.head.weight.len(), fit.head.bias.len()), (6, 3));
        assert!(fit.iterations > 0 && fit.iterations <= 200);
    }

    #[test]
    fn converges_on_a_regularised_problem() {
        let centres = [
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0],
        ];
        let s = blobs(&centres, &[50, 30, 10], 1.0, 5);
        let opts = LogRegOptions {
            l2: 1e-2,
            tol: 1e-5,
            ..Default::default()
        };
        let fit = fit_balanced_logreg(&s, &[50, 30, 10], &opts);
        assert!(
            fit.converged,
            "not converged after {} iterations",
            fit.iterations
        );
        // At the optimum the bias gradient (Σ_rows G) vanishes too.
        let obj = Objective::new(
            &s,
            &balanced_weights(&[50, 30, 10]),
            1e-2,
            Parallelism::None,
        );
        let theta: Vec<f64> = fit
            .head
            .weight
            .iter()
            .chain(&fit.head.bias)
            .map(|&v| v as f64)
            .collect();
        let mut g = vec![0.0; theta.len()];
        obj.eval(&theta, &mut g);
        assert!(norm(&g) < 1e-3, "‖∇f‖ = {}", norm(&g));
    }

    #[test]
    fn balanced_weights_raise_rare_class_accuracy() {
        // Overlapping blobs; class 2 is rare in training, balanced in the test set.
        let centres = [vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.6]];
        let counts = [400, 400, 12];
        let train = blobs(&centres, &counts, 0.6, 11);
        let test = blobs(&centres, &[300, 300, 300], 0.6, 12);
        let opts = LogRegOptions::default();
        let balanced = fit_balanced_logreg(&train, &counts, &opts);
        let plain = fit_logreg(&train, &[1.0; 3], &opts);
        let acc_bal = class_accuracy(&predict(&balanced.head, &test), &test, 2);
        let acc_plain = class_accuracy(&predict(&plain.head, &test), &test, 2);
        assert!(
            acc_bal > acc_plain + 0.2,
            "rare-class accuracy: balanced {acc_bal}, unweighted {acc_plain}"
        );
    }

    #[test]
    fn balanced_weights_follow_n_over_k_nc() {
        let w = balanced_weights(&[100, 10, 0, 50]);
        assert!((w[0] - 160.0 / 400.0).abs() < 1e-12);
        assert!((w[1] - 160.0 / 40.0).abs() < 1e-12);
        assert_eq!(w[2], 0.0);
    }

    #[test]
    fn fits_are_deterministic() {
        let centres = [
            vec![1.0, 0.0, 0.3],
            vec![0.0, 1.0, 0.3],
            vec![0.5, 0.5, -1.0],
        ];
        let s = blobs(&centres, &[300, 100, 20], 0.8, 7);
        let opts = LogRegOptions::default();
        let a = fit_balanced_logreg(&s, &[300, 100, 20], &opts);
        let b = fit_balanced_logreg(&s, &[300, 100, 20], &opts);
        assert_eq!(a.head, b.head);
        assert_eq!(a.iterations, b.iterations);
        assert_eq!(a.final_loss.to_bits(), b.final_loss.to_bits());
    }

    #[test]
    fn blocks_give_the_same_gradient_as_one_pass() {
        // More rows than BLOCK, so the blocked accumulation is exercised.
        let centres = [vec![1.0, 0.0], vec![0.0, 1.0]];
        let s = blobs(&centres, &[BLOCK, 905], 1.0, 9);
        let w = balanced_weights(&[BLOCK, 905]);
        let obj = Objective::new(&s, &w, 0.0, Parallelism::None);
        let theta = vec![0.3, -0.2, 0.1, 0.4, 0.05, -0.05];
        let mut g = vec![0.0; 6];
        let f = obj.eval(&theta, &mut g);
        assert!((f - naive_loss(&s, &w, 0.0, &theta)).abs() < 1e-5);
        // the gradient of the naive f (central differences) over all rows at once
        let h = 1e-3;
        for j in 0..theta.len() {
            let (mut tp, mut tm) = (theta.clone(), theta.clone());
            tp[j] += h;
            tm[j] -= h;
            let fd = (naive_loss(&s, &w, 0.0, &tp) - naive_loss(&s, &w, 0.0, &tm)) / (2.0 * h);
            assert!(
                (fd - g[j]).abs() < 1e-4 * (1.0 + fd.abs()),
                "θ[{j}]: blocked gradient {} vs finite difference {fd}",
                g[j]
            );
        }
    }
}
