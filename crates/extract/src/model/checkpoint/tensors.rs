//! From an unpickled `torch.save` object to tensors, the same for both formats (the legacy
//! file and the zip archive differ only in where a storage's bytes lie):
//!
//! - the globals a pickle names are checked against torch's `weights_only` allow-list
//!   ([`super::allow`]);
//! - storages are the persistent ids `('storage', storage_type, key, location, numel[,
//!   view_metadata])` (`torch/serialization.py:1136-1143`, legacy; `:1200-1245`, zip);
//! - a tensor is `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
//!   requires_grad, backward_hooks[, metadata])` (`torch/_utils.py:229-250`, also `_rebuild_tensor`
//!   `:195-198` and `_rebuild_tensor_v3` `:253-270`), possibly wrapped in
//!   `_rebuild_parameter[_with_state]` (`torch/_utils.py:519-537`) or
//!   `torch._tensor._rebuild_from_type_v2` (`torch/_tensor.py:56-70`): the view
//!   `storage[offset + Σ i_d·stride_d]` of shape `size`, any stride, offsets in elements;
//! - bounds: a tensor's last element must lie inside its storage, and all tensors together
//!   may not expand to more values than [`value_budget`] allows for the file's size (stride-0
//!   views could otherwise ask for any amount of memory).

use super::allow::{Dt, REBUILDS, dtype_global, global_name, key_text, place, storage_dtype};
use crate::source::datasets::pickle::Py;
use candle_core::{Device, Tensor};

/// A storage as a persistent id names it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Storage {
    /// The key of its bytes: the legacy file's storage key, the zip's `data/<key>` record.
    pub key: String,
    pub dtype: Dt,
    /// Its length in elements.
    pub numel: u64,
    /// A view of it (legacy `view_metadata`, torch < 0.4): element offset and length.
    pub view: Option<(u64, u64)>,
}

impl Storage {
    pub(super) fn nbytes(&self) -> Result<usize, String> {
        self.numel
            .checked_mul(self.dtype.size() as u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                format!(
                    "storage `{}` of {} elements is too big",
                    self.key, self.numel
                )
            })
    }
}

fn int(p: &Py, what: &str) -> Result<u64, String> {
    match p {
        Py::Int(v) if *v >= 0 => Ok(*v as u64),
        Py::Bool(b) => Ok(*b as u64),
        other => Err(format!("{what} is {}, not a count", short(other))),
    }
}

fn ints(p: &Py, what: &str) -> Result<Vec<u64>, String> {
    match p {
        Py::Tuple(v) | Py::List(v) => v.iter().map(|x| int(x, what)).collect(),
        // torch.Size((..))
        Py::Object { callable, args, .. } if matches!(&**callable, Py::Global(m, n) if m == "torch" && n == "Size") => {
            match &**args {
                Py::Tuple(a) if a.len() == 1 => ints(&a[0], what),
                other => Err(format!("{what} is torch.Size{}", short(other))),
            }
        }
        other => Err(format!("{what} is {}, not a tuple of counts", short(other))),
    }
}

/// A value in a message: its kind, not its (possibly huge) contents.
fn short(p: &Py) -> String {
    match p {
        Py::Int(v) => v.to_string(),
        Py::Global(m, n) => format!("`{}`", global_name(m, n)),
        Py::Str(s) if s.len() <= 40 => format!("{s:?}"),
        Py::None => "None".into(),
        Py::Bool(_) => "a bool".into(),
        Py::Float(_) => "a float".into(),
        Py::BigInt(_) => "a big int".into(),
        Py::Bytes(_) | Py::Str(_) => "a string".into(),
        Py::List(_) => "a list".into(),
        Py::Tuple(_) => "a tuple".into(),
        Py::Dict(_) => "a dict".into(),
        Py::Persistent(_) => "a persistent id".into(),
        Py::Object { .. } => "an object".into(),
        Py::Mark => "a mark".into(),
    }
}

/// The storage a persistent id names.
pub(super) fn storage_of(pid: &Py) -> Result<Storage, String> {
    let Py::Tuple(t) = pid else {
        return Err(format!("persistent id {} is not a tuple", short(pid)));
    };
    match t.first().and_then(Py::as_key) {
        Some("storage") => {}
        Some("module") => {
            return Err(
                "a pickled nn.Module class (persistent id `module`): save `model.state_dict()`, not the model".into(),
            );
        }
        _ => return Err("persistent id is not a `storage`".into()),
    }
    let [_, ty, key, _location, numel, rest @ ..] = &t[..] else {
        return Err(format!(
            "storage persistent id of {} items, expected 5 or 6",
            t.len()
        ));
    };
    let dtype = match ty {
        Py::Global(m, n) if matches!(m.as_str(), "torch" | "torch.cuda" | "torch.storage") => {
            storage_dtype(n)
                .ok_or_else(|| format!("unknown storage type `{}`", global_name(m, n)))?
        }
        other => return Err(format!("storage type is {}", short(other))),
    };
    let key = key_text(key).ok_or("storage key is not text")?;
    let numel = int(numel, "storage size")?;
    let view = match rest {
        [] | [Py::None] => None,
        [Py::Tuple(v)] if v.len() == 3 => {
            let (off, len) = (int(&v[1], "view offset")?, int(&v[2], "view size")?);
            if off.checked_add(len).is_none_or(|end| end > numel) {
                return Err(format!(
                    "storage `{key}`: a view of {len} elements at {off} runs past its {numel}"
                ));
            }
            Some((off, len))
        }
        _ => return Err(format!("storage `{key}`: unreadable view metadata")),
    };
    Ok(Storage {
        key,
        dtype,
        numel,
        view,
    })
}

