//! Loading PyTorch checkpoints without Python: `.pth` / `.pt` / `.pth.tar` (the zip-based
//! `torch.save` format, torch ≥ 1.6) and `.safetensors`.
//!
//! The state_dict is found where the LT repositories put it: the top-level dict itself (LOS,
//! LTWB `.paramOnly`), or under `state_dict` (LDAM-DRW `ckpt.pth.tar`), `model`,
//! `state_dict_best` (Decoupling: `{feat_model: {..}, classifier: {..}}`, merged), `net` or
//! `model_state_dict`. Nested dicts below it are merged. The DataParallel `module.` and LTWB
//! `encoder.` prefixes are stripped. Integer tensors (`num_batches_tracked`) are dropped.

use crate::error::{ExtractError, Result};
use crate::model::backbones::{Arch, Backbone};
use crate::model::weights::{Checked, CheckedHandle, KeyReport, hash_rule_tensors};
use candle_core::pickle::{Object, Stack, TensorInfo};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

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
/// [`STRIP_PREFIXES`].
pub fn load_state_dict(path: &Path) -> Result<HashMap<String, Tensor>> {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if !path.is_file() {
        return Err(ExtractError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such checkpoint file"),
        ));
    }
    let raw = if name.ends_with(".safetensors") {
        let t = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
            ExtractError::format(path, format!("not a valid safetensors file: {e}"))
        })?;
        t.into_iter()
            .filter(|(_, v)| v.dtype().is_float())
            .collect::<Vec<_>>()
    } else {
        read_pth(path)?
    };
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

