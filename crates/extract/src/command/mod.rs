//! The commands: the command line ([`cli`]: flags → a checked [`crate::write::plan::Plan`])
//! and the `extract` run end to end ([`run`]: stage 1 if asked, every split through the
//! backbone in chunks, the bank assembled); `extract merge` is [`crate::write::assemble::merge`].
//! With `main.rs`, the only place that prints.
//!
//! May import every room below: [`crate::write`], [`crate::train`], [`crate::infer`],
//! [`crate::model`], [`crate::source`].

pub mod cli;
pub mod run;
