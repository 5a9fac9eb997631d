//! The integration tests of `retrain`, in one test binary (one link against polars and candle
//! instead of eight): see each module's header.

mod cancel;
mod catalogue;
mod cli;
mod device;
mod evidence;
mod layout;
mod parity;
mod paths;
mod priors;
mod results;
mod views;
mod writers;
mod zoo;
mod zoo_parity;
