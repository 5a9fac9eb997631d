//! [`Bank::open`]: read the files of a bank folder, then check them against each other in the
//! order a user fixes them: feature dimensions, the number of classes, labels, every class
//! present in train, meta.json's counts, class names and shot thresholds.

use crate::error::{BankError, Result};
use crate::{Bank, Head, Meta, ShotThresholds, Split, tensors};
use std::path::{Path, PathBuf};

impl Bank {
    /// Read and validate the bank in `dir`.
    pub fn open(dir: &Path) -> Result<Bank> {
        Parts::read(dir)?.into_bank(dir)
    }

    /// A bank from splits already in memory (the Python package's arrays), validated as
    /// [`Bank::open`] validates a folder; `dir` names it (messages say `dir/meta.json`, …).
    pub fn from_parts(
        dir: &Path,
        train: Split,
        val: Option<Split>,
        test: Split,
        head: Option<Head>,
        meta: Meta,
    ) -> Result<Bank> {
        let parts = Parts {
            train,
            val,
            test,
            head,
            meta,
            meta_path: dir.join("meta.json"),
            head_path: dir.join("head.safetensors"),
            views: None,
        };
        if let Some(h) = &parts.head {
            if h.weight.len() != h.num_classes * h.dim || h.bias.len() != h.num_classes {
                return Err(BankError::Invalid {
                    path: parts.head_path.clone(),
                    msg: format!(
                        "`bias` has {} values, `weight` {}: expected K and K×D with K = {}, D = {}",
                        h.bias.len(),
                        h.weight.len(),
                        h.num_classes,
                        h.dim
                    ),
                });
            }
            if let Some(i) = h.weight.iter().chain(&h.bias).position(|v| !v.is_finite()) {
                return Err(BankError::Invalid {
                    path: parts.head_path.clone(),
                    msg: format!("value {i} of the head (weight, then bias) is not finite"),
                });
            }
        }
        parts.into_bank(dir)
    }
}

impl Parts {
    /// Every check across the parts, then the bank.
    fn into_bank(self, dir: &Path) -> Result<Bank> {
        let parts = self;
        parts.check_dims()?;
        let num_classes = parts.resolve_num_classes()?;
        parts.check_labels(num_classes)?;
        parts.check_every_class_fits(num_classes)?;
        let train_counts = parts.train_counts(num_classes)?;
        parts.check_class_names(num_classes)?;
        let shots = parts.shots()?;
        parts.check_views()?;
        let Parts {
            train,
            val,
            test,
            head,
            meta,
            views,
            ..
        } = parts;
        Ok(Bank {
            dir: dir.into(),
            dim: train.dim,
            train,
            val,
            test,
            head,
            meta,
            num_classes,
            train_counts,
            shots,
            train_views: views.map(std::sync::Arc::new),
        })
    }
}

/// The files of a bank folder, each valid on its own, not yet checked against each other.
struct Parts {
    views: Option<crate::Views>,
    train: Split,
    val: Option<Split>,
    test: Split,
    head: Option<Head>,
    meta: Meta,
    meta_path: PathBuf,
    head_path: PathBuf,
}

impl Parts {
    /// train and test (required), val, meta.json and head.safetensors (optional).
    fn read(dir: &Path) -> Result<Parts> {
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
        let views_path = dir.join("train_views.safetensors");
        let views = if views_path.exists() {
            Some(crate::Views::read(&views_path)?)
        } else {
            None
        };
        Ok(Parts {
            views,
            train,
            val,
            test,
            head,
            meta,
            meta_path,
            head_path,
        })
    }

    /// train, val (if any), test.
    fn splits(&self) -> impl Iterator<Item = &Split> {
        std::iter::once(&self.train)
            .chain(self.val.as_ref())
            .chain(Some(&self.test))
    }

