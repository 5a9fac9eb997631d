//! Stage-1 training of the small CNN on the CPU, forward and backward written out by hand:
//! 3×3 convolutions as per-image im2col + `gemm` (the kernel under candle's CPU matmul),
//! BatchNorm (train mode) + ReLU fused, 2×2 max-pool with argmax routing, global average pool,
//! the linear head and cross-entropy. Images run in parallel (rayon); every reduction runs in a
//! fixed order over fixed chunks, so a step gives the same result for any thread count.
//!
//! It computes the function of [`crate::backbones::small_cnn::SmallCnn`] in train mode and its
//! exact gradients (checked against candle's autograd in the tests), PyTorch's BatchNorm
//! conventions included (biased batch variance to normalise, unbiased in the running variance,
//! momentum 0.1, eps 1e-5), and the SGD update of [`crate::stage1`] (coupled weight decay,
//! `buf = m·buf + g`, `w -= lr·buf`). An epoch of Fashion-MNIST-LT IR=100 (14 886 images,
//! batch 128) takes ~20 s on two cores, against ~5.5 min through candle's autograd.
//!
//! Tensors are named as in the checkpoint (`conv1.weight`, `bn1.running_var`, `fc.bias`, ...)
//! and exchanged as flat row-major `f32` slices.

use crate::backbones::small_cnn::FEATURE_DIM;
use crate::error::{ExtractError, Result};
use rayon::prelude::*;

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
        let (b, k) = (y.len(), self.classes);
        let bad = |msg: String| Err(ExtractError::Usage(format!("small CNN step: {msg}")));
        if b < 2 {
            return bad(format!("BatchNorm needs at least 2 images, got {b}"));
        }
        if x.len() != b * self.in_channels * h * w
            || !h.is_multiple_of(4)
            || !w.is_multiple_of(4)
            || h * w == 0
        {
            return bad(format!(
                "input of {} values is not [{b}, {}, {h}, {w}] with H, W positive multiples of 4",
                x.len(),
                self.in_channels
            ));
        }
        if let Some(l) = y.iter().find(|&&l| l as usize >= k) {
            return bad(format!("label {l} is not in 0..{k}"));
        }

        // Forward.
        let mut layers: Vec<Layer> = Vec::with_capacity(WIDTHS.len());
        let (mut cur, mut cin, mut hh, mut ww) = (x.to_vec(), self.in_channels, h, w);
        for (l, &cout) in WIDTHS.iter().enumerate() {
            let wt = &self.params[3 * l];
            let (gamma, beta) = (&self.params[3 * l + 1], &self.params[3 * l + 2]);
            let hw = hh * ww;
            let mut z = vec![0f32; b * cout * hw];
            conv_forward(&cur, wt, &mut z, cin, cout, hh, ww);
            let (mean, var) = channel_stats(&z, b, cout, hw);
            let n = (b * hw) as f64;
            let (rm, rv) = &mut self.running[l];
            for c in 0..cout {
                rm[c] = ((1.0 - BN_MOMENTUM) * rm[c] as f64 + BN_MOMENTUM * mean[c]) as f32;
                rv[c] = ((1.0 - BN_MOMENTUM) * rv[c] as f64 + BN_MOMENTUM * var[c] * n / (n - 1.0))
                    as f32;
            }
            let inv_std: Vec<f32> = var
                .iter()
                .map(|&v| (1.0 / (v + BN_EPS).sqrt()) as f32)
                .collect();
            let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
            // z becomes x̂; act = relu(γ x̂ + β).
            let mut act = vec![0f32; z.len()];
            z.par_chunks_mut(cout * hw)
                .zip(act.par_chunks_mut(cout * hw))
                .for_each(|(zi, ai)| {
                    for c in 0..cout {
                        let (m, s, g, be) = (mean32[c], inv_std[c], gamma[c], beta[c]);
                        for (zv, av) in zi[c * hw..(c + 1) * hw]
                            .iter_mut()
                            .zip(&mut ai[c * hw..(c + 1) * hw])
                        {
                            *zv = (*zv - m) * s;
                            *av = (g * *zv + be).max(0.0);
                        }
                    }
                });
            let (next, argmax, nh, nw) = if POOLED[l] {
                let (p, a) = max_pool(&act, b * cout, hh, ww);
                (p, a, hh / 2, ww / 2)
            } else {
                (act.clone(), Vec::new(), hh, ww)
            };
            layers.push(Layer {
                cin,
                cout,
                h: hh,
                w: ww,
                input: std::mem::replace(&mut cur, next),
                xhat: z,
                act,
                inv_std,
                argmax,
            });
            (cin, hh, ww) = (cout, nh, nw);
        }
        // Global average pool -> features [B, D].
        let (d, phw) = (cin, hh * ww);
        let feat: Vec<f32> = cur
            .chunks(phw)
            .map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / phw as f64) as f32)
            .collect();
        let (fw, fb) = (
            &self.params[3 * WIDTHS.len()],
            &self.params[3 * WIDTHS.len() + 1],
        );
        let mut logits = vec![0f32; b * k];
        let mut dlogits = vec![0f32; b * k];
        let mut loss = 0f64;
        for i in 0..b {
            let f = &feat[i * d..(i + 1) * d];
            let row = &mut logits[i * k..(i + 1) * k];
            for (j, r) in row.iter_mut().enumerate() {
                *r = fb[j] + dot(&fw[j * d..(j + 1) * d], f);
            }
            let mx = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v)) as f64;
            let se: f64 = row.iter().map(|&v| (v as f64 - mx).exp()).sum();
            let lse = mx + se.ln();
            let yi = y[i] as usize;
            loss += lse - row[yi] as f64;
            for j in 0..k {
                let p = (row[j] as f64 - lse).exp();
                dlogits[i * k + j] = ((p - (j == yi) as u8 as f64) / b as f64) as f32;
            }
        }
        loss /= b as f64;

        // Backward: head.
        let mut grads: Vec<Vec<f32>> = self.params.iter().map(|p| vec![0.0; p.len()]).collect();
        let nf = 3 * WIDTHS.len();
        {
            let (gw, rest) = grads[nf..].split_at_mut(1);
            let (gw, gb) = (&mut gw[0], &mut rest[0]);
            for j in 0..k {
                let mut acc = vec![0f64; d];
                let mut accb = 0f64;
                for i in 0..b {
                    let g = dlogits[i * k + j] as f64;
                    accb += g;
                    for (a, &f) in acc.iter_mut().zip(&feat[i * d..(i + 1) * d]) {
                        *a += g * f as f64;
                    }
                }
                gb[j] = accb as f32;
                for (o, a) in gw[j * d..(j + 1) * d].iter_mut().zip(acc) {
                    *o = a as f32;
                }
            }
        }
        // d(pooled output of the last layer) = dfeat / (H·W), dfeat = dlogits · W.
        let mut dcur = vec![0f32; b * d * phw];
        for i in 0..b {
            for c in 0..d {
                let mut s = 0f32;
                for j in 0..k {
                    s += dlogits[i * k + j] * fw[j * d + c];
                }
                dcur[(i * d + c) * phw..(i * d + c + 1) * phw].fill(s / phw as f32);
            }
        }
        // Backward: conv layers, last to first.
        for (l, ly) in layers.iter().enumerate().rev() {
            let hw = ly.h * ly.w;
            let dact = if POOLED[l] {
                max_unpool(&dcur, &ly.argmax, b * ly.cout, ly.h, ly.w)
            } else {
                dcur
            };
            let gamma = &self.params[3 * l + 1];
            // dy = dact · 1[act > 0]; dγ = Σ dy x̂; dβ = Σ dy (per channel, fixed order).
            let mut dy = dact;
            dy.par_iter_mut()
                .zip(ly.act.par_iter())
                .for_each(|(g, &a)| {
                    if a <= 0.0 {
                        *g = 0.0
                    }
                });
            let (dgamma, dbeta): (Vec<f64>, Vec<f64>) = (0..ly.cout)
                .into_par_iter()
                .map(|c| {
                    let (mut sg, mut sb) = (0f64, 0f64);
                    for i in 0..b {
                        let o = (i * ly.cout + c) * hw;
                        for (&g, &xh) in dy[o..o + hw].iter().zip(&ly.xhat[o..o + hw]) {
                            sg += g as f64 * xh as f64;
                            sb += g as f64;
                        }
                    }
                    (sg, sb)
                })
                .unzip();
            for c in 0..ly.cout {
                grads[3 * l + 1][c] = dgamma[c] as f32;
                grads[3 * l + 2][c] = dbeta[c] as f32;
            }
            // dz = γ/σ · (dy − dβ/N − x̂ dγ/N), in place.
            let n = (b * hw) as f64;
            let coef: Vec<(f32, f32, f32)> = (0..ly.cout)
                .map(|c| {
                    (
                        gamma[c] * ly.inv_std[c],
                        (dbeta[c] / n) as f32,
                        (dgamma[c] / n) as f32,
                    )
                })
                .collect();
            dy.par_chunks_mut(ly.cout * hw)
                .zip(ly.xhat.par_chunks(ly.cout * hw))
                .for_each(|(gi, xi)| {
                    for c in 0..ly.cout {
                        let (s, mb, mg) = coef[c];
                        for (g, &xh) in gi[c * hw..(c + 1) * hw]
                            .iter_mut()
                            .zip(&xi[c * hw..(c + 1) * hw])
                        {
                            *g = s * (*g - mb - xh * mg);
                        }
                    }
                });
            let dz = dy;
            let (dw, dx) = conv_backward(
                &ly.input,
                &self.params[3 * l],
                &dz,
                ly.cin,
                ly.cout,
                ly.h,
                ly.w,
                l > 0,
            );
            grads[3 * l] = dw;
            dcur = dx;
        }
        Ok(Pass {
            loss,
            logits,
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

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Per-channel mean and biased variance of `z` [B, C, HW] (f64, fixed order).
fn channel_stats(z: &[f32], b: usize, c: usize, hw: usize) -> (Vec<f64>, Vec<f64>) {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let n = (b * hw) as f64;
            let mut s = 0f64;
            for i in 0..b {
                s += z[(i * c + ch) * hw..(i * c + ch + 1) * hw]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>();
            }
            let mean = s / n;
            let mut v = 0f64;
            for i in 0..b {
                v += z[(i * c + ch) * hw..(i * c + ch + 1) * hw]
                    .iter()
                    .map(|&x| (x as f64 - mean).powi(2))
                    .sum::<f64>();
            }
            (mean, v / n)
        })
        .unzip()
}

