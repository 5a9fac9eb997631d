//! Stage 1: a backbone trained end to end before extraction ([`stage1`]: recipe, the model
//! under training, resume files, the loop, evaluation) and the hand-written CPU pass of the
//! small CNN it runs on ([`cpu`]: forward, backward and the SGD step).
//!
//! May import: [`crate::model`], [`crate::source`] (and [`crate::interrupt`], the guard held
//! while a checkpoint is written). Not [`crate::infer`] (training runs through candle or
//! [`cpu`]), nor the rooms above.

pub mod cpu;
pub mod stage1;
