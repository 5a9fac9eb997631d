//! One job = one (method, seed) on one bank: train with the engine, select the reported epoch
//! on val (or the final one; `--oracle` adds the best test epoch), evaluate, and return a
//! [`RunRecord`] — what the run produced and nothing chosen later. [`run_jobs`] runs many in
//! parallel, deterministically for any thread count.
//!
//! May import: [`crate::eval`], [`crate::engine`], [`crate::method`], `bank`.

mod job;
mod runner;
mod selection;

pub use job::{Job, RunOptions, RunRecord};
pub use runner::{run_jobs, run_one};
