//! The training recipe, the per-epoch log, the final report and the progress events.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The training recipe (everything that changes the weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Zero padding of the random crop (small images).
    pub crop_padding: usize,
    pub seed: u64,
}

impl Recipe {
    /// Cosine annealing to 0 over `epochs` (PyTorch `CosineAnnealingLR`, stepped after the epoch).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let t = epoch as f64 / self.epochs.max(1) as f64;
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based.
    pub epoch: usize,
    pub lr: f64,
    pub loss: f64,
    /// Train-mode top-1 on the augmented batches, in %.
    pub train_acc: f64,
    pub secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage1Report {
    pub checkpoint: PathBuf,
    pub arch: String,
    pub recipe: Recipe,
    pub train_rows: usize,
    pub parameters: usize,
    pub log: Vec<EpochLog>,
    /// Training wall time over all sessions (s).
    pub train_secs: f64,
    /// Epoch this run started from (0 unless resumed).
    pub resumed_from: usize,
    /// Test top-1 (%), BatchNorm in eval mode, the final epoch (no selection).
    pub test_top1: f64,
    /// The same with flip test-time augmentation (mean of the two views' logits).
    pub test_top1_flip: f64,
    pub test_rows: usize,
}

/// Progress for the caller's UI.
#[derive(Debug, Clone)]
pub enum TrainEvent<'a> {
    EpochStart {
        epoch: usize,
        epochs: usize,
        rows: usize,
    },
    Advance {
        done: usize,
        loss: f64,
    },
    EpochEnd(&'a EpochLog),
    Evaluating {
        rows: usize,
    },
}
