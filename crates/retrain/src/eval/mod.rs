//! Evaluation of a head on a split: top-1, per-class counts, ECE, NLL, per-class LoMa and RSD
//! ([`metrics`]), on the host or with the logits computed on a device ([`device`]).
//!
//! May import: [`crate::engine`] (the heads and the device bank), [`crate::method`], `bank`.
//! Nothing here depends on a choice made when tables are built (shot groups, aggregates).

pub mod device;
pub mod metrics;
pub mod priors;

pub use metrics::{ECE_BINS, Evaluation, Tally, evaluate, evaluate_with};