/// Every storage the object names, each once (with the place of its first use), in the order
/// they are met; a key named twice must be named alike.
pub(super) fn storages(value: &Py) -> Result<Vec<(Storage, String)>, String> {
    fn walk(
        p: &Py,
        path: &mut Vec<String>,
        out: &mut Vec<(Storage, String)>,
    ) -> Result<(), String> {
        match p {
            Py::Persistent(pid) => {
                let s = storage_of(pid).map_err(|e| format!("{} (at {})", e, place(path)))?;
                match out.iter().find(|(o, _)| o.key == s.key) {
                    Some((o, _)) if o.dtype != s.dtype || o.numel != s.numel => {
                        return Err(format!(
                            "storage `{}` is named twice, as {} × {:?} and as {} × {:?} (at {})",
                            s.key,
                            o.numel,
                            o.dtype,
                            s.numel,
                            s.dtype,
                            place(path)
                        ));
                    }
                    Some(_) => {}
                    None => out.push((s, place(path))),
                }
            }
            Py::List(v) | Py::Tuple(v) => v.iter().try_for_each(|x| walk(x, path, out))?,
            Py::Object {
                callable,
                args,
                state,
            } => [Some(&**callable), Some(&**args), state.as_deref()]
                .into_iter()
                .flatten()
                .try_for_each(|x| walk(x, path, out))?,
            Py::Dict(kv) => {
                for (k, v) in kv {
                    path.push(key_text(k).unwrap_or_else(|| "?".into()));
                    walk(v, path, out)?;
                    path.pop();
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out)?;
    Ok(out)
}

/// A tensor: a strided view of a storage.
#[derive(Clone, Debug)]
pub(super) struct TensorRef {
    pub storage: Storage,
    /// Its element type: the storage's, or `_rebuild_tensor_v3`'s dtype argument.
    pub dtype: Dt,
    /// In elements of `dtype`, from the start of the storage (or of its view).
    pub offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

/// `Some` for a tensor, `None` for any other value, `Err` for a tensor that cannot be read.
pub(super) fn tensor_of(p: &Py) -> Result<Option<TensorRef>, String> {
    match p {
        Py::Object { callable, args, .. } => rebuild(callable, args),
        _ => Ok(None),
    }
}

fn rebuild(callable: &Py, args: &Py) -> Result<Option<TensorRef>, String> {
    let Py::Global(module, name) = callable else {
        return Ok(None);
    };
    let Py::Tuple(a) = args else {
        return Ok(None);
    };
    match (module.as_str(), name.as_str()) {
        ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2" | "_rebuild_tensor_v3") => {
            let [Py::Persistent(pid), offset, size, stride, rest @ ..] = &a[..] else {
                return Err(format!("`torch._utils.{name}` with unreadable arguments"));
            };
            let storage = storage_of(pid)?;
            // v3 (torch/_utils.py:253-270) takes an untyped storage and the dtype:
            // (storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])
            let dtype = match (name.as_str(), rest.get(2)) {
                ("_rebuild_tensor_v3", Some(Py::Global(_, d))) => dtype_global(d),
                ("_rebuild_tensor_v3", _) => {
                    return Err("`_rebuild_tensor_v3` without a dtype".into());
                }
                _ => storage.dtype,
            };
            let shape = ints(size, "size")?;
            let stride = ints(stride, "stride")?;
            if shape.len() != stride.len() {
                return Err(format!(
                    "size {shape:?} and stride {stride:?} differ in length"
                ));
            }
            Ok(Some(TensorRef {
                storage,
                dtype,
                offset: int(offset, "storage offset")?,
                shape,
                stride,
            }))
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => match a.first()
        {
            Some(data) => tensor_of(data)?
                .map(Some)
                .ok_or_else(|| format!("`torch._utils.{name}` of something not a tensor")),
            None => Err(format!("`torch._utils.{name}` without its tensor")),
        },
        // (func, new_type, args, state): func(*args), as a subclass
        ("torch._tensor", "_rebuild_from_type_v2") => match &a[..] {
            [func, _, args, ..] => rebuild(func, args)?.map(Some).ok_or_else(|| {
                "`torch._tensor._rebuild_from_type_v2` of something not a tensor".into()
            }),
            _ => Err("`torch._tensor._rebuild_from_type_v2` with unreadable arguments".into()),
        },
        ("torch._utils", n) if REBUILDS.contains(&n) => Err(format!(
            "a `torch._utils.{n}` tensor (quantised, sparse, meta or a wrapper subclass) cannot be loaded"
        )),
        _ => Ok(None),
    }
}

/// Where the state_dict sits in `root` (see [`super::STATE_KEYS`]).
pub(super) fn state_dict(root: &Py) -> Option<&Py> {
    let Py::Dict(kv) = root else { return None };
    // a wrapper dict first (LDAM's also holds a tensor `best_acc1` next to `state_dict`)
    for want in super::STATE_KEYS {
        let found = kv.iter().find(|(k, _)| k.as_key() == Some(want));
        if let Some((_, v @ Py::Dict(_))) = found {
            return Some(v);
        }
    }
    kv.iter()
        .any(|(_, v)| !matches!(tensor_of(v), Ok(None)))
        .then_some(root)
}

/// The tensors of `dict` and of dicts nested in it, with their keys (nested dict names are not
/// prefixed: Decoupling's `feat_model` / `classifier` hold complete keys).
pub(super) fn collect(dict: &Py, out: &mut Vec<(String, TensorRef)>) -> Result<(), String> {
    let Py::Dict(kv) = dict else { return Ok(()) };
    for (k, v) in kv {
        if matches!(v, Py::Dict(_)) {
            collect(v, out)?;
            continue;
        }
        let Some(key) = key_text(k) else { continue };
        if let Some(t) = tensor_of(v).map_err(|e| format!("tensor `{key}`: {e}"))? {
            out.push((key, t));
        }
    }
    Ok(())
}

/// How many values all tensors of a file of `file_len` bytes may expand to: twice its byte
/// count (every f32 storage read eight times over, f16 four: views of one storage, tied
/// weights, a transposed copy), plus 1 Mi for broadcast scalars. Stride-0 views beyond that
/// are refused.
pub(super) fn value_budget(file_len: usize) -> u64 {
    2 * file_len as u64 + (1 << 20)
}

/// The f32 values of `t`, whose storage (the whole storage, before any view) is `bytes`;
/// `budget` is what the file's tensors may still expand to.
pub(super) fn to_f32(t: &TensorRef, bytes: &[u8], budget: &mut u64) -> Result<Tensor, String> {
    let s = &t.storage;
    let region = match s.view {
        None => bytes,
        Some((off, len)) => {
            let es = s.dtype.size() as u64;
            let range = off
                .checked_mul(es)
                .zip(off.checked_add(len).and_then(|e| e.checked_mul(es)))
                .and_then(|(a, b)| Some(usize::try_from(a).ok()?..usize::try_from(b).ok()?));
            range
                .and_then(|r| bytes.get(r))
                .ok_or_else(|| format!("a view of storage `{}` runs past its end", s.key))?
        }
    };
    let size = t.dtype.size();
    let avail = (region.len() / size) as u64;
    let dims: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    let n = t
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("shape {:?} is too big", t.shape))?;
    if n == 0 {
        return Tensor::zeros(dims, candle_core::DType::F32, &Device::Cpu)
            .map_err(|e| e.to_string());
    }
    // the last element: offset + Σ (size_d − 1)·stride_d
    let last = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |a, (&d, &st)| {
            a.checked_add((d - 1).checked_mul(st)?)
        })
        .ok_or_else(|| format!("shape {:?} with stride {:?} is too big", t.shape, t.stride))?;
    if last >= avail {
        return Err(format!(
            "storage offset {} + extent {} runs past its storage `{}` of {avail} elements (shape {:?}, stride {:?})",
            t.offset,
            last - t.offset + 1,
            s.key,
            t.shape,
            t.stride
        ));
    }
    if n > *budget {
        return Err(format!(
            "its {n} values are more than a file of this size may expand to (stride-0 views?)"
        ));
    }
    *budget -= n;
    let read = |i: usize| -> f32 {
        let b = &region[i * size..(i + 1) * size];
        match t.dtype {
            Dt::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Dt::F64 => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
            Dt::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            Dt::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            Dt::Other(..) => f32::NAN,
        }
    };
    let n = n as usize;
    let offset = t.offset as usize;
    // row-major strides (dims of size 1 may have any stride): one run of the storage
    let mut want = 1u64;
    let contiguous = t.shape.iter().zip(&t.stride).rev().all(|(&d, &st)| {
        let ok = d == 1 || st == want;
        want *= d;
        ok
    });
    let vals: Vec<f32> = if contiguous {
        (offset..offset + n).map(read).collect()
    } else {
        // an odometer over the index, the storage position kept as it turns
        let mut vals = Vec::with_capacity(n);
        let mut idx = vec![0u64; dims.len()];
        let mut pos = t.offset;
        for _ in 0..n {
            vals.push(read(pos as usize));
            // pos never passes `last`: no overflow
            for d in (0..idx.len()).rev() {
                if idx[d] + 1 < t.shape[d] {
                    idx[d] += 1;
                    pos += t.stride[d];
                    break;
                }
                pos -= t.stride[d] * idx[d];
                idx[d] = 0;
            }
        }
        vals
    };
    Tensor::from_vec(vals, dims, &Device::Cpu).map_err(|e| e.to_string())
}
