//! The frozen backbones ([`backbones`]: candle networks keyed like the PyTorch `state_dict`s),
//! where their tensors come from ([`weights`]: a checked map of checkpoint tensors, or the
//! hash rule) and PyTorch / safetensors checkpoints read without Python ([`checkpoint`]).
//!
//! May import: [`crate::source`] (it needs none of it today). Knows nothing of training,
//! chunks or banks.

pub mod backbones;
pub mod checkpoint;
pub mod weights;
