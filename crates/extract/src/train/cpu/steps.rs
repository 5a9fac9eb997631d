//! The steps of [`SmallCnnCpu::forward_backward`]: check the batch; each conv block forward in
//! train mode (conv, BatchNorm with running statistics, ReLU, max-pool); the head forward with
//! the cross-entropy gradient; the head backward; each conv block backward.

use super::kernels::{channel_stats, conv_backward, conv_forward, dot, max_pool, max_unpool};
use super::{BN_EPS, BN_MOMENTUM, Layer, POOLED, SmallCnnCpu, WIDTHS};
use crate::error::{ExtractError, Result};
use rayon::prelude::*;

/// The head's forward: features, logits, ∂loss/∂logits and the mean loss.
pub(super) struct HeadForward {
    pub feat: Vec<f32>,
    pub logits: Vec<f32>,
    pub dlogits: Vec<f32>,
    pub loss: f64,
}

impl SmallCnnCpu {
    pub(super) fn check_batch(&self, x: &[f32], h: usize, w: usize, y: &[u32]) -> Result<()> {
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
        Ok(())
    }

    /// Conv block `l` on `cur` [B, cin, hh, ww] in train mode: the layer's saved activations,
    /// its output and the output's height and width.
    pub(super) fn conv_forward_train(
        &mut self,
        l: usize,
        cur: Vec<f32>,
        b: usize,
        cin: usize,
        hh: usize,
        ww: usize,
    ) -> (Layer, Vec<f32>, usize, usize) {
        let cout = WIDTHS[l];
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
            rv[c] =
                ((1.0 - BN_MOMENTUM) * rv[c] as f64 + BN_MOMENTUM * var[c] * n / (n - 1.0)) as f32;
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
        let layer = Layer {
            cin,
            cout,
            h: hh,
            w: ww,
            input: cur,
            xhat: z,
            act,
            inv_std,
            argmax,
        };
        (layer, next, nh, nw)
    }

    /// Global average pool of `cur` [B, d, phw] → features, the linear head, and the
    /// cross-entropy with its gradient.
    pub(super) fn head_forward(&self, cur: &[f32], y: &[u32], d: usize, phw: usize) -> HeadForward {
        let (b, k) = (y.len(), self.classes);
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
        HeadForward {
            feat,
            logits,
            dlogits,
            loss,
        }
    }

    /// The head's gradients into `grads`; returns ∂loss/∂(pooled output of the last block),
    /// dfeat / (H·W) with dfeat = dlogits · W.
    pub(super) fn head_backward(
        &self,
        hf: &HeadForward,
        b: usize,
        d: usize,
        phw: usize,
        grads: &mut [Vec<f32>],
    ) -> Vec<f32> {
        let k = self.classes;
        let (feat, dlogits) = (&hf.feat, &hf.dlogits);
        let fw = &self.params[3 * WIDTHS.len()];
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
        dcur
    }

    /// Conv block `l` backward from ∂loss/∂(its output) `dcur`: its gradients into `grads`;
    /// returns ∂loss/∂(its input) (empty for the first block).
    pub(super) fn conv_backward_train(
        &self,
        l: usize,
        ly: &Layer,
        dcur: Vec<f32>,
        b: usize,
        grads: &mut [Vec<f32>],
    ) -> Vec<f32> {
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
        dx
    }
}
