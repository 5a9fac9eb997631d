//! The re-training engine: heads, losses, the optimiser, samplers, the CPU trainer (one run,
//! or several linear heads in one pass), the L-BFGS reference solver, the stage-1 head fit,
//! and the same trainer on a candle device (`--device cuda`).
//!
//! May import: [`crate::method`] and the `bank` crate. Knows nothing of evaluation, records,
//! CSV, polars or plotters, and prints nothing.

pub mod cancel;
pub mod device;
pub mod device_loss;
pub mod head;
pub mod linalg;
pub mod logreg;
pub mod loss;
pub mod multihead;
pub mod optim;
pub mod sampler;
pub mod stage1;
pub mod trainer;
