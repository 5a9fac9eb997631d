//! The files of a stage-1 run: the checkpoint (a torchvision-style state_dict), the momentum
//! buffers `<file>.resume.safetensors` and the resume state `<file>.resume.json`, each written
//! atomically after every epoch; and reading them back for `--resume`.

use super::net::Net;
use super::{EpochLog, Recipe};
use crate::error::{ExtractError, Result};
use crate::model::backbones::Arch;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What `<checkpoint>.resume.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResumeState {
    pub arch: String,
    pub num_classes: usize,
    pub recipe: Recipe,
    /// Finished epochs.
    pub epoch: usize,
    pub steps: usize,
    pub log: Vec<EpochLog>,
    /// Seconds spent training so far (over all sessions).
    pub train_secs: f64,
}

impl ResumeState {
    /// The state before the first epoch.
    pub(super) fn fresh(arch: Arch, num_classes: usize, recipe: &Recipe) -> ResumeState {
        ResumeState {
            arch: arch.name().to_owned(),
            num_classes,
            recipe: recipe.clone(),
            epoch: 0,
            steps: 0,
            log: Vec::new(),
            train_secs: 0.0,
        }
    }
}

/// The sidecar paths of a checkpoint.
pub fn resume_paths(ckpt: &Path) -> (PathBuf, PathBuf) {
    let s = ckpt.as_os_str().to_string_lossy();
    (
        PathBuf::from(format!("{s}.resume.json")),
        PathBuf::from(format!("{s}.resume.safetensors")),
    )
}

/// `--resume`: the saved state of `ckpt` (which must have been made by the run `fresh`
/// describes), its weights and momentum buffers loaded into `net`.
pub(super) fn resume(
    net: &mut Net,
    fresh: ResumeState,
    ckpt: &Path,
    device: &Device,
) -> Result<ResumeState> {
    let (json_path, mom_path) = resume_paths(ckpt);
    if !json_path.is_file() {
        return Err(ExtractError::Usage(format!(
            "--resume: no resume state at {}",
            json_path.display()
        )));
    }
    let text = std::fs::read_to_string(&json_path).map_err(|e| ExtractError::io(&json_path, e))?;
    let saved: ResumeState =
        serde_json::from_str(&text).map_err(|e| ExtractError::format(&json_path, e.to_string()))?;
    check_same_run(&saved, &fresh, &json_path)?;
    let w = candle_core::safetensors::load(ckpt, device)?;
    let m = candle_core::safetensors::load(&mom_path, device)?;
    for (k, v) in &net.vars {
        let t = w.get(k).ok_or_else(|| {
            ExtractError::format(ckpt, format!("--resume: tensor `{k}` is missing"))
        })?;
        v.set(t)?;
    }
    for j in 0..net.trainable.len() {
        let key = net.momentum_key(j);
        net.momentum[j] = m
            .get(&key)
            .ok_or_else(|| {
                ExtractError::format(&mom_path, format!("--resume: `{key}` is missing"))
            })?
            .clone();
    }
    Ok(saved)
}

/// A run resumes only with the arch, K and recipe it was started with.
fn check_same_run(saved: &ResumeState, asked: &ResumeState, json_path: &Path) -> Result<()> {
    if saved.recipe != asked.recipe
        || saved.arch != asked.arch
        || saved.num_classes != asked.num_classes
    {
        return Err(ExtractError::Usage(format!(
            "--resume: {} was made with arch {} K={} recipe {:?}, this run asks for arch {} K={} recipe {:?}",
            json_path.display(),
            saved.arch,
            saved.num_classes,
            saved.recipe,
            asked.arch,
            asked.num_classes,
            asked.recipe
        )));
    }
    Ok(())
}

/// After an epoch: momentum, then weights, the stage-1 record, then the json that names the
/// finished epoch.
pub(super) fn save_epoch(net: &Net, state: &ResumeState, ckpt: &Path) -> Result<()> {
    let (json_path, mom_path) = resume_paths(ckpt);
    let mut m = HashMap::new();
    for j in 0..net.trainable.len() {
        m.insert(
            net.momentum_key(j),
            net.momentum[j].to_device(&Device::Cpu)?,
        );
    }
    write_atomic(&m, &mom_path)?;
    write_atomic(&state_dict(net, state.steps)?, ckpt)?;
    let record = super::Stage1Record {
        arch: state.arch.clone(),
        num_classes: state.num_classes,
        recipe: state.recipe.clone(),
        note: None,
    };
    write_json_atomic(&record, &super::record_path(ckpt))?;
    write_json_atomic(state, &json_path)
}

/// The state_dict to save: every variable on the CPU, plus `num_batches_tracked` per BN.
fn state_dict(net: &Net, steps: usize) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (k, v) in &net.vars {
        out.insert(k.clone(), v.as_tensor().to_device(&Device::Cpu)?);
        if let Some(bn) = k.strip_suffix(".running_mean") {
            out.insert(
                format!("{bn}.num_batches_tracked"),
                Tensor::new(steps as i64, &Device::Cpu)?,
            );
        }
    }
    Ok(out)
}

fn write_atomic(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    candle_core::safetensors::save(tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| ExtractError::io(path, e))
}

fn write_json_atomic(value: &impl Serialize, path: &Path) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let text = serde_json::to_string_pretty(value).expect("serialisable");
    std::fs::write(&tmp, text + "\n").map_err(|e| ExtractError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ExtractError::io(path, e))
}
