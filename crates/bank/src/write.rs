//! Writing banks. Every file is written to a temporary name and renamed into place, and a whole
//! bank folder is assembled under `<dir>.partial` and renamed at the end, so a killed writer never
//! leaves something a reader would accept.

use crate::error::{BankError, Result};
use crate::meta::Meta;
use safetensors::{Dtype, View};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Storage dtype of written features (labels are always i64, PyTorch's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeatureDtype {
    #[default]
    F32,
    F16,
}

/// A tensor as raw little-endian bytes of any safetensors dtype (also what tests use to write
/// deliberately broken files).
#[derive(Debug, Clone)]
pub struct RawTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

type Raw = RawTensor;

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn floats(x: &[f32], shape: Vec<usize>, dtype: FeatureDtype) -> Raw {
    match dtype {
        FeatureDtype::F32 => Raw {
            dtype: Dtype::F32,
            shape,
            bytes: x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        },
        FeatureDtype::F16 => Raw {
            dtype: Dtype::F16,
            shape,
            bytes: x
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        },
    }
}

/// Write a rename-into-place file: `write` fills `<path>.tmp`, which then replaces `path`.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    let tmp = tmp_path(path);
    let res = write(&tmp).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(source) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(BankError::Write {
            path: path.into(),
            err: source,
        });
    }
    Ok(())
}

/// `<name>.<pid>.<n>.tmp` beside `path`: unique per write, so that two threads of one process
/// writing the same file (two runs with one key, each saving its predictions) never share a
/// temporary file (the second rename would find it gone).
fn tmp_path(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Write named tensors to a safetensors file, atomically.
pub fn save_tensors(path: &Path, tensors: Vec<(&str, RawTensor)>) -> Result<()> {
    write_atomic(path, |tmp| {
        let views: Vec<(&str, &Raw)> = tensors.iter().map(|(n, r)| (*n, r)).collect();
        safetensors::serialize_to_file(views, None, tmp).map_err(std::io::Error::other)
    })
}

/// Write `train|val|test.safetensors`: `features` [rows, dim], `labels` [rows] (i64), and
/// `features_flip` when given.
pub fn write_split(
    path: &Path,
    dim: usize,
    features: &[f32],
    features_flip: Option<&[f32]>,
    labels: &[u32],
    dtype: FeatureDtype,
) -> Result<()> {
    let rows = labels.len();
    if features.len() != rows * dim || features_flip.is_some_and(|f| f.len() != rows * dim) {
        return Err(BankError::Invalid {
            path: path.into(),
            msg: format!("features are not {rows}x{dim}"),
        });
    }
    let mut t = vec![
        ("features", floats(features, vec![rows, dim], dtype)),
        (
            "labels",
            Raw {
                dtype: Dtype::I64,
                shape: vec![rows],
                bytes: labels
                    .iter()
                    .flat_map(|&l| (l as i64).to_le_bytes())
                    .collect(),
            },
        ),
    ];
    if let Some(f) = features_flip {
        t.push(("features_flip", floats(f, vec![rows, dim], dtype)));
    }
    save_tensors(path, t)
}

/// Write `head.safetensors` (`weight` [K, D], `bias` [K], nn.Linear layout, f32).
pub fn write_head(
    path: &Path,
    num_classes: usize,
    dim: usize,
    weight: &[f32],
    bias: &[f32],
) -> Result<()> {
    if weight.len() != num_classes * dim || bias.len() != num_classes {
        return Err(BankError::Invalid {
            path: path.into(),
            msg: format!("head is not {num_classes}x{dim}"),
        });
    }
    save_tensors(
        path,
        vec![
            (
                "weight",
                floats(weight, vec![num_classes, dim], FeatureDtype::F32),
            ),
            ("bias", floats(bias, vec![num_classes], FeatureDtype::F32)),
        ],
    )
}

pub fn write_meta(path: &Path, meta: &Meta) -> Result<()> {
    write_atomic(path, |tmp| {
        std::fs::write(tmp, meta.to_json_pretty() + "\n")
    })
}

/// `<dir>.partial`, where a bank folder is assembled.
pub fn partial_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dir.with_file_name(name)
}

/// Assembles a bank folder under `<dir>.partial/` and moves it to `dir` in [`BankDir::finish`].
///
/// Dropped without [`BankDir::finish`] (an error on the way), it removes `<dir>.partial`, so a
/// failed writer leaves nothing behind; only a killed process can leave the `.partial`
/// folder, which no reader accepts as a bank.
pub struct BankDir {
    target: PathBuf,
    partial: PathBuf,
    finished: bool,
    /// Leave `<dir>.partial` when dropped unfinished (a resumable extraction's chunks).
    keep: bool,
}

impl Drop for BankDir {
    fn drop(&mut self) {
        if !self.finished && !self.keep {
            let _ = std::fs::remove_dir_all(&self.partial);
        }
    }
}

impl BankDir {
    /// Start a bank at `dir`. An existing `dir` is replaced only when `overwrite` is set.
    pub fn create(dir: &Path, overwrite: bool) -> Result<BankDir> {
        BankDir::open(dir, overwrite, false)
    }

    /// Continue the bank at `dir` in the `<dir>.partial/` an interrupted writer left (created
    /// empty when there is none). The folder is kept when this is dropped unfinished, so an
    /// error or a second interruption loses nothing of what was written.
    pub fn resume(dir: &Path, overwrite: bool) -> Result<BankDir> {
        BankDir::open(dir, overwrite, true)
    }

    /// `<dir>.partial` made ready: emptied first unless `keep` (which also keeps it when
    /// dropped unfinished).
    fn open(dir: &Path, overwrite: bool, keep: bool) -> Result<BankDir> {
        if dir.exists() && !overwrite {
            return Err(BankError::Invalid {
                path: dir.into(),
                msg: "already exists (pass --overwrite to replace it)".into(),
            });
        }
        let partial = partial_path(dir);
        if !keep {
            let _ = std::fs::remove_dir_all(&partial);
        }
        std::fs::create_dir_all(&partial).map_err(|source| BankError::Write {
            path: partial.clone(),
            err: source,
        })?;
        Ok(BankDir {
            target: dir.into(),
            partial,
            finished: false,
            keep,
        })
    }

    /// The folder being assembled (`<dir>.partial`).
    pub fn partial(&self) -> &Path {
        &self.partial
    }

    /// Path of `file` inside the folder being assembled.
    pub fn file(&self, file: &str) -> PathBuf {
        self.partial.join(file)
    }

    pub fn finish(mut self) -> Result<PathBuf> {
        if self.target.exists() {
            std::fs::remove_dir_all(&self.target).map_err(|source| BankError::Write {
                path: self.target.clone(),
                err: source,
            })?;
        }
        std::fs::rename(&self.partial, &self.target).map_err(|source| BankError::Write {
            path: self.target.clone(),
            err: source,
        })?;
        self.finished = true;
        Ok(self.target.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfinished_bank_dir_leaves_nothing_behind() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("bank");
        {
            let w = BankDir::create(&target, false).unwrap();
            std::fs::write(w.file("train.safetensors"), b"half").unwrap();
            assert!(d.path().join("bank.partial").exists());
        } // dropped without finish: an error on the way
        assert!(!d.path().join("bank.partial").exists() && !target.exists());
        let w = BankDir::create(&target, false).unwrap();
        std::fs::write(w.file("meta.json"), b"{}").unwrap();
        assert_eq!(w.finish().unwrap(), target);
        assert!(target.join("meta.json").exists() && !d.path().join("bank.partial").exists());
    }
}
