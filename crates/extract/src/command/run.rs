//! The extraction run: source images → backbone → `features/<name>/` (bank format), written
//! through `bank::BankDir` so a killed run leaves only `<name>.partial/`, which `retrain`
//! never accepts.
//!
//! Per split: `features` [N, D] of the test view; for `val` / `test` also `features_flip`
//! (the left-right flipped image, for flip test-time augmentation). With `views > 0`,
//! `train_views.safetensors` holds `view0 .. view{V-1}` [N, D] (random crop + flip) and the
//! `labels` [N].
//!
//! The splits are extracted in chunks ([`crate::write::chunks`]) under `<out>.partial/`, loaded
//! through [`crate::source::pipeline`], and assembled into the bank by [`crate::write::assemble`] at the end:
//! `--resume` continues from the chunks an interrupted run left (killed, or stopped by SIGINT /
//! SIGTERM, which wait for the chunk being written: [`crate::interrupt`]), `--shard i/n`
//! extracts every n-th chunk into a part that `extract merge` assembles with the others.

use crate::error::{ExtractError, Result};
use crate::model::backbones::{Backbone, flip_lr};
use crate::source::batch::input_shape;
use crate::source::datasets::Labeled;
use crate::source::pipeline::{LoadSpec, batches, for_each_batch};
use crate::train::stage1::{Stage1Report, TrainEvent};
use crate::write::chunks::{self, Chunk, Features, RunFile};
use crate::write::provenance::HeadInfo;
use bank::BankDir;
use candle_core::{DType, Device, Tensor};
use std::borrow::Cow;
use std::path::PathBuf;

use crate::model::checkpoint::load_backbone;
use crate::write::lock::lock_output;
use crate::write::plan::{Plan, Stage1Plan};

