//! The zip `torch.save` format (torch ≥ 1.6), as `_save` writes it
//! (`torch/serialization.py:1184-1313`) and `_load` reads it (`:1999-2268`): an uncompressed
//! zip archive `<name>/` of the object pickle `data.pkl` (storages as persistent ids
//! `('storage', storage_type, key, location, numel)`, `:1200-1245`), each storage's raw
//! little-endian bytes as the record `data/<key>` (`:2119-2156`) and, since torch 1.10, a
//! `byteorder` record (`:1273-1277`, `:2023-2026`). The pickle is read as the legacy one is
//! ([`super::tensors`]); only where the bytes lie differs.

use super::{allow, tensors};
use crate::source::datasets::pickle::parse_at;
use candle_core::Tensor;
use std::collections::HashMap;
use std::io::Read;

/// Every floating tensor of the state_dict of the zip archive `data` (as [`super::tensors_from_bytes`] gives them).
pub(super) fn read(data: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    let mut zip = ::zip::ZipArchive::new(std::io::Cursor::new(data))
        .map_err(|e| format!("a zip archive that cannot be read ({e})"))?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("a zip archive with an unreadable entry name ({e})"))?;
    let pkl = names
        .iter()
        .filter(|n| n.ends_with("data.pkl"))
        .min_by_key(|n| n.len())
        .ok_or("zip archive has no data.pkl (not a torch.save file)")?
        .clone();
    let prefix = &pkl[..pkl.len() - "data.pkl".len()];
    let record =
        |zip: &mut ::zip::ZipArchive<_>, name: &str, limit: usize| -> Result<Vec<u8>, String> {
            let entry = zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
            // never more than asked for, nor more than the file holds
            let mut out = Vec::with_capacity(limit.min(data.len()));
            entry
                .take(limit as u64)
                .read_to_end(&mut out)
                .map_err(|e| format!("{name}: {e}"))?;
            Ok(out)
        };
    let byteorder = format!("{prefix}byteorder");
    if names.contains(&byteorder) && record(&mut zip, &byteorder, 16)? == b"big" {
        return Err("zip torch.save file written on a big-endian machine (not supported)".into());
    }
    let pickle = record(&mut zip, &pkl, data.len())?;
    let obj = parse_at(&pickle, 0).map_err(|e| format!("{pkl}: unsupported pickle: {e}"))?;
    allow::check_globals(&obj)?;
    // every persistent id must be a readable storage, in or out of the state_dict
    tensors::storages(&obj.value)?;
    let root = tensors::state_dict(&obj.value).ok_or_else(super::no_state_dict)?;
    let mut found = Vec::new();
    tensors::collect(root, &mut found)?;
    let mut budget = tensors::value_budget(data.len());
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = Vec::new();
    for (key, t) in found {
        if !t.dtype.is_float() {
            continue;
        }
        let s = &t.storage;
        if !storages.contains_key(&s.key) {
            let name = format!("{prefix}data/{}", s.key);
            let nbytes = s.nbytes().map_err(|e| format!("tensor `{key}`: {e}"))?;
            let bytes = if names.contains(&name) {
                record(&mut zip, &name, nbytes).map_err(|e| format!("tensor `{key}`: {e}"))?
            } else {
                return Err(format!(
                    "tensor `{key}`: its storage record `{name}` is not in the archive"
                ));
            };
            if bytes.len() < nbytes {
                return Err(format!(
                    "tensor `{key}`: storage record `{name}` holds {} bytes, its persistent id says {} × {} bytes",
                    bytes.len(),
                    s.numel,
                    s.dtype.size()
                ));
            }
            storages.insert(s.key.clone(), bytes);
        }
        let v = tensors::to_f32(&t, &storages[&s.key], &mut budget)
            .map_err(|e| format!("tensor `{key}`: {e}"))?;
        out.push((key, v));
    }
    Ok(out)
}
