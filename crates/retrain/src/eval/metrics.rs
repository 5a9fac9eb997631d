//! Evaluation of a head on a split: top-1 (micro), per-class correct counts, ECE (15
//! equal-width confidence bins), NLL, and the paper's per-class logit statistics:
//!
//! - LoMa_i = mean of logit i over samples of class i − mean of logit i over the other samples;
//! - RSD_i = std of logit i over samples of class i (population std) / LoMa_i.
//!
//! With `tta`, the logits are the mean of those of `features` and `features_flip` (the LOS and
//! LTWB flip test-time augmentation), when the split has `features_flip`.
//!
//! An [`Evaluation`] holds only what the run produced: nothing in it depends on a choice made
//! when the tables are built. Many/Medium/Few are computed from the per-class counts by
//! [`Evaluation::group_accuracy`] with the shot groups of the table being built, so a resumed
//! table with other `--many-above/--few-below` is the same as a fresh one.

use crate::engine::head::EvalHead;
use crate::engine::linalg::Parallelism;
use bank::{ShotGroup, Split};

/// Number of confidence bins of the ECE.
pub const ECE_BINS: usize = 15;
const CHUNK: usize = 2048;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// Micro top-1 accuracy in [0, 1].
    pub top1: f64,
    /// Correctly classified samples per class.
    pub per_class_correct: Vec<usize>,
    /// Samples per class in this split.
    pub per_class_count: Vec<usize>,
    pub ece: f64,
    pub nll: f64,
    #[serde(with = "nan_as_null")]
    pub loma: Vec<f64>,
    #[serde(with = "nan_as_null")]
    pub rsd: Vec<f64>,
    /// Samples predicted as each class (top-1): precision's denominator.
    #[serde(default)]
    pub per_class_predicted: Vec<usize>,
    /// Samples per class whose label is among the 5 largest logits.
    #[serde(default)]
    pub per_class_top5: Vec<usize>,
    /// Per-row predictions (kept beside the records, not in them: see `output::predictions`).
    #[serde(skip)]
    pub predictions: Option<Predictions>,
}

/// What a run predicted for each row of a split, in row order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Predictions {
    /// Top-1 label.
    pub pred: Vec<u32>,
    /// Softmax probability of the true label.
    pub p_true: Vec<f32>,
    /// The 5 largest logits' labels, best first (fewer classes: padded with the last).
    pub top5: Vec<[u32; 5]>,
}

/// JSON has no NaN: store it as null.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|x| x.is_finite().then_some(*x))
            .collect::<Vec<Option<f64>>>()
            .serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Option<f64>>::deserialize(d)?
            .into_iter()
            .map(|x| x.unwrap_or(f64::NAN))
            .collect())
    }
}

impl Evaluation {
    /// Accuracy per class (NaN for a class without samples in this split).
    pub fn per_class(&self) -> Vec<f64> {
        (0..self.per_class_count.len())
            .map(|c| self.class_accuracy(c))
            .collect()
    }

    /// Accuracy of class `c` (NaN when the split has no sample of it).
    pub fn class_accuracy(&self, c: usize) -> f64 {
        match self.per_class_count[c] {
            0 => f64::NAN,
            t => self.per_class_correct[c] as f64 / t as f64,
        }
    }

    /// Mean per-class accuracy over the classes of `group` (`groups[c]` is the group of class
    /// c) that have samples in this split; `None` when there are none.
    pub fn group_accuracy(&self, groups: &[ShotGroup], group: ShotGroup) -> Option<f64> {
        let accs: Vec<f64> = self
            .per_class()
            .into_iter()
            .zip(groups)
            .filter(|(a, g)| **g == group && !a.is_nan())
            .map(|(a, _)| a)
            .collect();
        (!accs.is_empty()).then(|| accs.iter().sum::<f64>() / accs.len() as f64)
    }

    /// Top-5 accuracy (micro).
    pub fn top5(&self) -> f64 {
        let n: usize = self.per_class_count.iter().sum();
        self.per_class_top5.iter().sum::<usize>() as f64 / n.max(1) as f64
    }

