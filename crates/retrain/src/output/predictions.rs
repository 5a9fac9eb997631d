//! Per-row test predictions. Each run's are kept beside its record, in
//! `<records folder>/predictions/<key>-<code>.safetensors` (`pred` u32 [n], `p_true` f32 [n],
//! `top5` u32 [n, 5]), written before the record line, so a recorded run always has them and a
//! resumed table has them too; each experiment gathers its runs' into `<out>/predictions.parquet`
//! (columns `bank, method, params, seed, row, label, pred, correct, p_true, top5`), which
//! `retrain compare` reads.

use crate::eval::metrics::Predictions;
use anyhow::{Context, bail};
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// The file of a run's predictions, beside the records file `records`.
pub fn sidecar(records: &Path, key: &str, code: &str) -> PathBuf {
    records
        .parent()
        .unwrap_or(Path::new("."))
        .join("predictions")
        .join(format!("{key}-{code}.safetensors"))
}

/// Write `p` to `path`, atomically.
pub fn save(path: &Path, p: &Predictions) -> anyhow::Result<()> {
    use bank::write::RawTensor;
    use safetensors::Dtype;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    let n = p.pred.len();
    let u32s = |v: &mut dyn Iterator<Item = u32>| v.flat_map(|x| x.to_le_bytes()).collect();
    let tensors = vec![
        (
            "pred",
            RawTensor {
                dtype: Dtype::U32,
                shape: vec![n],
                bytes: u32s(&mut p.pred.iter().copied()),
            },
        ),
        (
            "p_true",
            RawTensor {
                dtype: Dtype::F32,
                shape: vec![n],
                bytes: p.p_true.iter().flat_map(|x| x.to_le_bytes()).collect(),
            },
        ),
        (
            "top5",
            RawTensor {
                dtype: Dtype::U32,
                shape: vec![n, 5],
                bytes: u32s(&mut p.top5.iter().flat_map(|t| t.iter().copied())),
            },
        ),
    ];
    bank::write::save_tensors(path, tensors)?;
    Ok(())
}

/// Read the predictions of `rows` test rows from `path`; every problem is one error naming
/// the file (and the tensor).
pub fn load(path: &Path, rows: usize) -> anyhow::Result<Predictions> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a predictions file ({e})", path.display()))?;
    let get = |name: &str, dtype: safetensors::Dtype, shape: &[usize]| -> anyhow::Result<Vec<u8>> {
        let t = st
            .tensor(name)
            .map_err(|_| anyhow::anyhow!("{}: tensor `{name}` is missing", path.display()))?;
        if t.dtype() != dtype || t.shape() != shape {
            bail!(
                "{}: tensor `{name}` is {:?} {:?}, expected {dtype:?} {shape:?}",
                path.display(),
                t.dtype(),
                t.shape()
            );
        }
        Ok(t.data().to_vec())
    };
    let u32s = |b: Vec<u8>| -> Vec<u32> {
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let pred = u32s(get("pred", safetensors::Dtype::U32, &[rows])?);
    let p_true = get("p_true", safetensors::Dtype::F32, &[rows])?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let top5 = u32s(get("top5", safetensors::Dtype::U32, &[rows, 5])?)
        .chunks_exact(5)
        .map(|c| [c[0], c[1], c[2], c[3], c[4]])
        .collect();
    Ok(Predictions { pred, p_true, top5 })
}

/// One run's predictions, as `predictions.parquet` holds them.
pub struct RunPredictions<'a> {
    pub method: &'a str,
    pub params: String,
    pub seed: u64,
    pub predictions: &'a Predictions,
}

/// The frame of `predictions.parquet` for the runs of one bank with test labels `labels`.
pub fn frame(bank: &str, labels: &[u32], runs: &[RunPredictions]) -> PolarsResult<DataFrame> {
    let n = labels.len();
    let total = n * runs.len();
    let (mut method, mut params, mut seed) = (
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    );
    let (mut row, mut label, mut pred, mut correct, mut p_true) = (
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    );
    let mut top5 = ListPrimitiveChunkedBuilder::<UInt32Type>::new(
        "top5".into(),
        total,
        total * 5,
        DataType::UInt32,
    );
    for r in runs {
        let p = r.predictions;
        for i in 0..n {
            method.push(r.method);
            params.push(r.params.as_str());
            seed.push(r.seed);
            row.push(i as u32);
            label.push(labels[i]);
            pred.push(p.pred[i]);
            correct.push(p.pred[i] == labels[i]);
            p_true.push(p.p_true[i]);
            top5.append_slice(&p.top5[i]);
        }
    }
    DataFrame::new(
        total,
        vec![
            Column::new("bank".into(), vec![bank; total]),
            Column::new("method".into(), method),
            Column::new("params".into(), params),
            Column::new("seed".into(), seed),
            Column::new("row".into(), row),
            Column::new("label".into(), label),
            Column::new("pred".into(), pred),
            Column::new("correct".into(), correct),
            Column::new("p_true".into(), p_true),
            top5.finish().into_series().into(),
        ],
    )
}

