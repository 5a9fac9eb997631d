//! The CPU inference path of the frozen backbones: a network in eval mode is a fixed function,
//! compiled once at load — BatchNorm folded into the convolutions, each convolution as im2col +
//! one `gemm` with the bias and activation in its output pass, buffers reused across the images
//! of a batch, the batch split over the cores (one image per task, single-threaded GEMMs, so no
//! oversubscription). It computes the same features as the candle path (checked against it and
//! against the PyTorch fixtures); candle stays the path for training (`--stage1`) and for
//! `--device cuda`.
//!
//! Covered so far: the small CNN ([`small_cnn`]); the ResNets run through candle.

pub mod conv;
pub mod small_cnn;
