//! `extract`: images → frozen backbone (candle; CUDA when built with `--features cuda`) →
//! ltbench feature bank (`features/<name>/`, read by `retrain`).
//!
//! Flow: a [`datasets`] loader yields labelled images; [`transform`] turns them into
//! normalised tensors (test view, its left-right flip, optional random train views); a
//! [`backbones::Backbone`] built from a checked [`checkpoint`] maps them to features; [`run`]
//! writes the bank atomically through `bank::BankDir`. [`stage1`] trains a backbone end to end
//! first (`--stage1`: cross-entropy + weight decay), which is how the committed default bank
//! `features/fmnist-lt-ir100/` is made.
//!
//! Imports point down the flow: [`datasets`] / [`transform`] / [`batch`] (network inputs) and
//! [`pipeline`] (loading them ahead of the backbone) → [`backbones`] (with [`checkpoint`],
//! [`weights`], and their compiled CPU inference path [`infer`]) → [`stage1`] (and its CPU
//! pass [`stage1_cpu`]) → [`chunks`] / [`provenance`] (what a run writes before the bank) →
//! [`run`] (the extract command) → [`assemble`] (chunks → bank; `extract merge`) → [`cli`] /
//! `main`. [`interrupt`] is the guard `run` and [`stage1`] hold while they write files that
//! belong together, so that the binary's SIGINT / SIGTERM handler never cuts them in two.

pub mod assemble;
pub mod backbones;
pub mod batch;
pub mod checkpoint;
pub mod chunks;
pub mod error;
pub mod infer;
pub mod interrupt;
pub mod pipeline;
pub mod provenance;
pub mod weights;

pub use backbones::{Arch, Backbone};
pub use error::{ExtractError, Result};
pub mod cli;
pub mod datasets;
pub mod device;
pub mod run;
pub mod source;
pub mod stage1;
pub mod stage1_cpu;
pub mod transform;
