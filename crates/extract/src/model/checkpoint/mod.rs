//! Loading PyTorch checkpoints without Python and without running any of their code: the two
//! `torch.save` formats, zip (torch ≥ 1.6, [`zip`]) and legacy (torch < 1.6, [`legacy`]),
//! and `.safetensors`, told apart by their first bytes ([`format_of`]), whatever the
//! extension (`.pth`, `.pt`, `.pth.tar`, `.tar`, ...). Both `torch.save` formats are read by
//! the project's own pickle reader ([`crate::source::datasets::pickle`]) and turned into
//! tensors by the same code ([`tensors`]): the same allow-list of globals (torch's
//! `weights_only` one), the same bounds (a tensor inside its storage, a storage inside the
//! file), any stride; f32 / f64 / f16 / bf16 tensors load as f32.
//!
//! The state_dict is found where the LT repositories put it: the top-level dict itself (LOS,
//! LTWB `.paramOnly`), or under `state_dict` (LDAM-DRW `ckpt.pth.tar`), `model`,
//! `state_dict_best` (Decoupling: `{feat_model: {..}, classifier: {..}}`, merged), `net` or
//! `model_state_dict`. Nested dicts below it are merged. The DataParallel `module.` and LTWB
//! `encoder.` prefixes are stripped. Integer tensors (`num_batches_tracked`) are dropped.

use crate::error::{ExtractError, Result};
use crate::model::backbones::{Arch, Backbone};
use crate::model::weights::{Checked, CheckedHandle, KeyReport, hash_rule_tensors};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::Path;

mod allow;
mod legacy;
mod tensors;
pub mod write;
mod zip;

/// Where the state_dict may sit inside a saved dict, in the order tried.
pub const STATE_KEYS: [&str; 5] = [
    "state_dict",
    "model",
    "state_dict_best",
    "net",
    "model_state_dict",
];
/// Prefixes removed from every key (repeatedly, so `module.encoder.` goes too).
pub const STRIP_PREFIXES: [&str; 2] = ["module.", "encoder."];

/// All floating tensors of a checkpoint, on the CPU, as f32, keys stripped of
/// [`STRIP_PREFIXES`]. The format is told by the content, whatever the file's extension.
pub fn load_state_dict(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(ExtractError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such checkpoint file"),
        ));
    }
    let data = std::fs::read(path).map_err(|e| ExtractError::io(path, e))?;
    let raw = tensors_from_bytes(path, &data)?;
    let mut out = HashMap::new();
    for (k, v) in raw {
        let key = strip(&k).to_owned();
        let v = v
            .to_dtype(DType::F32)
            .map_err(|e| ExtractError::format(path, format!("tensor `{k}`: {e}")))?;
        if out.insert(key.clone(), v).is_some() {
            return Err(ExtractError::format(
                path,
                format!("two tensors map to `{key}` after stripping prefixes"),
            ));
        }
    }
    if out.is_empty() {
        return Err(ExtractError::format(
            path,
            "no floating-point tensors found (not a state_dict?)",
        ));
    }
    Ok(out)
}

/// The checkpoint formats, told apart by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `torch.save` of torch ≥ 1.6: a zip archive (`PK\x03\x04`).
    Zip,
    /// `torch.save` of torch < 1.6 (or `_use_new_zipfile_serialization=False`): pickles, the
    /// first one of the magic number 0x1950a86a20f9469cfc6c.
    Legacy,
    /// safetensors: an 8-byte little-endian header length, then the JSON header (`{`).
    Safetensors,
}

/// What the first bytes of `data` say it is.
pub fn format_of(data: &[u8]) -> Option<Format> {
    if data.starts_with(b"PK\x03\x04") {
        return Some(Format::Zip);
    }
    if legacy::is_legacy(data) {
        return Some(Format::Legacy);
    }
    let header = data
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    match header {
        Some(n) if n >= 2 && n <= data.len() as u64 - 8 && data.get(8) == Some(&b'{') => {
            Some(Format::Safetensors)
        }
        _ => None,
    }
}

/// The floating tensors (their dtypes as saved) of the checkpoint `data`, with their keys as
/// saved; `path` names the file in errors. Integer tensors (`num_batches_tracked`) are left
/// out. No code of the file runs and nothing is allocated beyond what its size allows; any
/// input gives `Ok` or one error line (the fuzz target `checkpoint` feeds it arbitrary bytes).
pub fn tensors_from_bytes(path: &Path, data: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let bad = |msg: String| ExtractError::format(path, msg);
    match format_of(data) {
        Some(Format::Zip) => zip::read(data).map_err(bad),
        Some(Format::Legacy) => legacy::read(data).map_err(bad),
        Some(Format::Safetensors) => {
            let t = candle_core::safetensors::load_buffer(data, &Device::Cpu)
                .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
            let mut t: Vec<(String, Tensor)> =
                t.into_iter().filter(|(_, v)| v.dtype().is_float()).collect();
            t.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(t)
        }
        None => Err(bad(
            "not a checkpoint: expected a zip-format torch.save file (torch >= 1.6, starting with `PK\\x03\\x04`), a legacy torch.save file (torch < 1.6, starting with the pickled magic number 0x1950a86a20f9469cfc6c) or a safetensors file (an 8-byte header length, then `{`)".into(),
        )),
    }
}

