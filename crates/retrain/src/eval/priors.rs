//! Shifted test priors (SADE's test-agnostic protocol): the accuracy a run would have if the
//! test classes were drawn with weights q instead of uniformly, as the exact expectation
//! Σ_c q_c·acc_c over the classes with test samples (no resampling).
//!
//! Classes are ranked by train count (rank 0 = most rows; ties by class index); `forward-R`
//! gives class c the weight ∝ R^(−rank/(K−1)) (the test is long-tailed like train),
//! `backward-R` ∝ R^(−(K−1−rank)/(K−1)) (the reverse), `uniform` 1/K.

use crate::engine::head::{EvalHead, HeadState};
use crate::method::{LogitPrior, PostHoc};

/// The imbalance ratios a shifted prior may have.
pub const RATIOS: [u32; 5] = [2, 5, 10, 25, 50];

/// One test prior of `--test-prior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestPrior {
    Uniform,
    Forward(u32),
    Backward(u32),
}

impl std::str::FromStr for TestPrior {
    type Err = String;
    fn from_str(s: &str) -> Result<TestPrior, String> {
        let s = s.trim();
        if s == "uniform" {
            return Ok(TestPrior::Uniform);
        }
        let (kind, r) = s
            .split_once('-')
            .ok_or_else(|| format!("unknown prior `{s}` (uniform, forward-R, backward-R)"))?;
        let r: u32 = r
            .parse()
            .map_err(|_| format!("`{s}`: R must be one of 2, 5, 10, 25, 50"))?;
        if !RATIOS.contains(&r) {
            return Err(format!("`{s}`: R must be one of 2, 5, 10, 25, 50, got {r}"));
        }
        match kind {
            "forward" => Ok(TestPrior::Forward(r)),
            "backward" => Ok(TestPrior::Backward(r)),
            _ => Err(format!(
                "unknown prior `{s}` (uniform, forward-R, backward-R)"
            )),
        }
    }
}

impl std::fmt::Display for TestPrior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestPrior::Uniform => write!(f, "uniform"),
            TestPrior::Forward(r) => write!(f, "forward-{r}"),
            TestPrior::Backward(r) => write!(f, "backward-{r}"),
        }
    }
}

impl TestPrior {
    /// The priors of SADE's protocol, forward-50 … uniform … backward-50.
    pub fn all() -> Vec<TestPrior> {
        let mut v: Vec<TestPrior> = RATIOS
            .iter()
            .rev()
            .map(|&r| TestPrior::Forward(r))
            .collect();
        v.push(TestPrior::Uniform);
        v.extend(RATIOS.iter().map(|&r| TestPrior::Backward(r)));
        v
    }

    /// The class weights q (summing to 1) for classes with `train_counts`.
    pub fn weights(&self, train_counts: &[usize]) -> Vec<f64> {
        let k = train_counts.len();
        let mut by_count: Vec<usize> = (0..k).collect();
        by_count.sort_by(|&a, &b| train_counts[b].cmp(&train_counts[a]).then(a.cmp(&b)));
        let mut rank = vec![0usize; k];
        for (r, &c) in by_count.iter().enumerate() {
            rank[c] = r;
        }
        let span = (k.max(2) - 1) as f64;
        let raw: Vec<f64> = (0..k)
            .map(|c| match *self {
                TestPrior::Uniform => 1.0,
                TestPrior::Forward(r) => (r as f64).powf(-(rank[c] as f64) / span),
                TestPrior::Backward(r) => (r as f64).powf(-((k - 1 - rank[c]) as f64) / span),
            })
            .collect();
        let sum: f64 = raw.iter().sum();
        raw.iter().map(|w| w / sum).collect()
    }
}

/// Σ_c q_c·acc_c / Σ_c q_c over the classes `c` with `keep(c)` and a finite accuracy (a
/// class without test samples has none); `None` when no class is left.
pub fn shifted_accuracy(q: &[f64], acc: &[f64], keep: &dyn Fn(usize) -> bool) -> Option<f64> {
    let (mut s, mut w) = (0.0, 0.0);
    for (c, (&qc, &a)) in q.iter().zip(acc).enumerate() {
        if keep(c) && a.is_finite() {
            s += qc * a;
            w += qc;
        }
    }
    (w > 0.0).then(|| s / w)
}

/// The per-class shift `--prior-correct` adds to a row's final logits for the test prior
/// `log_q`: `log q − log p̂`, where p̂ is the prior the row's logits estimate
/// ([`LogitPrior`]): the training prior π (`log_train`) or the uniform 1/K. This is LADE's
/// test-time rule (`hyperconnect/LADE` `run_networks.py:594-599`: `logits −= log π_train` for
/// a plain-CE dot-product model, `logits += log π_test` for a prior-balanced one), with the
/// paper's `+ log q` kept on the first branch too (PC-softmax, Hong et al. 2021, Eq. 7).
/// At a uniform q a balanced row's shift is exactly zero.
pub fn prior_shift(prior: LogitPrior, log_train: &[f64], log_q: &[f64]) -> Vec<f32> {
    let log_uniform = (1.0 / log_q.len() as f64).ln();
    log_q
        .iter()
        .zip(log_train)
        .map(|(&lq, &lp)| match prior {
            LogitPrior::Train => (lq - lp) as f32,
            LogitPrior::Balanced => (lq - log_uniform) as f32,
        })
        .collect()
}

