//! One convolution of a frozen network in eval mode, compiled at load: the BatchNorm that
//! follows it folded into its weights and bias (w' = w·γ/√(σ² + ε), b' = β − μ·γ/√(σ² + ε)),
//! run per image as im2col (none for a 1×1 stride-1 convolution) + one `gemm` whose output is
//! initialised with the bias, then the activation (ReLU, optionally after a residual add) in
//! the same pass over the output. Layout: a group of G images at a time as `[C, G, H, W]`, so
//! that one GEMM covers the G images (N = G·H·W: wide enough for the 4×4 maps of a CIFAR
//! network's last stage).

use candle_core::{Result, Tensor};
use candle_nn::{BatchNorm, Conv2d};

/// Input channels from which a 3×3 stride-1 convolution runs as Winograd F(2×2, 3×3).
const WINOGRAD_MIN_CIN: usize = 16;

/// Map side from which Winograd runs as F(4×4, 3×3) (fewer multiplications, but a quarter of
/// F(2×2, 3×3)'s tiles per GEMM: below, the GEMMs get too thin).
const WINOGRAD4_MIN_SIDE: usize = 16;

/// What follows the convolution's affine output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    /// `min(max(x, 0), 6)` (`nn.ReLU6`, EfficientNet-Lite).
    Relu6,
}

impl Act {
    /// The activation of one value.
    #[inline]
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Act::None => v,
            Act::Relu => v.max(0.0),
            Act::Relu6 => v.clamp(0.0, 6.0),
        }
    }
}

/// A convolution with its BatchNorm folded in.
#[derive(Debug, Clone)]
pub struct FoldedConv {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    /// Zero padding before (top, left) ...
    pub pad: usize,
    /// ... and after (bottom, right): TensorFlow's "same" padding is asymmetric.
    pub pad_end: usize,
    pub groups: usize,
    /// [cout, cin/groups·k·k], row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
    /// Winograd-transformed weights ([`super::winograd`]) of a 3×3 stride-1 convolution.
    wino: Option<Vec<f32>>,
    /// Its F(4×4, 3×3) weights ([`super::winograd4`]), made on first use on a map wide
    /// enough (most of a CIFAR ResNet-34's weights are in its last stage, whose 4×4 maps
    /// never use them).
    wino4: std::sync::Arc<std::sync::OnceLock<Vec<f32>>>,
}

fn vec1(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()
}

impl FoldedConv {
    /// `conv` (bias-free; its stride, padding and groups) followed by `bn` in eval mode.
    pub fn fold(conv: &Conv2d, bn: &BatchNorm) -> Result<FoldedConv> {
        let cfg = conv.config();
        let (stride, pad, groups) = (cfg.stride, cfg.padding, cfg.groups);
        if cfg.dilation != 1 {
            candle_core::bail!("fast path: dilated convolution");
        }
        let (cout, cin_g, k, k2) = conv.weight().dims4()?;
        let cin = cin_g * groups;
        if k != k2 {
            candle_core::bail!("fast path: non-square kernel {k}×{k2}");
        }
        let w = vec1(conv.weight())?;
        let mean = vec1(bn.running_mean())?;
        let var = vec1(bn.running_var())?;
        let (gamma, beta) = match bn.weight_and_bias() {
            Some((g, b)) => (vec1(g)?, vec1(b)?),
            None => (vec![1.0; cout], vec![0.0; cout]),
        };
        let eps = bn.eps();
        let per = cin_g * k * k;
        let mut weight = vec![0f32; cout * per];
        let mut bias = vec![0f32; cout];
        for o in 0..cout {
            let s = gamma[o] as f64 / (var[o] as f64 + eps).sqrt();
            for j in 0..per {
                weight[o * per + j] = (w[o * per + j] as f64 * s) as f32;
            }
            bias[o] = (beta[o] as f64 - mean[o] as f64 * s) as f32;
        }
        // Winograd where it pays: 3×3, stride 1, padding 1, dense, and enough input channels
        // for its 16 GEMMs to be worth their call (not a 3-channel stem)
        let wino = (k == 3 && stride == 1 && pad == 1 && groups == 1 && cin >= WINOGRAD_MIN_CIN)
            .then(|| super::winograd::transform_weights(&weight, cout, cin));
        Ok(FoldedConv {
            cin,
            cout,
            k,
            stride,
            pad,
            pad_end: pad,
            groups,
            weight,
            bias,
            wino,
            wino4: Default::default(),
        })
    }