    /// The per-class accuracies of the classes in `keep` (those with samples in the split).
    fn accuracies(&self, keep: &dyn Fn(usize) -> bool) -> Vec<f64> {
        (0..self.per_class_count.len())
            .filter(|&c| keep(c) && self.per_class_count[c] > 0)
            .map(|c| self.class_accuracy(c))
            .collect()
    }

    /// A mean of the per-class accuracies of the classes in `keep` that is 0 when one of them
    /// is 0: `combine` gets the (all positive) accuracies; `None` without such classes.
    fn zero_absorbing(
        &self,
        keep: &dyn Fn(usize) -> bool,
        combine: fn(&[f64]) -> f64,
    ) -> Option<f64> {
        let a = self.accuracies(keep);
        if a.is_empty() {
            None
        } else if a.contains(&0.0) {
            Some(0.0)
        } else {
            Some(combine(&a))
        }
    }

    /// Harmonic mean of the per-class accuracies of the classes in `keep` (0 when one is 0;
    /// LIFT's hmean); `None` without such classes.
    pub fn hmean(&self, keep: &dyn Fn(usize) -> bool) -> Option<f64> {
        self.zero_absorbing(keep, |a| {
            a.len() as f64 / a.iter().map(|x| 1.0 / x).sum::<f64>()
        })
    }

    /// Geometric mean of the per-class accuracies of the classes in `keep` (0 when one is 0).
    pub fn gmean(&self, keep: &dyn Fn(usize) -> bool) -> Option<f64> {
        self.zero_absorbing(keep, |a| {
            (a.iter().map(|x| x.ln()).sum::<f64>() / a.len() as f64).exp()
        })
    }

    /// Macro precision and macro F1 over the classes in `keep` that have samples: precision_c
    /// = TP_c / predicted_c (0 when nothing is predicted as c), F1_c = 2 TP_c / (predicted_c +
    /// count_c).
    pub fn macro_precision_f1(&self, keep: &dyn Fn(usize) -> bool) -> Option<(f64, f64)> {
        let classes: Vec<usize> = (0..self.per_class_count.len())
            .filter(|&c| keep(c) && self.per_class_count[c] > 0)
            .collect();
        if classes.is_empty() || self.per_class_predicted.len() != self.per_class_count.len() {
            return None;
        }
        let (mut p, mut f) = (0.0, 0.0);
        for &c in &classes {
            let tp = self.per_class_correct[c] as f64;
            let pred = self.per_class_predicted[c] as f64;
            p += if pred > 0.0 { tp / pred } else { 0.0 };
            f += 2.0 * tp / (pred + self.per_class_count[c] as f64);
        }
        let n = classes.len() as f64;
        Some((p / n, f / n))
    }

    /// Mean of the per-class accuracies (classes present in the split): equal to top-1 on a
    /// balanced split, and the selection criterion on an imbalanced one (a held-out slice of
    /// a long-tailed train split would otherwise reward head-biased heads).
    pub fn balanced(&self) -> f64 {
        let v: Vec<f64> = self
            .per_class()
            .into_iter()
            .filter(|a| a.is_finite())
            .collect();
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    }
}

/// Sums from which every metric is computed; filled chunk by chunk.
#[derive(Debug, Clone)]
pub struct Tally {
    k: usize,
    rows: usize,
    correct: usize,
    class_correct: Vec<usize>,
    class_count: Vec<usize>,
    bin_count: [usize; ECE_BINS],
    bin_conf: [f64; ECE_BINS],
    bin_correct: [usize; ECE_BINS],
    nll: f64,
    true_sum: Vec<f64>,
    true_sumsq: Vec<f64>,
    all_sum: Vec<f64>,
    class_predicted: Vec<usize>,
    class_top5: Vec<usize>,
    /// Per-row predictions, when kept ([`Tally::keeping`]).
    predictions: Option<Predictions>,
}

