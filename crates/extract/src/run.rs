//! The extraction run: source images → backbone → `features/<name>/` (bank format), written
//! through `bank::BankDir` so a killed run leaves only `<name>.partial/`, which `retrain`
//! never accepts.
//!
//! Per split: `features` [N, D] of the test view; for `val` / `test` also `features_flip`
//! (the left-right flipped image, for flip test-time augmentation). With `views > 0`,
//! `train_views.safetensors` holds `view0 .. view{V-1}` [N, D] (random crop + flip) and the
//! `labels` [N].

use crate::backbones::{Arch, Backbone, flip_lr};
use crate::batch::{batch_input, input_shape};
use crate::datasets::{Images, Labeled};
use crate::error::{ExtractError, Result};
use crate::source::Source;
use crate::stage1::{Recipe, Stage1Report, TrainEvent};
use crate::transform;
use bank::{BankDir, FeatureDtype, Meta};
use candle_core::{DType, Device, Tensor};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;

/// Loading a backbone lives with the checkpoint reader (stage 1 uses it too); re-exported here,
/// where it was.
pub use crate::checkpoint::{LoadedBackbone, load_backbone};

/// Everything a run needs, checked.
pub struct Plan {
    pub source: Source,
    pub arch: Arch,
    /// A PyTorch / safetensors checkpoint; `None`: deterministic hash-rule weights from `seed`.
    /// With `stage1`, where the trained backbone is written.
    pub checkpoint: Option<PathBuf>,
    /// Train the backbone first (stage 1) and extract with it.
    pub stage1: Option<Stage1Plan>,
    pub seed: u64,
    pub batch_size: usize,
    pub views: usize,
    pub dtype: FeatureDtype,
    pub device: Device,
    /// Use the CPU inference path ([`crate::infer`]) when the backbone has one.
    pub fast: bool,
    pub out: PathBuf,
    pub overwrite: bool,
    pub skip_bad: bool,
    /// Keep only the first N rows of each split (smoke runs, benchmarks).
    pub limit: Option<usize>,
    /// The command line, for provenance.
    pub command: String,
    pub git_revision: Option<String>,
}

/// Stage-1 training before the extraction.
#[derive(Debug, Clone)]
pub struct Stage1Plan {
    pub recipe: Recipe,
    /// Continue from the checkpoint's resume state.
    pub resume: bool,
    /// Stop after the checkpoint (no bank).
    pub only: bool,
}

