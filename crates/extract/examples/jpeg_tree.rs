//! A synthetic JPEG tree in the classifier-balancing ImageNet-LT layout, for extraction
//! benchmarks at scale (`extract --dataset imagenet-lt --root DIR`, and the PyTorch loader of
//! `scripts/torch_extract_files.py` on the same files):
//!
//! ```text
//! DIR/train/n%08d/n%08d_%d.JPEG          train images and the val-list images (as ImageNet-LT:
//!                                        its val split is drawn from the train folder)
//! DIR/val/n%08d/ILSVRC2012_val_%08d.JPEG test-list images (ImageNet's val folder)
//! DIR/ImageNet_LT_{train,val,test}.txt   `<relative path> <label>` lines
//! ```
//!
//! Train counts follow an exponential profile from head to tail (`n_c ∝ IR^(-c/(K-1))`,
//! every class ≥ 1, total exactly `--train`); val and test are balanced (image i → class i mod
//! K). Every image is a deterministic function of (`--seed`, its index): a colour gradient, a
//! low-frequency wave, per-pixel noise and a class-coloured ellipse, encoded as baseline JPEG at
//! `--quality` — structured enough that decoding costs what a photograph of that size costs
//! (not a flat colour that decodes for free). Generated in parallel (rayon).
//!
//! `cargo run -p extract --example jpeg_tree -- --out /tmp/jpeg-tree --train 1400 --val 200 --test 400`

