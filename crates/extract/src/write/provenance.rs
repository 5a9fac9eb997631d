//! What a bank records about how it was made — meta.json's dataset, backbone and provenance —
//! and `run.json`, the arguments that decide a chunked extraction's bytes
//! ([`crate::write::chunks::RunFile`]). Both are built before the first chunk, so that a resumed run
//! and every shard of a sharded one write the same meta.json as a one-shot run.

use crate::error::{ExtractError, Result};
use crate::source::datasets::{Images, Labeled};
use crate::source::transform;
use crate::train::stage1::Stage1Report;
use crate::write::chunks::RunFile;
use crate::write::plan::Plan;
use bank::{FeatureDtype, Meta};
use serde_json::json;
use std::collections::BTreeMap;

/// What the backbone wrote or did not write as head.safetensors.
pub struct HeadInfo {
    /// Classes of the checkpoint's classifier, if it has one.
    pub k: Option<usize>,
    pub written: bool,
    pub note: Option<String>,
}

/// `run.json` of `plan`: the fields that decide the chunks' bytes, the rows of each split and
/// meta.json without its chunk-derived parts.
pub fn run_file(
    plan: &Plan,
    splits: &[(&str, &Labeled)],
    head: &HeadInfo,
    stage1: Option<&Stage1Report>,
) -> Result<RunFile> {
    let src = &plan.source;
    let backbone = backbone_json(plan, head.k, head.written, head.note.clone())?;
    let meta = Meta {
        dataset: Some(src.name.clone()),
        num_classes: Some(src.num_classes),
        class_names: src.class_names.clone(),
        train_counts: None,
        shots: src.shots,
        backbone: Some(backbone.clone()),
        provenance: Some(provenance_json(plan, stage1)),
        extra: src
            .long_tail
            .iter()
            .map(|lt| ("long_tail".to_string(), lt.clone()))
            .collect(),
    };
    let inputs: BTreeMap<&str, serde_json::Value> = splits
        .iter()
        .map(|(n, d)| (*n, json!({"rows": d.len(), "fnv1a64": fingerprint(d)})))
        .collect();
    let dtype = match plan.dtype {
        FeatureDtype::F32 => "f32",
        FeatureDtype::F16 => "f16",
    };
    let path = match (&plan.device, plan.fast) {
        (candle_core::Device::Cpu, true) => "cpu inference path".to_string(),
        (candle_core::Device::Cpu, false) => "cpu candle".to_string(),
        (d, _) => crate::device::describe(d).to_string(),
    };
    let run: BTreeMap<String, serde_json::Value> = [
        ("dataset", json!(src.name)),
        ("num_classes", json!(src.num_classes)),
        ("inputs", json!(inputs)),
        ("arch", json!(plan.arch.name())),
        // the checkpoint's bytes, not its path (shards may read it from different places)
        (
            "weights",
            json!({"checkpoint_fnv1a64": backbone["checkpoint"]["fnv1a64"], "weights": backbone["weights"]}),
        ),
        ("path", json!(path)),
        // the test view; the train views are decided by `crop_padding`, `seed` and `views`
        // (meta.json says where the padding came from, which may differ between shards)
        ("transform", transform_json(plan, false)),
        ("crop_padding", json!(src.crop_padding)),
        ("seed", json!(plan.seed)),
        ("views", json!(plan.views)),
        ("feature_dtype", json!(dtype)),
        ("batch_size", json!(plan.batch_size)),
        ("chunk_rows", json!(plan.chunk_rows)),
        ("limit", json!(plan.limit)),
        ("skip_bad", json!(plan.skip_bad)),
        ("shards", json!(plan.shard.count)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Ok(RunFile {
        format: RunFile::FORMAT,
        run,
        shard: plan.shard.index,
        splits: splits
            .iter()
            .map(|(n, d)| (n.to_string(), d.len()))
            .collect(),
        meta: serde_json::to_value(&meta).expect("Meta serialises"),
        dim: plan.arch.feature_dim(),
        dtype: dtype.to_string(),
        views: plan.views,
        chunk_rows: plan.chunk_rows,
        source_skipped: src.skipped.clone(),
    })
}

/// The command as meta.json records it: without the arguments that do not change the bank's
/// bytes (`--shard`, `--resume`, `--workers`), so that a resumed, a sharded and a
/// one-shot run record the same command.
pub fn canonical_command(command: &str) -> String {
    let Some(words) = shlex::split(command) else {
        return command.to_owned();
    };
    let mut kept = Vec::with_capacity(words.len());
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let flag = w.split('=').next().unwrap_or(w);
        match flag {
            "--shard" | "--workers" if !w.contains('=') => {
                it.next();
            }
            "--shard" | "--workers" | "--resume" => {}
            _ => kept.push(w.as_str()),
        }
    }
    shlex::try_join(kept).unwrap_or_else(|_| command.to_owned())
}

/// FNV-1a of a split's inputs: the image bytes (in-memory datasets) or the image paths, and
/// the labels.
fn fingerprint(d: &Labeled) -> String {
    let mut h = bank::Fnv::default();
    match &d.images {
        Images::Raw(r) => {
            h.write(&[r.channels as u8, r.height as u8, r.width as u8]);
            h.write(&r.data);
        }
        Images::Files(f) => {
            for p in &f.paths {
                h.write(p.to_string_lossy().as_bytes());
                h.write(b"\n");
            }
        }
    }
    for l in &d.labels {
        h.write(&l.to_le_bytes());
    }
    format!("{:016x}", h.0)
}

/// How the bank was made: the command, seed, code, device, transform, skips and stage 1.
fn provenance_json(plan: &Plan, stage1: Option<&Stage1Report>) -> serde_json::Value {
    json!({
        "command": canonical_command(&plan.command),
        "seed": plan.seed,
        "git_revision": plan.git_revision,
        "crate": format!("extract {}", env!("CARGO_PKG_VERSION")),
        "device": crate::device::describe(&plan.device),
        "feature_dtype": match plan.dtype { FeatureDtype::F32 => "f32", FeatureDtype::F16 => "f16" },
        "train_views": plan.views,
        "limit": plan.limit,
        "transform": transform_json(plan, true),
        // filled in from the chunks when the bank is assembled
        "skipped": 0,
        "skipped_examples": Vec::<String>::new(),
        "stage1": stage1.map(stage1_json),
    })
}

/// The stage-1 record in meta.json provenance.
fn stage1_json(r: &Stage1Report) -> serde_json::Value {
    json!({
        "recipe": "end-to-end cross-entropy + weight decay (LTWB): SGD momentum, coupled wd, cosine lr to 0 stepped after each epoch, random crop (zero padding) + horizontal flip, BatchNorm in train mode; final epoch, no selection",
        "arch": r.arch,
        "epochs": r.recipe.epochs,
        "batch_size": r.recipe.batch_size,
        "lr": r.recipe.lr,
        "momentum": r.recipe.momentum,
        "weight_decay": r.recipe.weight_decay,
        "crop_padding": r.recipe.crop_padding,
        "seed": r.recipe.seed,
        "train_rows": r.train_rows,
        "parameters": r.parameters,
        "train_wall_s": (r.train_secs * 10.0).round() / 10.0,
        "resumed_from_epoch": r.resumed_from,
        "test_rows": r.test_rows,
        "test_top1": (r.test_top1 * 100.0).round() / 100.0,
        "test_top1_flip_tta": (r.test_top1_flip * 100.0).round() / 100.0,
        "log": r.log.iter().map(|l| json!({
            "epoch": l.epoch,
            "lr": l.lr,
            "loss": (l.loss * 1e4).round() / 1e4,
            "train_acc": (l.train_acc * 100.0).round() / 100.0,
            "secs": (l.secs * 10.0).round() / 10.0,
        })).collect::<Vec<_>>(),
    })
}

fn backbone_json(
    plan: &Plan,
    head_k: Option<usize>,
    head_written: bool,
    head_note: Option<String>,
) -> Result<serde_json::Value> {
    let ckpt = match &plan.checkpoint {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| ExtractError::io(p, e))?;
            let mut h = bank::Fnv::default();
            h.write(&bytes);
            json!({"path": p.display().to_string(), "bytes": bytes.len(), "fnv1a64": format!("{:016x}", h.0)})
        }
        None => json!(null),
    };
    Ok(json!({
        "arch": plan.arch.name(),
        "feature_dim": plan.arch.feature_dim(),
        "checkpoint": ckpt,
        "weights": if plan.checkpoint.is_some() { "checkpoint".to_string() } else { format!("untrained: hash rule, seed {}", plan.seed) },
        "checkpoint_num_classes": head_k,
        "head_written": head_written,
        "head_note": head_note,
    }))
}

