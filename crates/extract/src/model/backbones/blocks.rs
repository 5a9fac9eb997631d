//! Building blocks shared by the ResNets: conv + BatchNorm pairs, torchvision's BasicBlock and
//! Bottleneck, keyed exactly as torchvision's `state_dict` (`conv1`, `bn1`, `downsample.0`, ...).
//!
//! BatchNorm is `candle_nn::BatchNorm` driven through `ModuleT`, so the same structs run in eval
//! mode (running statistics, extraction) and in train mode (batch statistics, stage-1 training).

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, Conv2d, Conv2dConfig, VarBuilder, batch_norm, conv2d_no_bias};

/// PyTorch's BatchNorm2d defaults: eps 1e-5, momentum 0.1.
pub fn bn(channels: usize, vb: VarBuilder) -> Result<BatchNorm> {
    batch_norm(channels, 1e-5, vb)
}

/// A bias-free convolution (every conv in these nets is followed by BatchNorm).
pub fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding,
        stride,
        groups,
        ..Default::default()
    };
    conv2d_no_bias(cin, cout, k, cfg, vb)
}

/// `downsample = Sequential(Conv2d 1x1 stride s, BatchNorm2d)` (torchvision keys `.0`, `.1`).
#[derive(Debug, Clone)]
pub struct Downsample {
    conv: Conv2d,
    bn: BatchNorm,
}

impl Downsample {
    pub fn new(cin: usize, cout: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv(cin, cout, 1, stride, 0, 1, vb.pp("0"))?,
            bn: bn(cout, vb.pp("1"))?,
        })
    }
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_t(&self.conv.forward(x)?, train)
    }

    /// The convolution and its BatchNorm.
    pub fn parts(&self) -> (&Conv2d, &BatchNorm) {
        (&self.conv, &self.bn)
    }
}

/// torchvision `BasicBlock` (expansion 1): conv3x3(stride) bn relu conv3x3 bn, + identity or
/// downsample, relu.
#[derive(Debug, Clone)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<Downsample>,
}

impl BasicBlock {
    pub fn new(cin: usize, planes: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let downsample = if stride != 1 || cin != planes {
            Some(Downsample::new(cin, planes, stride, vb.pp("downsample"))?)
        } else {
            None
        };
        Ok(Self {
            conv1: conv(cin, planes, 3, stride, 1, 1, vb.pp("conv1"))?,
            bn1: bn(planes, vb.pp("bn1"))?,
            conv2: conv(planes, planes, 3, 1, 1, 1, vb.pp("conv2"))?,
            bn2: bn(planes, vb.pp("bn2"))?,
            downsample,
        })
    }

    /// The main path's (convolution, BatchNorm) pairs and the downsample.
    pub fn parts(&self) -> ([(&Conv2d, &BatchNorm); 2], Option<&Downsample>) {
        (
            [(&self.conv1, &self.bn1), (&self.conv2, &self.bn2)],
            self.downsample.as_ref(),
        )
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.bn1.forward_t(&self.conv1.forward(x)?, train)?.relu()?;
        let y = self.bn2.forward_t(&self.conv2.forward(&y)?, train)?;
        let short = match &self.downsample {
            Some(d) => d.forward_t(x, train)?,
            None => x.clone(),
        };
        (y + short)?.relu()
    }
}

/// torchvision `Bottleneck` (expansion 4, stride on the 3x3 conv, ResNet v1.5):
/// width = planes * base_width / 64 * groups.
#[derive(Debug, Clone)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    downsample: Option<Downsample>,
}

impl Bottleneck {
    pub const EXPANSION: usize = 4;

    pub fn new(
        cin: usize,
        planes: usize,
        stride: usize,
        groups: usize,
        base_width: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let width = planes * base_width / 64 * groups;
        let cout = planes * Self::EXPANSION;
        let downsample = if stride != 1 || cin != cout {
            Some(Downsample::new(cin, cout, stride, vb.pp("downsample"))?)
        } else {
            None
        };
        Ok(Self {
            conv1: conv(cin, width, 1, 1, 0, 1, vb.pp("conv1"))?,
            bn1: bn(width, vb.pp("bn1"))?,
            conv2: conv(width, width, 3, stride, 1, groups, vb.pp("conv2"))?,
            bn2: bn(width, vb.pp("bn2"))?,
            conv3: conv(width, cout, 1, 1, 0, 1, vb.pp("conv3"))?,
            bn3: bn(cout, vb.pp("bn3"))?,
            downsample,
        })
    }

    /// The main path's (convolution, BatchNorm) pairs and the downsample.
    pub fn parts(&self) -> ([(&Conv2d, &BatchNorm); 3], Option<&Downsample>) {
        (
            [
                (&self.conv1, &self.bn1),
                (&self.conv2, &self.bn2),
                (&self.conv3, &self.bn3),
            ],
            self.downsample.as_ref(),
        )
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.bn1.forward_t(&self.conv1.forward(x)?, train)?.relu()?;
        let y = self
            .bn2
            .forward_t(&self.conv2.forward(&y)?, train)?
            .relu()?;
        let y = self.bn3.forward_t(&self.conv3.forward(&y)?, train)?;
        let short = match &self.downsample {
            Some(d) => d.forward_t(x, train)?,
            None => x.clone(),
        };
        (y + short)?.relu()
    }
}