use anyhow::{Context, Result, bail};
use clap::Parser;
use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;
use rayon::prelude::*;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Write a synthetic ImageNet-LT-layout JPEG tree (train/, val/, list files)")]
struct Args {
    /// Output folder (created; existing files of the same names are replaced).
    #[arg(long)]
    out: PathBuf,
    /// Train images (long-tailed over the classes; at least --classes).
    #[arg(long, default_value_t = 1400)]
    train: usize,
    /// Val images (balanced; drawn from the train folder as in ImageNet-LT).
    #[arg(long, default_value_t = 200)]
    val: usize,
    /// Test images (balanced; ImageNet's val folder).
    #[arg(long, default_value_t = 400)]
    test: usize,
    /// Number of classes (labels 0..K; `--dataset imagenet-lt` reads up to 1000).
    #[arg(long, default_value_t = 100)]
    classes: usize,
    /// Imbalance ratio of the train profile, head / tail (ImageNet-LT: 1280 / 5 = 256).
    #[arg(long, default_value_t = 256.0)]
    ir: f64,
    #[arg(long, default_value_t = 500)]
    width: u32,
    #[arg(long, default_value_t = 375)]
    height: u32,
    /// JPEG quality (1-100).
    #[arg(long, default_value_t = 90)]
    quality: u8,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Train images per class: `n_c ∝ ir^(-c/(K-1))`, every class ≥ 1, summing to `total`.
fn train_counts(total: usize, k: usize, ir: f64) -> Vec<usize> {
    let w: Vec<f64> = (0..k)
        .map(|c| ir.powf(-(c as f64) / (k.max(2) - 1) as f64))
        .collect();
    let sum: f64 = w.iter().sum();
    let mut n: Vec<usize> = w
        .iter()
        .map(|&x| ((total as f64 * x / sum) as usize).max(1))
        .collect();
    // Fix the rounding, keeping the profile non-increasing: add to the head classes first;
    // take from the tail-most classes above 1 first.
    let mut have: usize = n.iter().sum();
    let mut c = 0;
    while have < total {
        n[c % k] += 1;
        have += 1;
        c += 1;
    }
    c = 0;
    while have > total {
        let i = k - 1 - c % k;
        if n[i] > 1 {
            n[i] -= 1;
            have -= 1;
        }
        c += 1;
    }
    n
}

fn wnid(c: usize) -> String {
    format!("n{:08}", 1_000_000 + c)
}

/// One image to write: its path relative to the root, its label and its content index.
struct Job {
    rel: String,
    label: usize,
    index: u64,
}

/// SplitMix64: a small, fast, seedable generator (the pixels need speed, not quality).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A class colour, well spread around the hue circle.
fn class_colour(c: usize) -> [f32; 3] {
    let h = (c as f32 * 0.618_034).fract() * 6.0;
    let x = 1.0 - ((h % 2.0) - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    [r * 230.0, g * 230.0, b * 230.0]
}

/// The RGB pixels of image `index` of class `label`.
fn render(seed: u64, index: u64, label: usize, w: u32, h: u32) -> Vec<u8> {
    let mut rng = Mix(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    for _ in 0..4 {
        rng.next();
    }
    // background: two corner colours, a gradient direction, a wave
    let c0: [f32; 3] = std::array::from_fn(|_| 30.0 + 160.0 * rng.unit());
    let c1: [f32; 3] = std::array::from_fn(|_| 30.0 + 160.0 * rng.unit());
    let ang = rng.unit() * std::f32::consts::TAU;
    let (dx, dy) = (ang.cos(), ang.sin());
    let freq = 0.01 + 0.05 * rng.unit();
    let phase = rng.unit() * std::f32::consts::TAU;
    // the class blob: an ellipse at a random place and size, the class colour
    let blob = class_colour(label);
    let (bx, by) = (
        w as f32 * (0.2 + 0.6 * rng.unit()),
        h as f32 * (0.2 + 0.6 * rng.unit()),
    );
    let (rx, ry) = (
        w as f32 * (0.1 + 0.25 * rng.unit()),
        h as f32 * (0.1 + 0.25 * rng.unit()),
    );
    let noise = 8.0 + 24.0 * rng.unit();
    let diag = (w as f32).hypot(h as f32);
    let mut px = vec![0u8; (w * h * 3) as usize];
    for (y, row) in px.chunks_exact_mut((w * 3) as usize).enumerate() {
        let yf = y as f32;
        for (x, p) in row.chunks_exact_mut(3).enumerate() {
            let xf = x as f32;
            let t = (0.5 + (xf * dx + yf * dy) / diag).clamp(0.0, 1.0);
            let wave = 20.0 * ((xf * dx - yf * dy) * freq + phase).sin();
            let (ex, ey) = ((xf - bx) / rx, (yf - by) / ry);
            let inside = (1.0 - (ex * ex + ey * ey)).clamp(0.0, 0.25) * 4.0;
            let r = rng.next();
            for ch in 0..3 {
                let bg = c0[ch] + (c1[ch] - c0[ch]) * t + wave;
                let v = bg + (blob[ch] - bg) * inside;
                let n = ((r >> (ch * 16)) & 0xFFFF) as f32 / 65535.0 - 0.5;
                p[ch] = (v + noise * n).clamp(0.0, 255.0) as u8;
            }
        }
    }
    px
}

fn write_jpeg(path: &Path, px: &[u8], w: u32, h: u32, quality: u8) -> Result<u64> {
    let mut buf = Vec::with_capacity(px.len() / 4);
    JpegEncoder::new_with_quality(&mut buf, quality)
        .encode(px, w, h, ExtendedColorType::Rgb8)
        .with_context(|| format!("encoding {}", path.display()))?;
    std::fs::write(path, &buf).with_context(|| format!("writing {}", path.display()))?;
    Ok(buf.len() as u64)
}

fn write_list(path: &Path, jobs: &[Job]) -> Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut f = BufWriter::new(f);
    for j in jobs {
        writeln!(f, "{} {}", j.rel, j.label)?;
    }
    f.flush()?;
    Ok(())
}

fn main() -> Result<()> {
    let a = Args::parse();
    if a.classes == 0 || a.train < a.classes {
        bail!(
            "--train ({}) must be at least --classes ({}) so every class has a train image",
            a.train,
            a.classes
        );
    }
    if !(a.ir.is_finite() && a.ir >= 1.0) {
        bail!("--ir must be a finite number ≥ 1, got {}", a.ir);
    }
    if a.width < 8 || a.height < 8 || !(1..=100).contains(&a.quality) {
        bail!("--width/--height must be ≥ 8 and --quality in 1..=100");
    }
    if a.classes > 1000 {
        eprintln!(
            "jpeg_tree: note: {} classes; `--dataset imagenet-lt` takes labels < 1000 (use --dataset list)",
            a.classes
        );
    }
    let k = a.classes;
    let counts = train_counts(a.train, k, a.ir);
    let mut next_in_class = vec![0usize; k];
    let mut index = 0u64;
    let mut job = |rel: String, label: usize| {
        index += 1;
        Job {
            rel,
            label,
            index: index - 1,
        }
    };
    let mut train = Vec::with_capacity(a.train);
    for (c, &n) in counts.iter().enumerate() {
        for _ in 0..n {
            let i = next_in_class[c];
            next_in_class[c] += 1;
            train.push(job(format!("train/{0}/{0}_{i}.JPEG", wnid(c)), c));
        }
    }
    let mut val = Vec::with_capacity(a.val);
    for i in 0..a.val {
        let c = i % k;
        let j = next_in_class[c];
        next_in_class[c] += 1;
        val.push(job(format!("train/{0}/{0}_{j}.JPEG", wnid(c)), c));
    }
    let mut test = Vec::with_capacity(a.test);
    for i in 0..a.test {
        let c = i % k;
        test.push(job(
            format!("val/{}/ILSVRC2012_val_{:08}.JPEG", wnid(c), i + 1),
            c,
        ));
    }

    for c in 0..k {
        for top in ["train", "val"] {
            let d = a.out.join(top).join(wnid(c));
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
    }
    let start = Instant::now();
    let all: Vec<&Job> = train.iter().chain(&val).chain(&test).collect();
    let bytes: u64 = all
        .par_iter()
        .map(|j| {
            let px = render(a.seed, j.index, j.label, a.width, a.height);
            write_jpeg(&a.out.join(&j.rel), &px, a.width, a.height, a.quality)
        })
        .collect::<Result<Vec<u64>>>()?
        .iter()
        .sum();
    write_list(&a.out.join("ImageNet_LT_train.txt"), &train)?;
    write_list(&a.out.join("ImageNet_LT_val.txt"), &val)?;
    write_list(&a.out.join("ImageNet_LT_test.txt"), &test)?;
    let secs = start.elapsed().as_secs_f64();
    let n = all.len();
    println!(
        "jpeg_tree: {n} images (train {} [{}..{} per class], val {}, test {}; {k} classes; {}x{} q{}; {:.1} MB, {:.0} KB/image) -> {} in {secs:.2} s ({:.0} images/s, {} threads)",
        a.train,
        counts.last().copied().unwrap_or(0),
        counts[0],
        a.val,
        a.test,
        a.width,
        a.height,
        a.quality,
        bytes as f64 / 1e6,
        bytes as f64 / 1e3 / n.max(1) as f64,
        a.out.display(),
        n as f64 / secs.max(1e-9),
        rayon::current_num_threads()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::train_counts;

    #[test]
    fn counts_are_long_tailed_positive_and_sum_to_the_total() {
        for (total, k) in [(1400, 100), (100, 100), (4000, 1000), (7, 3)] {
            let n = train_counts(total, k, 256.0);
            assert_eq!(n.iter().sum::<usize>(), total);
            assert!(n.iter().all(|&x| x >= 1));
            assert!(n.windows(2).all(|p| p[0] >= p[1]), "{n:?}");
        }
    }
}