/// Progress events for the caller's UI (the library never prints).
#[derive(Debug, Clone)]
pub enum Event<'a> {
    Train(TrainEvent<'a>),
    Stage1Done(&'a Stage1Report),
    Start { split: &'a str, rows: usize },
    Advance { split: &'a str, done: usize },
    Finish { split: &'a str },
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub out: PathBuf,
    pub rows: Vec<(String, usize)>,
    pub skipped: usize,
    pub dim: usize,
    pub head_written: bool,
    pub stage1: Option<Stage1Report>,
}

/// Stage 1 if asked (stopping there with `--stage1-only`), then every split through the
/// backbone into the bank, the stage-1 head when it fits, and meta.json.
pub fn run(plan: &Plan, progress: &mut dyn FnMut(Event)) -> Result<Summary> {
    let _lock = lock_output(&plan.out)?;
    let stage1 = match &plan.stage1 {
        Some(s1) => {
            let report = train_stage1(plan, s1, progress)?;
            if s1.only {
                return Ok(stage1_only_summary(plan, report));
            }
            Some(report)
        }
        None => None,
    };
    let (model, head_k, head_note) = load_backbone(
        plan.arch,
        plan.checkpoint.as_deref(),
        plan.seed,
        &plan.device,
    )?;
    check_input(plan)?;
    let fast = match (&plan.device, plan.fast) {
        (Device::Cpu, true) => crate::infer::compile(model.as_ref()),
        _ => None,
    };
    let model = fast.unwrap_or(model);
    let bank = BankDir::create(&plan.out, plan.overwrite)?;
    let mut summary = Summary {
        out: plan.out.clone(),
        rows: Vec::new(),
        skipped: plan.source.skipped.len(),
        dim: plan.arch.feature_dim(),
        head_written: false,
        stage1: None,
    };
    let (train_counts, skipped_msgs) =
        write_splits(model.as_ref(), plan, &bank, &mut summary, progress)?;
    let head_note = write_head(model.as_ref(), head_k, plan, &bank, &mut summary)?.or(head_note);
    let meta = bank_meta(
        plan,
        &summary,
        train_counts,
        head_k,
        head_note,
        &skipped_msgs,
        stage1.as_ref(),
    )?;
    bank::write_meta(&bank.file("meta.json"), &meta)?;
    bank.finish()?;
    summary.stage1 = stage1;
    Ok(summary)
}

/// Stage 1 into the plan's checkpoint (refused first if the bank it would lead to exists).
fn train_stage1(
    plan: &Plan,
    s1: &Stage1Plan,
    progress: &mut dyn FnMut(Event),
) -> Result<Stage1Report> {
    if !s1.only && plan.out.exists() && !plan.overwrite {
        return Err(ExtractError::Usage(format!(
            "{} already exists (pass --overwrite to replace it)",
            plan.out.display()
        )));
    }
    let ckpt = plan
        .checkpoint
        .as_deref()
        .ok_or_else(|| ExtractError::Usage("stage 1 needs a checkpoint path".into()))?;
    let src = &plan.source;
    let report = crate::stage1::train(
        plan.arch,
        src.num_classes,
        &src.train,
        &src.test,
        &src.normalize,
        &s1.recipe,
        &plan.device,
        ckpt,
        s1.resume,
        None,
        &mut |e| progress(Event::Train(e)),
    )?;
    progress(Event::Stage1Done(&report));
    Ok(report)
}

/// `--stage1-only`: the checkpoint is the output, no bank.
fn stage1_only_summary(plan: &Plan, report: Stage1Report) -> Summary {
    Summary {
        out: report.checkpoint.clone(),
        rows: Vec::new(),
        skipped: 0,
        dim: plan.arch.feature_dim(),
        head_written: false,
        stage1: Some(report),
    }
}

/// The images fit the backbone, and batches hold at least one image.
fn check_input(plan: &Plan) -> Result<()> {
    let src = &plan.source;
    let in_ch = match &src.train.images {
        Images::Raw(r) => r.channels,
        Images::Files(_) => 3,
    };
    if in_ch != plan.arch.in_channels() {
        return Err(ExtractError::Usage(format!(
            "arch {} takes {}-channel images but {} has {in_ch} channels",
            plan.arch,
            plan.arch.in_channels(),
            src.name
        )));
    }
    if plan.batch_size == 0 {
        return Err(ExtractError::Usage(
            "--batch-size must be at least 1".into(),
        ));
    }
    Ok(())
}

/// train, val (if any), test: features into `<split>.safetensors` (and the train views);
/// returns the training rows per class and every skip message (the source's first).
fn write_splits(
    model: &dyn Backbone,
    plan: &Plan,
    bank: &BankDir,
    summary: &mut Summary,
    progress: &mut dyn FnMut(Event),
) -> Result<(Vec<usize>, Vec<String>)> {
    let src = &plan.source;
    let mut skipped_msgs: Vec<String> = src.skipped.clone();
    let mut train_counts = Vec::new();
    let splits: Vec<(&str, &Labeled)> = [
        ("train", Some(&src.train)),
        ("val", src.val.as_ref()),
        ("test", Some(&src.test)),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.map(|s| (n, s)))
    .collect();
    for (name, data) in splits {
        let mut out = extract_split(model, plan, name, data, progress)?;
        summary.skipped += out.skipped.len();
        skipped_msgs.append(&mut out.skipped);
        write_split_files(plan, bank, name, &out)?;
        if name == "train" {
            train_counts = vec![0usize; src.num_classes];
            for &l in &out.labels {
                train_counts[l as usize] += 1;
            }
        }
        summary.rows.push((name.to_owned(), out.labels.len()));
    }
    Ok((train_counts, skipped_msgs))
}

/// One split (cut to `--limit`) through the backbone: the test view, its flip for val / test,
/// the random views for train.
fn extract_split(
    model: &dyn Backbone,
    plan: &Plan,
    name: &str,
    data: &Labeled,
    progress: &mut dyn FnMut(Event),
) -> Result<SplitFeatures> {
    let data = match plan.limit {
        Some(n) => data.truncate(n),
        None => data.clone(),
    };
    let flip = name != "train";
    let views = if name == "train" { plan.views } else { 0 };
    progress(Event::Start {
        split: name,
        rows: data.len(),
    });
    let out = features(model, &data, &plan.source, plan, flip, views, &mut |done| {
        progress(Event::Advance { split: name, done })
    })?;
    progress(Event::Finish { split: name });
    if out.labels.is_empty() {
        return Err(ExtractError::Usage(format!(
            "split {name}: every image was skipped"
        )));
    }
    Ok(out)
}

/// `<name>.safetensors`, and `train_views.safetensors` when the split has views.
fn write_split_files(plan: &Plan, bank: &BankDir, name: &str, out: &SplitFeatures) -> Result<()> {
    let dim = plan.arch.feature_dim();
    bank::write_split(
        &bank.file(&format!("{name}.safetensors")),
        dim,
        &out.features,
        out.flip.as_deref(),
        &out.labels,
        plan.dtype,
    )?;
    if !out.views.is_empty() {
        write_views(
            &bank.file("train_views.safetensors"),
            dim,
            &out.views,
            &out.labels,
            plan.dtype,
        )?;
    }
    Ok(())
}

/// The stage-1 classifier goes to head.safetensors when it classifies these classes; returns
/// the note saying why it was not written when it does not.
fn write_head(
    model: &dyn Backbone,
    head_k: Option<usize>,
    plan: &Plan,
    bank: &BankDir,
    summary: &mut Summary,
) -> Result<Option<String>> {
    let (Some(k), Some(head)) = (head_k, model.head()) else {
        return Ok(None);
    };
    let num_classes = plan.source.num_classes;
    if k != num_classes {
        return Ok(Some(format!(
            "checkpoint classifier has {k} classes, the dataset {num_classes}; head.safetensors not written"
        )));
    }
    let w = head
        .weight()
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let b = head
        .bias()
        .map(|b| b.to_device(&Device::Cpu)?.to_vec1::<f32>())
        .transpose()?
        .unwrap_or_else(|| vec![0.0; k]);
    bank::write_head(&bank.file("head.safetensors"), k, summary.dim, &w, &b)?;
    summary.head_written = true;
    Ok(None)
}

/// meta.json: the dataset, the backbone and the provenance of the bank.
fn bank_meta(
    plan: &Plan,
    summary: &Summary,
    train_counts: Vec<usize>,
    head_k: Option<usize>,
    head_note: Option<String>,
    skipped_msgs: &[String],
    stage1: Option<&Stage1Report>,
) -> Result<Meta> {
    let src = &plan.source;
    Ok(Meta {
        dataset: Some(src.name.clone()),
        num_classes: Some(src.num_classes),
        class_names: src.class_names.clone(),
        train_counts: Some(train_counts),
        shots: src.shots,
        backbone: Some(backbone_json(
            plan,
            head_k,
            summary.head_written,
            head_note,
        )?),
        provenance: Some(provenance_json(plan, summary.skipped, skipped_msgs, stage1)),
        extra: src
            .long_tail
            .iter()
            .map(|lt| ("long_tail".to_string(), lt.clone()))
            .collect(),
    })
}

/// How the bank was made: the command, seed, code, device, transform, skips and stage 1.
fn provenance_json(
    plan: &Plan,
    skipped: usize,
    skipped_msgs: &[String],
    stage1: Option<&Stage1Report>,
) -> serde_json::Value {
    json!({
        "command": plan.command,
        "seed": plan.seed,
        "git_revision": plan.git_revision,
        "crate": format!("extract {}", env!("CARGO_PKG_VERSION")),
        "device": crate::device::describe(&plan.device),
        "feature_dtype": match plan.dtype { FeatureDtype::F32 => "f32", FeatureDtype::F16 => "f16" },
        "train_views": plan.views,
        "limit": plan.limit,
        "transform": transform_json(&plan.source),
        "skipped": skipped,
        "skipped_examples": skipped_msgs.iter().take(20).collect::<Vec<_>>(),
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

fn transform_json(src: &Source) -> serde_json::Value {
    let test = match &src.train.images {
        Images::Raw(_) => "ToTensor + Normalize".to_string(),
        Images::Files(_) => format!(
            "Resize({}) + CenterCrop({}) + Normalize",
            transform::RESIZE,
            transform::CROP
        ),
    };
    json!({"test": test, "mean": src.normalize.mean, "std": src.normalize.std, "flip": "features_flip = features of the left-right flipped test view"})
}

struct SplitFeatures {
    features: Vec<f32>,
    flip: Option<Vec<f32>>,
    views: Vec<Vec<f32>>,
    labels: Vec<u32>,
    skipped: Vec<String>,
}

fn to_rows(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

fn features(
    model: &dyn Backbone,
    data: &Labeled,
    src: &Source,
    plan: &Plan,
    flip: bool,
    views: usize,
    tick: &mut dyn FnMut(usize),
) -> Result<SplitFeatures> {
    let (c, h, w) = input_shape(data);
    let mut out = SplitFeatures {
        features: Vec::new(),
        flip: flip.then(Vec::new),
        views: vec![Vec::new(); views],
        labels: Vec::new(),
        skipped: Vec::new(),
    };
    let all: Vec<usize> = (0..data.len()).collect();
    let mut done = 0;
    for rows in all.chunks(plan.batch_size) {
        let mut kept = Vec::with_capacity(rows.len());
        let mut buf = Vec::with_capacity(rows.len() * c * h * w);
        for (i, res) in batch_input(data, rows, &src.normalize, src.crop_padding, None) {
            match res {
                Ok(v) => {
                    buf.extend(v);
                    kept.push(i);
                }
                Err(e) if plan.skip_bad => out.skipped.push(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        if !kept.is_empty() {
            let x = Tensor::from_vec(buf, (kept.len(), c, h, w), &plan.device)?;
            out.features.extend(to_rows(&model.features(&x)?)?);
            if let Some(ff) = out.flip.as_mut() {
                ff.extend(to_rows(&model.features(&flip_lr(&x)?)?)?);
            }
            for v in 0..views {
                let mut vb = Vec::with_capacity(kept.len() * c * h * w);
                for (_, res) in batch_input(
                    data,
                    &kept,
                    &src.normalize,
                    src.crop_padding,
                    Some((v, plan.seed)),
                ) {
                    vb.extend(res?);
                }
                let x = Tensor::from_vec(vb, (kept.len(), c, h, w), &plan.device)?;
                out.views[v].extend(to_rows(&model.features(&x)?)?);
            }
            out.labels.extend(kept.iter().map(|&i| data.labels[i]));
        }
        done += rows.len();
        tick(done);
    }
    Ok(out)
}

/// `train_views.safetensors`: `view{v}` [N, D] per augmented view, and `labels` [N] (i64).
fn write_views(
    path: &std::path::Path,
    dim: usize,
    views: &[Vec<f32>],
    labels: &[u32],
    dtype: FeatureDtype,
) -> Result<()> {
    let n = labels.len();
    let dt = match dtype {
        FeatureDtype::F32 => DType::F32,
        FeatureDtype::F16 => DType::F16,
    };
    let mut t = HashMap::new();
    for (v, f) in views.iter().enumerate() {
        t.insert(
            format!("view{v}"),
            Tensor::from_slice(f, (n, dim), &Device::Cpu)?.to_dtype(dt)?,
        );
    }
    t.insert(
        "labels".to_string(),
        Tensor::from_vec(
            labels.iter().map(|&l| l as i64).collect::<Vec<_>>(),
            n,
            &Device::Cpu,
        )?,
    );
    candle_core::safetensors::save(&t, path)?;
    Ok(())
}

/// One extraction per bank folder: a lock on `.<name>.lock` beside it, held until the bank is
/// written (a second `extract` on the same `--out` stops at once, naming the holder's pid).
fn lock_output(out: &std::path::Path) -> Result<bank::lock::FolderLock> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| ExtractError::io(&parent, e))?;
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    bank::lock::FolderLock::acquire_file(
        &parent.join(format!(".{name}.lock")),
        &format!("--out {}", out.display()),
    )
    .map_err(|e| ExtractError::Usage(e.to_string()))
}
