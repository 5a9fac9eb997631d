//! `extract`: images → frozen backbone (candle; CUDA when built with `--features cuda`) →
//! ltbench feature bank (`features/<name>/`, read by `retrain`).
//!
//! One room per stage of the flow, bottom to top; a room imports only itself and the rooms
//! below it (`tests/layout.rs` checks every `crate::<room>` path):
//!
//! - [`source`]: datasets, list files, transforms, the batch, the loading pipeline;
//! - [`model`]: backbones, weights, checkpoints;
//! - [`infer`]: the compiled CPU inference path of every backbone;
//! - [`train`]: stage 1 (`--stage1`: cross-entropy + weight decay, how the committed default
//!   bank `features/fmnist-lt-ir100/` is made) and its CPU pass;
//! - [`write`]: the plan of a run, the output lock, chunks, provenance, chunks → bank;
//! - [`command`]: the command line and the `extract` run (with `main.rs`, the only printing).
//!
//! Beside the rooms, used by any of them: [`error`], [`device`] (CPU / CUDA choice) and
//! [`interrupt`] (the guard the run and stage 1 hold while they write files that belong
//! together, so that the binary's SIGINT / SIGTERM handler never cuts them in two).

pub mod command;
pub mod device;
pub mod error;
pub mod infer;
pub mod interrupt;
pub mod model;
pub mod source;
pub mod train;
pub mod write;

pub use error::{ExtractError, Result};
pub use model::backbones::{Arch, Backbone};