/// The inference head of `head` corrected for the test prior `log_q` (train priors
/// `log_train`): the row's own inference head — its post-hoc step (τ-normalisation, logit
/// adjustment, PC-softmax) and DisAlign's gate kept — with [`prior_shift`] added to its final
/// logits.
pub fn corrected_eval_head(
    head: &HeadState,
    posthoc: PostHoc,
    prior: LogitPrior,
    log_train: &[f64],
    log_q: &[f64],
) -> EvalHead {
    let mut h = head.eval_head(posthoc, log_train);
    h.add_to_logits(&prior_shift(prior, log_train, log_q));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_ones_say_why() {
        assert_eq!("uniform".parse(), Ok(TestPrior::Uniform));
        assert_eq!("forward-10".parse(), Ok(TestPrior::Forward(10)));
        assert_eq!("backward-50".parse(), Ok(TestPrior::Backward(50)));
        assert!(
            "forward-3"
                .parse::<TestPrior>()
                .unwrap_err()
                .contains("2, 5, 10, 25, 50")
        );
        assert!(
            "sideways-2"
                .parse::<TestPrior>()
                .unwrap_err()
                .contains("unknown prior")
        );
        assert_eq!(TestPrior::Backward(5).to_string(), "backward-5");
        assert_eq!(TestPrior::all().len(), 11);
    }

    /// 3 classes, counts 10/50/5 (ranks 1, 0, 2), forward-4... R = 25: weights ∝ 25^(−rank/2)
    /// = 1/5, 1, 1/25.
    #[test]
    fn weights_by_hand() {
        let q = TestPrior::Forward(25).weights(&[10, 50, 5]);
        let s = 1.0 + 0.2 + 0.04;
        assert!((q[1] - 1.0 / s).abs() < 1e-12 && (q[0] - 0.2 / s).abs() < 1e-12);
        let b = TestPrior::Backward(25).weights(&[10, 50, 5]);
        assert!((b[2] - 1.0 / s).abs() < 1e-12 && (b[1] - 0.04 / s).abs() < 1e-12);
        assert!(
            TestPrior::Uniform
                .weights(&[1, 2])
                .iter()
                .all(|&x| x == 0.5)
        );
    }

    #[test]
    fn uniform_is_the_mean_per_class_accuracy_and_a_point_mass_is_that_class() {
        let acc = [0.9, 0.5, 0.2, f64::NAN];
        let all = |_: usize| true;
        let u = TestPrior::Uniform.weights(&[40, 30, 20, 10]);
        assert!(
            (shifted_accuracy(&u, &acc, &all).unwrap() - (0.9 + 0.5 + 0.2) / 3.0).abs() < 1e-12
        );
        let point = [0.0, 0.0, 1.0, 0.0];
        assert_eq!(shifted_accuracy(&point, &acc, &all), Some(0.2));
    }

    /// K = 2, π = (0.8, 0.2), q = (0.25, 0.75): a training-prior row gets log q − log π =
    /// (ln 0.3125, ln 3.75); a balanced one log q − ln ½ = (ln 0.5, ln 1.5); at a uniform q a
    /// balanced row gets exactly 0.
    #[test]
    fn the_shift_takes_away_the_declared_prior() {
        let lp = [0.8f64.ln(), 0.2f64.ln()];
        let lq = [0.25f64.ln(), 0.75f64.ln()];
        let t = prior_shift(LogitPrior::Train, &lp, &lq);
        assert!((t[0] - 0.3125f32.ln()).abs() < 1e-6 && (t[1] - 3.75f32.ln()).abs() < 1e-6);
        let b = prior_shift(LogitPrior::Balanced, &lp, &lq);
        assert!((b[0] - 0.5f32.ln()).abs() < 1e-6 && (b[1] - 1.5f32.ln()).abs() < 1e-6);
        for k in [2usize, 3, 10, 100, 1000] {
            let counts: Vec<usize> = (1..=k).collect();
            let u: Vec<f64> = TestPrior::Uniform
                .weights(&counts)
                .iter()
                .map(|w| w.ln())
                .collect();
            let lp: Vec<f64> = vec![0.0; k];
            assert!(
                prior_shift(LogitPrior::Balanced, &lp, &u)
                    .iter()
                    .all(|&v| v == 0.0),
                "K = {k}"
            );
        }
    }
}
