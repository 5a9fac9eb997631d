//! Reading one split file: `features` [N, D] (f32, or f16/bf16 widened), optional
//! `features_flip` [N, D], `labels` [N] (i64, i32, u32 or u8). f32 little-endian features are
//! used in place from a memory map (no copy of the bank); other dtypes are widened once.

use crate::error::{BankError, Result};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// f32 values owned by someone else (a numpy array the Python package holds): the bank
/// borrows them in place, without a copy, for as long as it holds the owner.
pub trait ExternalF32: Send + Sync {
    fn as_f32(&self) -> &[f32];
}

/// A row-major f32 matrix: owned, borrowed from a memory-mapped file, or borrowed from an
/// external owner.
#[derive(Clone)]
pub enum Features {
    Owned(Vec<f32>),
    Mapped {
        map: Arc<Mmap>,
        offset: usize,
        len: usize,
    },
    External(Arc<dyn ExternalF32>),
}

/// Owned values behind an `Arc`: a clone of the features shares them.
struct SharedF32(Vec<f32>);

impl ExternalF32 for SharedF32 {
    fn as_f32(&self) -> &[f32] {
        &self.0
    }
}

impl Features {
    /// The same values, cheap to clone: owned values move behind an `Arc` (mapped and
    /// external ones already are).
    pub fn shared(self) -> Features {
        match self {
            Features::Owned(v) => Features::External(Arc::new(SharedF32(v))),
            other => other,
        }
    }

    pub fn as_slice(&self) -> &[f32] {
        match self {
            Features::Owned(v) => v,
            Features::External(e) => e.as_f32(),
            Features::Mapped { map, offset, len } => {
                let bytes = &map[*offset..*offset + *len * 4];
                // SAFETY: alignment was checked when the variant was built, f32 has no invalid
                // bit patterns, and the map lives as long as `self`.
                unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const f32, *len) }
            }
        }
    }
}

impl std::fmt::Debug for Features {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Features::Owned(v) => write!(f, "Features::Owned(len {})", v.len()),
            Features::Mapped { len, .. } => write!(f, "Features::Mapped(len {len})"),
            Features::External(e) => write!(f, "Features::External(len {})", e.as_f32().len()),
        }
    }
}

#[derive(Clone)]
pub(crate) struct File {
    pub path: PathBuf,
    map: Arc<Mmap>,
}

impl File {
    pub fn open(path: &Path) -> Result<File> {
        let f = std::fs::File::open(path).map_err(|source| BankError::Io {
            path: path.into(),
            err: source,
        })?;
        // SAFETY: the usual memory-map caveat: the file must not be truncated while in use.
        let map = unsafe { Mmap::map(&f) }.map_err(|source| BankError::Io {
            path: path.into(),
            err: source,
        })?;
        let file = File {
            path: path.into(),
            map: Arc::new(map),
        };
        file.parse()?; // validate the header once
        Ok(file)
    }

    /// The parsed header and tensors.
    pub fn tensors(&self) -> Result<SafeTensors<'_>> {
        self.parse()
    }

    /// The mapped bytes of the whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Tensor `name`'s offset in the file, dtype and bytes.
    pub fn raw(&self, name: &str) -> Result<(usize, Dtype, &[u8])> {
        let st = self.parse()?;
        let view = st.tensor(name).map_err(|_| BankError::MissingTensor {
            path: self.path.clone(),
            name: name.into(),
        })?;
        let data = view.data();
        let offset = data.as_ptr() as usize - self.map.as_ptr() as usize;
        let dtype = view.dtype();
        Ok((offset, dtype, &self.map[offset..offset + data.len()]))
    }

    fn parse(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.map).map_err(|e| BankError::Corrupt {
            path: self.path.clone(),
            msg: e.to_string(),
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.parse()
            .map(|st| st.names().iter().any(|n| *n == name))
            .unwrap_or(false)
    }

    /// Shape of tensor `name`, checking its rank.
    pub fn shape(&self, name: &str, rank: usize) -> Result<Vec<usize>> {
        let st = self.parse()?;
        let view = st.tensor(name).map_err(|_| BankError::MissingTensor {
            path: self.path.clone(),
            name: name.into(),
        })?;
        let shape = view.shape().to_vec();
        if shape.len() != rank {
            return Err(BankError::WrongRank {
                path: self.path.clone(),
                name: name.into(),
                expected: rank,
                got: shape.len(),
                shape,
            });
        }
        Ok(shape)
    }

    /// A floating tensor as f32 (zero-copy for aligned little-endian f32).
    pub fn floats(&self, name: &str) -> Result<Features> {
        let st = self.parse()?;
        let view = st.tensor(name).map_err(|_| BankError::MissingTensor {
            path: self.path.clone(),
            name: name.into(),
        })?;
        let data = view.data();
        let len: usize = view.shape().iter().product();
        match view.dtype() {
            Dtype::F32 => {
                let offset = data.as_ptr() as usize - self.map.as_ptr() as usize;
                if cfg!(target_endian = "little") && (data.as_ptr() as usize) % 4 == 0 {
                    Ok(Features::Mapped {
                        map: self.map.clone(),
                        offset,
                        len,
                    })
                } else {
                    Ok(Features::Owned(
                        data.chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect(),
                    ))
                }
            }
            Dtype::F16 => Ok(Features::Owned(
                data.chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            )),
            Dtype::BF16 => Ok(Features::Owned(
                data.chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            )),
            Dtype::F64 => Ok(Features::Owned(
                data.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
            )),
            other => Err(BankError::WrongDtype {
                path: self.path.clone(),
                name: name.into(),
                got: format!("{other:?}"),
                allowed: "F32, F16, BF16, F64",
            }),
        }
    }

    /// An integer tensor as i64 (labels may be negative in a bad file: checked by the caller).
    pub fn ints(&self, name: &str) -> Result<Vec<i64>> {
        let st = self.parse()?;
        let view = st.tensor(name).map_err(|_| BankError::MissingTensor {
            path: self.path.clone(),
            name: name.into(),
        })?;
        let d = view.data();
        Ok(match view.dtype() {
            Dtype::I64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            Dtype::I32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            Dtype::U32 => d
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            Dtype::I16 => d
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            Dtype::U8 => d.iter().map(|&b| b as i64).collect(),
            other => {
                return Err(BankError::WrongDtype {
                    path: self.path.clone(),
                    name: name.into(),
                    got: format!("{other:?}"),
                    allowed: "I64, I32, U32, I16, U8",
                });
            }
        })
    }
}