    /// The same convolution with zero padding `before` (top, left) and `after` (bottom,
    /// right) instead of its own (im2col + GEMM: Winograd assumes a padding of 1 all round).
    pub fn with_padding(mut self, before: usize, after: usize) -> FoldedConv {
        if (before, after) != (self.pad, self.pad_end) {
            self.wino = None;
        }
        self.pad = before;
        self.pad_end = after;
        self
    }

    /// The same convolution computed as im2col + one GEMM only (no Winograd).
    pub fn im2col_only(mut self) -> FoldedConv {
        self.wino = None;
        self
    }

    /// The output size of an `h`×`w` input.
    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        let p = self.pad + self.pad_end;
        (
            (h + p - self.k) / self.stride + 1,
            (w + p - self.k) / self.stride + 1,
        )
    }

    /// A group of `imgs` images `x` [cin, imgs, h, w] → `out` [cout, imgs, oh, ow]:
    /// act(conv(x) + b' (+ `residual`)). `col` is scratch, reused across calls.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &[f32],
        imgs: usize,
        h: usize,
        w: usize,
        out: &mut Vec<f32>,
        col: &mut Vec<f32>,
        residual: Option<&[f32]>,
        act: Act,
    ) -> (usize, usize) {
        if let Some(u2) = self.wino.as_ref().filter(|_| act != Act::Relu6) {
            let shape = super::winograd::Shape {
                cin: self.cin,
                cout: self.cout,
                imgs,
                h,
                w,
            };
            type Forward = fn(
                &super::winograd::Shape,
                &[f32],
                &[f32],
                &[f32],
                &mut Vec<f32>,
                &mut Vec<f32>,
                Option<&[f32]>,
                bool,
            );
            let (u, forward): (&[f32], Forward) = if h.min(w) >= WINOGRAD4_MIN_SIDE {
                let u4 = self.wino4.get_or_init(|| {
                    super::winograd4::transform_weights(&self.weight, self.cout, self.cin)
                });
                (u4, super::winograd4::forward)
            } else {
                (u2, super::winograd::forward)
            };
            forward(
                &shape,
                u,
                &self.bias,
                x,
                out,
                col,
                residual,
                act == Act::Relu,
            );
            return (h, w);
        }
        let (oh, ow) = self.out_size(h, w);
        let n = imgs * oh * ow;
        let kk = self.cin * self.k * self.k;
        let b: &[f32] = if self.k == 1 && self.stride == 1 && self.pad + self.pad_end == 0 {
            x
        } else {
            col.resize(kk * n, 0.0);
            let geom = Geometry {
                c: self.cin,
                g: imgs,
                h,
                w,
                k: self.k,
                stride: self.stride,
                pad: self.pad,
                oh,
                ow,
            };
            im2col(x, &geom, col);
            col
        };
        out.resize(self.cout * n, 0.0);
        for (o, plane) in out.chunks_exact_mut(n).enumerate() {
            plane.fill(self.bias[o]);
        }
        // group g: out[g·co, n] += W[g·co, kg] · cols[g·kg, n], co = cout/groups, kg = kk/groups
        let (co, kg) = (self.cout / self.groups, kk / self.groups);
        for g in 0..self.groups {
            // SAFETY: dst [co, n] at row g·co of [cout, n]; lhs [co, kg] at row g·co of
            // [cout, kg]; rhs [kg, n] at row g·kg of [kk, n]; all row-major and in bounds.
            unsafe {
                gemm::gemm(
                    co,
                    n,
                    kg,
                    out.as_mut_ptr().add(g * co * n),
                    1,
                    n as isize,
                    true,
                    self.weight.as_ptr().add(g * co * kg),
                    1,
                    kg as isize,
                    b.as_ptr().add(g * kg * n),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
        match (residual, act) {
            (Some(r), Act::Relu) => out
                .iter_mut()
                .zip(r)
                .for_each(|(v, r)| *v = (*v + r).max(0.0)),
            (Some(r), Act::None) => out.iter_mut().zip(r).for_each(|(v, r)| *v += r),
            (Some(r), a) => out
                .iter_mut()
                .zip(r)
                .for_each(|(v, r)| *v = a.apply(*v + r)),
            (None, Act::Relu) => out.iter_mut().for_each(|v| *v = v.max(0.0)),
            (None, Act::None) => {}
            (None, a) => out.iter_mut().for_each(|v| *v = a.apply(*v)),
        }
        (oh, ow)
    }
}

/// The shapes of one im2col.
struct Geometry {
    c: usize,
    g: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

/// im2col of a group `x` [c, g, h, w] for a k×k kernel: `cols` [c·k·k, g·oh·ow], zero padding.
fn im2col(x: &[f32], geo: &Geometry, cols: &mut [f32]) {
    let Geometry {
        c,
        g,
        h,
        w,
        k,
        stride,
        pad,
        oh,
        ow,
    } = *geo;
    let n1 = oh * ow;
    let n = g * n1;
    for ch in 0..c {
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((ch * k + ky) * k + kx) * n..][..n];
                for img in 0..g {
                    let plane = &x[(ch * g + img) * h * w..(ch * g + img + 1) * h * w];
                    let dst_img = &mut row[img * n1..(img + 1) * n1];
                    for oy in 0..oh {
                        let iy = (oy * stride + ky) as isize - pad as isize;
                        let dst = &mut dst_img[oy * ow..(oy + 1) * ow];
                        if iy < 0 || iy >= h as isize {
                            dst.fill(0.0);
                            continue;
                        }
                        let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                        if stride == 1 {
                            // ix = ox + kx − pad: the outputs that read inside the row are one
                            // contiguous run; the rest (at most `pad` on each side) are zeros
                            let lo = pad.saturating_sub(kx).min(ow);
                            let hi = (w + pad).saturating_sub(kx).min(ow).max(lo);
                            dst[..lo].fill(0.0);
                            dst[hi..].fill(0.0);
                            let start = lo + kx - pad;
                            dst[lo..hi].copy_from_slice(&src[start..start + hi - lo]);
                            continue;
                        }
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = (ox * stride + kx) as isize - pad as isize;
                            *d = if ix < 0 || ix >= w as isize {
                                0.0
                            } else {
                                src[ix as usize]
                            };
                        }
                    }
                }
            }
        }
    }
}