/// 2×2 max-pool (stride 2) of `planes` planes of h×w; the first maximum in row-major window
/// order wins (PyTorch's CPU kernel).
fn max_pool(x: &[f32], planes: usize, h: usize, w: usize) -> (Vec<f32>, Vec<u8>) {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![0f32; planes * oh * ow];
    let mut arg = vec![0u8; planes * oh * ow];
    out.par_chunks_mut(oh * ow)
        .zip(arg.par_chunks_mut(oh * ow))
        .zip(x.par_chunks(h * w))
        .for_each(|((o, a), p)| {
            for oy in 0..oh {
                for ox in 0..ow {
                    let base = 2 * oy * w + 2 * ox;
                    let cand = [p[base], p[base + 1], p[base + w], p[base + w + 1]];
                    let mut best = 0;
                    for t in 1..4 {
                        if cand[t] > cand[best] {
                            best = t;
                        }
                    }
                    o[oy * ow + ox] = cand[best];
                    a[oy * ow + ox] = best as u8;
                }
            }
        });
    (out, arg)
}

/// The gradient of [`max_pool`]: each output's gradient goes to its window's maximum.
fn max_unpool(g: &[f32], arg: &[u8], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![0f32; planes * h * w];
    out.par_chunks_mut(h * w)
        .zip(g.par_chunks(oh * ow))
        .zip(arg.par_chunks(oh * ow))
        .for_each(|((o, gp), ap)| {
            for oy in 0..oh {
                for ox in 0..ow {
                    let t = ap[oy * ow + ox] as usize;
                    o[(2 * oy + t / 2) * w + 2 * ox + t % 2] = gp[oy * ow + ox];
                }
            }
        });
    out
}

