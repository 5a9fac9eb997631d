//! The seeded bootstrap over test rows: B resamples of the n test rows (with replacement),
//! drawn once per table and shared by every method, so that intervals are comparable and
//! differences are paired. A resample is stored as the multiplicity of each row, rows in
//! class order, so that a run's per-class correct counts on a resample are one dot product
//! per class segment.
//!
//! Statistics of a row of the table on resample b: All = micro accuracy, Many/Medium/Few =
//! mean per-class accuracy over the group's classes present in the resample, each averaged over
//! the row's seeds (pooled over seeds). The 95 % interval is the 2.5 and 97.5 percentiles of
//! the B values.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// The resamples of one test split.
pub struct Resamples {
    pub b: usize,
    /// The labels of the rows, in their original order.
    labels: Vec<u32>,
    n: usize,
    k: usize,
    /// Row order by class (original row indices).
    order: Vec<u32>,
    /// Class segments of `order`: class c is `order[start[c]..start[c + 1]]`.
    start: Vec<usize>,
    /// Multiplicities [b, n] of the rows in `order` (a row drawn more than 255 times in one
    /// resample, P < 1e-500 for n ≥ 256, saturates).
    counts: Vec<u8>,
    /// Rows of class c in resample b [b, k].
    class_total: Vec<u32>,
}

impl Resamples {
    /// `b` resamples of the rows with `labels` (K = `k` classes), seeded by `seed`.
    pub fn new(labels: &[u32], k: usize, b: usize, seed: u64) -> Resamples {
        let n = labels.len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|&r| labels[r as usize]);
        let mut start = vec![0usize; k + 1];
        for &y in labels {
            start[y as usize + 1] += 1;
        }
        for c in 0..k {
            start[c + 1] += start[c];
        }
        // position of each original row in `order`
        let mut pos = vec![0u32; n];
        for (p, &r) in order.iter().enumerate() {
            pos[r as usize] = p as u32;
        }
        let draws: Vec<(Vec<u8>, Vec<u32>)> = (0..b)
            .into_par_iter()
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(i as u64);
                let mut m = vec![0u8; n];
                for _ in 0..n {
                    let p = pos[rng.random_range(0..n)] as usize;
                    m[p] = m[p].saturating_add(1);
                }
                let totals = (0..k)
                    .map(|c| m[start[c]..start[c + 1]].iter().map(|&x| x as u32).sum())
                    .collect();
                (m, totals)
            })
            .collect();
        let mut counts = Vec::with_capacity(b * n);
        let mut class_total = Vec::with_capacity(b * k);
        for (m, t) in draws {
            counts.extend(m);
            class_total.extend(t);
        }
        Resamples {
            b,
            labels: labels.to_vec(),
            n,
            k,
            order,
            start,
            counts,
            class_total,
        }
    }

    /// The rows' labels, in their original order.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// A run's correctness (per original row) in class order, as a byte mask (0xFF: right).
    pub fn arrange(&self, correct: &[bool]) -> Vec<u8> {
        self.order
            .iter()
            .map(|&r| if correct[r as usize] { 0xFF } else { 0 })
            .collect()
    }

    /// The run's correct count per class on every resample [b, k], from [`Resamples::arrange`]d
    /// correctness.
    pub fn class_correct(&self, arranged: &[u8]) -> Vec<u32> {
        let (n, k) = (self.n, self.k);
        let mut out = vec![0u32; self.b * k];
        out.par_chunks_mut(k).enumerate().for_each(|(i, row)| {
            let m = &self.counts[i * n..(i + 1) * n];
            for (c, slot) in row.iter_mut().enumerate() {
                let (a, z) = (self.start[c], self.start[c + 1]);
                *slot = masked_sum(&m[a..z], &arranged[a..z]);
            }
        });
        out
    }

    /// On every resample: All (micro accuracy) and the mean per-class accuracy over the
    /// classes of each group (`group[c]` ∈ 0..g, or `None`), from per-class correct counts.
    /// Returns [b] of (all, [group means]).
    pub fn stats(
        &self,
        class_correct: &[u32],
        group: &[Option<usize>],
        groups: usize,
    ) -> Vec<(f64, Vec<f64>)> {
        let k = self.k;
        (0..self.b)
            .map(|i| {
                let cc = &class_correct[i * k..(i + 1) * k];
                let tt = &self.class_total[i * k..(i + 1) * k];
                let all = cc.iter().map(|&x| x as f64).sum::<f64>() / self.n.max(1) as f64;
                let mut sum = vec![0.0; groups];
                let mut cnt = vec![0usize; groups];
                for c in 0..k {
                    if let (Some(g), true) = (group[c], tt[c] > 0) {
                        sum[g] += cc[c] as f64 / tt[c] as f64;
                        cnt[g] += 1;
                    }
                }
                let means = sum
                    .iter()
                    .zip(&cnt)
                    .map(|(s, &n)| if n > 0 { s / n as f64 } else { f64::NAN })
                    .collect();
                (all, means)
            })
            .collect()
    }
}

