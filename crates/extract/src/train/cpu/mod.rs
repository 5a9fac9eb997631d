//! Stage-1 training of the small CNN on the CPU, forward and backward written out by hand:
//! 3×3 convolutions as per-image im2col + `gemm` (the kernel under candle's CPU matmul),
//! BatchNorm (train mode) + ReLU fused, 2×2 max-pool with argmax routing, global average pool,
//! the linear head and cross-entropy. Images run in parallel (rayon); every reduction runs in a
//! fixed order over fixed chunks, so a step gives the same result for any thread count.
//!
//! It computes the function of [`crate::model::backbones::small_cnn::SmallCnn`] in train mode and its
//! exact gradients (checked against candle's autograd in the tests), PyTorch's BatchNorm
//! conventions included (biased batch variance to normalise, unbiased in the running variance,
//! momentum 0.1, eps 1e-5), and the SGD update of [`crate::train::stage1`] (coupled weight decay,
//! `buf = m·buf + g`, `w -= lr·buf`). An epoch of Fashion-MNIST-LT IR=100 (14 886 images,
//! batch 128) takes ~20 s on two cores, against ~5.5 min through candle's autograd.
//!
//! Tensors are named as in the checkpoint (`conv1.weight`, `bn1.running_var`, `fc.bias`, ...)
//! and exchanged as flat row-major `f32` slices.
//!
//! The room: this file (the network's tensors, `set` / `get`, the pass and the SGD step),
//! `steps` (the forward and backward steps of one batch), `kernels` (convolution, pooling and
//! reduction kernels), `tests`. It imports only [`crate::model::backbones::small_cnn`] (the feature
//! width) and [`crate::error`]; [`crate::train::stage1`] drives it.

use crate::error::{ExtractError, Result};
use crate::model::backbones::small_cnn::FEATURE_DIM;

mod kernels;
mod steps;
#[cfg(test)]
mod tests;

/// Output channels of conv1..conv3.
pub const WIDTHS: [usize; 3] = [32, 64, FEATURE_DIM];
/// Layers followed by a 2×2 max-pool.
const POOLED: [bool; 3] = [false, true, true];
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;
/// Images per reduction chunk (weight gradients): fixed, so sums do not depend on threads.
const CHUNK: usize = 8;

/// The small CNN's parameters, BatchNorm running statistics and SGD momentum buffers.
#[derive(Debug, Clone)]
pub struct SmallCnnCpu {
    in_channels: usize,
    classes: usize,
    /// Trainable tensors in [`Self::param_names`] order.
    params: Vec<Vec<f32>>,
    momentum: Vec<Vec<f32>>,
    /// (running_mean, running_var) per BatchNorm.
    running: Vec<(Vec<f32>, Vec<f32>)>,
}

/// Loss, logits and gradients of one batch (gradients in [`SmallCnnCpu::param_names`] order).
#[derive(Debug, Clone)]
pub struct Pass {
    /// Mean cross-entropy over the batch.
    pub loss: f64,
    /// [B, K] row-major.
    pub logits: Vec<f32>,
    pub grads: Vec<Vec<f32>>,
}

/// Per-layer activations kept for the backward pass.
struct Layer {
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    /// The layer's input [B, cin, h, w].
    input: Vec<f32>,
    /// Normalised pre-activation x̂ [B, cout, h, w].
    xhat: Vec<f32>,
    /// ReLU output [B, cout, h, w].
    act: Vec<f32>,
    /// 1 / sqrt(var + eps) per channel.
    inv_std: Vec<f32>,
    /// Position (0..4) of each pooled output's maximum inside its window.
    argmax: Vec<u8>,
}

enum Slot {
    Param(usize),
    Momentum(usize),
    RunningMean(usize),
    RunningVar(usize),
}

fn conv_shape(cout: usize, cin: usize) -> Vec<usize> {
    vec![cout, cin, 3, 3]
}

impl SmallCnnCpu {
    /// Zero parameters (load them with [`Self::set`]); running statistics 0 / 1.
    pub fn new(in_channels: usize, classes: usize) -> Self {
        let shapes = Self::shapes_for(in_channels, classes);
        let params: Vec<Vec<f32>> = shapes
            .iter()
            .map(|(_, s)| vec![0.0; s.iter().product()])
            .collect();
        Self {
            in_channels,
            classes,
            momentum: params.clone(),
            params,
            running: WIDTHS
                .iter()
                .map(|&c| (vec![0.0; c], vec![1.0; c]))
                .collect(),
        }
    }