/// The error of a checkpoint without a state_dict.
fn no_state_dict() -> String {
    format!(
        "no state_dict found (looked at the top level and under {})",
        STATE_KEYS.join(", ")
    )
}

fn strip(mut k: &str) -> &str {
    while let Some(rest) = STRIP_PREFIXES.iter().find_map(|p| k.strip_prefix(p)) {
        k = rest;
    }
    k
}

/// Another architecture than `arch` whose every backbone key (classifier aside) is in the
/// checkpoint with its shape, if one is: a checkpoint given with the wrong `--arch` says which
/// one it fits.
fn arch_of(shapes: &HashMap<String, Vec<usize>>, arch: Arch) -> Option<Arch> {
    use clap::ValueEnum;
    Arch::value_variants()
        .iter()
        .copied()
        .filter(|a| *a != arch)
        .find(|a| {
            crate::model::weights::expected_state_dict(*a, None).is_ok_and(|want| {
                want.iter()
                    .all(|(k, shape, _)| shapes.get(k).is_some_and(|s| s == shape))
            })
        })
}

/// A backbone built from a checkpoint, with its classifier when the checkpoint has one.
pub struct Loaded {
    pub model: Box<dyn Backbone>,
    /// K of the checkpoint's classifier (`fc` / `linear`), when present.
    pub num_classes: Option<usize>,
    /// Why a classifier present in the checkpoint was not loaded as the head.
    pub head_note: Option<String>,
}

/// Build `arch` from `tensors` (a stripped state_dict), checking every key: missing,
/// unexpected and wrongly shaped keys are reported by name, all at once.
pub fn build_checked(
    arch: Arch,
    mut tensors: HashMap<String, Tensor>,
    path: &Path,
    dev: &Device,
) -> Result<Loaded> {
    let head_w = format!("{}.weight", arch.head_name());
    let head_b = format!("{}.bias", arch.head_name());
    let mut head_note = None;
    // LDAM's NormedLinear stores its weight as [D, K] (in, out) with no bias and is a cosine
    // classifier: not an nn.Linear head. Its features load; the head is left out.
    if let Some(w) = tensors.get(&head_w) {
        let d = w.dims().to_vec();
        if d.len() == 2
            && d[0] == arch.feature_dim()
            && d[1] != arch.feature_dim()
            && !tensors.contains_key(&head_b)
        {
            head_note = Some(format!(
                "`{head_w}` {d:?} is a NormedLinear (cosine) classifier, not an nn.Linear head; head.safetensors not written"
            ));
            tensors.remove(&head_w);
        }
    }
    let num_classes = tensors.get(&head_w).and_then(|w| w.dims().first().copied());
    check_values(&tensors, path)?;
    let shapes: HashMap<String, Vec<usize>> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    let checked = Checked::new(tensors);
    let vb = VarBuilder::from_backend(
        Box::new(CheckedHandle(checked.clone())),
        DType::F32,
        dev.clone(),
    );
    let model = arch.build(num_classes, vb)?;
    let report: KeyReport = checked.report(&[]);
    if !report.is_ok() {
        let (file, name, msg) = (path.into(), arch.name().into(), report.to_string());
        // the way out first: the key report after it runs to hundreds of characters
        return Err(match arch_of(&shapes, arch) {
            Some(fits) => ExtractError::WrongArch {
                path: file,
                arch: name,
                fits: fits.name().into(),
                msg,
            },
            None => ExtractError::Checkpoint {
                path: file,
                arch: name,
                msg,
            },
        });
    }
    Ok(Loaded {
        model,
        num_classes,
        head_note,
    })
}

/// Values no network can use: a zero-size tensor, a BatchNorm `running_var` below 0 (folded into
/// a convolution it would be √(negative)). One error naming the key.
fn check_values(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let mut keys: Vec<&String> = tensors.keys().collect();
    keys.sort();
    for k in keys {
        let t = &tensors[k];
        let bad = |msg: String| Err(ExtractError::format(path, format!("`{k}`: {msg}")));
        if t.elem_count() == 0 {
            return bad(format!("zero-size tensor {:?}", t.dims()));
        }
        if k.ends_with("running_var") {
            let min = t
                .to_dtype(DType::F32)
                .and_then(|v| v.flatten_all()?.min(0)?.to_scalar::<f32>())
                .map_err(|e| ExtractError::format(path, format!("`{k}`: {e}")))?;
            if min < 0.0 || min.is_nan() {
                return bad(format!("a BatchNorm running variance below 0 ({min})"));
            }
        }
    }
    Ok(())
}

/// A loaded backbone, the checkpoint classifier's K, and a note when a classifier was left out.
pub type LoadedBackbone = (Box<dyn Backbone>, Option<usize>, Option<String>);

/// Load the backbone: checked checkpoint, or hash-rule weights from `seed`.
pub fn load_backbone(
    arch: Arch,
    checkpoint: Option<&Path>,
    seed: u64,
    dev: &Device,
) -> Result<LoadedBackbone> {
    match checkpoint {
        Some(p) => {
            let loaded = build_checked(arch, load_state_dict(p)?, p, dev)?;
            Ok((loaded.model, loaded.num_classes, loaded.head_note))
        }
        None => {
            let t: HashMap<String, Tensor> = hash_rule_tensors(arch, None, seed, dev)?;
            Ok((
                arch.build(None, VarBuilder::from_tensors(t, DType::F32, dev))?,
                None,
                None,
            ))
        }
    }
}

#[cfg(test)]
mod tests;
