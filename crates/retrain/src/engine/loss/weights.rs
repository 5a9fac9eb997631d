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

/// The largest and smallest class count (over classes with rows).
fn count_range(counts: &[usize]) -> (f64, f64) {
    let present = counts.iter().copied().filter(|&n| n > 0);
    let max = present.clone().max().unwrap_or(1) as f64;
    let min = present.min().unwrap_or(1) as f64;
    (max, min)
}

/// Label-aware smoothing ε_c (MiSLAS `LabelAwareSmoothing`), with x = (n_c − n_min)/(n_max −
/// n_min) (x = 1 for every class when all counts are equal): concave ε_t + (ε_h − ε_t)
/// sin(πx/2), linear ε_t + (ε_h − ε_t) x, convex ε_h + (ε_h − ε_t) sin(3π/2 + πx/2), exp
/// ε_t + (ε_h − ε_t) x^power.
pub fn las_smoothing(
    counts: &[usize],
    eps_head: f64,
    eps_tail: f64,
    shape: crate::method::LasShape,
    power: f64,
) -> Vec<f64> {
    use crate::method::LasShape;
    use std::f64::consts::FRAC_PI_2;
    let (max, min) = count_range(counts);
    counts
        .iter()
        .map(|&n| {
            let x = if max > min {
                ((n as f64 - min) / (max - min)).max(0.0)
            } else {
                1.0
            };
            let span = eps_head - eps_tail;
            match shape {
                LasShape::Concave => eps_tail + span * (FRAC_PI_2 * x).sin(),
                LasShape::Linear => eps_tail + span * x,
                LasShape::Convex => eps_head + span * (3.0 * FRAC_PI_2 + FRAC_PI_2 * x).sin(),
                LasShape::Exp => eps_tail + span * x.powf(power),
            }
        })
        .collect()
}

/// CDT's training-logit multipliers 1/a_c, a_c = (n_max/n_c)^γ.
pub fn cdt_scales(counts: &[usize], gamma: f64) -> Vec<f64> {
    let (max, _) = count_range(counts);
    counts
        .iter()
        .map(|&n| 1.0 / (max / n.max(1) as f64).powf(gamma))
        .collect()
}

/// VS loss's multipliers Δ_c = (n_c/n_max)^γ.
pub fn vs_scales(counts: &[usize], gamma: f64) -> Vec<f64> {
    let (max, _) = count_range(counts);
    counts
        .iter()
        .map(|&n| (n as f64 / max).powf(gamma))
        .collect()
}

/// Smooth class-sensitive weights w_c = (n_min/n_c)^γ (BagofTricks CS-CE).
pub fn power_weights(counts: &[usize], gamma: f64) -> Vec<f64> {
    let (_, min) = count_range(counts);
    counts
        .iter()
        .map(|&n| (min / n.max(1) as f64).powf(gamma))
        .collect()
}

/// Generalised re-weighting (DisAlign): w_c ∝ π_c^(−ρ), normalised to Σ_c w_c = K.
pub fn prior_weights(counts: &[usize], rho: f64) -> Vec<f64> {
    let raw: Vec<f64> = log_priors(counts)
        .iter()
        .map(|lp| (-rho * lp).exp())
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|w| w * counts.len() as f64 / sum).collect()
}

/// Balanced BCE's offsets log π_c − log(1 − π_c).
pub fn bal_bce_offsets(counts: &[usize]) -> Vec<f64> {
    let total: usize = counts.iter().sum();
    counts
        .iter()
        .map(|&n| {
            let p = n as f64 / total as f64;
            p.ln() - (1.0 - p).ln()
        })
        .collect()
}

/// GCL's per-class noise scale σ_c = (log n_max − log n_c)/(log n_max − log n_min) (0 for
/// every class when all counts are equal).
pub fn gcl_sigma(counts: &[usize]) -> Vec<f64> {
    let (max, min) = count_range(counts);
    let span = max.ln() - min.ln();
    counts
        .iter()
        .map(|&n| {
            if span > 0.0 {
                (max.ln() - (n.max(1) as f64).ln()) / span
            } else {
                0.0
            }
        })
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

    /// Counts [60, 35, 17, 8] (the parity bank), worked by hand.
    #[test]
    fn zoo_constants_on_a_toy() {
        let n = [60usize, 35, 17, 8];
        // LAS concave: x = (n − 8)/52; ε = 0.1 + 0.3 sin(πx/2)
        let e = las_smoothing(&n, 0.4, 0.1, crate::method::LasShape::Concave, 3.0);
        assert!((e[0] - 0.4).abs() < 1e-12 && (e[3] - 0.1).abs() < 1e-12);
        let x1 = 27.0f64 / 52.0;
        assert!((e[1] - (0.1 + 0.3 * (std::f64::consts::FRAC_PI_2 * x1).sin())).abs() < 1e-12);
        let lin = las_smoothing(&n, 0.4, 0.1, crate::method::LasShape::Linear, 3.0);
        assert!((lin[2] - (0.1 + 0.3 * 9.0 / 52.0)).abs() < 1e-12);
        let cvx = las_smoothing(&n, 0.4, 0.1, crate::method::LasShape::Convex, 3.0);
        assert!((cvx[0] - 0.4).abs() < 1e-12 && (cvx[3] - 0.1).abs() < 1e-12);
        // CDT: 1/a = (n/60)^0.2; VS Δ the same numbers
        let c = cdt_scales(&n, 0.2);
        assert!((c[3] - (8.0f64 / 60.0).powf(0.2)).abs() < 1e-12 && c[0] == 1.0);
        for (a, b) in c.iter().zip(vs_scales(&n, 0.2)) {
            assert!((a - b).abs() < 1e-12);
        }
        // CS-CE: 8/n
        let w = power_weights(&n, 1.0);
        assert!((w[0] - 8.0 / 60.0).abs() < 1e-12 && w[3] == 1.0);
        // GRW ρ = 0: all ones; ρ = 1: ∝ 1/n, sum K
        assert!(
            prior_weights(&n, 0.0)
                .iter()
                .all(|&v| (v - 1.0).abs() < 1e-12)
        );
        let g = prior_weights(&n, 1.0);
        let inv: f64 = n.iter().map(|&v| 1.0 / v as f64).sum();
        assert!((g[3] - 4.0 * (1.0 / 8.0) / inv).abs() < 1e-12);
        // Bal-BCE: logit(π); GCL σ: 0 for the head, 1 for the tail
        assert!((bal_bce_offsets(&n)[0] - (0.5f64 / 0.5).ln()).abs() < 1e-12);
        let s = gcl_sigma(&n);
        assert!(s[0].abs() < 1e-12 && (s[3] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn ldam_margins_at_ir100() {
        let m = ldam_margins(&exponential_counts(500.0, 100, 100.0), 0.5);
        assert!((m[0] - 0.158).abs() < 5e-4, "head {}", m[0]);
        assert!((m[99] - 0.5).abs() < 1e-12);
    }
}
