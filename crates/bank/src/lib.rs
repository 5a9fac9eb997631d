//! The ltbench feature bank: the contract between `extract` and `retrain`, and the door for
//! users who already have features from PyTorch.
//!
//! A bank is a folder: `train.safetensors`, `test.safetensors` (tensors `features` [N, D],
//! `labels` [N]), optional `val.safetensors`, optional `head.safetensors` (stage-1 classifier,
//! `weight` [K, D], `bias` [K]) and optional `meta.json`. A PyTorch user writes one with
//! `safetensors.torch.save_file({"features": f, "labels": y}, "train.safetensors")`.

pub mod error;
pub mod lock;
pub mod meta;
mod open;
pub mod profile;
pub mod shots;
mod split;
pub mod stream;
mod tensors;
mod views;
pub mod write;

pub use error::{BankError, Result};
pub use meta::Meta;
pub use shots::{ShotGroup, ShotThresholds};
pub use split::Split;
pub use tensors::{ExternalF32, Features};
pub use views::Views;
pub use write::{BankDir, FeatureDtype, write_head, write_meta, write_split};

use std::path::PathBuf;

/// The stage-1 classifier, nn.Linear layout.
#[derive(Debug, Clone)]
pub struct Head {
    pub num_classes: usize,
    pub dim: usize,
    /// [K, D] row-major.
    pub weight: Vec<f32>,
    /// [K].
    pub bias: Vec<f32>,
}

/// A validated bank: splits agree on D, labels are in 0..K, every class has a training sample.
#[derive(Debug, Clone)]
pub struct Bank {
    pub dir: PathBuf,
    pub train: Split,
    pub val: Option<Split>,
    pub test: Split,
    pub head: Option<Head>,
    pub meta: Meta,
    pub num_classes: usize,
    pub dim: usize,
    /// Training rows per class (from the labels).
    pub train_counts: Vec<usize>,
    pub shots: ShotThresholds,
    /// `train_views.safetensors`: augmented views of every train row, when the bank has them.
    pub train_views: Option<std::sync::Arc<Views>>,
}

impl Bank {
    /// Display name: meta.json `dataset`, else the folder name.
    pub fn name(&self) -> String {
        self.meta.dataset.clone().unwrap_or_else(|| {
            self.dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "bank".into())
        })
    }

    /// A content fingerprint: FNV-1a over the shapes, every label, every feature value (and
    /// flipped feature value) of every split, and the stage-1 head. Identifies a bank in run
    /// records: any change to a value that can change a run's numbers changes it. One pass
    /// over the features (about as long as the finite check at open).
    pub fn fingerprint(&self) -> String {
        let mut h = Fnv::default();
        for s in std::iter::once(&self.train)
            .chain(self.val.as_ref())
            .chain(Some(&self.test))
        {
            h.write(&(s.rows as u64).to_le_bytes());
            h.write(&(s.dim as u64).to_le_bytes());
            for l in &s.labels {
                h.write(&l.to_le_bytes());
            }
            h.write_f32s(s.features());
            match &s.features_flip {
                Some(f) => {
                    h.write(b"flip");
                    h.write_f32s(f.as_slice());
                }
                None => h.write(b"noflip"),
            }
        }
        if let Some(head) = &self.head {
            h.write_f32s(&head.weight);
            h.write_f32s(&head.bias);
        }
        format!("{:016x}", h.0)
    }

    /// The bank with every split's features shared (see [`Features::shared`]): cloning it
    /// then copies no feature (the Python package hands clones to each run).
    pub fn into_shared(mut self) -> Bank {
        for s in std::iter::once(&mut self.train)
            .chain(self.val.as_mut())
            .chain(Some(&mut self.test))
        {
            let f = std::mem::replace(&mut s.features, Features::Owned(Vec::new()));
            s.features = f.shared();
            s.features_flip = s.features_flip.take().map(Features::shared);
        }
        self
    }

    /// A fingerprint of the train views (every value), when the bank has them: runs trained
    /// on views are keyed by it.
    pub fn views_fingerprint(&self) -> Option<String> {
        self.train_views.as_ref().map(|v| {
            let mut h = Fnv::default();
            v.hash_into(&mut h);
            format!("{:016x}", h.0)
        })
    }
}

/// FNV-1a, 64 bit: stable across platforms and Rust versions.
#[derive(Debug)]
pub struct Fnv(pub u64);
impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}
impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// FNV-1a steps over the bit patterns of `v`, one 32-bit word per step (4× fewer steps
    /// than bytes: the bank fingerprint hashes every feature).
    pub fn write_f32s(&mut self, v: &[f32]) {
        for x in v {
            self.0 = (self.0 ^ x.to_bits() as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;

    /// A shared bank's clone reads the same memory (no copy of the features) and the same
    /// values.
    #[test]
    fn a_clone_of_a_shared_bank_copies_no_feature() {
        let split = |n: usize| Split {
            path: "s".into(),
            rows: n,
            dim: 2,
            features: Features::Owned((0..2 * n).map(|i| i as f32).collect()),
            features_flip: Some(Features::Owned(vec![1.0; 2 * n])),
            labels: vec![0; n],
        };
        let bank = Bank {
            dir: "b".into(),
            train: split(3),
            val: None,
            test: split(2),
            head: None,
            meta: Meta::default(),
            num_classes: 1,
            dim: 2,
            train_counts: vec![3],
            shots: ShotThresholds::default(),
            train_views: None,
        };
        let fp = bank.fingerprint();
        let shared = bank.into_shared();
        let copy = shared.clone();
        assert_eq!(
            shared.train.features().as_ptr(),
            copy.train.features().as_ptr()
        );
        assert_eq!(
            shared
                .test
                .features_flip
                .as_ref()
                .unwrap()
                .as_slice()
                .as_ptr(),
            copy.test
                .features_flip
                .as_ref()
                .unwrap()
                .as_slice()
                .as_ptr()
        );
        assert_eq!(copy.fingerprint(), fp);
    }
}
