//! Minibatch order (r_s of the paper). A sampler's RNG depends only on the seed and the
//! sampler kind, so all methods that share a sampler see the same batches for a seed.

use crate::method::{CLASS_AWARE_ROWS, Sampler};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub struct EpochSampler {
    kind: Sampler,
    shuffle: bool,
    rng: ChaCha8Rng,
    rows: usize,
    by_class: Vec<Vec<u32>>,
    /// The epoch the next call draws, and how many there are (progressive sampling).
    epoch: usize,
    epochs: usize,
    /// The minibatch size (class-aware sampling draws whole batches only).
    batch: usize,
    /// Class-aware sampling's cycles, carried across epochs: the class order and its position,
    /// and each class's row order and position.
    class_cycle: (Vec<u32>, usize),
    row_cycles: Vec<(Vec<u32>, usize)>,
}

/// The class probabilities of a class-wise sampler at epoch `epoch` (0-based) of `epochs`,
/// for train counts `counts` (classes without rows get 0, the rest renormalised):
/// square-root p_c ∝ √n_c; progressive p_c = (1 − t)·π_c + t/K with t = e/(E − 1)
/// (Decoupling's `np.linspace(0, 1, E)`; t = 0 when E = 1); effective-number
/// p_c ∝ n_c·(1 − β)/(1 − β^n_c), β = 0.9999; class-balanced and class-aware 1/K.
pub fn class_probabilities(
    kind: Sampler,
    counts: &[usize],
    epoch: usize,
    epochs: usize,
) -> Vec<f64> {
    let k = counts.len() as f64;
    let total: usize = counts.iter().sum();
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| {
            let n = n as f64;
            match kind {
                Sampler::SquareRoot => n.sqrt(),
                Sampler::Progressive => {
                    let t = if epochs > 1 {
                        epoch as f64 / (epochs - 1) as f64
                    } else {
                        0.0
                    };
                    (1.0 - t) * n / total as f64 + t / k
                }
                Sampler::EffectiveNumber => {
                    const BETA: f64 = 0.9999;
                    n * (1.0 - BETA) / (1.0 - BETA.powf(n))
                }
                Sampler::ClassBalanced | Sampler::ClassAware => 1.0,
                Sampler::InstanceBalanced => n,
            }
        })
        .zip(counts)
        .map(|(p, &n)| if n == 0 { 0.0 } else { p })
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|p| p / sum).collect()
}

/// Which of `count` train views each of `rows` rows uses in epoch `epoch` of a run with seed
/// `seed`: uniform draws from a stream of their own (the same for every method of a seed, so
/// heads that share a batch sequence share their views).
pub fn view_choices(seed: u64, epoch: usize, rows: usize, count: usize) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1000 + epoch as u64);
    (0..rows)
        .map(|_| rng.random_range(0..count as u32))
        .collect()
}

