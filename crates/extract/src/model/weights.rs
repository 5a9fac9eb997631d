//! Where a backbone's tensors come from: a checked map of checkpoint tensors (every key the
//! model asks for must be there with the right shape, and every checkpoint key must be used),
//! or deterministic weights by the fixtures' hash rule (the "random weights" of an untrained
//! backbone, reproducible from a seed).
//!
//! Hash rule (shared/fixtures/backbones/README.md):
//! `u(key, i) = ((i * 2654435761 + fnv1a32(key)) mod 2^32) / 2^32`;
//! conv / linear weight `(2u - 1) sqrt(6 / fan_in)`, linear bias `0.1 (2u - 1)`,
//! BN weight `0.5 + 0.5u`, bias `0.2 (2u - 1)`, running_mean `0.1 (2u - 1)`, running_var `0.5 + u`.

use crate::model::backbones::Arch;
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

pub fn fnv1a32(s: &str) -> u32 {
    let mut h: u32 = 0x811C_9DC5;
    for &b in s.as_bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    h
}

/// What a state_dict entry is, which decides its hash-rule distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// conv or linear weight (fan-in scaled).
    Weight,
    LinearBias,
    BnWeight,
    BnBias,
    BnMean,
    BnVar,
    Input,
}

/// The values of `key` by the hash rule, f64 then rounded to f32.
pub fn hash_rule(key: &str, shape: &[usize], kind: ParamKind) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let h = fnv1a32(key) as u64;
    let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
    let scale = (6.0 / fan_in as f64).sqrt();
    (0..n as u64)
        .map(|i| {
            let u = (i.wrapping_mul(2_654_435_761).wrapping_add(h) % (1u64 << 32)) as f64
                / 4_294_967_296.0;
            (match kind {
                ParamKind::Weight => (2.0 * u - 1.0) * scale,
                ParamKind::LinearBias => 0.1 * (2.0 * u - 1.0),
                ParamKind::BnWeight => 0.5 + 0.5 * u,
                ParamKind::BnBias => 0.2 * (2.0 * u - 1.0),
                ParamKind::BnMean => 0.1 * (2.0 * u - 1.0),
                ParamKind::BnVar => 0.5 + u,
                ParamKind::Input => 2.0 * u - 1.0,
            }) as f32
        })
        .collect()
}

/// The state_dict an architecture expects: (key, shape, kind) in construction order, the
/// classifier included when `num_classes` is given. `num_batches_tracked` is not listed (it
/// carries no value the forward pass uses).
pub fn expected_state_dict(
    arch: Arch,
    num_classes: Option<usize>,
) -> Result<Vec<(String, Vec<usize>, ParamKind)>> {
    let rec = Arc::new(Recorder::default());
    arch.build(
        num_classes,
        VarBuilder::from_backend(
            Box::new(RecorderHandle(rec.clone())),
            DType::F32,
            Device::Cpu,
        ),
    )?;
    let asked = rec.asked.lock().unwrap().clone();
    let bn: HashSet<String> = asked
        .iter()
        .filter_map(|(k, _)| k.strip_suffix(".running_mean").map(str::to_owned))
        .collect();
    Ok(asked
        .into_iter()
        .map(|(key, shape)| {
            let (parent, leaf) = key.rsplit_once('.').unwrap_or(("", key.as_str()));
            let is_bn = bn.contains(parent);
            let kind = match (leaf, is_bn) {
                ("running_mean", _) => ParamKind::BnMean,
                ("running_var", _) => ParamKind::BnVar,
                ("weight", true) => ParamKind::BnWeight,
                ("bias", true) => ParamKind::BnBias,
                ("bias", false) => ParamKind::LinearBias,
                _ => ParamKind::Weight,
            };
            (key, shape, kind)
        })
        .collect())
}

/// Weights for `arch` by the hash rule. `seed` 0 reproduces the fixtures exactly; another seed
/// salts every key (`"<seed>/<key>"`), giving a different, equally reproducible network.
pub fn hash_rule_tensors(
    arch: Arch,
    num_classes: Option<usize>,
    seed: u64,
    dev: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (key, shape, kind) in expected_state_dict(arch, num_classes)? {
        let salted = if seed == 0 {
            key.clone()
        } else {
            format!("{seed}/{key}")
        };
        let v = hash_rule(&salted, &shape, kind);
        out.insert(key, Tensor::from_vec(v, shape, dev)?);
    }
    Ok(out)
}

