//! ltbench `retrain`: every classifier re-training method of the LOS paper's Table 1 (and LOS)
//! on a cached feature bank.
//!
//! The rooms follow the flow, and every arrow points down (a module imports only from its own
//! room or from rooms below it; `tests/suite/layout.rs` checks it):
//!
//! ```text
//! command   cli, run (the `run` command), synth         prints; may use everything below
//!   ↓
//! output    records, tables, loma, plots, compare        files (CSV, PNG/SVG, JSONL)
//!   ↓
//! run       jobs → RunRecord (selection on val, oracle)
//!   ↓
//! eval      metrics of a head on a split (host / device)
//!   ↓
//! engine    heads, losses, optimiser, samplers, trainers, L-BFGS, device trainer
//!   ↓
//! method    the Eq. 1 type (head × loss × sampler × constraint × post-hoc) and its TOML table
//! ```

pub mod command;
pub mod engine;
pub mod eval;
pub mod method;
pub mod output;
pub mod run;