/// The features [b, `dim`] of a batch `x` [b, c, h, w]: the batch cut into tasks of
/// `per_task(b)` images, spread over the cores, each task's images (`[n, c, h, w]`, f32) turned
/// into its rows of the output by `task(images, n, (c, h, w), out)`.
pub fn features_by_task(
    x: &Tensor,
    dim: usize,
    per_task: impl Fn(usize) -> usize,
    task: impl Fn(&[f32], usize, (usize, usize, usize), &mut [f32]) + Sync,
) -> Result<Tensor> {
    use rayon::prelude::*;
    let (b, c, h, w) = x.dims4()?;
    let xs: Vec<f32> = x
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let mut out = vec![0f32; b * dim];
    let per_task = per_task(b).max(1);
    out.par_chunks_mut(per_task * dim)
        .zip(xs.par_chunks(per_task * c * h * w))
        .for_each(|(o, imgs)| task(imgs, imgs.len() / (c * h * w), (c, h, w), o));
    Tensor::from_vec(out, (b, dim), x.device())
}

/// A batch chunk [g, c, h·w] (NCHW) as a group [c, g, h·w].
pub fn to_group(x: &[f32], g: usize, c: usize, hw: usize, out: &mut Vec<f32>) {
    out.resize(g * c * hw, 0.0);
    for img in 0..g {
        for ch in 0..c {
            out[(ch * g + img) * hw..(ch * g + img + 1) * hw]
                .copy_from_slice(&x[(img * c + ch) * hw..(img * c + ch + 1) * hw]);
        }
    }
}

