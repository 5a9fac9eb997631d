//! Paired comparison of two sets of runs on the same test rows: the difference of a
//! statistic on the same bootstrap resamples ([`super::bootstrap`]), and McNemar's exact test
//! on per-row correctness.

/// McNemar's exact test: `b` rows right on side A only, `c` on side B only; the two-sided
/// binomial p-value min(1, 2·P(X ≤ min(b, c))), X ~ Bin(b + c, 1/2) (1 when b + c = 0).
/// The tail is summed in log space term by term (exact to ~1e-12 relative for any n).
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let m = b.min(c);
    // ln C(n, 0) − n ln 2, then ln C(n, k+1) = ln C(n, k) + ln((n − k)/(k + 1))
    let mut t = -(n as f64) * std::f64::consts::LN_2;
    let mut terms = Vec::with_capacity(m as usize + 1);
    for k in 0..=m {
        terms.push(t);
        t += ((n - k) as f64).ln() - ((k + 1) as f64).ln();
    }
    let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let tail = max.exp() * terms.iter().map(|x| (x - max).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

/// Discordant counts of two runs' per-row correctness: (right on A only, right on B only).
pub fn discordant(a: &[bool], b: &[bool]) -> (u64, u64) {
    a.iter().zip(b).fold((0, 0), |(x, y), (&p, &q)| {
        (x + (p && !q) as u64, y + (!p && q) as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand numbers: b = 1, c = 9 → 2·(1 + 10)/1024; b = 0, c = 5 → 2/32; b = c → 1 when the
    /// tail reaches the middle; and n = 100, k = 40: 2·Σ_{j≤40} C(100, j)/2^100 =
    /// 0.0568879336409808 (the exact rational, computed with Python's fractions).
    #[test]
    fn exact_binomial_tails_by_hand() {
        assert!((mcnemar_exact(1, 9) - 22.0 / 1024.0).abs() < 1e-15);
        assert!((mcnemar_exact(9, 1) - 22.0 / 1024.0).abs() < 1e-15);
        assert!((mcnemar_exact(0, 5) - 2.0 / 32.0).abs() < 1e-15);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(7, 7), 1.0);
        assert!((mcnemar_exact(40, 60) - 0.05688793364098079).abs() < 1e-12);
        // a huge, lopsided table underflows nothing: p is tiny but positive
        let p = mcnemar_exact(100, 400);
        assert!(p > 0.0 && p < 1e-30, "{p}");
    }

    #[test]
    fn discordant_counts() {
        let a = [true, true, false, false, true];
        let b = [true, false, true, false, false];
        assert_eq!(discordant(&a, &b), (2, 1));
        assert_eq!(discordant(&a, &a), (0, 0));
    }
}
