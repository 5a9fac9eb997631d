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
pub mod profile;
pub mod shots;
mod split;
mod tensors;
pub mod write;

pub use error::{BankError, Result};
pub use meta::Meta;
pub use shots::{ShotGroup, ShotThresholds};
pub use split::Split;
pub use tensors::Features;
pub use write::{BankDir, FeatureDtype, write_head, write_meta, write_split};

use std::path::{Path, PathBuf};

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
}

impl Bank {
    /// Read and validate the bank in `dir`.
    pub fn open(dir: &Path) -> Result<Bank> {
        if !dir.is_dir() {
            return Err(BankError::Io {
                path: dir.into(),
                err: std::io::Error::new(std::io::ErrorKind::NotFound, "no such bank folder"),
            });
        }
        let need = |file: &'static str| -> Result<PathBuf> {
            let p = dir.join(file);
            if p.exists() {
                Ok(p)
            } else {
                Err(BankError::MissingSplit {
                    dir: dir.into(),
                    file,
                })
            }
        };
        let train = Split::read(&need("train.safetensors")?)?;
        let test = Split::read(&need("test.safetensors")?)?;
        let val_path = dir.join("val.safetensors");
        let val = if val_path.exists() {
            Some(Split::read(&val_path)?)
        } else {
            None
        };
        let meta_path = dir.join("meta.json");
        let meta = if meta_path.exists() {
            Meta::read(&meta_path)?
        } else {
            Meta::default()
        };
        let head_path = dir.join("head.safetensors");
        let head = if head_path.exists() {
            Some(read_head(&head_path)?)
        } else {
            None
        };

        let dim = train.dim;
        for s in std::iter::once(&test).chain(val.as_ref()) {
            if s.dim != dim {
                return Err(BankError::DimMismatch {
                    path: s.path.clone(),
                    name: "features".into(),
                    got: s.dim,
                    expected: dim,
                    reference: train.path.display().to_string(),
                });
            }
        }
        if let Some(h) = &head {
            if h.dim != dim {
                return Err(BankError::DimMismatch {
                    path: head_path.clone(),
                    name: "weight".into(),
                    got: h.dim,
                    expected: dim,
                    reference: train.path.display().to_string(),
                });
            }
        }

        // K: meta.json, else the head, else the largest label seen.
        let max_label = std::iter::once(&train)
            .chain(val.as_ref())
            .chain(Some(&test))
            .map(|s| s.max_label() as usize + 1)
            .max()
            .unwrap_or(0);
        let num_classes = match (meta.num_classes, &head) {
            (Some(k), Some(h)) if k != h.num_classes => {
                return Err(BankError::Meta {
                    path: meta_path,
                    field: "num_classes".into(),
                    msg: format!(
                        "says {k} but head.safetensors `weight` has {} rows",
                        h.num_classes
                    ),
                });
            }
            (Some(k), _) => k,
            (None, Some(h)) => h.num_classes,
            (None, None) => max_label,
        };
        for s in std::iter::once(&train)
            .chain(val.as_ref())
            .chain(Some(&test))
        {
            s.check_labels(num_classes)?;
        }
        // Every class needs a training row, so K ≤ train rows; checking this before counting
        // keeps a wild K (a label of 4e9, num_classes = 1e18) from allocating per class.
        if num_classes > train.rows {
            if meta.num_classes == Some(num_classes) {
                return Err(BankError::Meta {
                    path: meta_path,
                    field: "num_classes".into(),
                    msg: format!(
                        "is {num_classes}, more than the {} training rows (every class needs one)",
                        train.rows
                    ),
                });
            }
            let mut seen: Vec<u32> = train.labels.clone();
            seen.sort_unstable();
            seen.dedup();
            let class = seen
                .iter()
                .enumerate()
                .find(|(i, c)| **c as usize != *i)
                .map_or(seen.len(), |(i, _)| i);
            return Err(BankError::EmptyClass {
                path: train.path.clone(),
                class,
            });
        }
        let train_counts = train.class_counts(num_classes);
        if let Some(class) = train_counts.iter().position(|&n| n == 0) {
            return Err(BankError::EmptyClass {
                path: train.path.clone(),
                class,
            });
        }
        if let Some(given) = &meta.train_counts {
            if given != &train_counts {
                return Err(BankError::Meta {
                    path: meta_path,
                    field: "train_counts".into(),
                    msg: "disagrees with the labels in train.safetensors".into(),
                });
            }
        }
        if let Some(names) = &meta.class_names {
            if names.len() != num_classes {
                return Err(BankError::Meta {
                    path: meta_path,
                    field: "class_names".into(),
                    msg: format!("has {} names for {num_classes} classes", names.len()),
                });
            }
        }
        let shots = meta.shots.unwrap_or_default();
        if shots.many_above + 1 < shots.few_below {
            return Err(BankError::Meta {
                path: meta_path,
                field: "shots".into(),
                msg: format!(
                    "many (n > {}) and few (n < {}) overlap",
                    shots.many_above, shots.few_below
                ),
            });
        }
        Ok(Bank {
            dir: dir.into(),
            train,
            val,
            test,
            head,
            meta,
            num_classes,
            dim,
            train_counts,
            shots,
        })
    }

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

fn read_head(path: &Path) -> Result<Head> {
    let file = tensors::File::open(path)?;
    let ws = file.shape("weight", 2)?;
    let bs = file.shape("bias", 1)?;
    if bs[0] != ws[0] {
        return Err(BankError::DimMismatch {
            path: path.into(),
            name: "bias".into(),
            got: bs[0],
            expected: ws[0],
            reference: "`weight` rows".into(),
        });
    }
    let weight = file.floats("weight")?.as_slice().to_vec();
    let bias = file.floats("bias")?.as_slice().to_vec();
    if let Some(i) = weight.iter().chain(&bias).position(|v| !v.is_finite()) {
        return Err(BankError::Invalid {
            path: path.into(),
            msg: format!("head has a non-finite value at flat index {i}"),
        });
    }
    Ok(Head {
        num_classes: ws[0],
        dim: ws[1],
        weight,
        bias,
    })
}
