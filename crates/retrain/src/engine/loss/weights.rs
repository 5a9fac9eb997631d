//! Per-class constants the losses and post-hoc rules need, computed once per bank from the
//! training counts n_c.

/// PyTorch `label_smoothing` targets (Eq. 12 of the paper): `(q_true, q_other)` =
/// `(1 − δ + δ/K, δ/K)`. For K = 100, δ = 0.98: (0.0298, 0.0098).
pub fn smoothed_targets(num_classes: usize, delta: f64) -> (f64, f64) {
    let other = delta / num_classes as f64;
    (1.0 - delta + other, other)
}

/// Class-balanced weights (Cui et al. 2019): `w_c = (1 − β)/(1 − β^n_c)`, normalised so that
/// `Σ_c w_c = K`. β = 0 gives all ones.
pub fn class_balanced_weights(counts: &[usize], beta: f64) -> Vec<f64> {
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| (1.0 - beta) / (1.0 - beta.powf(n as f64)))
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|w| w * counts.len() as f64 / sum).collect()
}

/// LDAM margins: `m_c = n_c^(−1/4)`, rescaled so that `max_c m_c = max_margin`.
pub fn ldam_margins(counts: &[usize], max_margin: f64) -> Vec<f64> {
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| 1.0 / (n as f64).sqrt().sqrt())
        .collect();
    let max = raw.iter().cloned().fold(f64::MIN, f64::max);
    raw.iter().map(|m| m * max_margin / max).collect()
}

/// `log n_c` (balanced softmax adds it to the logits in training).
pub fn log_counts(counts: &[usize]) -> Vec<f64> {
    counts.iter().map(|&n| (n as f64).ln()).collect()
}

/// `log π_c = log(n_c / N)` (post-hoc logit adjustment subtracts τ times it).
pub fn log_priors(counts: &[usize]) -> Vec<f64> {
    let total: usize = counts.iter().sum();
    counts
        .iter()
        .map(|&n| (n as f64 / total as f64).ln())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bank::profile::exponential_counts;

    #[test]
    fn los_targets_for_k100_delta098() {
        let (t, o) = smoothed_targets(100, 0.98);
        assert!((t - 0.0298).abs() < 1e-12 && (o - 0.0098).abs() < 1e-12);
        // they are a distribution
        assert!((t + 99.0 * o - 1.0).abs() < 1e-12);
    }

    #[test]
    fn class_balanced_weights_at_ir100() {
        let w = class_balanced_weights(&exponential_counts(500.0, 100, 100.0), 0.9999);
        assert!((w[0] - 0.0449).abs() < 5e-5, "head {}", w[0]);
        assert!((w[99] - 4.378).abs() < 5e-4, "tail {}", w[99]);
        assert!((w.iter().sum::<f64>() - 100.0).abs() < 1e-9);
        assert!(
            class_balanced_weights(&[5, 500], 0.0)
                .iter()
                .all(|&x| (x - 1.0).abs() < 1e-12)
        );
    }

    #[test]
    fn ldam_margins_at_ir100() {
        let m = ldam_margins(&exponential_counts(500.0, 100, 100.0), 0.5);
        assert!((m[0] - 0.158).abs() < 5e-4, "head {}", m[0]);
        assert!((m[99] - 0.5).abs() < 1e-12);
    }
}
