//! Long-tailed class profiles, as every LT repository builds them.
//!
//! Exponential profile (LOS, LTWB, LDAM, BALMS, CB): `n_c = int(img_max * (1/IR)^(c/(K-1)))`
//! for c = 0..K-1, truncated toward zero, computed with `powf` exactly as Python's `**` does.
//! CIFAR-100-LT IR=100 (img_max 500) gives 10 847 rows; Fashion-MNIST-LT IR=100 (img_max 6000)
//! gives 14 886.

/// Per-class counts of the exponential long-tail profile.
///
/// `imb_ratio` is the ratio head/tail (100 for "IR=100"); `num_classes` ≥ 1.
pub fn exponential_counts(img_max: f64, num_classes: usize, imb_ratio: f64) -> Vec<usize> {
    if num_classes == 1 {
        return vec![img_max as usize];
    }
    let imb_factor = 1.0 / imb_ratio;
    (0..num_classes)
        .map(|c| (img_max * imb_factor.powf(c as f64 / (num_classes as f64 - 1.0))) as usize)
        .collect()
}

/// The 'step' profile of LDAM/LTWB/BALMS: the first half of the classes keep `img_max`,
/// the second half get `img_max / IR`.
pub fn step_counts(img_max: f64, num_classes: usize, imb_ratio: f64) -> Vec<usize> {
    (0..num_classes)
        .map(|c| {
            if c < num_classes / 2 {
                img_max as usize
            } else {
                (img_max / imb_ratio) as usize
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar100_lt_ir100_matches_the_reference_counts() {
        let n = exponential_counts(500.0, 100, 100.0);
        assert_eq!(n.iter().sum::<usize>(), 10_847);
        assert_eq!(&n[..5], &[500, 477, 455, 434, 415]);
        assert_eq!(&n[95..], &[6, 5, 5, 5, 5]);
        assert_eq!(
            exponential_counts(500.0, 100, 50.0).iter().sum::<usize>(),
            12_608
        );
        assert_eq!(
            exponential_counts(500.0, 100, 10.0).iter().sum::<usize>(),
            19_573
        );
    }

    #[test]
    fn fashion_mnist_lt_counts() {
        let n = exponential_counts(6000.0, 10, 100.0);
        assert_eq!(n, vec![6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]);
        assert_eq!(n.iter().sum::<usize>(), 14_886);
        assert_eq!(
            exponential_counts(6000.0, 10, 10.0).iter().sum::<usize>(),
            24_516
        );
        assert_eq!(
            exponential_counts(6000.0, 10, 50.0).iter().sum::<usize>(),
            16_796
        );
    }

    #[test]
    fn step_profile_halves() {
        assert_eq!(step_counts(500.0, 4, 100.0), vec![500, 500, 5, 5]);
    }
}
