//! Stage 1: end-to-end representation learning of a backbone + linear classifier with plain
//! cross-entropy and weight decay (the LTWB recipe LOS builds on): SGD momentum 0.9 with coupled
//! weight decay in PyTorch's order (`g = grad + wd·w; buf = m·buf + g; w -= lr·buf`), cosine
//! learning rate to 0 stepped after each epoch, random crop (zero padding) + horizontal flip
//! (random-resized-crop + flip for image files), BatchNorm in train mode (batch statistics,
//! running statistics updated with momentum 0.1).
//!
//! Deterministic for a seed: the weight init (PyTorch's default `U(±1/√fan_in)` for conv and
//! linear weights and linear biases, BN weight 1 / bias 0), the epoch permutation and every
//! augmentation are drawn from seeded generators.
//!
//! The checkpoint is a safetensors file with torchvision-style keys (`conv1.weight`,
//! `bn1.running_mean`, `bn1.num_batches_tracked`, `fc.weight`, ...), loadable by
//! [`crate::model::checkpoint::load_state_dict`] and by PyTorch's `load_state_dict`. It is rewritten
//! atomically (`<file>.tmp` + rename) after every epoch, together with the resume state
//! `<file>.resume.safetensors` (momentum buffers `momentum.<key>`) and `<file>.resume.json`
//! (epoch, recipe, log); `resume = true` continues from the last finished epoch. Beside them,
//! `<file>.stage1.json` records the architecture and recipe for whoever extracts with the
//! checkpoint later (`extract --views` augments with its crop padding).
//!
//! The room: `recipe` (the recipe and what a run reports), `net` (the model under training and
//! its candle SGD step), `resume` (checkpoint and resume files), `record` (the stage-1 record), `train` (the training loop),
//! `evaluate` (test top-1). It may import [`crate::source::batch`], [`crate::source::datasets`],
//! [`crate::model::backbones`] and [`crate::train::cpu`] (the hand-written CPU pass of the small CNN),
//! never [`crate::command::run`] (the extract command, which calls [`train`]).

mod evaluate;
mod net;
mod recipe;
mod record;
mod resume;
#[cfg(test)]
mod tests;
mod train;

pub use evaluate::evaluate;
pub use recipe::{EpochLog, Recipe, Stage1Report, TrainEvent};
pub use record::{Stage1Record, record_path, recorded};
pub use resume::{ResumeState, resume_paths};
pub use train::train;
