//! A depthwise convolution (one k×k filter per channel, `groups == channels`) with its
//! BatchNorm folded in, on the inference path. As im2col + GEMM it would be one GEMM of a
//! single row per channel — k² copies of the map to multiply each value once — so it runs as a
//! direct stencil instead: each plane is copied once into zero-padded column phases (one per
//! stride step, so every tap reads a contiguous run), then up to 4 registers of outputs of a
//! row at a time accumulate the k² taps with fused multiply-adds (`pulp`'s SIMD of the CPU:
//! AVX2 or AVX-512).
//!
//! Layout as [`super::conv`]: a group of `g` images `[C, g, H, W]`; padding (before, after)
//! may differ (TensorFlow's "same").

use super::conv::Act;
use candle_core::{Result, Tensor};
use candle_nn::{BatchNorm, Conv2d};

/// A depthwise convolution with its BatchNorm folded in.
#[derive(Debug, Clone)]
pub struct Depthwise {
    pub channels: usize,
    pub k: usize,
    pub stride: usize,
    /// Zero padding before (top, left) and after (bottom, right).
    pub pad: (usize, usize),
    /// [channels, k·k].
    weight: Vec<f32>,
    bias: Vec<f32>,
}

fn vec1(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()
}

impl Depthwise {
    /// `conv` (depthwise, bias-free, padding 0 in its config) then `bn` in eval mode, with
    /// zero padding `pad` around the input.
    pub fn fold(conv: &Conv2d, bn: &BatchNorm, pad: (usize, usize)) -> Result<Depthwise> {
        let cfg = conv.config();
        let (c, one, k, k2) = conv.weight().dims4()?;
        if one != 1 || cfg.groups != c || k != k2 || cfg.dilation != 1 || cfg.padding != 0 {
            candle_core::bail!("fast path: not a square, undilated depthwise convolution");
        }
        let w = vec1(conv.weight())?;
        let mean = vec1(bn.running_mean())?;
        let var = vec1(bn.running_var())?;
        let (gamma, beta) = match bn.weight_and_bias() {
            Some((g, b)) => (vec1(g)?, vec1(b)?),
            None => (vec![1.0; c], vec![0.0; c]),
        };
        let mut weight = vec![0f32; c * k * k];
        let mut bias = vec![0f32; c];
        for ch in 0..c {
            let s = gamma[ch] as f64 / (var[ch] as f64 + bn.eps()).sqrt();
            for j in 0..k * k {
                weight[ch * k * k + j] = (w[ch * k * k + j] as f64 * s) as f32;
            }
            bias[ch] = (beta[ch] as f64 - mean[ch] as f64 * s) as f32;
        }
        Ok(Depthwise {
            channels: c,
            k,
            stride: cfg.stride,
            pad,
            weight,
            bias,
        })
    }

    /// The output size of an `h`×`w` input.
    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        let p = self.pad.0 + self.pad.1;
        (
            (h + p - self.k) / self.stride + 1,
            (w + p - self.k) / self.stride + 1,
        )
    }

    /// `x` [C, g, h, w] → `out` [C, g, oh, ow]: act(depthwise(x) + b').
    pub fn forward(
        &self,
        x: &[f32],
        g: usize,
        h: usize,
        w: usize,
        out: &mut Vec<f32>,
        act: Act,
    ) -> (usize, usize) {
        let (oh, ow) = self.out_size(h, w);
        out.resize(self.channels * g * oh * ow, 0.0);
        // the padded phases of a plane, kept across calls (fresh pages would be zeroed by the
        // kernel on every layer); taken out here, so that the kernel runs inside `dispatch`
        let mut phases = PHASES.with(|c| std::mem::take(&mut *c.borrow_mut()));
        let job = Job {
            phases: &mut phases,
            dw: self,
            x,
            g,
            h,
            w,
            oh,
            ow,
            out,
            act,
        };
        pulp::Arch::new().dispatch(job);
        PHASES.with(|c| *c.borrow_mut() = phases);
        (oh, ow)
    }
}

struct Job<'a> {
    phases: &'a mut Vec<f32>,
    dw: &'a Depthwise,
    x: &'a [f32],
    g: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    out: &'a mut [f32],
    act: Act,
}

impl pulp::WithSimd for Job<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        run(simd, self)
    }
}