fn strip(mut k: &str) -> &str {
    while let Some(rest) = STRIP_PREFIXES.iter().find_map(|p| k.strip_prefix(p)) {
        k = rest;
    }
    k
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
    let checked = Checked::new(tensors);
    let vb = VarBuilder::from_backend(
        Box::new(CheckedHandle(checked.clone())),
        DType::F32,
        dev.clone(),
    );
    let model = arch.build(num_classes, vb)?;
    let report: KeyReport = checked.report(&[]);
    if !report.is_ok() {
        return Err(ExtractError::Checkpoint {
            path: path.into(),
            arch: arch.name().into(),
            msg: report.to_string(),
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

/// Read a zip-format `torch.save` file: every floating tensor of the state_dict.
fn read_pth(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bad = |msg: String| ExtractError::format(path, msg);
    let file = std::fs::File::open(path).map_err(|e| ExtractError::io(path, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
        bad(format!("not a zip-format PyTorch checkpoint ({e}); re-save it with torch >= 1.6 or as safetensors"))
    })?;
    let pkl = (0..zip.len())
        .filter_map(|i| {
            zip.name_for_index(i)
                .and_then(|n| n.ok())
                .map(|n| n.into_owned())
        })
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| bad("zip archive has no data.pkl (not a torch.save file)".into()))?;
    let dir = std::path::PathBuf::from(pkl.strip_suffix(".pkl").unwrap_or(&pkl));
    let obj = {
        let reader = zip.by_name(&pkl).map_err(|e| bad(format!("{pkl}: {e}")))?;
        let mut reader = std::io::BufReader::new(reader);
        let mut stack = Stack::empty();
        stack
            .read_loop(&mut reader)
            .map_err(|e| bad(format!("{pkl}: unsupported pickle: {e}")))?;
        stack.finalize().map_err(|e| bad(format!("{pkl}: {e}")))?
    };
    let root = select_state_dict(obj).ok_or_else(|| {
        bad(format!(
            "no state_dict found (looked at the top level and under {})",
            STATE_KEYS.join(", ")
        ))
    })?;
    let mut infos = Vec::new();
    collect(root, &dir, &mut infos);
    let mut out = Vec::new();
    for info in infos {
        if !info.dtype.is_float() {
            continue;
        }
        let t = read_tensor(&mut zip, &info)
            .map_err(|e| bad(format!("tensor `{}`: {e}", info.name)))?;
        out.push((info.name.clone(), t));
    }
    Ok(out)
}

fn is_tensor(o: &Object) -> bool {
    matches!(o, Object::Reduce { .. } | Object::Build { .. })
        && o.clone()
            .into_tensor_info(Object::Unicode("t".into()), Path::new(""))
            .ok()
            .flatten()
            .is_some()
}

fn select_state_dict(obj: Object) -> Option<Object> {
    let Object::Dict(kv) = obj else { return None };
    // A wrapper dict first (LDAM's also holds a tensor `best_acc1` next to `state_dict`).
    for want in STATE_KEYS {
        let found = kv
            .iter()
            .find(|(k, _)| matches!(k, Object::Unicode(s) if s == want));
        if let Some((_, v @ Object::Dict(_))) = found {
            return Some(v.clone());
        }
    }
    kv.iter()
        .any(|(_, v)| is_tensor(v))
        .then_some(Object::Dict(kv))
}

/// Tensors of `obj` and of dicts nested in it (nested dict names are not prefixed: Decoupling's
/// `feat_model` / `classifier` hold complete keys).
fn collect(obj: Object, dir: &Path, out: &mut Vec<TensorInfo>) {
    let Object::Dict(kv) = obj else { return };
    for (k, v) in kv {
        if matches!(v, Object::Dict(_)) {
            collect(v, dir, out);
        } else if let Ok(Some(info)) = v.into_tensor_info(k, dir) {
            out.push(info);
        }
    }
}

fn read_tensor<R: std::io::Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    info: &TensorInfo,
) -> anyhow::Result<Tensor> {
    let layout = &info.layout;
    let fortran = layout.is_fortran_contiguous() && !layout.is_contiguous();
    if !layout.is_contiguous() && !fortran {
        anyhow::bail!("non-contiguous storage is not supported (save a .contiguous() copy)");
    }
    let dims: Vec<usize> = layout.dims().to_vec();
    let n: usize = dims.iter().product();
    let size = info.dtype.size_in_bytes();
    let mut reader = zip.by_name(&info.path)?;
    let mut skip = vec![0u8; layout.start_offset()];
    reader.read_exact(&mut skip)?;
    let mut bytes = vec![0u8; n * size];
    reader.read_exact(&mut bytes)?;
    let vals: Vec<f32> = match info.dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        DType::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => anyhow::bail!("unsupported dtype {other:?}"),
    };
    if fortran && dims.len() > 1 {
        let rev: Vec<usize> = dims.iter().rev().copied().collect();
        let perm: Vec<usize> = (0..dims.len()).rev().collect();
        Ok(Tensor::from_vec(vals, rev, &Device::Cpu)?
            .permute(perm)?
            .contiguous()?)
    } else {
        Ok(Tensor::from_vec(vals, dims, &Device::Cpu)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor_obj(storage: &str, n: i32) -> Object {
        // torch._utils._rebuild_tensor_v2(persistent_load(('storage', FloatStorage, key, 'cpu', n)), 0, (n,), (1,), False, OrderedDict())
        let storage = Object::PersistentLoad(Box::new(Object::Tuple(vec![
            Object::Unicode("storage".into()),
            Object::Class {
                module_name: "torch".into(),
                class_name: "FloatStorage".into(),
            },
            Object::Unicode(storage.into()),
            Object::Unicode("cpu".into()),
            Object::Int(n),
        ])));
        Object::Reduce {
            callable: Box::new(Object::Class {
                module_name: "torch._utils".into(),
                class_name: "_rebuild_tensor_v2".into(),
            }),
            args: Box::new(Object::Tuple(vec![
                storage,
                Object::Int(0),
                Object::Tuple(vec![Object::Int(n)]),
                Object::Tuple(vec![Object::Int(1)]),
                Object::Bool(false),
                Object::Dict(vec![]),
            ])),
        }
    }

    fn dict(items: Vec<(&str, Object)>) -> Object {
        Object::Dict(
            items
                .into_iter()
                .map(|(k, v)| (Object::Unicode(k.into()), v))
                .collect(),
        )
    }

    #[test]
    fn decoupling_state_dict_best_merges_feat_model_and_classifier() {
        let ckpt = dict(vec![
            ("epoch", Object::Int(90)),
            (
                "state_dict_best",
                dict(vec![
                    (
                        "feat_model",
                        dict(vec![("module.conv1.weight", tensor_obj("0", 4))]),
                    ),
                    (
                        "classifier",
                        dict(vec![
                            ("module.fc.weight", tensor_obj("1", 2)),
                            ("module.fc.bias", tensor_obj("2", 2)),
                        ]),
                    ),
                ]),
            ),
            ("best_acc", tensor_obj("3", 1)),
        ]);
        let root = select_state_dict(ckpt).unwrap();
        let mut infos = Vec::new();
        collect(root, Path::new("archive/data"), &mut infos);
        let mut names: Vec<String> = infos.iter().map(|i| strip(&i.name).to_owned()).collect();
        names.sort();
        assert_eq!(names, vec!["conv1.weight", "fc.bias", "fc.weight"]);
    }

    #[test]
    fn a_plain_state_dict_is_its_own_root() {
        let sd = dict(vec![("conv1.weight", tensor_obj("0", 4))]);
        assert!(select_state_dict(sd).is_some());
        assert!(select_state_dict(dict(vec![("epoch", Object::Int(1))])).is_none());
    }

    #[test]
    fn prefixes_are_stripped_repeatedly() {
        assert_eq!(strip("module.encoder.conv1.weight"), "conv1.weight");
        assert_eq!(strip("encoder.fc.bias"), "fc.bias");
        assert_eq!(strip("layer1.0.conv1.weight"), "layer1.0.conv1.weight");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = load_state_dict(Path::new("/nonexistent/ckpt.pth"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/ckpt.pth"), "{err}");
    }

    #[test]
    fn a_non_zip_pth_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.pth");
        std::fs::write(&p, b"\x80\x02legacy pickle").unwrap();
        let err = load_state_dict(&p).unwrap_err().to_string();
        assert!(err.contains("old.pth") && err.contains("zip"), "{err}");
    }
}