/// The test view, its flip and, with `views` and `--views`, the train views' transform
/// (`train_views`).
fn transform_json(plan: &Plan, views: bool) -> serde_json::Value {
    let src = &plan.source;
    let test = match &src.train.images {
        Images::Raw(_) => shown(plan),
        Images::Files(_) => format!(
            "Resize({}) + CenterCrop({}) + Normalize",
            transform::RESIZE,
            transform::CROP
        ),
    };
    let mut t = json!({"test": test, "mean": src.normalize.mean, "std": src.normalize.std, "flip": "features_flip = features of the left-right flipped test view"});
    if views && plan.views > 0 {
        t["train_views"] = views_json(plan);
    }
    t
}

/// What follows the crop (and the flip) of an image: presentation and normalisation.
fn shown(plan: &Plan) -> String {
    match &plan.source.train.images {
        Images::Raw(r) => match r.present {
            Some(p) => format!(
                "ToTensor + interpolate({0}x{0}, bilinear, align_corners=False) + grey to {1} channels + Normalize",
                p.side, p.channels
            ),
            None => "ToTensor + Normalize".to_string(),
        },
        Images::Files(_) => "Normalize".to_string(),
    }
}

/// The train views' transform: the crop, its zero padding and where that came from, the flip.
fn views_json(plan: &Plan) -> serde_json::Value {
    let src = &plan.source;
    let then = shown(plan);
    match &src.train.images {
        Images::Raw(r) => {
            let pad = src.crop_padding;
            json!({
                "count": plan.views,
                "seed": plan.seed,
                "transform": format!(
                    "RandomCrop({}x{}, padding={pad}, zero fill) + RandomHorizontalFlip(p=0.5), then {then}",
                    r.height, r.width
                ),
                "crop_padding": pad,
                "crop_padding_from": plan.views_padding.describe(),
                "flip": true,
            })
        }
        Images::Files(_) => json!({
            "count": plan.views,
            "seed": plan.seed,
            "transform": format!(
                "RandomResizedCrop({}, scale=(0.08, 1), ratio=(3/4, 4/3)) + RandomHorizontalFlip(p=0.5), then {then}",
                transform::CROP
            ),
            "crop_padding": null,
            "flip": true,
        }),
    }
}