/// Write a frame as zstd-compressed parquet, atomically.
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> anyhow::Result<()> {
    bank::write::write_atomic(path, |tmp| {
        let f = std::fs::File::create(tmp)?;
        ParquetWriter::new(&f)
            .with_compression(ParquetCompression::Zstd(None))
            // no min/max statistics: a fifth of the write time, and no reader of this file
            // filters row groups by them
            .with_statistics(StatisticsOptions {
                min_value: false,
                max_value: false,
                distinct_count: false,
                null_count: false,
                binary_statistics_truncate_length: None,
            })
            .finish(df)
            .map_err(std::io::Error::other)?;
        f.sync_all()
    })?;
    Ok(())
}

/// A run as `compare` sees it: which test rows it got right.
#[derive(Debug, Clone)]
pub struct RunCorrect {
    pub bank: String,
    pub method: String,
    pub params: String,
    pub seed: u64,
    pub correct: Vec<bool>,
}

/// The runs of a `predictions.parquet` and the test labels they share; errors name the file
/// and the column.
pub fn read(path: &Path) -> anyhow::Result<(Vec<u32>, Vec<RunCorrect>)> {
    let shown = path.display();
    let file = std::fs::File::open(path)
        .with_context(|| format!("{shown}: cannot open (run retrain into this folder first)"))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| anyhow::anyhow!("{shown}: not a predictions file ({})", first_line(&e)))?;
    let col = |name: &str| {
        df.column(name)
            .map_err(|_| anyhow::anyhow!("{shown}: column `{name}` is missing"))
    };
    let kind = |name: &str, e: PolarsError| {
        anyhow::anyhow!("{shown}: column `{name}`: {}", first_line(&e))
    };
    let banks = col("bank")?.str().map_err(|e| kind("bank", e))?;
    let methods = col("method")?.str().map_err(|e| kind("method", e))?;
    let params = col("params")?.str().map_err(|e| kind("params", e))?;
    let seeds = col("seed")?.u64().map_err(|e| kind("seed", e))?;
    let rows = col("row")?.u32().map_err(|e| kind("row", e))?;
    let labels = col("label")?.u32().map_err(|e| kind("label", e))?;
    let correct = col("correct")?.bool().map_err(|e| kind("correct", e))?;
    let mut runs: Vec<RunCorrect> = Vec::new();
    let mut test_labels: Vec<u32> = Vec::new();
    for i in 0..df.height() {
        let (Some(b), Some(m), Some(p), Some(s), Some(r), Some(l), Some(c)) = (
            banks.get(i),
            methods.get(i),
            params.get(i),
            seeds.get(i),
            rows.get(i),
            labels.get(i),
            correct.get(i),
        ) else {
            bail!("{shown}: row {i} has an empty cell");
        };
        let new_run = runs
            .last()
            .is_none_or(|x| x.method != m || x.params != p || x.seed != s || x.bank != b);
        if new_run {
            runs.push(RunCorrect {
                bank: b.into(),
                method: m.into(),
                params: p.into(),
                seed: s,
                correct: Vec::new(),
            });
        }
        let run = runs.last_mut().expect("a run");
        if r as usize != run.correct.len() {
            bail!(
                "{shown}: column `row`: run {} seed {s} is not in row order at row {i}",
                run.method
            );
        }
        run.correct.push(c);
        if runs.len() == 1 {
            test_labels.push(l);
        } else if test_labels.get(r as usize) != Some(&l) {
            bail!("{shown}: column `label`: the runs disagree on the label of test row {r}");
        }
    }
    if let Some(r) = runs.iter().find(|r| r.correct.len() != test_labels.len()) {
        bail!(
            "{shown}: run {} seed {} has {} rows, not {}",
            r.method,
            r.seed,
            r.correct.len(),
            test_labels.len()
        );
    }
    Ok((test_labels, runs))
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or("").to_string()
}