/// Σ m_i over the rows whose mask is set: in blocks of 255 bytes summed in u16 lanes (no
/// overflow: 255 · 255 < 65 536; wrapping adds, so that the dev profile's overflow checks do
/// not stop the compiler from vectorising it).
fn masked_sum(m: &[u8], mask: &[u8]) -> u32 {
    let mut total = 0u32;
    for (mb, kb) in m.chunks(255).zip(mask.chunks(255)) {
        let s = mb
            .iter()
            .zip(kb)
            .fold(0u16, |a, (&x, &k)| a.wrapping_add((x & k) as u16));
        total = total.wrapping_add(s as u32);
    }
    total
}

/// The 2.5 and 97.5 percentiles of `values` (NaNs dropped; linear interpolation between
/// order statistics); `None` when nothing is left.
pub fn interval(values: &[f64]) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some((quantile(&v, 0.025), quantile(&v, 0.975)))
}

/// The q-quantile of sorted `v` (type 7, as numpy's default).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let h = (v.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

/// Two-sided bootstrap p-value of "Δ = 0" from the B paired differences: twice the smaller
/// tail share (Δ_b ≤ 0 or Δ_b ≥ 0), at most 1. Identical sides give 1.
pub fn p_value(deltas: &[f64]) -> f64 {
    let v: Vec<f64> = deltas.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    let le = v.iter().filter(|&&d| d <= 0.0).count() as f64;
    let ge = v.iter().filter(|&&d| d >= 0.0).count() as f64;
    (2.0 * le.min(ge) / v.len() as f64).min(1.0)
}

/// The two-sided 97.5 % quantile of Student's t with `df` degrees of freedom (the 95 %
/// t-interval's factor): exact table for df ≤ 30, then the Cornish–Fisher expansion.
/// (No crate of the workspace has Student's t; these are the textbook values.)
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
        2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
        2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
        2.048407, 2.045230, 2.042272,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        _ => {
            let z: f64 = 1.959963984540054;
            let d = df as f64;
            z + (z.powi(3) + z) / (4.0 * d)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resamples_are_seeded_and_keep_n_rows() {
        let labels: Vec<u32> = (0..50).map(|i| (i % 3) as u32).collect();
        let a = Resamples::new(&labels, 3, 20, 7);
        let b = Resamples::new(&labels, 3, 20, 7);
        assert_eq!(a.counts, b.counts);
        assert_ne!(a.counts, Resamples::new(&labels, 3, 20, 8).counts);
        for i in 0..20 {
            let s: u32 = a.counts[i * 50..(i + 1) * 50]
                .iter()
                .map(|&x| x as u32)
                .sum();
            assert_eq!(s, 50);
            let t: u32 = a.class_total[i * 3..(i + 1) * 3].iter().sum();
            assert_eq!(t, 50);
        }
    }

    #[test]
    fn class_counts_on_a_resample_by_hand() {
        // every row correct: the per-class correct counts are the class totals
        let labels = [0u32, 1, 1, 0, 2];
        let r = Resamples::new(&labels, 3, 5, 1);
        let cc = r.class_correct(&r.arrange(&[true; 5]));
        assert_eq!(cc, r.class_total);
        let st = r.stats(&cc, &[Some(0), Some(0), Some(1)], 2);
        assert!(st.iter().all(|(a, g)| *a == 1.0 && g[0] == 1.0));
    }

    #[test]
    fn percentiles_p_values_and_t_quantiles() {
        let v: Vec<f64> = (0..=100).map(|i| i as f64).collect();
        assert_eq!(interval(&v), Some((2.5, 97.5)));
        assert_eq!(p_value(&[0.0; 10]), 1.0);
        assert_eq!(p_value(&[1.0; 10]), 0.0);
        assert!((p_value(&[-1.0, 1.0, 2.0, 3.0]) - 0.5).abs() < 1e-12);
        assert!((t975(2) - 4.302653).abs() < 1e-6);
        assert!((t975(31) - 2.0395).abs() < 1e-3);
        assert!((t975(1000) - 1.9623).abs() < 1e-3);
    }
}