/// Columns of a 3×3, padding 1, stride 1 convolution: `cols` [C·9, H·W], row `ci·9 + ky·3 + kx`
/// (PyTorch's weight order), column `oy·W + ox`.
fn im2col(x: &[f32], c: usize, h: usize, w: usize, cols: &mut [f32]) {
    let hw = h * w;
    for ci in 0..c {
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &mut cols[(ci * 9 + ky * 3 + kx) * hw..][..hw];
                for oy in 0..h {
                    let dst = &mut row[oy * w..(oy + 1) * w];
                    let iy = oy + ky;
                    if iy < 1 || iy > h {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &x[ci * hw + (iy - 1) * w..][..w];
                    match kx {
                        0 => {
                            dst[0] = 0.0;
                            dst[1..].copy_from_slice(&src[..w - 1]);
                        }
                        1 => dst.copy_from_slice(src),
                        _ => {
                            dst[..w - 1].copy_from_slice(&src[1..]);
                            dst[w - 1] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds `cols` back onto the image `dx` [C, H, W].
fn col2im_add(cols: &[f32], c: usize, h: usize, w: usize, dx: &mut [f32]) {
    let hw = h * w;
    for ci in 0..c {
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &cols[(ci * 9 + ky * 3 + kx) * hw..][..hw];
                for oy in 0..h {
                    let iy = oy + ky;
                    if iy < 1 || iy > h {
                        continue;
                    }
                    let src = &row[oy * w..(oy + 1) * w];
                    let dst = &mut dx[ci * hw + (iy - 1) * w..][..w];
                    let (d, s) = match kx {
                        0 => (&mut dst[..w - 1], &src[1..]),
                        1 => (&mut dst[..], src),
                        _ => (&mut dst[1..], &src[..w - 1]),
                    };
                    for (a, &v) in d.iter_mut().zip(s) {
                        *a += v;
                    }
                }
            }
        }
    }
}

/// `dst[m, n] (+)= a[m, k] · b[k, n]`, `dst` row-major, `a` and `b` given by (row, column)
/// strides into their slices; single-threaded (the callers parallelise over images).
#[allow(clippy::too_many_arguments)]
fn matmul(
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    m: usize,
    n: usize,
    k: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |(rs, cs): (usize, usize), r: usize, c: usize| (r - 1) * rs + (c - 1) * cs;
    assert!(dst.len() >= m * n, "matmul: dst too small");
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    assert!(a.len() > last(a_strides, m, k), "matmul: a too small");
    assert!(b.len() > last(b_strides, k, n), "matmul: b too small");
    // SAFETY: every index the strides reach was bounds-checked above.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_strides.1 as isize,
            a_strides.0 as isize,
            b.as_ptr(),
            b_strides.1 as isize,
            b_strides.0 as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `z` [B, cout, HW] = conv3x3(x [B, cin, H, W], w [cout, cin, 3, 3]).
fn conv_forward(x: &[f32], w: &[f32], z: &mut [f32], cin: usize, cout: usize, h: usize, ww: usize) {
    let (hw, kk) = (h * ww, cin * 9);
    z.par_chunks_mut(cout * hw)
        .zip(x.par_chunks(cin * hw))
        .for_each_init(
            || vec![0f32; kk * hw],
            |cols, (zi, xi)| {
                im2col(xi, cin, h, ww, cols);
                matmul(zi, false, w, (kk, 1), cols, (hw, 1), cout, hw, kk);
            },
        );
}

/// Gradients of [`conv_forward`]: (dw [cout, cin·9], dx [B, cin, H, W] when `need_dx`).
#[allow(clippy::too_many_arguments)]
fn conv_backward(
    x: &[f32],
    w: &[f32],
    dz: &[f32],
    cin: usize,
    cout: usize,
    h: usize,
    ww: usize,
    need_dx: bool,
) -> (Vec<f32>, Vec<f32>) {
    let (hw, kk) = (h * ww, cin * 9);
    let b = x.len() / (cin * hw);
    let mut dx = vec![0f32; if need_dx { b * cin * hw } else { 0 }];
    let chunks = b.div_ceil(CHUNK);
    let mut partial = vec![0f32; chunks * cout * kk];
    let dx_chunk = if need_dx { CHUNK * cin * hw } else { 1 };
    let mut dx_parts: Vec<&mut [f32]> = if need_dx {
        dx.chunks_mut(dx_chunk).collect()
    } else {
        (0..chunks).map(|_| <&mut [f32]>::default()).collect()
    };
    partial
        .par_chunks_mut(cout * kk)
        .zip(dx_parts.par_iter_mut())
        .enumerate()
        .for_each(|(ci, (dwp, dxp))| {
            let mut cols = vec![0f32; kk * hw];
            let lo = ci * CHUNK;
            let hi = (lo + CHUNK).min(b);
            for (j, i) in (lo..hi).enumerate() {
                let dzi = &dz[i * cout * hw..(i + 1) * cout * hw];
                im2col(&x[i * cin * hw..(i + 1) * cin * hw], cin, h, ww, &mut cols);
                // dw[co, r] += Σ_p dz[co, p] · cols[r, p]
                matmul(dwp, j > 0, dzi, (hw, 1), &cols, (1, hw), cout, kk, hw);
                if need_dx {
                    // dcols[r, p] = Σ_co w[co, r] · dz[co, p], then back onto the image.
                    matmul(&mut cols, false, w, (1, kk), dzi, (hw, 1), kk, hw, cout);
                    col2im_add(
                        &cols,
                        cin,
                        h,
                        ww,
                        &mut dxp[j * cin * hw..(j + 1) * cin * hw],
                    );
                }
            }
        });
    let mut dw = vec![0f32; cout * kk];
    for p in partial.chunks(cout * kk) {
        for (a, &v) in dw.iter_mut().zip(p) {
            *a += v;
        }
    }
    (dw, dx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Arch;
    use candle_core::{DType, Device, Module, Tensor};
    use candle_nn::{VarBuilder, VarMap};
    use rand::{Rng, SeedableRng};

    fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    /// The hand-written pass computes candle's train-mode small CNN (with a correct max-pool
    /// gradient): loss, logits, every parameter gradient and the updated running statistics.
    #[test]
    fn matches_candle_autograd_on_the_small_cnn() {
        let dev = Device::Cpu;
        let (b, h, w, k) = (6, 12, 8, 4);
        let vm = VarMap::new();
        let model = Arch::SmallCnn
            .build(Some(k), VarBuilder::from_varmap(&vm, DType::F32, &dev))
            .unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut fast = SmallCnnCpu::new(1, k);
        let vars: Vec<_> = vm
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut vars = vars;
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, var) in &vars {
            let v: Vec<f32> = (0..var.elem_count())
                .map(|_| {
                    if key.ends_with("running_var") {
                        rng.random_range(0.5..2.0)
                    } else {
                        rng.random_range(-0.5..0.5)
                    }
                })
                .collect();
            var.set(&Tensor::from_slice(&v, var.shape(), &dev).unwrap())
                .unwrap();
            fast.set(key, &v).unwrap();
        }
        let x: Vec<f32> = (0..b * h * w)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let y: Vec<u32> = (0..b as u32).map(|i| i % k as u32).collect();

        let pass = fast.forward_backward(&x, h, w, &y).unwrap();

        let xt = Tensor::from_slice(&x, (b, 1, h, w), &dev).unwrap();
        let yt = Tensor::from_slice(&y, b, &dev).unwrap();
        let logits = model
            .head()
            .unwrap()
            .forward(&model.features_t(&xt, true).unwrap())
            .unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &yt).unwrap();
        let grads = loss.backward().unwrap();
        let l = loss.to_scalar::<f32>().unwrap() as f64;
        assert!(
            (pass.loss - l).abs() < 1e-5 * l.abs().max(1.0),
            "{} {l}",
            pass.loss
        );
        let lg: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
        assert!(max_rel_diff(&lg, &pass.logits) < 1e-4);
        for ((name, _), g) in fast.param_names().iter().zip(&pass.grads) {
            let var = &vars.iter().find(|(k, _)| k == name).unwrap().1;
            let want: Vec<f32> = grads
                .get(var)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let d = max_rel_diff(&want, g);
            assert!(d < 1e-3, "gradient of {name}: max relative difference {d}");
        }
        for (key, var) in &vars {
            if key.contains("running") {
                let want: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
                let d = max_rel_diff(&want, fast.get(key).unwrap());
                assert!(d < 1e-5, "{key}: {d}");
            }
        }
    }

    /// A check independent of candle: central finite differences of the loss agree with the
    /// analytic gradient (BatchNorm in train mode; the running statistics do not enter the
    /// loss).
    #[test]
    fn gradients_match_finite_differences() {
        let (b, h, w, k) = (4, 8, 8, 3);
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut net = SmallCnnCpu::new(1, k);
        for (name, shape) in net.param_names() {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    if name.starts_with("bn") && name.ends_with("weight") {
                        rng.random_range(0.5..1.5)
                    } else {
                        rng.random_range(-0.5..0.5)
                    }
                })
                .collect();
            net.set(&name, &v).unwrap();
        }
        let x: Vec<f32> = (0..b * h * w)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let y = vec![0, 1, 2, 1];
        let pass = net.clone().forward_backward(&x, h, w, &y).unwrap();
        let eps = 1e-3f32;
        for (pi, (name, _)) in net.param_names().iter().enumerate() {
            for t in 0..3 {
                let j = (t * 7919 + 13) % net.params[pi].len();
                let mut plus = net.clone();
                plus.params[pi][j] += eps;
                let mut minus = net.clone();
                minus.params[pi][j] -= eps;
                let fd = (plus.forward_backward(&x, h, w, &y).unwrap().loss
                    - minus.forward_backward(&x, h, w, &y).unwrap().loss)
                    / (2.0 * eps as f64);
                let an = pass.grads[pi][j] as f64;
                assert!(
                    (fd - an).abs() < 2e-3 + 0.05 * an.abs(),
                    "{name}[{j}]: finite difference {fd}, analytic {an}"
                );
            }
        }
    }

    /// Fixed-order reductions: one thread and three threads give bit-identical results.
    #[test]
    fn a_step_does_not_depend_on_the_thread_count() {
        let (b, h, w, k) = (19, 8, 12, 5);
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut net = SmallCnnCpu::new(1, k);
        for (name, shape) in net.param_names() {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(-0.5..0.5)).collect();
            net.set(&name, &v).unwrap();
        }
        let x: Vec<f32> = (0..b * h * w)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let y: Vec<u32> = (0..b as u32).map(|i| (i * 3) % k as u32).collect();
        let run = |threads: usize| {
            let mut n = net.clone();
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let p = n.forward_backward(&x, h, w, &y).unwrap();
                    n.sgd_step(&p.grads, 0.1, 0.9, 5e-3);
                    (p.loss, p.grads, n.params, n.running)
                })
        };
        let (a, b3) = (run(1), run(3));
        assert_eq!(a.0.to_bits(), b3.0.to_bits());
        assert!(a.1 == b3.1 && a.2 == b3.2 && a.3 == b3.3);
    }

    #[test]
    fn max_pool_routes_the_gradient_to_the_first_maximum() {
        let x = [1.0, 4.0, 3.0, 4.0, /* row 2 */ 0.0, 2.0, 9.0, 5.0];
        let (p, a) = max_pool(&x, 1, 2, 4);
        assert_eq!(p, vec![4.0, 9.0]);
        let g = max_unpool(&[1.0, 2.0], &a, 1, 2, 4);
        assert_eq!(g, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0]);
    }

    #[test]
    fn sgd_step_is_pytorchs_coupled_weight_decay_momentum() {
        let mut net = SmallCnnCpu::new(1, 2);
        let names = net.param_names();
        net.set(&names[0].0, &[0.5; 9 * 32]).unwrap();
        let mut g: Vec<Vec<f32>> = net.params.iter().map(|p| vec![0.0; p.len()]).collect();
        g[0].fill(1.0);
        net.sgd_step(&g, 0.1, 0.9, 0.01);
        // buf = 1 + 0.01·0.5 = 1.005; w = 0.5 − 0.1·1.005
        assert!((net.params[0][0] - 0.3995).abs() < 1e-6);
        net.sgd_step(&g, 0.1, 0.9, 0.01);
        let buf = 0.9 * 1.005 + (1.0 + 0.01 * 0.3995);
        assert!((net.get("momentum.conv1.weight").unwrap()[0] - buf).abs() < 1e-6);
        assert!((net.params[0][0] - (0.3995 - 0.1 * buf)).abs() < 1e-6);
    }

    #[test]
    fn rejects_unknown_names_wrong_sizes_and_bad_batches() {
        let mut net = SmallCnnCpu::new(1, 2);
        assert!(net.set("conv9.weight", &[0.0]).is_err());
        assert!(net.set("bn1.running_mean", &[0.0; 3]).is_err());
        assert!(net.set("bn1.running_mean", &[0.5; 32]).is_ok());
        assert_eq!(net.get("bn1.running_mean").unwrap()[0], 0.5);
        assert_eq!(net.get("bn3.running_var").unwrap().len(), 128);
        assert!(net.get("momentum.fc.bias").is_some());
        let x = vec![0.0; 2 * 16];
        let e = net.forward_backward(&x, 4, 4, &[0, 2]).unwrap_err();
        assert!(e.to_string().contains("label 2 is not in 0..2"), "{e}");
        let e = net.forward_backward(&x, 4, 4, &[0]).unwrap_err();
        assert!(e.to_string().contains("at least 2 images"), "{e}");
        let e = net.forward_backward(&x[..30], 4, 4, &[0, 1]).unwrap_err();
        assert!(e.to_string().contains("is not [2, 1, 4, 4]"), "{e}");
    }
}