impl Tally {
    pub fn new(k: usize) -> Tally {
        Tally {
            k,
            rows: 0,
            correct: 0,
            class_correct: vec![0; k],
            class_count: vec![0; k],
            bin_count: [0; ECE_BINS],
            bin_conf: [0.0; ECE_BINS],
            bin_correct: [0; ECE_BINS],
            nll: 0.0,
            true_sum: vec![0.0; k],
            true_sumsq: vec![0.0; k],
            all_sum: vec![0.0; k],
            class_predicted: vec![0; k],
            class_top5: vec![0; k],
            predictions: None,
        }
    }

    /// A tally that also keeps every row's prediction (the run's final test evaluation; the
    /// per-epoch ones for selection do not need them).
    pub fn keeping(k: usize) -> Tally {
        Tally {
            predictions: Some(Predictions::default()),
            ..Tally::new(k)
        }
    }

    /// Add logits `z` [rows, K] of samples with labels `y`.
    pub fn add(&mut self, z: &[f32], y: &[u32]) {
        let k = self.k;
        for (row, &yi) in z.chunks_exact(k).zip(y) {
            let yi = yi as usize;
            let (mut arg, mut max) = (0usize, f32::NEG_INFINITY);
            for (c, &v) in row.iter().enumerate() {
                if v > max {
                    max = v;
                    arg = c;
                }
            }
            let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
            let conf = 1.0 / sum; // p of the argmax
            let ok = arg == yi;
            let top5 = top5(row, arg);
            self.class_predicted[arg] += 1;
            if top5.contains(&(yi as u32)) {
                self.class_top5[yi] += 1;
            }
            if let Some(p) = &mut self.predictions {
                p.pred.push(arg as u32);
                p.p_true.push((((row[yi] - max) as f64).exp() / sum) as f32);
                p.top5.push(top5);
            }
            self.rows += 1;
            self.class_count[yi] += 1;
            if ok {
                self.correct += 1;
                self.class_correct[yi] += 1;
            }
            self.nll += sum.ln() - (row[yi] - max) as f64;
            let bin = ((conf * ECE_BINS as f64).ceil() as usize).clamp(1, ECE_BINS) - 1;
            self.bin_count[bin] += 1;
            self.bin_conf[bin] += conf;
            self.bin_correct[bin] += ok as usize;
            let zy = row[yi] as f64;
            self.true_sum[yi] += zy;
            self.true_sumsq[yi] += zy * zy;
            for (s, &v) in self.all_sum.iter_mut().zip(row) {
                *s += v as f64;
            }
        }
    }

    pub fn finish(self) -> Evaluation {
        let n = self.rows.max(1) as f64;
        let ece = (0..ECE_BINS)
            .filter(|&b| self.bin_count[b] > 0)
            .map(|b| {
                let nb = self.bin_count[b] as f64;
                (nb / n) * (self.bin_correct[b] as f64 / nb - self.bin_conf[b] / nb).abs()
            })
            .sum();
        let mut loma = vec![f64::NAN; self.k];
        let mut rsd = vec![f64::NAN; self.k];
        for i in 0..self.k {
            let ni = self.class_count[i];
            let others = self.rows - ni;
            if ni == 0 || others == 0 {
                continue;
            }
            let mean_true = self.true_sum[i] / ni as f64;
            let mean_other = (self.all_sum[i] - self.true_sum[i]) / others as f64;
            loma[i] = mean_true - mean_other;
            let var = (self.true_sumsq[i] / ni as f64 - mean_true * mean_true).max(0.0);
            rsd[i] = var.sqrt() / loma[i];
        }
        Evaluation {
            top1: self.correct as f64 / n,
            per_class_correct: self.class_correct.clone(),
            per_class_count: self.class_count.clone(),
            ece,
            nll: self.nll / n,
            loma,
            rsd,
            per_class_predicted: self.class_predicted,
            per_class_top5: self.class_top5,
            predictions: self.predictions,
        }
    }
}

