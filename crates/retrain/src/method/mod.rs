//! A re-training method as data ([`spec`]: the paper's Eq. 1 as head × loss × sampler ×
//! constraint × post-hoc, plus its optimiser settings and schedule) and the method table
//! ([`table`]: `baselines/table1.toml`, embedded, or a user's file).
//!
//! The bottom room: imports nothing of this crate.

pub mod check;
pub mod custom;
mod hyper;
pub mod params;
pub mod spec;
pub mod table;

pub use spec::*;
