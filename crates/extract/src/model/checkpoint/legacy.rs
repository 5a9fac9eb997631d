//! The legacy `torch.save` format (torch < 1.6, or `_use_new_zipfile_serialization=False`), as
//! `_legacy_save` writes it (`torch/serialization.py:1022-1181`) and `_legacy_load` reads it
//! (`:1668-1943`): five things in a row,
//!
//! 1. a pickle of the magic number 0x1950a86a20f9469cfc6c (`:65`, `:1160`),
//! 2. a pickle of the protocol version 1001 (`:66`, `:1161`),
//! 3. a pickle of `sys_info` {protocol_version, little_endian, type_sizes} (`:1150-1162`),
//! 4. the object pickle, its storages persistent ids `('storage', storage_type, key,
//!    location, numel, view_metadata)` (`:1034-1148`, `:1164-1171`),
//! 5. a pickle of the sorted list of storage keys (`:1174-1175`),
//!
//! then for each key in that list's order the storage as `_write_file` writes it
//! (`:1176-1181`; read back by `_set_from_file`, `:1921-1942`): an 8-byte little-endian element
//! count, then count × element-size bytes, little-endian.
//!
//! Every storage of the file is located before any tensor is read: a key listed but named by
//! no persistent id (its element size unknown), a storage named but not listed, a count that
//! disagrees with the persistent id's, or a storage that runs past the end of the file is an
//! error naming the tensor that uses it.

use super::allow::{self, Dt};
use super::tensors::{self, Storage};
use crate::source::datasets::pickle::{Py, parse_at};
use candle_core::Tensor;
use std::collections::HashMap;

/// `0x1950a86a20f9469cfc6c` little-endian, as `LONG1` writes it.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION: i64 = 1001;

/// Whether `data` starts with the pickled magic number of a legacy `torch.save` file.
pub(super) fn is_legacy(data: &[u8]) -> bool {
    match parse_at(data, 0).map(|p| p.value) {
        Ok(Py::BigInt(mut b)) => {
            // as LONG1 writes it (minimal), or with redundant sign bytes
            while b.len() > MAGIC.len() && b.last() == Some(&0) {
                b.pop();
            }
            b == MAGIC
        }
        _ => false,
    }
}

/// Every floating tensor of the state_dict of the legacy file `data` (as [`super::tensors_from_bytes`] gives them).
pub(super) fn read(data: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    let head = |what: &str, at: usize| {
        let what = what.to_owned();
        move |e: String| format!("legacy torch.save file: {what} at byte {at}: {e}")
    };
    let magic = parse_at(data, 0).map_err(head("magic number", 0))?;
    let version = parse_at(data, magic.end).map_err(head("protocol version", magic.end))?;
    if version.value != Py::Int(PROTOCOL_VERSION) {
        return Err(format!(
            "legacy torch.save file of protocol version {:?}, expected {PROTOCOL_VERSION}",
            version.value
        ));
    }
    let sys_info = parse_at(data, version.end).map_err(head("sys_info", version.end))?;
    if sys_info.value.get("little_endian") == Some(&Py::Bool(false)) {
        return Err(
            "legacy torch.save file written on a big-endian machine (not supported)".into(),
        );
    }
    let obj = parse_at(data, sys_info.end).map_err(head("object pickle", sys_info.end))?;
    allow::check_globals(&obj)?;
    let named = tensors::storages(&obj.value)?;
    let keys = parse_at(data, obj.end).map_err(head("storage key list", obj.end))?;
    let listed: Vec<String> = match &keys.value {
        Py::List(v) => v
            .iter()
            .map(|k| allow::key_text(k).ok_or("a storage key is not text"))
            .collect::<Result<_, _>>()?,
        _ => return Err("legacy torch.save file: the storage key list is not a list".into()),
    };
    let located = locate(data, keys.end, &named, &listed)?;

    let root = tensors::state_dict(&obj.value).ok_or_else(super::no_state_dict)?;
    let mut found = Vec::new();
    tensors::collect(root, &mut found)?;
    let mut budget = tensors::value_budget(data.len());
    let mut out = Vec::new();
    for (key, t) in found {
        if !t.dtype.is_float() {
            continue;
        }
        // every named storage was located above
        let bytes = located
            .get(&t.storage.key)
            .map(|r| &data[r.clone()])
            .ok_or_else(|| format!("tensor `{key}`: storage `{}` not found", t.storage.key))?;
        let v =
            tensors::to_f32(&t, bytes, &mut budget).map_err(|e| format!("tensor `{key}`: {e}"))?;
        out.push((key, v));
    }
    Ok(out)
}

/// The byte range of every storage, the storages starting at `start` in `listed` order.
fn locate(
    data: &[u8],
    start: usize,
    named: &[(Storage, String)],
    listed: &[String],
) -> Result<HashMap<String, std::ops::Range<usize>>, String> {
    let by_key: HashMap<&str, (&Storage, &str)> = named
        .iter()
        .map(|(s, at)| (s.key.as_str(), (s, at.as_str())))
        .collect();
    // a storage named but not listed: torch's KeyError, here with the tensor that names it
    for (s, at) in named {
        if !listed.contains(&s.key) {
            return Err(format!(
                "tensor at {at}: its storage `{}` is not among the file's {} storages",
                s.key,
                listed.len()
            ));
        }
    }
    let mut pos = start;
    let mut out = HashMap::new();
    for key in listed {
        let Some(&(s, at)) = by_key.get(key.as_str()) else {
            return Err(format!(
                "storage `{key}` is listed but no tensor names it (its element size is unknown)"
            ));
        };
        let cut = |what: String| {
            format!(
                "tensor at {at}: storage `{key}` ({} × {}) {what}; the file ends at byte {} (a truncated file?)",
                s.numel,
                dt_name(s.dtype),
                data.len()
            )
        };
        let count = data
            .get(pos..pos + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .ok_or_else(|| cut(format!("has no element count at byte {pos}")))?;
        if count != s.numel {
            return Err(format!(
                "tensor at {at}: storage `{key}` holds {count} elements at byte {pos}, its persistent id says {}",
                s.numel
            ));
        }
        let nbytes = s.nbytes()?;
        let begin = pos + 8;
        let end = begin
            .checked_add(nbytes)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| cut(format!("needs {nbytes} bytes from byte {begin}")))?;
        if out.insert(key.clone(), begin..end).is_some() {
            return Err(format!("storage `{key}` is listed twice"));
        }
        pos = end;
    }
    Ok(out)
}

fn dt_name(d: Dt) -> &'static str {
    match d {
        Dt::F32 => "float32",
        Dt::F64 => "float64",
        Dt::F16 => "float16",
        Dt::BF16 => "bfloat16",
        Dt::Other(_, n) => n,
    }
}
