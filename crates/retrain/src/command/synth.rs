//! A deterministic synthetic long-tailed bank, CIFAR100-LT-like by default (K = 100, D = 512,
//! train counts `int(500 · (1/IR)^(c/99))`, 10 847 rows at IR = 100, balanced test of 100 per
//! class), with a stage-1 head fitted by this engine with plain CE on the train split.
//!
//! Generative model: classes live in an r-dimensional latent space (real backbone features have
//! a low intrinsic dimension): latent z = μ_c + ε with μ_c ~ N(0, separation² I_r) and
//! ε ~ N(0, I_r); the feature is x = Pᵀ z + ambient·η with P [r, D] ~ N(0, 1/r) and
//! η ~ N(0, I_D). `separation` sets the difficulty; the defaults are calibrated so that the
//! stage-1 head sits near the real CIFAR100-LT regime (measured figures in the README).

use crate::engine::linalg::Parallelism;
use crate::engine::stage1::fit_stage1_head;
use bank::profile::exponential_counts;
use bank::{BankDir, FeatureDtype, Meta, Split};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::path::Path;

#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct SynthSpec {
    /// Number of classes K.
    #[arg(long, default_value_t = 100)]
    pub classes: usize,
    /// Feature dimension D.
    #[arg(long, default_value_t = 512)]
    pub dim: usize,
    /// Imbalance ratio (head count / tail count).
    #[arg(long, default_value_t = 100.0)]
    pub ir: f64,
    /// Training rows of the largest class.
    #[arg(long, default_value_t = 500)]
    pub img_max: usize,
    /// Test rows per class (balanced).
    #[arg(long, default_value_t = 100)]
    pub test_per_class: usize,
    /// Validation rows per class (0: no val split).
    #[arg(long, default_value_t = 0)]
    pub val_per_class: usize,
    /// Standard deviation of the class means in the latent space, in units of the
    /// within-class noise (higher = easier).
    #[arg(long, default_value_t = 0.43)]
    pub separation: f32,
    /// Dimension r of the latent space the classes live in (features are a random linear
    /// image of it in D dimensions).
    #[arg(long, default_value_t = 64)]
    pub latent_dim: usize,
    /// Isotropic noise added in the D-dimensional feature space.
    #[arg(long, default_value_t = 0.5)]
    pub ambient_noise: f32,
    /// Epochs of the plain-CE stage-1 head fit.
    #[arg(long, default_value_t = 30)]
    pub stage1_epochs: usize,
    /// Learning rate of the stage-1 head fit.
    #[arg(long, default_value_t = 0.05)]
    pub stage1_lr: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Store features as f16 (halves the files).
    #[arg(long)]
    pub f16: bool,
}

impl Default for SynthSpec {
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct W {
            #[command(flatten)]
            s: SynthSpec,
        }
        W::parse_from(["synth"]).s
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    StandardNormal.sample(rng)
}

struct Generator {
    /// Class means in the latent space [K, r].
    means: Vec<f32>,
    /// Latent → feature map [r, D].
    mixing: Vec<f32>,
    dim: usize,
    latent: usize,
    ambient: f32,
}

impl Generator {
    fn new(spec: &SynthSpec, rng: &mut ChaCha8Rng) -> Generator {
        let (k, d, r) = (spec.classes, spec.dim, spec.latent_dim);
        let means = (0..k * r).map(|_| spec.separation * normal(rng)).collect();
        let mscale = 1.0 / (r as f32).sqrt();
        let mixing = (0..r * d).map(|_| mscale * normal(rng)).collect();
        Generator {
            means,
            mixing,
            dim: d,
            latent: r,
            ambient: spec.ambient_noise,
        }
    }

    fn sample(&self, class: usize, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let (d, r) = (self.dim, self.latent);
        for o in out.iter_mut() {
            *o = self.ambient * normal(rng);
        }
        for j in 0..r {
            let z = self.means[class * r + j] + normal(rng);
            for (o, a) in out.iter_mut().zip(&self.mixing[j * d..(j + 1) * d]) {
                *o += z * a;
            }
        }
    }