/// The labels of the 5 largest logits of `row`, best first (ties go to the lower label, as for
/// the top-1, so `[0]` is `arg`); fewer than 5 classes repeat the last one. One pass over the
/// row, keeping the best five in order.
fn top5(row: &[f32], arg: usize) -> [u32; 5] {
    let mut label = [arg as u32; 5];
    let mut value = [f32::NEG_INFINITY; 5];
    let mut n = 0usize;
    for (c, &v) in row.iter().enumerate() {
        if n == 5 && v <= value[4] {
            continue;
        }
        // after every kept value ≥ v: equal logits keep the lower label first
        let mut at = n.min(4);
        while at > 0 && value[at - 1] < v {
            at -= 1;
        }
        let end = n.min(4);
        for j in (at..end).rev() {
            value[j + 1] = value[j];
            label[j + 1] = label[j];
        }
        value[at] = v;
        label[at] = c as u32;
        n = (n + 1).min(5);
    }
    for i in n..5 {
        label[i] = label[n - 1];
    }
    debug_assert_eq!(label[0], arg as u32);
    label
}

/// Evaluate `head` on `split`, keeping every row's prediction.
pub fn evaluate(head: &EvalHead, split: &Split, tta: bool, par: Parallelism) -> Evaluation {
    evaluate_with(head, split, tta, par, true)
}