impl EpochSampler {
    /// `shuffle = false` keeps file order (instance-balanced only; for parity tests).
    pub fn new(
        kind: Sampler,
        labels: &[u32],
        num_classes: usize,
        seed: u64,
        shuffle: bool,
    ) -> EpochSampler {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1 + kind as u64);
        let mut by_class = vec![Vec::new(); num_classes];
        if kind != Sampler::InstanceBalanced {
            for (i, &l) in labels.iter().enumerate() {
                by_class[l as usize].push(i as u32);
            }
        }
        EpochSampler {
            kind,
            shuffle,
            rng,
            rows: labels.len(),
            by_class,
            epoch: 0,
            epochs: 1,
            batch: 1,
            class_cycle: (Vec::new(), 0),
            row_cycles: Vec::new(),
        }
    }

    /// The minibatch size of the run (class-aware sampling's epoch is ⌊N/B⌋·B rows).
    pub fn with_batch(mut self, batch: usize) -> EpochSampler {
        self.batch = batch.max(1);
        self
    }

    /// The number of epochs of the run (progressive sampling's E).
    pub fn with_epochs(mut self, epochs: usize) -> EpochSampler {
        self.epochs = epochs;
        self
    }

    /// The row order of the next epoch (length = number of training rows).
    pub fn next_epoch(&mut self, order: &mut Vec<u32>) {
        order.clear();
        match self.kind {
            Sampler::InstanceBalanced => {
                order.extend(0..self.rows as u32);
                if self.shuffle {
                    order.shuffle(&mut self.rng);
                }
            }
            Sampler::ClassBalanced => {
                let k = self.by_class.len();
                for _ in 0..self.rows {
                    let c = &self.by_class[self.rng.random_range(0..k)];
                    order.push(c[self.rng.random_range(0..c.len())]);
                }
            }
            Sampler::ClassAware => {
                let len = self.rows / self.batch.min(self.rows).max(1) * self.batch.min(self.rows);
                self.class_aware(order, len);
            }
            Sampler::SquareRoot | Sampler::Progressive | Sampler::EffectiveNumber => {
                let counts: Vec<usize> = self.by_class.iter().map(Vec::len).collect();
                let p = class_probabilities(self.kind, &counts, self.epoch, self.epochs);
                let mut cum = Vec::with_capacity(p.len());
                let mut acc = 0.0;
                for q in &p {
                    acc += q;
                    cum.push(acc);
                }
                let last = p.iter().rposition(|&q| q > 0.0).unwrap_or(0);
                for _ in 0..self.rows {
                    let u: f64 = self.rng.random();
                    let c = cum.partition_point(|&x| x <= u).min(last);
                    let rows = &self.by_class[c];
                    order.push(rows[self.rng.random_range(0..rows.len())]);
                }
            }
        }
        self.epoch += 1;
    }

    /// `len` draws of Decoupling's `ClassAwareSampler`: `RandomCycleIter` over the classes
    /// (a permutation, reshuffled each time it wraps), and for each visited class
    /// [`CLASS_AWARE_ROWS`] consecutive rows of its own `RandomCycleIter`. Each epoch starts a
    /// new visit (the generator restarts at j = 0); the cycles carry on.
    fn class_aware(&mut self, order: &mut Vec<u32>, len: usize) {
        if self.row_cycles.is_empty() {
            // RandomCycleIter starts at the last index: the first draw wraps and shuffles
            let classes: Vec<u32> = (0..self.by_class.len() as u32)
                .filter(|&c| !self.by_class[c as usize].is_empty())
                .collect();
            let n = classes.len();
            self.class_cycle = (classes, n);
            self.row_cycles = self.by_class.iter().map(|r| (r.clone(), r.len())).collect();
        }
        let rng = &mut self.rng;
        let mut next = |cycle: &mut (Vec<u32>, usize)| {
            if cycle.1 >= cycle.0.len() {
                cycle.1 = 0;
                cycle.0.shuffle(rng);
            }
            cycle.1 += 1;
            cycle.0[cycle.1 - 1]
        };
        while order.len() < len {
            let c = next(&mut self.class_cycle) as usize;
            for _ in 0..CLASS_AWARE_ROWS.min(len - order.len()) {
                order.push(next(&mut self.row_cycles[c]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_balanced_is_a_permutation_and_seeded() {
        let labels = vec![0, 0, 0, 1, 1, 2];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        EpochSampler::new(Sampler::InstanceBalanced, &labels, 3, 7, true).next_epoch(&mut a);
        EpochSampler::new(Sampler::InstanceBalanced, &labels, 3, 7, true).next_epoch(&mut b);
        assert_eq!(a, b);
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, vec![0, 1, 2, 3, 4, 5]);
    }

    /// Counts [60, 35, 17, 8] (the parity bank), by hand.
    #[test]
    fn class_probabilities_by_hand() {
        let n = [60usize, 35, 17, 8];
        let s = class_probabilities(Sampler::SquareRoot, &n, 0, 1);
        let root: f64 = n.iter().map(|&v| (v as f64).sqrt()).sum();
        assert!((s[3] - 8f64.sqrt() / root).abs() < 1e-15);
        // progressive: π at e = 0, t = 1/2 at e = 2 of E = 5, uniform at the last epoch
        let p0 = class_probabilities(Sampler::Progressive, &n, 0, 5);
        assert!((p0[0] - 0.5).abs() < 1e-15);
        let p2 = class_probabilities(Sampler::Progressive, &n, 2, 5);
        assert!((p2[0] - (0.25 + 0.125)).abs() < 1e-15);
        let p4 = class_probabilities(Sampler::Progressive, &n, 4, 5);
        assert!(p4.iter().all(|&q| (q - 0.25).abs() < 1e-15), "{p4:?}");
        // effective number, β = 0.9999: close to uniform at these counts (n β-terms ≈ 1)
        let e = class_probabilities(Sampler::EffectiveNumber, &n, 0, 1);
        assert!(e.iter().all(|&q| (q - 0.25).abs() < 0.002), "{e:?}");
        assert!(e[0] > e[3]);
        // an empty class is never drawn
        let z = class_probabilities(Sampler::Progressive, &[5, 0, 5], 3, 4);
        assert_eq!(z[1], 0.0);
        assert!((z.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn class_wise_samplers_draw_their_probabilities() {
        let mut labels = vec![0u32; 900];
        labels.extend([1u32; 90]);
        labels.extend([2u32; 10]);
        let counts = [900usize, 90, 10];
        for kind in [Sampler::SquareRoot, Sampler::Progressive] {
            let epochs = 4;
            let mut s = EpochSampler::new(kind, &labels, 3, 5, true).with_epochs(epochs);
            let mut order = Vec::new();
            for e in 0..epochs {
                s.next_epoch(&mut order);
                let p = class_probabilities(kind, &counts, e, epochs);
                let mut seen = [0usize; 3];
                for &i in &order {
                    seen[labels[i as usize] as usize] += 1;
                }
                for c in 0..3 {
                    // 1000 draws: 4 binomial standard deviations
                    let sd = (1000.0 * p[c] * (1.0 - p[c])).sqrt();
                    assert!(
                        (seen[c] as f64 - 1000.0 * p[c]).abs() <= 4.0 * sd + 1.0,
                        "{kind:?} epoch {e}: {seen:?} vs {p:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn class_balanced_draws_classes_evenly() {
        let mut labels = vec![0u32; 900];
        labels.extend([1u32; 90]);
        labels.extend([2u32; 10]);
        let mut s = EpochSampler::new(Sampler::ClassBalanced, &labels, 3, 1, true);
        let mut counts = [0usize; 3];
        let mut order = Vec::new();
        for _ in 0..30 {
            s.next_epoch(&mut order);
            for &i in &order {
                counts[labels[i as usize] as usize] += 1;
            }
        }
        // 30 000 draws, 1/3 each: binomial sd ≈ 82
        for c in counts {
            assert!((c as i64 - 10_000).abs() < 500, "{counts:?}");
        }
    }

    /// Decoupling's class-aware draw: ⌊N/B⌋·B rows an epoch, runs of 4 rows of one class,
    /// every class once per pass of the class cycle, and each class's rows each once per pass
    /// of its own cycle.
    #[test]
    fn class_aware_cycles_classes_and_rows() {
        let mut labels = vec![0u32; 9];
        labels.extend([1u32; 5]);
        labels.extend([2u32; 2]);
        let mut s = EpochSampler::new(Sampler::ClassAware, &labels, 3, 3, true).with_batch(5);
        let mut order = Vec::new();
        s.next_epoch(&mut order);
        assert_eq!(order.len(), 15, "16 rows, batch 5: 3 whole batches");
        // 12 draws = 3 visits of 4, one per class, in some order
        let visits: Vec<u32> = order[..12]
            .chunks(4)
            .map(|v| labels[v[0] as usize])
            .collect();
        for v in order[..12].chunks(4) {
            assert!(
                v.iter()
                    .all(|&i| labels[i as usize] == labels[v[0] as usize]),
                "{order:?}"
            );
        }
        let mut sorted = visits.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2]);
        // class 2 has 2 rows: its 4 draws are both rows, twice
        let two: Vec<u32> = order[..12]
            .iter()
            .copied()
            .filter(|&i| labels[i as usize] == 2)
            .collect();
        let (mut a, mut b) = (two[..2].to_vec(), two[2..].to_vec());
        a.sort();
        b.sort();
        assert_eq!((a, b), (vec![14, 15], vec![14, 15]));
        // over many epochs the classes are drawn evenly
        let mut seen = [0usize; 3];
        for _ in 0..200 {
            s.next_epoch(&mut order);
            order
                .iter()
                .for_each(|&i| seen[labels[i as usize] as usize] += 1);
        }
        for c in seen {
            assert!((c as f64 - 1000.0).abs() < 60.0, "{seen:?}");
        }
    }
}