/// A residual stage `layerN` of `BasicBlock`s: the first block carries the stride.
pub fn basic_layer(
    cin: usize,
    planes: usize,
    blocks: usize,
    stride: usize,
    vb: VarBuilder,
) -> Result<Vec<BasicBlock>> {
    (0..blocks)
        .map(|i| {
            BasicBlock::new(
                if i == 0 { cin } else { planes },
                planes,
                if i == 0 { stride } else { 1 },
                vb.pp(i),
            )
        })
        .collect()
}

/// A stride-1, ungrouped, bias-free convolution as im2col + one GEMM, built from ops whose
/// backward passes are matmuls and slices: the same result as `conv.forward(x)`, but its
/// gradients on the CPU are ~2 orders of magnitude faster than candle's `conv_transpose2d`
/// backward (stage-1 training of the small CNN).
pub fn conv_im2col(x: &Tensor, weight: &Tensor, padding: usize) -> Result<Tensor> {
    let (b, cin, h, w) = x.dims4()?;
    let (cout, wcin, kh, kw) = weight.dims4()?;
    if wcin != cin {
        candle_core::bail!("conv_im2col: weight takes {wcin} channels, input has {cin}");
    }
    let (oh, ow) = (h + 2 * padding + 1 - kh, w + 2 * padding + 1 - kw);
    let xp = x
        .pad_with_zeros(2, padding, padding)?
        .pad_with_zeros(3, padding, padding)?;
    let mut taps = Vec::with_capacity(kh * kw);
    for dy in 0..kh {
        for dx in 0..kw {
            taps.push(xp.narrow(2, dy, oh)?.narrow(3, dx, ow)?);
        }
    }
    // [B, Cin, kh*kw, OH, OW] -> [B, OH*OW, Cin*kh*kw] (PyTorch's weight order: cin, ky, kx).
    let cols = Tensor::stack(&taps, 2)?
        .reshape((b, cin * kh * kw, oh * ow))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * oh * ow, cin * kh * kw))?;
    let wm = weight.reshape((cout, cin * kh * kw))?.t()?;
    cols.matmul(&wm)?
        .reshape((b, oh * ow, cout))?
        .transpose(1, 2)?
        .reshape((b, cout, oh, ow))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn im2col_convolution_matches_candle_conv2d() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 7, 6), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (5, 3, 3, 3), &dev).unwrap();
        let c = Conv2d::new(
            w.clone(),
            None,
            Conv2dConfig {
                padding: 1,
                ..Default::default()
            },
        );
        let a = c.forward(&x).unwrap();
        let b = conv_im2col(&x, &w, 1).unwrap();
        assert_eq!(a.dims(), b.dims());
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-4);
    }

    /// BatchNorm in train mode normalises with the batch mean and biased variance and moves the
    /// running statistics by PyTorch's momentum 0.1 towards the batch mean and *unbiased*
    /// variance; eval mode with running statistics equal to the batch's reproduces train mode.
    #[test]
    fn batch_norm_train_and_eval_agree_and_running_stats_follow_pytorch() {
        use candle_nn::{VarBuilder, VarMap};
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let b = bn(
            3,
            VarBuilder::from_varmap(&vm, candle_core::DType::F32, &dev),
        )
        .unwrap();
        let x = Tensor::randn(0f32, 1.0, (4, 3, 5, 5), &dev)
            .unwrap()
            .affine(2.0, 0.5)
            .unwrap();
        let train = b.forward_t(&x, true).unwrap();
        // Per-channel batch statistics over (N, H, W).
        let xc = x.transpose(0, 1).unwrap().flatten_from(1).unwrap();
        let mean = xc.mean(1).unwrap();
        let n = 4.0 * 25.0;
        let var = xc
            .broadcast_sub(&mean.unsqueeze(1).unwrap())
            .unwrap()
            .sqr()
            .unwrap()
            .mean(1)
            .unwrap();
        let rm: Vec<f32> = b.running_mean().to_vec1().unwrap();
        let rv: Vec<f32> = b.running_var().to_vec1().unwrap();
        let (m, v): (Vec<f32>, Vec<f32>) = (mean.to_vec1().unwrap(), var.to_vec1().unwrap());
        for c in 0..3 {
            assert!((rm[c] - 0.1 * m[c]).abs() < 1e-5, "running_mean");
            assert!(
                (rv[c] - (0.9 + 0.1 * v[c] * n / (n - 1.0))).abs() < 1e-4,
                "running_var"
            );
        }
        let w = Tensor::ones(3, candle_core::DType::F32, &dev).unwrap();
        let z = Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap();
        let eval = BatchNorm::new(3, mean, var, w, z, 1e-5).unwrap();
        let e = eval.forward_t(&x, false).unwrap();
        let d: f32 = (train - e)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-4, "train vs eval: {d}");
    }
}
