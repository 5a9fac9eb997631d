//! ltbench `retrain`: every classifier re-training method of the LOS paper's Table 1 (and LOS)
//! on a cached feature bank.
//!
//! Flow: [`bank::Bank`] → [`cli::Plan`] (methods × seeds) → [`runner::run_jobs`]
//! ([`trainer::train`] + [`eval::evaluate`]) → [`runner::RunRecord`]s → [`tables`] (CSV).

pub mod analysis;
pub mod cli;
pub mod compare;
pub mod config;
pub mod device;
pub mod eval;
pub mod head;
pub mod linalg;
pub mod logreg;
pub mod loss;
pub mod method;
pub mod multihead;
pub mod optim;
pub mod plots;
pub mod records;
pub mod report;
pub mod runner;
pub mod sampler;
pub mod stage1;
pub mod synth;
pub mod tables;
pub mod trainer;