thread_local! {
    static PHASES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Every plane: its zero-padded input split into `s` column phases (column `s·j + φ` of the
/// padded row is `phase[φ][j]`), so that each tap reads a contiguous run at any stride; then
/// `U` registers of outputs of a row at a time, the k² taps accumulated in registers (`U`
/// independent accumulators hide the latency of the adds).
#[inline(always)]
fn run<S: pulp::Simd>(simd: S, job: Job<'_>) {
    let blocks = job.ow.div_ceil(lanes::<S>());
    match blocks {
        1 => planes::<S, 1>(simd, job),
        2 | 3 => planes::<S, 2>(simd, job),
        _ => planes::<S, 4>(simd, job),
    }
}

/// f32 lanes of a SIMD register of `S` (8 with AVX2, 16 with AVX-512, 1 without).
#[inline(always)]
fn lanes<S: pulp::Simd>() -> usize {
    std::mem::size_of::<S::f32s>() / std::mem::size_of::<f32>()
}

#[inline(always)]
fn planes<S: pulp::Simd, const U: usize>(simd: S, job: Job<'_>) {
    use pulp::bytemuck::{cast_slice, pod_read_unaligned};
    let Job {
        phases,
        dw,
        x,
        g,
        h,
        w,
        oh,
        ow,
        out,
        act,
    } = job;
    let (k, s, (p0, _)) = (dw.k, dw.stride, dw.pad);
    let lanes = lanes::<S>();
    let step = U * lanes;
    let runs = ow.div_ceil(step);
    // phase width: the last run's reads, tap k−1 at offset (k−1)/s
    let wq = runs * step + (k - 1) / s;
    let hp = (oh - 1) * s + k;
    // each tap's offset in the phases, from the start of an output row's window
    let taps: Vec<usize> = (0..k * k)
        .map(|t| {
            let (ky, kx) = (t / k, t % k);
            ((kx % s) * hp + ky) * wq + kx / s
        })
        .collect();
    {
        phases.resize(s * hp * wq, 0.0);
        for (plane, (o, xin)) in out
            .chunks_exact_mut(oh * ow)
            .zip(x.chunks_exact(h * w))
            .enumerate()
        {
            let ch = plane / g;
            let wk = &dw.weight[ch * k * k..(ch + 1) * k * k];
            let b = dw.bias[ch];
            for yp in 0..hp {
                let iy = yp as isize - p0 as isize;
                for ph in 0..s {
                    let dst = &mut phases[(ph * hp + yp) * wq..(ph * hp + yp + 1) * wq];
                    dst.fill(0.0);
                    if iy < 0 || iy as usize >= h {
                        continue;
                    }
                    let row = &xin[iy as usize * w..(iy as usize + 1) * w];
                    // phase column j reads input column s·j + ph − p0, inside for j in [j0, j1)
                    let j0 = p0.saturating_sub(ph).div_ceil(s);
                    let j1 = ((w + p0).saturating_sub(ph)).div_ceil(s).min(wq);
                    if j0 < j1 {
                        let first = s * j0 + ph - p0;
                        for (d, v) in dst[j0..j1].iter_mut().zip(row[first..].iter().step_by(s)) {
                            *d = *v;
                        }
                    }
                }
            }
            for oy in 0..oh {
                let row0 = oy * s * wq;
                for r in 0..runs {
                    let ox0 = r * step;
                    let mut acc = [simd.splat_f32s(b); U];
                    for (&off, &wv) in taps.iter().zip(wk) {
                        let base = row0 + ox0 + off;
                        let src: &[f32] = &phases[base..base + step];
                        let wv = simd.splat_f32s(wv);
                        for (u, a) in acc.iter_mut().enumerate() {
                            let v: S::f32s =
                                pod_read_unaligned(cast_slice(&src[u * lanes..(u + 1) * lanes]));
                            *a = simd.mul_add_f32s(wv, v, *a);
                        }
                    }
                    let n = step.min(ow - ox0);
                    let dst = &mut o[oy * ow + ox0..oy * ow + ox0 + n];
                    let acc: &[f32] = cast_slice(&acc);
                    for (d, a) in dst.iter_mut().zip(acc) {
                        *d = act.apply(*a);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::seeded::randn;
    use candle_core::ModuleT;
    use candle_nn::{Conv2dConfig, Module};

    /// The stencil equals candle's grouped convolution on the explicitly padded input, then
    /// BatchNorm and ReLU6, for the kernels, strides and (asymmetric) paddings of
    /// EfficientNet-Lite, odd and even sides, and several images in a group.
    #[test]
    fn depthwise_equals_grouped_conv_then_batchnorm() {
        for (case, (c, k, s, pad, side, g)) in [
            (4, 3, 1, (1, 1), 9, 1),
            (3, 3, 2, (0, 1), 10, 2),
            (5, 5, 2, (1, 2), 12, 3),
            (2, 5, 1, (2, 2), 7, 2),
            (3, 3, 2, (0, 1), 7, 1),
            (2, 5, 2, (1, 2), 5, 2),
            (3, 3, 1, (1, 1), 1, 2),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 50 * case as u64 + 7;
            let wt = randn(seed, 0.0, 0.5, (c, 1, k, k));
            let conv = Conv2d::new(
                wt,
                None,
                Conv2dConfig {
                    stride: s,
                    groups: c,
                    ..Default::default()
                },
            );
            let mean = randn(seed + 1, 0.0, 0.3, c);
            let var = (randn(seed + 2, 0.0, 0.3, c).abs().unwrap() + 0.5).unwrap();
            let bn = BatchNorm::new(
                c,
                mean,
                var,
                randn(seed + 3, 1.0, 0.2, c),
                randn(seed + 4, 0.0, 0.2, c),
                1e-3,
            )
            .unwrap();
            let x = randn(seed + 5, 0.0, 2.0, (g, c, side, side));
            let xp = x
                .pad_with_zeros(2, pad.0, pad.1)
                .unwrap()
                .pad_with_zeros(3, pad.0, pad.1)
                .unwrap();
            let want = bn
                .forward_t(&conv.forward(&xp).unwrap(), false)
                .unwrap()
                .clamp(0f32, 6f32)
                .unwrap();
            let (_, _, wh, ww) = want.dims4().unwrap();
            // [g, c, h, w] → [c, g, h, w]
            let want: Vec<f32> = want
                .transpose(0, 1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let xs: Vec<f32> = x
                .transpose(0, 1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let d = Depthwise::fold(&conv, &bn, pad).unwrap();
            let mut out = Vec::new();
            let (oh, ow) = d.forward(&xs, g, side, side, &mut out, Act::Relu6);
            assert_eq!((oh, ow), (wh, ww), "case {case}");
            for (a, b) in out.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "case {case} k{k} s{s} {pad:?}: {a} vs {b}"
                );
            }
        }
    }
}