/// Progress events for the caller's UI (the library never prints).
#[derive(Debug, Clone)]
pub enum Event<'a> {
    Train(TrainEvent<'a>),
    Stage1Done(&'a Stage1Report),
    Start {
        split: &'a str,
        rows: usize,
    },
    Advance {
        split: &'a str,
        done: usize,
    },
    Finish {
        split: &'a str,
    },
    /// Before the first split: the chunks this run owns (all splits) and how many of them an
    /// interrupted run left written, which a `--resume` reuses (0 on a fresh start).
    Chunks {
        present: usize,
        total: usize,
    },
    /// The bank (or the part) is in place; sent while the files are still held against an
    /// interrupt.
    Written,
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
/// backbone in chunks, and the bank assembled from them (or, with `--shard`, the part).
pub fn run(plan: &Plan, progress: &mut dyn FnMut(Event)) -> Result<Summary> {
    let target = if plan.shard.is_whole() {
        plan.out.clone()
    } else {
        plan.shard.part_dir(&plan.out)
    };
    let _lock = lock_output(&target)?;
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
    let splits = limited_splits(plan);
    let split_refs: Vec<(&str, &Labeled)> = splits.iter().map(|(n, d)| (*n, &**d)).collect();
    let (head, head_tensors) = head_of(model.as_ref(), head_k, head_note, plan)?;
    let run_file = crate::write::provenance::run_file(plan, &split_refs, &head, stage1.as_ref())?;
    let bank = if plan.resume {
        BankDir::resume(&target, plan.overwrite)?
    } else {
        BankDir::create(&target, plan.overwrite)?
    };
    check_resumed(&bank, &run_file)?;
    run_file.write(&bank.file("run.json"))?;
    if let Some((k, w, b)) = &head_tensors {
        bank::write_head(&bank.file("head.safetensors"), *k, run_file.dim, w, b)?;
    }
    let mut summary = Summary {
        out: target.clone(),
        rows: Vec::new(),
        skipped: plan.source.skipped.len(),
        dim: plan.arch.feature_dim(),
        head_written: head.written,
        stage1: None,
    };
    let (present, total) = chunk_counts(plan, &split_refs, bank.partial());
    progress(Event::Chunks { present, total });
    for (name, data) in &split_refs {
        let (kept, skipped) = extract_chunks(model.as_ref(), plan, name, data, &bank, progress)?;
        summary.rows.push((name.to_string(), kept));
        summary.skipped += skipped;
    }
    // the assembly removes the chunks: an interrupt waits until the bank is in place
    let _writing = crate::interrupt::writing();
    if plan.shard.is_whole() {
        let parts = [bank.partial().to_path_buf()];
        crate::write::assemble::assemble(&parts, &run_file, bank.partial())?;
        let chunks_dir = bank.partial().join("chunks");
        std::fs::remove_dir_all(&chunks_dir).map_err(|e| ExtractError::io(&chunks_dir, e))?;
        let rf = bank.file("run.json");
        std::fs::remove_file(&rf).map_err(|e| ExtractError::io(&rf, e))?;
    }
    bank.finish()?;
    progress(Event::Written);
    summary.stage1 = stage1;
    Ok(summary)
}

/// The chunks this run owns over all `splits`, and how many of them are written in `dir`.
fn chunk_counts(plan: &Plan, splits: &[(&str, &Labeled)], dir: &std::path::Path) -> (usize, usize) {
    let (mut present, mut total) = (0, 0);
    for (name, data) in splits {
        for c in
            (0..chunks::chunk_count(data.len(), plan.chunk_rows)).filter(|&c| plan.shard.owns(c))
        {
            total += 1;
            present += usize::from(chunks::chunk_path(dir, name, c).exists());
        }
    }
    (present, total)
}

/// With `--resume`, the interrupted run's run.json must match this one's, field by field.
fn check_resumed(bank: &BankDir, now: &RunFile) -> Result<()> {
    let path = bank.file("run.json");
    if !path.exists() {
        return Ok(());
    }
    let was = RunFile::read(&path)?;
    let diff = was.first_difference(now).or_else(|| {
        (was.shard != now.shard).then(|| {
            (
                "shard".to_string(),
                was.shard.to_string(),
                now.shard.to_string(),
            )
        })
    });
    match diff {
        Some((field, a, b)) => Err(ExtractError::Usage(format!(
            "--resume: {}: `{field}` was {a}, now {b} (resume with the interrupted run's arguments, or drop --resume to start over)",
            path.display()
        ))),
        None => Ok(()),
    }
}

/// train, val (if any), test, each cut to `--limit` (borrowed, not copied, without one).
fn limited_splits(plan: &Plan) -> Vec<(&'static str, Cow<'_, Labeled>)> {
    let src = &plan.source;
    [
        ("train", Some(&src.train)),
        ("val", src.val.as_ref()),
        ("test", Some(&src.test)),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.map(|s| (n, s)))
    .map(|(n, d)| {
        let d = match plan.limit {
            Some(l) => Cow::Owned(d.truncate(l)),
            None => Cow::Borrowed(d),
        };
        (n, d)
    })
    .collect()
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
    let report = crate::train::stage1::train(
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
    let in_ch = input_shape(&src.train).0;
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

/// The chunks of split `name` this run owns, each extracted unless a resumed run finds it
/// written; returns the rows kept and skipped in them.
fn extract_chunks(
    model: &dyn Backbone,
    plan: &Plan,
    name: &str,
    data: &Labeled,
    bank: &BankDir,
    progress: &mut dyn FnMut(Event),
) -> Result<(usize, usize)> {
    let n = data.len();
    let r = plan.chunk_rows;
    let mine: Vec<usize> = (0..chunks::chunk_count(n, r))
        .filter(|&c| plan.shard.owns(c))
        .collect();
    let len = |c: usize| r.min(n - c * r);
    progress(Event::Start {
        split: name,
        rows: mine.iter().map(|&c| len(c)).sum(),
    });
    let flip = name != "train";
    let views = if name == "train" { plan.views } else { 0 };
    let (mut done, mut kept, mut skipped) = (0, 0, 0);
    for c in mine {
        let path = chunks::chunk_path(bank.partial(), name, c);
        if path.exists() {
            let ch = Chunk::read(&path)?;
            kept += ch.rows()?;
            skipped += ch.skipped()?.len();
        } else {
            let f = features(model, data, plan, flip, views, (c * r, len(c)), &mut |d| {
                progress(Event::Advance {
                    split: name,
                    done: done + d,
                })
            })?;
            let _writing = crate::interrupt::writing();
            chunks::write_chunk(&path, plan.arch.feature_dim(), &f, plan.dtype)?;
            kept += f.labels.len();
            skipped += f.skipped.len();
        }
        done += len(c);
        progress(Event::Advance { split: name, done });
    }
    progress(Event::Finish { split: name });
    if kept == 0 && n > 0 && plan.shard.is_whole() {
        return Err(ExtractError::Usage(format!(
            "split {name}: every image was skipped"
        )));
    }
    Ok((kept, skipped))
}

/// The stage-1 classifier, to be written as head.safetensors when it classifies these
/// classes (and the note saying why not when it does not).
#[allow(clippy::type_complexity)]
fn head_of(
    model: &dyn Backbone,
    head_k: Option<usize>,
    note: Option<String>,
    plan: &Plan,
) -> Result<(HeadInfo, Option<(usize, Vec<f32>, Vec<f32>)>)> {
    let info = |written, note| HeadInfo {
        k: head_k,
        written,
        note,
    };
    let (Some(k), Some(head)) = (head_k, model.head()) else {
        return Ok((info(false, note), None));
    };
    let num_classes = plan.source.num_classes;
    if k != num_classes {
        let why = format!(
            "checkpoint classifier has {k} classes, the dataset {num_classes}; head.safetensors not written"
        );
        return Ok((info(false, Some(why)), None));
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
    Ok((info(true, None), Some((k, w, b))))
}

fn to_rows(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// The features of rows `first .. first + len` of `data`, batch by batch from `first`.
fn features(
    model: &dyn Backbone,
    data: &Labeled,
    plan: &Plan,
    flip: bool,
    views: usize,
    (first, len): (usize, usize),
    tick: &mut dyn FnMut(usize),
) -> Result<Features> {
    let (c, h, w) = input_shape(data);
    let mut out = Features {
        flip: flip.then(Vec::new),
        views: vec![Vec::new(); views],
        ..Features::default()
    };
    let spec = LoadSpec {
        data,
        norm: &plan.source.normalize,
        pad: plan.source.crop_padding,
        views,
        seed: plan.seed,
        skip_bad: plan.skip_bad,
    };
    let mut done = 0;
    let batches = batches(first, len, plan.batch_size);
    for_each_batch(&spec, &batches, plan.workers, |l| {
        done += l.kept.len() + l.skipped.len();
        out.skipped.extend(l.skipped);
        let k = l.kept.len();
        if k > 0 {
            let x = Tensor::from_vec(l.test, (k, c, h, w), &plan.device)?;
            out.features.extend(to_rows(&model.features(&x)?)?);
            if let Some(ff) = out.flip.as_mut() {
                ff.extend(to_rows(&model.features(&flip_lr(&x)?)?)?);
            }
            for (v, vb) in l.views.into_iter().enumerate() {
                let x = Tensor::from_vec(vb, (k, c, h, w), &plan.device)?;
                out.views[v].extend(to_rows(&model.features(&x)?)?);
            }
            out.labels.extend(l.kept.iter().map(|&i| data.labels[i]));
        }
        tick(done);
        Ok(())
    })?;
    Ok(out)
}
