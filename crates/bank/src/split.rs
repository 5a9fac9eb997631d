//! One split (train, val or test) of a bank, read and validated.

use crate::error::{BankError, Result};
use crate::tensors::{Features, File};
use std::path::{Path, PathBuf};

/// `features` [rows, dim] row-major, `labels` [rows] in 0..K, optional `features_flip`.
#[derive(Debug, Clone)]
pub struct Split {
    pub path: PathBuf,
    pub rows: usize,
    pub dim: usize,
    pub features: Features,
    pub features_flip: Option<Features>,
    pub labels: Vec<u32>,
}

impl Split {
    /// Read a split file and check what can be checked without the other splits: ranks, row
    /// counts, finiteness, non-negative labels.
    pub fn read(path: &Path) -> Result<Split> {
        let file = File::open(path)?;
        let fshape = file.shape("features", 2)?;
        let lshape = file.shape("labels", 1)?;
        let (rows, dim) = (fshape[0], fshape[1]);
        if rows != lshape[0] {
            return Err(BankError::RowMismatch {
                path: path.into(),
                features: rows,
                labels: lshape[0],
            });
        }
        if rows == 0 {
            return Err(BankError::EmptySplit { path: path.into() });
        }
        if dim == 0 {
            return Err(BankError::Invalid {
                path: path.into(),
                msg: "`features` has 0 columns (shape [N, 0])".into(),
            });
        }
        let features = file.floats("features")?;
        let features_flip = if file.has("features_flip") {
            let s = file.shape("features_flip", 2)?;
            if s[0] != rows {
                return Err(BankError::Invalid {
                    path: path.into(),
                    msg: format!(
                        "`features_flip` has {} rows, but `features` has {rows} (one flipped view per row)",
                        s[0]
                    ),
                });
            }
            if s != fshape {
                return Err(BankError::DimMismatch {
                    path: path.into(),
                    name: "features_flip".into(),
                    got: s[1],
                    expected: dim,
                    reference: format!("`features` ({rows}x{dim})"),
                });
            }
            Some(file.floats("features_flip")?)
        } else {
            None
        };
        let raw = file.ints("labels")?;
        Split::checked(path, rows, dim, features, features_flip, &raw)
    }

    /// A split from values already in memory (`path` names it in messages: the Python
    /// package's arrays), with the checks of [`Split::read`]: rows, columns, finiteness,
    /// labels.
    pub fn from_values(
        path: &Path,
        dim: usize,
        features: Features,
        features_flip: Option<Features>,
        labels: &[i64],
    ) -> Result<Split> {
        let len = features.as_slice().len();
        if dim == 0 || len % dim != 0 {
            return Err(BankError::Invalid {
                path: path.into(),
                msg: format!("`features` has {len} values, not rows of {dim}"),
            });
        }
        let rows = len / dim;
        if rows != labels.len() {
            return Err(BankError::RowMismatch {
                path: path.into(),
                features: rows,
                labels: labels.len(),
            });
        }
        if rows == 0 {
            return Err(BankError::EmptySplit { path: path.into() });
        }
        if let Some(f) = &features_flip {
            if f.as_slice().len() != len {
                return Err(BankError::Invalid {
                    path: path.into(),
                    msg: format!(
                        "`features_flip` has {} values, but `features` has {len} ({rows}x{dim}; one flipped view per row)",
                        f.as_slice().len()
                    ),
                });
            }
        }
        Split::checked(path, rows, dim, features, features_flip, labels)
    }

    /// Finiteness and label checks of a split whose shapes are known to agree.
    fn checked(
        path: &Path,
        rows: usize,
        dim: usize,
        features: Features,
        features_flip: Option<Features>,
        raw: &[i64],
    ) -> Result<Split> {
        check_finite(path, "features", features.as_slice(), dim)?;
        if let Some(f) = &features_flip {
            check_finite(path, "features_flip", f.as_slice(), dim)?;
        }
        let mut labels = Vec::with_capacity(rows);
        for (row, &l) in raw.iter().enumerate() {
            if l < 0 || l > u32::MAX as i64 {
                let what = if l < 0 {
                    "is negative"
                } else {
                    "is out of range"
                };
                return Err(BankError::Invalid {
                    path: path.into(),
                    msg: format!(
                        "`labels`[{row}] = {l} {what} (labels must be class indices 0..K)"
                    ),
                });
            }
            labels.push(l as u32);
        }
        Ok(Split {
            path: path.into(),
            rows,
            dim,
            features,
            features_flip,
            labels,
        })
    }

    pub fn features(&self) -> &[f32] {
        self.features.as_slice()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.features()[i * self.dim..(i + 1) * self.dim]
    }

    pub fn max_label(&self) -> u32 {
        self.labels.iter().copied().max().unwrap_or(0)
    }

    /// Rows per class 0..num_classes.
    pub fn class_counts(&self, num_classes: usize) -> Vec<usize> {
        let mut c = vec![0; num_classes];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }

    pub(crate) fn check_labels(&self, num_classes: usize) -> Result<()> {
        if let Some((row, &l)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, l)| **l as usize >= num_classes)
        {
            return Err(BankError::LabelOutOfRange {
                path: self.path.clone(),
                row,
                label: l as i64,
                num_classes,
            });
        }
        Ok(())
    }
}

fn check_finite(path: &Path, name: &str, x: &[f32], dim: usize) -> Result<()> {
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(BankError::NonFinite {
            path: path.into(),
            name: name.into(),
            row: i / dim.max(1),
            col: i % dim.max(1),
            value: x[i],
        });
    }
    Ok(())
}