/// The group [ch, gi, hw] of images `i0..i0 + gi` written into its place of the all-images
/// layout `late` [ch, n, hw] (grown to that size when smaller).
pub fn gather_group(
    group: &[f32],
    ch: usize,
    gi: usize,
    hw: usize,
    i0: usize,
    n: usize,
    late: &mut Vec<f32>,
) {
    late.resize(ch * n * hw, 0.0);
    for k in 0..ch {
        late[(k * n + i0) * hw..(k * n + i0 + gi) * hw]
            .copy_from_slice(&group[k * gi * hw..(k + 1) * gi * hw]);
    }
}

/// 2×2 max-pool, stride 2, of `planes` planes h×w (floor: a trailing odd row / column is
/// dropped, as PyTorch's `max_pool2d(2)`).
pub fn max_pool2x2(x: &[f32], planes: usize, h: usize, w: usize, out: &mut Vec<f32>) {
    let (oh, ow) = (h / 2, w / 2);
    out.resize(planes * oh * ow, 0.0);
    for (o, p) in out.chunks_exact_mut(oh * ow).zip(x.chunks_exact(h * w)) {
        for oy in 0..oh {
            for ox in 0..ow {
                let b = 2 * oy * w + 2 * ox;
                o[oy * ow + ox] = p[b].max(p[b + 1]).max(p[b + w]).max(p[b + w + 1]);
            }
        }
    }
}

/// 3×3 max-pool, stride 2, padding 1 (torchvision's stem) of non-negative `planes` planes h×w
/// (post-ReLU, so zero padding gives PyTorch's −∞-padded maxima).
pub fn max_pool3x3s2(
    x: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    out: &mut Vec<f32>,
) -> (usize, usize) {
    let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
    out.resize(planes * oh * ow, 0.0);
    for (o, p) in out.chunks_exact_mut(oh * ow).zip(x.chunks_exact(h * w)) {
        for oy in 0..oh {
            let (y0, y1) = ((2 * oy).saturating_sub(1), (2 * oy + 1).min(h - 1));
            for ox in 0..ow {
                let (x0, x1) = ((2 * ox).saturating_sub(1), (2 * ox + 1).min(w - 1));
                let mut m = 0f32;
                for y in y0..=y1 {
                    for v in &p[y * w + x0..=y * w + x1] {
                        m = m.max(*v);
                    }
                }
                o[oy * ow + ox] = m;
            }
        }
    }
    (oh, ow)
}

