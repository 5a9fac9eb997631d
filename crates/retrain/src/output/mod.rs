//! What a run leaves on disk: the run records (resume, shards, code identity), the tables
//! built from them (CSV through polars, and the text table), the LoMa/RSD analysis, the
//! figures (plotters) and the comparison with the paper's table.
//!
//! May import: [`crate::run`], [`crate::eval`], [`crate::engine`], [`crate::method`], `bank`.
//! Returns text and writes files; printing is the command layer's.

pub mod compare;
pub mod evidence;
pub mod figures;
pub mod loma;
pub mod notebook;
pub mod plots;
pub mod predictions;
pub mod priors;
pub mod records;
pub mod sweeps;
pub mod tables;
pub mod text;
pub mod views;
