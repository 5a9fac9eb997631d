//! The bank writer at iNaturalist scale, without a backbone: `--rows` train rows (default
//! 437 513, iNaturalist 2018's train split) and `--test-rows` test rows of D = `--dim`
//! features (f16) over `--classes` classes are written chunk by chunk exactly as `extract`
//! writes them, then assembled into the bank by the same code (`extract::write::assemble`). Run it
//! under `/usr/bin/time -v` (`just bench-assemble`): the peak memory stays at about one chunk,
//! not one split (1.8 GB of f16 features at the defaults, 3.6 GB as f32).
//!
//! `cargo run -p extract --example assemble_scale -- --out /tmp/inat-bank`

use clap::Parser;
use extract::write::chunks::{self, CHUNK_ROWS, Features, RunFile};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Bank folder to write (its chunks go to <out>/chunks/ first).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 437_513)]
    rows: usize,
    #[arg(long, default_value_t = 24_426)]
    test_rows: usize,
    #[arg(long, default_value_t = 2048)]
    dim: usize,
    #[arg(long, default_value_t = 8142)]
    classes: usize,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let _ = std::fs::remove_dir_all(&a.out);
    std::fs::create_dir_all(&a.out)?;
    let splits = vec![
        ("train".to_string(), a.rows),
        ("test".to_string(), a.test_rows),
    ];
    let t = Instant::now();
    for (name, n) in &splits {
        for c in 0..chunks::chunk_count(*n, CHUNK_ROWS) {
            let first = c * CHUNK_ROWS;
            let rows = CHUNK_ROWS.min(n - first);
            let feats = |salt: usize| -> Vec<f32> {
                (0..rows * a.dim)
                    .map(|i| ((i * 2_654_435_761 + first + salt) % 1000) as f32 / 1000.0)
                    .collect()
            };
            let f = Features {
                features: feats(0),
                flip: (name != "train").then(|| feats(1)),
                views: Vec::new(),
                labels: (first..first + rows)
                    .map(|i| (i % a.classes) as u32)
                    .collect(),
                skipped: Vec::new(),
            };
            chunks::write_chunk(
                &chunks::chunk_path(&a.out, name, c),
                a.dim,
                &f,
                bank::FeatureDtype::F16,
            )?;
        }
    }
    let written = t.elapsed().as_secs_f64();
    let rf = RunFile {
        format: RunFile::FORMAT,
        run: BTreeMap::new(),
        shard: 0,
        splits,
        meta: serde_json::json!({
            "dataset": "assemble-scale",
            "num_classes": a.classes,
            "provenance": {"skipped": 0, "skipped_examples": []},
        }),
        dim: a.dim,
        dtype: "f16".into(),
        views: 0,
        chunk_rows: CHUNK_ROWS,
        source_skipped: Vec::new(),
    };
    let t = Instant::now();
    let done = extract::write::assemble::assemble(std::slice::from_ref(&a.out), &rf, &a.out)?;
    let bytes: u64 = ["train.safetensors", "test.safetensors"]
        .iter()
        .map(|f| {
            std::fs::metadata(a.out.join(f))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();
    println!(
        "chunks written in {written:.1} s; assembled {:?} ({:.2} GB of split files, K = {}) in {:.1} s",
        done.rows,
        bytes as f64 / 1e9,
        a.classes,
        t.elapsed().as_secs_f64()
    );
    std::fs::remove_dir_all(a.out.join("chunks"))?;
    Ok(())
}