/// Global average pool of a group [c, g, n] into `out` [g, c] (f64 sums, as the candle path's
/// mean).
pub fn global_avg(x: &[f32], c: usize, g: usize, n: usize, out: &mut [f32]) {
    for (p, plane) in x.chunks_exact(n).enumerate().take(c * g) {
        let (ch, img) = (p / g, p % g);
        out[img * c + ch] = (plane.iter().map(|&v| v as f64).sum::<f64>() / n as f64) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::seeded::randn;
    use candle_core::{Device, Module, ModuleT};
    use candle_nn::Conv2dConfig;

    /// The folded convolution equals candle's conv → batch_norm (eval) → relu, for strides,
    /// paddings and a 1×1 kernel.
    #[test]
    fn folded_conv_equals_conv_then_batchnorm() {
        for (case, (cin, cout, k, stride, pad, h, groups)) in [
            (3, 5, 3, 1, 1, 7, 1),
            (4, 6, 3, 2, 1, 9, 1),
            (6, 4, 1, 1, 0, 5, 1),
            (5, 3, 1, 2, 0, 8, 1),
            (2, 3, 7, 2, 3, 11, 1),
            (8, 12, 3, 2, 1, 9, 4),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 100 * case as u64;
            let w = randn(seed, 0.0, 0.5, (cout, cin / groups, k, k));
            let conv = Conv2d::new(
                w,
                None,
                Conv2dConfig {
                    padding: pad,
                    stride,
                    groups,
                    ..Default::default()
                },
            );
            let mean = randn(seed + 1, 0.0, 0.3, cout);
            let var = (randn(seed + 2, 0.0, 0.3, cout).abs().unwrap() + 0.5).unwrap();
            let g = randn(seed + 3, 1.0, 0.2, cout);
            let b = randn(seed + 4, 0.0, 0.2, cout);
            let bn = BatchNorm::new(cout, mean, var, g, b, 1e-5).unwrap();
            let x = randn(seed + 5, 0.0, 1.0, (1, cin, h, h));
            let want = bn
                .forward_t(&conv.forward(&x).unwrap(), false)
                .unwrap()
                .relu()
                .unwrap();
            let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
            let f = FoldedConv::fold(&conv, &bn).unwrap();
            let (mut out, mut col) = (Vec::new(), Vec::new());
            let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
            f.forward(&xs, 1, h, h, &mut out, &mut col, None, Act::Relu);
            assert_eq!(out.len(), want.len());
            for (a, b) in out.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "k{k} s{stride}: {a} vs {b}"
                );
            }
        }
    }

    /// A group of images through one GEMM = each image alone.
    #[test]
    fn a_group_equals_its_images_one_by_one() {
        let dev = Device::Cpu;
        let (cin, cout, h, g) = (3, 4, 6, 5);
        let w = randn(1, 0.0, 0.5, (cout, cin, 3, 3));
        let cfg = Conv2dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        let conv = Conv2d::new(w, None, cfg);
        let z = Tensor::zeros(cout, candle_core::DType::F32, &dev).unwrap();
        let o = Tensor::ones(cout, candle_core::DType::F32, &dev).unwrap();
        let bn = BatchNorm::new(cout, z.clone(), o.clone(), o, z, 1e-5).unwrap();
        let f = FoldedConv::fold(&conv, &bn).unwrap();
        let x: Vec<f32> = randn(2, 0.0, 1.0, (g, cin, h, h))
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (mut grp, mut out, mut col) = (Vec::new(), Vec::new(), Vec::new());
        to_group(&x, g, cin, h * h, &mut grp);
        let (oh, ow) = f.forward(&grp, g, h, h, &mut out, &mut col, None, Act::Relu);
        let n1 = oh * ow;
        for img in 0..g {
            let mut one = Vec::new();
            let x1 = &x[img * cin * h * h..(img + 1) * cin * h * h];
            f.forward(x1, 1, h, h, &mut one, &mut col, None, Act::Relu);
            for c in 0..cout {
                let a = &out[(c * g + img) * n1..(c * g + img + 1) * n1];
                for (x, y) in a.iter().zip(&one[c * n1..(c + 1) * n1]) {
                    assert!((x - y).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn stem_max_pool_equals_candle() {
        let x = randn(3, 0.0, 1.0, (1, 2, 9, 8)).relu().unwrap();
        let want = x
            .pad_with_zeros(2, 1, 1)
            .unwrap()
            .pad_with_zeros(3, 1, 1)
            .unwrap()
            .max_pool2d_with_stride(3, 2)
            .unwrap();
        let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
        let mut out = Vec::new();
        let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(max_pool3x3s2(&xs, 2, 9, 8, &mut out), (5, 4));
        assert_eq!(out, want);
    }

    #[test]
    fn pools_by_hand() {
        let x = [
            1.0f32, 5.0, 2.0, 0.0, 3.0, 4.0, 9.0, 1.0, 7.0, 7.0, 7.0, 7.0,
        ];
        let mut o = Vec::new();
        max_pool2x2(&x, 1, 3, 4, &mut o);
        assert_eq!(o, vec![5.0, 9.0]);
        let mut g = [0f32; 1];
        global_avg(&x, 1, 1, 12, &mut g);
        assert!((g[0] - 53.0 / 12.0).abs() < 1e-6);
    }
}
