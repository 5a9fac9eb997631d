//! What an extraction writes and how: the checked plan of a run ([`plan`]) and what its counts
//! ask of memory and disk ([`budget`], checked before any work), the lock on the
//! output folder ([`lock`]), chunk files, `run.json` and `--shard` ([`chunks`]), meta.json and
//! run.json of a plan ([`provenance`]), and chunks → bank, streamed ([`assemble`]; also
//! `extract merge`).
//!
//! May import: [`crate::train`], [`crate::infer`], [`crate::model`], [`crate::source`].
//! Returns results and writes files; printing is the command room's.

pub mod assemble;
pub mod budget;
pub mod chunks;
pub mod lock;
pub mod plan;
pub mod provenance;
