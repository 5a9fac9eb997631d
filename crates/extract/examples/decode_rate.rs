//! The loading cost of file datasets: JPEG decode + Resize(256) + CenterCrop(224) + Normalize
//! (the test view `extract` feeds the backbone) per image, on one core and on all of them —
//! the figure that says how many `--workers` a GPU node needs to keep its device busy
//! (workers ≈ device images/s ÷ images/s per core).
//!
//! `cargo run -p extract --example decode_rate -- --root /tmp/ltbench-jpeg-tree [--list ImageNet_LT_train.txt] [--images 400]`

use clap::Parser;
use extract::source::datasets::{Images, Normalize, listfile};
use extract::source::transform;
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Image root (and folder of the list).
    #[arg(long)]
    root: PathBuf,
    /// List file, relative to --root.
    #[arg(long, default_value = "ImageNet_LT_train.txt")]
    list: PathBuf,
    /// Images to time (the first N of the list).
    #[arg(long, default_value_t = 400)]
    images: usize,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let split = listfile::load(&a.root.join(&a.list), &a.root, false)?;
    let Images::Files(files) = &split.data.images else {
        anyhow::bail!("not a file list");
    };
    let n = a.images.min(files.paths.len());
    let norm = Normalize::imagenet();
    let one = |i: usize| -> anyhow::Result<usize> {
        let img = transform::decode(files, i)?;
        let view = transform::test_view(&img);
        let mut out = Vec::with_capacity(3 * 224 * 224);
        transform::rgb_to_chw(&view, &norm, &mut out);
        Ok(img.width() as usize * img.height() as usize)
    };
    // warm the page cache, so that the figure is decoding, not the disk
    for p in &files.paths[..n] {
        std::fs::read(p)?;
    }
    let t = Instant::now();
    let mut pixels = 0;
    for i in 0..n {
        pixels += one(i)?;
    }
    let single = n as f64 / t.elapsed().as_secs_f64();
    let threads = rayon::current_num_threads();
    let t = Instant::now();
    (0..n)
        .into_par_iter()
        .map(one)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let all = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "decode + resize 256 + center crop 224 + normalize of {n} JPEGs (mean {:.0} px): {single:.1} images/s on one core, {all:.1} images/s on {threads} threads ({:.1} per core)",
        pixels as f64 / n as f64,
        all / threads as f64
    );
    Ok(())
}
