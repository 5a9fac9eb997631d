//! Chunks → bank: the split files, train_views.safetensors and meta.json assembled from the
//! chunks of one run (`<out>.partial/chunks/`) or of the parts of a sharded one (`extract
//! merge`). Each file is streamed ([`bank::stream`]): one chunk in memory at a time, whatever
//! the split's size. The bytes are those a one-shot run writes, by construction: the same
//! chunks, the same order, the same meta.json from `run.json`.

use crate::error::{ExtractError, Result};
use crate::write::chunks::{Chunk, RunFile, chunk_count, chunk_path};
use bank::stream::{StreamTensor, write_streamed};
use bank::{BankDir, FeatureDtype, Meta};
use safetensors::Dtype;
use std::path::{Path, PathBuf};

/// What went into the bank: kept rows per split, and the skips (source + chunks).
#[derive(Debug, Clone)]
pub struct Assembled {
    pub rows: Vec<(String, usize)>,
    pub skipped: usize,
    pub head_written: bool,
}

/// Write the bank files into `dest` from the chunks of `parts` (ordered by shard: chunk `c`
/// lives in `parts[c mod n]`).
pub fn assemble(parts: &[PathBuf], rf: &RunFile, dest: &Path) -> Result<Assembled> {
    let mut skipped = rf.source_skipped.clone();
    let mut rows = Vec::new();
    let mut train_counts = None;
    let feat = match rf.feature_dtype() {
        FeatureDtype::F32 => Dtype::F32,
        FeatureDtype::F16 => Dtype::F16,
    };
    for (split, n) in &rf.splits {
        let paths: Vec<PathBuf> = (0..chunk_count(*n, rf.chunk_rows))
            .map(|c| chunk_path(&parts[c % parts.len()], split, c))
            .collect();
        let mut labels = Vec::new();
        let mut chunks = Vec::with_capacity(paths.len());
        for p in &paths {
            if !p.exists() {
                return Err(ExtractError::format(
                    p,
                    "missing chunk: the extraction that writes it did not finish (run it again with --resume)",
                ));
            }
            let ch = Chunk::read(p)?;
            labels.extend(ch.labels()?);
            skipped.extend(ch.skipped()?);
            chunks.push(ch);
        }
        if labels.is_empty() {
            return Err(ExtractError::Usage(format!(
                "split {split}: every image was skipped"
            )));
        }
        let k = labels.len();
        let label_bytes: Vec<u8> = labels
            .iter()
            .flat_map(|&l| (l as i64).to_le_bytes())
            .collect();
        let mut names = vec!["features".to_string()];
        if split != "train" {
            names.push("features_flip".to_string());
        }
        stream_file(
            &dest.join(format!("{split}.safetensors")),
            &names,
            feat,
            (k, rf.dim),
            &chunks,
            &label_bytes,
        )?;
        if split == "train" {
            if rf.views > 0 {
                let views: Vec<String> = (0..rf.views).map(|v| format!("view{v}")).collect();
                stream_file(
                    &dest.join("train_views.safetensors"),
                    &views,
                    feat,
                    (k, rf.dim),
                    &chunks,
                    &label_bytes,
                )?;
            }
            let classes = rf.meta["num_classes"].as_u64().unwrap_or(0) as usize;
            let mut counts = vec![0usize; classes];
            for &l in &labels {
                if let Some(c) = counts.get_mut(l as usize) {
                    *c += 1;
                }
            }
            train_counts = Some(counts);
        }
        rows.push((split.clone(), k));
    }
    let mut meta: Meta = serde_json::from_value(rf.meta.clone())
        .map_err(|e| ExtractError::Usage(format!("run.json: `meta`: {e}")))?;
    meta.train_counts = train_counts;
    if let Some(p) = meta.provenance.as_mut() {
        p["skipped"] = skipped.len().into();
        p["skipped_examples"] = skipped.iter().take(20).cloned().collect::<Vec<_>>().into();
    }
    let head_written = meta
        .backbone
        .as_ref()
        .and_then(|b| b["head_written"].as_bool())
        .unwrap_or(false);
    bank::write_meta(&dest.join("meta.json"), &meta)?;
    Ok(Assembled {
        rows,
        skipped: skipped.len(),
        head_written,
    })
}

/// One streamed file: `names` [k, dim] of dtype `feat` from the chunks, and `labels` [k].
fn stream_file(
    path: &Path,
    names: &[String],
    feat: Dtype,
    (k, dim): (usize, usize),
    chunks: &[Chunk],
    labels: &[u8],
) -> Result<()> {
    let mut tensors: Vec<StreamTensor> = names
        .iter()
        .map(|n| StreamTensor::new(n, feat, vec![k, dim]))
        .collect();
    tensors.push(StreamTensor::new("labels", Dtype::I64, vec![k]));
    write_streamed(path, &tensors, |i, w| {
        if i == names.len() {
            return w.write_all(labels);
        }
        for ch in chunks {
            let bytes = ch
                .raw(&names[i])
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            w.write_all(&bytes)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// `extract merge PART… --out BANK`: the parts of one sharded extraction assembled into the
/// bank a one-shot run writes. Parts of different runs, a part given twice or a missing part
/// are refused naming the part and the field, before anything is written.
pub fn merge(parts: &[PathBuf], out: &Path, overwrite: bool) -> Result<(PathBuf, Assembled)> {
    if parts.is_empty() {
        return Err(ExtractError::Usage(
            "merge: give the parts (<out>.shard-<i>-of-<n> folders)".into(),
        ));
    }
    let mut runs = Vec::with_capacity(parts.len());
    for p in parts {
        let rf = p.join("run.json");
        if !rf.exists() {
            return Err(ExtractError::format(
                p,
                "not a finished part of a sharded extraction (no run.json; an interrupted part is <out>.shard-<i>-of-<n>.partial: finish it with --resume)",
            ));
        }
        runs.push(RunFile::read(&rf)?);
    }
    let first = &runs[0];
    for (p, rf) in parts.iter().zip(&runs).skip(1) {
        if let Some((field, a, b)) = first.first_difference(rf) {
            return Err(ExtractError::Usage(format!(
                "merge: {}: `{field}` is {b} there but {a} in {} (parts of different runs)",
                p.display(),
                parts[0].display()
            )));
        }
    }
    let n = first.shards();
    let mut by_shard: Vec<Option<&PathBuf>> = vec![None; n];
    for (p, rf) in parts.iter().zip(&runs) {
        let slot = by_shard.get_mut(rf.shard).ok_or_else(|| {
            ExtractError::Usage(format!(
                "merge: {}: `shard` {} is not below `shards` {n}",
                p.display(),
                rf.shard
            ))
        })?;
        if let Some(q) = slot {
            return Err(ExtractError::Usage(format!(
                "merge: {} and {} are both part {} of {n}",
                q.display(),
                p.display(),
                rf.shard
            )));
        }
        *slot = Some(p);
    }
    if let Some(i) = by_shard.iter().position(Option::is_none) {
        return Err(ExtractError::Usage(format!(
            "merge: part {i} of {n} is missing (give all {n} parts)"
        )));
    }
    let ordered: Vec<PathBuf> = by_shard.into_iter().flatten().cloned().collect();
    let _lock = crate::write::lock::lock_output(out)?;
    let bank = BankDir::create(out, overwrite)?;
    let head = ordered[0].join("head.safetensors");
    if head.exists() {
        let to = bank.file("head.safetensors");
        std::fs::copy(&head, &to).map_err(|e| ExtractError::io(&to, e))?;
    }
    let done = assemble(&ordered, first, bank.partial())?;
    Ok((bank.finish()?, done))
}