/// [`evaluate`]; with `keep` false, without the per-row predictions (counts only).
pub fn evaluate_with(
    head: &EvalHead,
    split: &Split,
    tta: bool,
    par: Parallelism,
    keep: bool,
) -> Evaluation {
    let (k, d) = (head.num_classes, head.dim);
    let mut tally = if keep {
        Tally::keeping(k)
    } else {
        Tally::new(k)
    };
    let mut z = vec![0.0f32; CHUNK * k];
    let mut z2 = vec![0.0f32; if tta { CHUNK * k } else { 0 }];
    let mut scratch = Vec::new();
    let x = split.features();
    let flip = if tta {
        split.features_flip.as_ref().map(|f| f.as_slice())
    } else {
        None
    };
    for start in (0..split.rows).step_by(CHUNK) {
        let rows = CHUNK.min(split.rows - start);
        head.logits(&x[start * d..], rows, &mut z, &mut scratch, par);
        if let Some(f) = flip {
            head.logits(&f[start * d..], rows, &mut z2, &mut scratch, par);
            for (a, b) in z[..rows * k].iter_mut().zip(&z2[..rows * k]) {
                *a = 0.5 * (*a + b);
            }
        }
        tally.add(&z[..rows * k], &split.labels[start..start + rows]);
    }
    tally.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loma_and_rsd_on_a_hand_made_logit_matrix() {
        // 2 classes; class 0 samples: logit0 = 3, 5; class 1 samples: logit0 = 1, 1
        // LoMa_0 = 4 − 1 = 3; std over class-0 samples of logit 0 = 1 → RSD_0 = 1/3
        // logit1: class 1 samples 2, 4 (mean 3, std 1); class 0 samples 0, 0 → LoMa_1 = 3
        let z = [3.0, 0.0, 5.0, 0.0, 1.0, 2.0, 1.0, 4.0];
        let y = [0, 0, 1, 1];
        let mut t = Tally::new(2);
        t.add(&z, &y);
        let e = t.finish();
        let groups = [ShotGroup::Many, ShotGroup::Few];
        assert!((e.loma[0] - 3.0).abs() < 1e-12 && (e.loma[1] - 3.0).abs() < 1e-12);
        assert!((e.rsd[0] - 1.0 / 3.0).abs() < 1e-12 && (e.rsd[1] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.top1, 1.0);
        assert_eq!(
            ShotGroup::ALL.map(|g| e.group_accuracy(&groups, g)),
            [Some(1.0), None, Some(1.0)]
        );
    }

    #[test]
    fn ece_by_hand() {
        // two samples, both predicted with confidence p = e/(1+e) ≈ 0.731 (bin 11: (0.7333..]?
        // 0.731*15 = 10.97 → ceil 11 → bin 10); one right, one wrong: acc 0.5 → ECE = |0.5 − 0.731|
        let z = [1.0, 0.0, 1.0, 0.0];
        let mut t = Tally::new(2);
        t.add(&z, &[0, 1]);
        let e = t.finish();
        let p = 1f64.exp() / (1.0 + 1f64.exp());
        assert!((e.ece - (p - 0.5)).abs() < 1e-6, "{}", e.ece);
        assert!((e.nll - 0.5 * ((-p.ln()) + (-(1.0 - p).ln()))).abs() < 1e-6);
        assert_eq!(e.per_class(), vec![1.0, 0.0]);
    }

    /// 3 classes: counts 2/1/1, predictions by hand.
    #[test]
    fn top5_hmean_gmean_precision_f1_by_hand() {
        // rows: (y=0, pred 0), (y=0, pred 1), (y=1, pred 1), (y=2, pred 1)
        let z = [3.0, 1.0, 0.0, 0.0, 2.0, 1.0, 0.0, 2.0, 1.0, 0.5, 2.0, 1.0];
        let mut t = Tally::keeping(3);
        t.add(&z, &[0, 0, 1, 2]);
        let e = t.finish();
        assert_eq!(e.per_class_predicted, vec![1, 3, 0]);
        // K = 3 < 5: every label is in the top 5
        assert_eq!(e.top5(), 1.0);
        let p = e.predictions.as_ref().unwrap();
        assert_eq!(p.pred, vec![0, 1, 1, 1]);
        assert_eq!(p.top5[0], [0, 1, 2, 2, 2]);
        assert_eq!(p.top5[3], [1, 2, 0, 0, 0]);
        let s: f64 = [2f64, 1.0, 0.5].iter().map(|v| v.exp()).sum();
        assert!((p.p_true[3] as f64 - 1f64.exp() / s).abs() < 1e-6);
        let all = |_: usize| true;
        // accuracies 0.5, 1, 0: hmean and gmean 0; without class 2: 2/(2 + 1) and √0.5
        assert_eq!(e.hmean(&all), Some(0.0));
        assert!((e.hmean(&|c| c < 2).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.gmean(&|c| c < 2).unwrap() - 0.5f64.sqrt()).abs() < 1e-12);
        // precision: 1/1, 1/3, 0 (nothing predicted) → 4/9; F1: 2/3, 2·1/4, 0 → (2/3 + 1/2)/3
        let (mp, mf) = e.macro_precision_f1(&all).unwrap();
        assert!((mp - 4.0 / 9.0).abs() < 1e-12 && (mf - (2.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn top5_of_ten_classes_in_order() {
        let row: Vec<f32> = [5.0, 1.0, 9.0, 3.0, 7.0, 0.0, 8.0, 2.0, 6.0, 4.0].to_vec();
        assert_eq!(top5(&row, 2), [2, 6, 4, 8, 0]);
        // ties: the lower label first, as the argmax
        assert_eq!(
            top5(&[1.0, 3.0, 3.0, 1.0, 3.0, 0.0, 1.0], 1),
            [1, 2, 4, 0, 3]
        );
        assert_eq!(top5(&[2.0, 2.0], 0), [0, 1, 1, 1, 1]);
    }

    /// The one-pass top 5 equals sorting every logit (value descending, label ascending).
    #[test]
    fn top5_equals_a_full_sort() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for _ in 0..200 {
            let k = rng.random_range(5..40);
            // few distinct values: many ties
            let row: Vec<f32> = (0..k).map(|_| rng.random_range(0..6) as f32).collect();
            let mut idx: Vec<usize> = (0..k).collect();
            idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let want: Vec<u32> = idx[..5].iter().map(|&i| i as u32).collect();
            assert_eq!(top5(&row, idx[0]).to_vec(), want, "{row:?}");
        }
    }

    #[test]
    fn perfectly_calibrated_bins_give_zero_ece() {
        // confidence 1 (huge margin) and always right
        let mut t = Tally::new(2);
        t.add(&[100.0, 0.0, 0.0, 100.0], &[0, 1]);
        assert!(t.finish().ece < 1e-12);
    }
}
