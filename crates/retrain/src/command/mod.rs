//! The command layer: the command line ([`cli`]: the flags; [`plan`]: flags → a checked [`plan::Plan`]), the `run`
//! command end to end ([`run`], with its steps [`execute`], [`tune`] and [`outputs`]), and the
//! synthetic bank generator ([`synth`]). The only layer that prints.
//!
//! May import every room below: [`crate::output`], [`crate::run`], [`crate::eval`],
//! [`crate::engine`], [`crate::method`].

pub mod cli;
pub mod compare;
pub mod execute;
pub mod experiment;
pub mod grid;
pub mod limits;
pub mod outputs;
pub mod plan;
pub mod rows;
pub mod run;
pub mod sweeps;
pub mod synth;
pub mod tune;