    /// The train views have train's rows and dimension.
    fn check_views(&self) -> Result<()> {
        let Some(v) = &self.views else { return Ok(()) };
        if v.rows != self.train.rows {
            return Err(BankError::Invalid {
                path: v.path.clone(),
                msg: format!(
                    "`view0` has {} rows, but {} has {} (one view of every train row)",
                    v.rows,
                    self.train.path.display(),
                    self.train.rows
                ),
            });
        }
        if let Some(l) = &v.labels {
            if l.len() != v.rows {
                return Err(BankError::RowMismatch {
                    path: v.path.clone(),
                    features: v.rows,
                    labels: l.len(),
                });
            }
            if let Some(row) = (0..v.rows).find(|&i| l[i] != self.train.labels[i] as i64) {
                return Err(BankError::Invalid {
                    path: v.path.clone(),
                    msg: format!(
                        "`labels`[{row}] = {}, but {} has {} there (the views must be of train's rows, in order)",
                        l[row],
                        self.train.path.display(),
                        self.train.labels[row]
                    ),
                });
            }
        }
        if v.dim != self.train.dim {
            return Err(BankError::DimMismatch {
                path: v.path.clone(),
                name: "view0".into(),
                got: v.dim,
                expected: self.train.dim,
                reference: self.train.path.display().to_string(),
            });
        }
        Ok(())
    }

    /// Every split and the head have train's feature dimension.
    fn check_dims(&self) -> Result<()> {
        let (train, dim) = (&self.train, self.train.dim);
        for s in std::iter::once(&self.test).chain(self.val.as_ref()) {
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
        if let Some(h) = &self.head {
            if h.dim != dim {
                return Err(BankError::DimMismatch {
                    path: self.head_path.clone(),
                    name: "weight".into(),
                    got: h.dim,
                    expected: dim,
                    reference: train.path.display().to_string(),
                });
            }
        }
        Ok(())
    }

    /// K: meta.json, else the head, else the largest label seen.
    fn resolve_num_classes(&self) -> Result<usize> {
        let max_label = self
            .splits()
            .map(|s| s.max_label() as usize + 1)
            .max()
            .unwrap_or(0);
        Ok(match (self.meta.num_classes, &self.head) {
            (Some(k), Some(h)) if k != h.num_classes => {
                return Err(BankError::Meta {
                    path: self.meta_path.clone(),
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
        })
    }

    fn check_labels(&self, num_classes: usize) -> Result<()> {
        for s in self.splits() {
            s.check_labels(num_classes)?;
        }
        Ok(())
    }

    /// Every class needs a training row, so K ≤ train rows; checking this before counting
    /// keeps a wild K (a label of 4e9, num_classes = 1e18) from allocating per class.
    fn check_every_class_fits(&self, num_classes: usize) -> Result<()> {
        let train = &self.train;
        if num_classes <= train.rows {
            return Ok(());
        }
        if self.meta.num_classes == Some(num_classes) {
            return Err(BankError::Meta {
                path: self.meta_path.clone(),
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
        Err(BankError::EmptyClass {
            path: train.path.clone(),
            class,
        })
    }

    /// Training rows per class: none empty, and as meta.json says if it says.
    fn train_counts(&self, num_classes: usize) -> Result<Vec<usize>> {
        let train_counts = self.train.class_counts(num_classes);
        if let Some(class) = train_counts.iter().position(|&n| n == 0) {
            return Err(BankError::EmptyClass {
                path: self.train.path.clone(),
                class,
            });
        }
        if let Some(given) = &self.meta.train_counts {
            if given != &train_counts {
                return Err(BankError::Meta {
                    path: self.meta_path.clone(),
                    field: "train_counts".into(),
                    msg: "disagrees with the labels in train.safetensors".into(),
                });
            }
        }
        Ok(train_counts)
    }

    fn check_class_names(&self, num_classes: usize) -> Result<()> {
        if let Some(names) = &self.meta.class_names {
            if names.len() != num_classes {
                return Err(BankError::Meta {
                    path: self.meta_path.clone(),
                    field: "class_names".into(),
                    msg: format!("has {} names for {num_classes} classes", names.len()),
                });
            }
        }
        Ok(())
    }

    /// meta.json's shot thresholds (default 100 / 20), many and few not overlapping.
    fn shots(&self) -> Result<ShotThresholds> {
        let shots = self.meta.shots.unwrap_or_default();
        if shots.many_above + 1 < shots.few_below {
            return Err(BankError::Meta {
                path: self.meta_path.clone(),
                field: "shots".into(),
                msg: format!(
                    "many (n > {}) and few (n < {}) overlap",
                    shots.many_above, shots.few_below
                ),
            });
        }
        Ok(shots)
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
