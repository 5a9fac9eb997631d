//! The plan of one extraction, checked: what `extract` (the command room) builds from the flags
//! and what [`crate::write::provenance`] records of it. It sits here, below both, so that
//! neither imports the other.

use crate::model::backbones::Arch;
use crate::source::Source;
use crate::train::stage1::Recipe;
use crate::write::chunks::Shard;
use bank::FeatureDtype;
use candle_core::Device;
use std::path::PathBuf;

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
    /// Where the train views' crop padding (`source.crop_padding`) comes from.
    pub views_padding: PaddingFrom,
    pub dtype: FeatureDtype,
    pub device: Device,
    /// Use the CPU inference path ([`crate::infer`]) when the backbone has one.
    pub fast: bool,
    pub out: PathBuf,
    pub overwrite: bool,
    pub skip_bad: bool,
    /// Keep only the first N rows of each split (smoke runs, benchmarks).
    pub limit: Option<usize>,
    /// Continue from the chunks of an interrupted run (`<out>.partial/`; a fresh start when
    /// there is none).
    pub resume: bool,
    /// Which chunks this run extracts (`--shard i/n`; a part, not a bank, when n > 1).
    pub shard: Shard,
    /// Threads loading the next batches while the backbone runs (0: load inline).
    pub workers: usize,
    /// Rows per chunk.
    pub chunk_rows: usize,
    /// The command line, for provenance.
    pub command: String,
    pub git_revision: Option<String>,
}

impl Plan {
    /// The folder this run writes: the bank, or with `--shard` its part.
    pub fn target(&self) -> PathBuf {
        if self.shard.is_whole() {
            self.out.clone()
        } else {
            self.shard.part_dir(&self.out)
        }
    }
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

/// Where the zero padding of the train views' random crop comes from, in the order tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaddingFrom {
    /// `--crop-padding`.
    Flag,
    /// Stage 1 of this run, which trains with the dataset's default.
    Stage1,
    /// The stage-1 record of `--checkpoint` (the file it was read from).
    Checkpoint(PathBuf),
    /// The dataset's default; `unrecorded` names a checkpoint that records no stage-1 transform.
    Default { unrecorded: Option<PathBuf> },
}

impl PaddingFrom {
    /// For meta.json: where the padding comes from, in words.
    pub fn describe(&self) -> String {
        match self {
            PaddingFrom::Flag => "--crop-padding".into(),
            PaddingFrom::Stage1 => {
                "stage 1 of this run (the dataset's default, which stage 1 trained with)".into()
            }
            PaddingFrom::Checkpoint(p) => {
                format!("the checkpoint's stage-1 record {}", p.display())
            }
            PaddingFrom::Default { unrecorded: None } => {
                "the dataset's default (no checkpoint: untrained weights)".into()
            }
            PaddingFrom::Default {
                unrecorded: Some(c),
            } => format!(
                "the dataset's default: {} records no stage-1 transform (no .stage1.json or .resume.json beside it)",
                c.display()
            ),
        }
    }
}
