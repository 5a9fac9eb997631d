//! `train_views.safetensors`: V augmented features of every train row, tensors `view0` …
//! `view{V-1}`, each [N, D] like train's `features` (f32, f16 or bf16), and optionally
//! `labels` [N] (then equal to train's). They stay in their
//! stored dtype, memory-mapped (an f16 bank's views take half the memory of f32), and are
//! widened one row at a time ([`Views::row_into`]).

use crate::error::{BankError, Result};
use crate::tensors::File;
use safetensors::Dtype;
use std::path::{Path, PathBuf};

/// Where one view's values are in the mapped file, and their type.
#[derive(Debug, Clone, Copy)]
struct View {
    offset: usize,
    dtype: Dtype,
}

/// The train views of a bank, validated.
pub struct Views {
    pub path: PathBuf,
    /// V, N, D.
    pub count: usize,
    pub rows: usize,
    pub dim: usize,
    /// The optional `labels` tensor (train's labels, as `extract` writes them).
    pub labels: Option<Vec<i64>>,
    file: File,
    views: Vec<View>,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Views({} × [{}, {}] in {})",
            self.count,
            self.rows,
            self.dim,
            self.path.display()
        )
    }
}

impl Views {
    /// Read `path`: tensors named exactly `view0 … view{V-1}` (V ≥ 1), each [N, D] of one
    /// float dtype, every value finite.
    pub fn read(path: &Path) -> Result<Views> {
        let file = File::open(path)?;
        let st = file.tensors()?;
        let mut names: Vec<String> = (st.names().into_iter())
            .filter(|n| *n != "labels")
            .map(|s| s.to_string())
            .collect();
        let labels = if file.has("labels") {
            file.shape("labels", 1)?;
            Some(file.ints("labels")?)
        } else {
            None
        };
        let index = |n: &str| n.strip_prefix("view").and_then(|i| i.parse::<usize>().ok());
        if let Some(bad) = names.iter().find(|n| index(n).is_none()) {
            return Err(BankError::Invalid {
                path: path.into(),
                msg: format!("tensor `{bad}`: views are named view0, view1, … (view{{i}})"),
            });
        }
        names.sort_by_key(|n| index(n));
        if names.is_empty() {
            return Err(BankError::Invalid {
                path: path.into(),
                msg: "no tensor: expected view0, view1, …".into(),
            });
        }
        for (i, n) in names.iter().enumerate() {
            if index(n) != Some(i) || *n != format!("view{i}") {
                return Err(BankError::Invalid {
                    path: path.into(),
                    msg: format!(
                        "tensor `{n}`: views must be view0 … view{} in order, without gaps (view{i} is missing)",
                        names.len() - 1
                    ),
                });
            }
        }
        let mut views = Vec::new();
        let (mut rows, mut dim) = (0, 0);
        for (i, n) in names.iter().enumerate() {
            let shape = file.shape(n, 2)?;
            if i == 0 {
                (rows, dim) = (shape[0], shape[1]);
            } else if shape != [rows, dim] {
                return Err(BankError::DimMismatch {
                    path: path.into(),
                    name: n.clone(),
                    got: shape[1],
                    expected: dim,
                    reference: format!("`view0` ({rows}x{dim}; shape {shape:?})"),
                });
            }
            let (offset, dtype, data) = file.raw(n)?;
            if !matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
                return Err(BankError::WrongDtype {
                    path: path.into(),
                    name: n.clone(),
                    got: format!("{dtype:?}"),
                    allowed: "F32, F16, BF16",
                });
            }
            let view = View { offset, dtype };
            if let Some(j) = (0..rows * dim).find(|&j| !value(dtype, data, j).is_finite()) {
                return Err(BankError::NonFinite {
                    path: path.into(),
                    name: n.clone(),
                    row: j / dim.max(1),
                    col: j % dim.max(1),
                    value: value(dtype, data, j),
                });
            }
            views.push(view);
        }
        drop(st);
        Ok(Views {
            path: path.into(),
            count: views.len(),
            rows,
            dim,
            labels,
            file,
            views,
        })
    }

    /// Row `row` of view `v`, widened to f32, into `out` [D].
    pub fn row_into(&self, v: usize, row: usize, out: &mut [f32]) {
        use half::slice::HalfFloatSliceExt;
        let view = self.views[v];
        let bytes = self.file.bytes();
        let width = if view.dtype == Dtype::F32 { 4 } else { 2 };
        let start = view.offset + row * self.dim * width;
        let data = &bytes[start..start + self.dim * width];
        let out = &mut out[..self.dim];
        let aligned = data.as_ptr() as usize % width == 0 && cfg!(target_endian = "little");
        match view.dtype {
            // SAFETY (both): `data` holds `dim` little-endian values of the type, aligned
            // (checked), and every bit pattern is a valid value
            Dtype::F16 if aligned => {
                let h = unsafe {
                    std::slice::from_raw_parts(data.as_ptr() as *const half::f16, self.dim)
                };
                h.convert_to_f32_slice(out);
            }
            Dtype::F32 if aligned => {
                let f =
                    unsafe { std::slice::from_raw_parts(data.as_ptr() as *const f32, self.dim) };
                out.copy_from_slice(f);
            }
            dtype => {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = value(dtype, data, j);
                }
            }
        }
    }

    /// The stored dtype, lower case: `f32`, `f16` or `bf16` (views of several dtypes: each
    /// distinct one in view order, joined by `+`).
    pub fn dtype_name(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for v in &self.views {
            let n = match v.dtype {
                Dtype::F32 => "f32",
                Dtype::F16 => "f16",
                _ => "bf16",
            };
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names.join("+")
    }

    /// Every value, in order, into a hash (the bank's fingerprint of its views).
    pub fn hash_into(&self, h: &mut crate::Fnv) {
        h.write(format!("views {} {} {}", self.count, self.rows, self.dim).as_bytes());
        let bytes = self.file.bytes();
        for v in &self.views {
            let width = if v.dtype == Dtype::F32 { 4 } else { 2 };
            h.write(format!("{:?}", v.dtype).as_bytes());
            h.write(&bytes[v.offset..v.offset + self.rows * self.dim * width]);
        }
    }
}

/// Value `j` of little-endian `data` of `dtype` (F32, F16 or BF16).
fn value(dtype: Dtype, data: &[u8], j: usize) -> f32 {
    match dtype {
        Dtype::F32 => f32::from_le_bytes(data[4 * j..4 * j + 4].try_into().expect("4 bytes")),
        Dtype::F16 => half::f16::from_le_bytes([data[2 * j], data[2 * j + 1]]).to_f32(),
        _ => half::bf16::from_le_bytes([data[2 * j], data[2 * j + 1]]).to_f32(),
    }
}