/// A backend that records what the model asks for and hands out zeros.
#[derive(Default)]
struct Recorder {
    asked: Mutex<Vec<(String, Vec<usize>)>>,
}

struct RecorderHandle(Arc<Recorder>);

impl SimpleBackend for RecorderHandle {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.0
            .asked
            .lock()
            .unwrap()
            .push((name.to_owned(), s.dims().to_vec()));
        Tensor::zeros(s, dtype, dev)
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("unchecked get of `{name}` is not supported while recording")
    }
    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// A map of named tensors that records every problem instead of stopping at the first, so a
/// wrong checkpoint is reported by name in one go.
pub struct Checked {
    tensors: HashMap<String, Tensor>,
    used: Mutex<HashSet<String>>,
    missing: Mutex<Vec<String>>,
    mismatched: Mutex<Vec<String>>,
}

/// The outcome of matching a checkpoint against a model.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyReport {
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    /// `key: checkpoint [..] vs model [..]`.
    pub mismatched: Vec<String>,
}

impl KeyReport {
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl std::fmt::Display for KeyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (what, v) in [
            ("missing keys", &self.missing),
            ("unexpected keys", &self.unexpected),
            ("shape mismatches", &self.mismatched),
        ] {
            if !v.is_empty() {
                let shown: Vec<&str> = v.iter().take(6).map(String::as_str).collect();
                let more = if v.len() > 6 {
                    format!(" and {} more", v.len() - 6)
                } else {
                    String::new()
                };
                parts.push(format!("{} {what}: {}{more}", v.len(), shown.join(", ")));
            }
        }
        f.write_str(&parts.join("; "))
    }
}

impl Checked {
    pub fn new(tensors: HashMap<String, Tensor>) -> Arc<Checked> {
        Arc::new(Checked {
            tensors,
            used: Default::default(),
            missing: Default::default(),
            mismatched: Default::default(),
        })
    }

    /// Missing / mismatched keys seen so far, and the checkpoint keys never asked for
    /// (`num_batches_tracked` and keys in `ignore` excluded).
    pub fn report(&self, ignore: &[&str]) -> KeyReport {
        let used = self.used.lock().unwrap();
        let mut unexpected: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| {
                !used.contains(*k)
                    && !k.ends_with("num_batches_tracked")
                    && !ignore.contains(&k.as_str())
            })
            .cloned()
            .collect();
        unexpected.sort();
        KeyReport {
            missing: self.missing.lock().unwrap().clone(),
            unexpected,
            mismatched: self.mismatched.lock().unwrap().clone(),
        }
    }
}

/// The [`SimpleBackend`] view of a shared [`Checked`] map.
pub struct CheckedHandle(pub Arc<Checked>);

impl SimpleBackend for CheckedHandle {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let me = &self.0;
        me.used.lock().unwrap().insert(name.to_owned());
        match me.tensors.get(name) {
            Some(t) if t.dims() == s.dims() => t.to_dtype(dtype)?.to_device(dev),
            Some(t) => {
                me.mismatched.lock().unwrap().push(format!(
                    "{name}: checkpoint {:?} vs model {:?}",
                    t.dims(),
                    s.dims()
                ));
                Tensor::zeros(s, dtype, dev)
            }
            None => {
                me.missing.lock().unwrap().push(name.to_owned());
                Tensor::zeros(s, dtype, dev)
            }
        }
    }
    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        match self.0.tensors.get(name) {
            Some(t) => t.to_dtype(dtype)?.to_device(dev),
            None => candle_core::bail!("cannot find tensor {name}"),
        }
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.0.tensors.contains_key(name)
    }
}

/// Shapes of a tensor map, sorted by key (for messages and provenance).
pub fn shapes(t: &HashMap<String, Tensor>) -> BTreeMap<String, Vec<usize>> {
    t.iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect()
}
