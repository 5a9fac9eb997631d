//! Minibatch order (r_s of the paper). A sampler's RNG depends only on the seed and the
//! sampler kind, so all methods that share a sampler see the same batches for a seed.

use crate::method::Sampler;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub struct EpochSampler {
    kind: Sampler,
    shuffle: bool,
    rng: ChaCha8Rng,
    rows: usize,
    by_class: Vec<Vec<u32>>,
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
        if kind == Sampler::ClassBalanced {
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
        }
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
}
