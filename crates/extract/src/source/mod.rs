//! Where the images come from and how they become network inputs: the datasets ([`datasets`]:
//! CIFAR pickles, Fashion-MNIST IDX, list files, the long-tail subset), which data a run reads
//! ([`spec`]: [`Source`]), the transforms ([`transform`]: resize, crop, flip, normalise), the
//! network input of a batch ([`batch`]) and the next batches loaded ahead on worker threads
//! ([`pipeline`]).
//!
//! The bottom room: imports no other room (only [`crate::error`]).

pub mod batch;
pub mod datasets;
pub mod pipeline;
pub mod spec;
pub mod transform;

pub use spec::{DatasetKind, Source, SourceSpec};