    fn split(&self, counts: &[usize], rng: &mut ChaCha8Rng) -> (Vec<f32>, Vec<u32>) {
        let n: usize = counts.iter().sum();
        let mut x = vec![0.0; n * self.dim];
        let mut y = Vec::with_capacity(n);
        let mut row = 0;
        for (c, &nc) in counts.iter().enumerate() {
            for _ in 0..nc {
                self.sample(c, rng, &mut x[row * self.dim..(row + 1) * self.dim]);
                y.push(c as u32);
                row += 1;
            }
        }
        (x, y)
    }
}

/// Generate and write the bank to `dir` (atomically: assembled in `<dir>.partial`).
pub fn write_synthetic_bank(
    spec: &SynthSpec,
    dir: &Path,
    overwrite: bool,
    par: Parallelism,
) -> anyhow::Result<()> {
    anyhow::ensure!(spec.classes >= 2, "--classes must be ≥ 2");
    anyhow::ensure!(spec.dim >= 1, "--dim must be ≥ 1");
    anyhow::ensure!(spec.ir >= 1.0, "--ir must be ≥ 1");
    anyhow::ensure!(spec.test_per_class >= 1, "--test-per-class must be ≥ 1");
    // the features of every split, in f32, plus the generator's class means and mixing map
    let rows = (spec.img_max as u128 * spec.classes as u128)
        + (spec.test_per_class as u128 + spec.val_per_class as u128) * spec.classes as u128;
    let bytes = 4
        * (rows * spec.dim as u128
            + spec.classes as u128 * spec.latent_dim as u128
            + spec.latent_dim as u128 * spec.dim as u128);
    super::limits::fits("--classes × --img-max × --dim", spec.classes, bytes)?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let generator = Generator::new(spec, &mut rng);
    let counts = exponential_counts(spec.img_max as f64, spec.classes, spec.ir);
    anyhow::ensure!(
        counts.iter().all(|&n| n > 0),
        "the profile gives a class with 0 training rows: raise --img-max or lower --ir"
    );
    let (xtr, ytr) = generator.split(&counts, &mut rng);
    let (xte, yte) = generator.split(&vec![spec.test_per_class; spec.classes], &mut rng);
    let val = (spec.val_per_class > 0)
        .then(|| generator.split(&vec![spec.val_per_class; spec.classes], &mut rng));

    let d = spec.dim;
    let train_split = Split {
        path: dir.join("train.safetensors"),
        rows: ytr.len(),
        dim: d,
        features: bank::Features::Owned(xtr),
        features_flip: None,
        labels: ytr,
    };
    let head = fit_stage1_head(
        &train_split,
        &counts,
        spec.stage1_epochs,
        spec.stage1_lr,
        spec.seed,
        par,
    );

    let out = BankDir::create(dir, overwrite)?;
    let dtype = if spec.f16 {
        FeatureDtype::F16
    } else {
        FeatureDtype::F32
    };
    bank::write_split(
        &out.file("train.safetensors"),
        d,
        train_split.features(),
        None,
        &train_split.labels,
        dtype,
    )?;
    bank::write_split(&out.file("test.safetensors"), d, &xte, None, &yte, dtype)?;
    if let Some((xv, yv)) = &val {
        bank::write_split(&out.file("val.safetensors"), d, xv, None, yv, dtype)?;
    }
    bank::write_head(
        &out.file("head.safetensors"),
        spec.classes,
        d,
        &head.weight,
        &head.bias,
    )?;
    let meta = Meta {
        dataset: Some(
            dir.file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "synthetic".into()),
        ),
        num_classes: Some(spec.classes),
        train_counts: Some(counts),
        shots: Some(Default::default()),
        backbone: Some(
            serde_json::json!({"kind": "synthetic", "note": "Gaussian class clusters; no images"}),
        ),
        provenance: Some(serde_json::json!({
            "generator": "retrain synth",
            "spec": spec,
            "stage1": "plain CE from a fresh head (retrain::engine::stage1), SGD m=0.9, wd 5e-4, batch 128, cosine",
            "version": env!("CARGO_PKG_VERSION"),
        })),
        ..Default::default()
    };
    bank::write_meta(&out.file("meta.json"), &meta)?;
    out.finish()?;
    Ok(())
}
