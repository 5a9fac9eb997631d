//! The end-to-end suite of the paths no older test covered, in one test binary (one link
//! against polars and candle instead of four): see each module's header.

mod layout;
mod paths;
mod results;
mod writers;