    fn shapes_for(in_channels: usize, classes: usize) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let mut cin = in_channels;
        for (l, &c) in WIDTHS.iter().enumerate() {
            out.push((format!("conv{}.weight", l + 1), conv_shape(c, cin)));
            out.push((format!("bn{}.weight", l + 1), vec![c]));
            out.push((format!("bn{}.bias", l + 1), vec![c]));
            cin = c;
        }
        out.push(("fc.weight".into(), vec![classes, FEATURE_DIM]));
        out.push(("fc.bias".into(), vec![classes]));
        out
    }

    /// The trainable tensors' names and shapes, in the order of [`Pass::grads`].
    pub fn param_names(&self) -> Vec<(String, Vec<usize>)> {
        Self::shapes_for(self.in_channels, self.classes)
    }

    fn locate(&self, key: &str) -> Option<Slot> {
        let names = self.param_names();
        if let Some(p) = key.strip_prefix("momentum.") {
            return names.iter().position(|(n, _)| n == p).map(Slot::Momentum);
        }
        if let Some(i) = names.iter().position(|(n, _)| n == key) {
            return Some(Slot::Param(i));
        }
        let l = (1..=WIDTHS.len()).find(|l| key.starts_with(&format!("bn{l}.")))?;
        match &key[format!("bn{l}.").len()..] {
            "running_mean" => Some(Slot::RunningMean(l - 1)),
            "running_var" => Some(Slot::RunningVar(l - 1)),
            _ => None,
        }
    }

    /// Set a parameter, running statistic or momentum buffer (`momentum.<name>`).
    pub fn set(&mut self, key: &str, data: &[f32]) -> Result<()> {
        let slot = match self.locate(key) {
            Some(Slot::Param(i)) => &mut self.params[i],
            Some(Slot::Momentum(i)) => &mut self.momentum[i],
            Some(Slot::RunningMean(l)) => &mut self.running[l].0,
            Some(Slot::RunningVar(l)) => &mut self.running[l].1,
            None => {
                return Err(ExtractError::Usage(format!("small CNN: no tensor `{key}`")));
            }
        };
        if slot.len() != data.len() {
            return Err(ExtractError::Usage(format!(
                "small CNN: `{key}` has {} elements, got {}",
                slot.len(),
                data.len()
            )));
        }
        slot.copy_from_slice(data);
        Ok(())
    }

    /// A parameter, running statistic or momentum buffer (`momentum.<name>`).
    pub fn get(&self, key: &str) -> Option<&[f32]> {
        Some(match self.locate(key)? {
            Slot::Param(i) => &self.params[i],
            Slot::Momentum(i) => &self.momentum[i],
            Slot::RunningMean(l) => &self.running[l].0,
            Slot::RunningVar(l) => &self.running[l].1,
        })
    }

    /// Forward (train mode) and backward of a batch `x` [B, C, H, W] (H, W multiples of 4,
    /// B ≥ 2) with labels `y` [B] in 0..K; updates the BatchNorm running statistics as
    /// PyTorch's train-mode forward does.
    pub fn forward_backward(&mut self, x: &[f32], h: usize, w: usize, y: &[u32]) -> Result<Pass> {
        self.check_batch(x, h, w, y)?;
        let b = y.len();
        let mut layers: Vec<Layer> = Vec::with_capacity(WIDTHS.len());
        let (mut cur, mut cin, mut hh, mut ww) = (x.to_vec(), self.in_channels, h, w);
        for l in 0..WIDTHS.len() {
            let (layer, next, nh, nw) = self.conv_forward_train(l, cur, b, cin, hh, ww);
            (cin, hh, ww) = (layer.cout, nh, nw);
            layers.push(layer);
            cur = next;
        }
        let head = self.head_forward(&cur, y, cin, hh * ww);
        let mut grads: Vec<Vec<f32>> = self.params.iter().map(|p| vec![0.0; p.len()]).collect();
        let mut dcur = self.head_backward(&head, b, cin, hh * ww, &mut grads);
        for (l, ly) in layers.iter().enumerate().rev() {
            dcur = self.conv_backward_train(l, ly, dcur, b, &mut grads);
        }
        Ok(Pass {
            loss: head.loss,
            logits: head.logits,
            grads,
        })
    }

    /// SGD with momentum and coupled weight decay, PyTorch's order:
    /// `g += wd·w; buf = m·buf + g; w -= lr·buf`.
    pub fn sgd_step(&mut self, grads: &[Vec<f32>], lr: f64, momentum: f64, weight_decay: f64) {
        let (lr, m, wd) = (lr as f32, momentum as f32, weight_decay as f32);
        for ((w, buf), g) in self.params.iter_mut().zip(&mut self.momentum).zip(grads) {
            for ((w, b), &g) in w.iter_mut().zip(buf.iter_mut()).zip(g) {
                *b = m * *b + (g + wd * *w);
                *w -= lr * *b;
            }
        }
    }
}
