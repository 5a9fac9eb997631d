//! torchvision ImageNet ResNets with Bottleneck blocks: `resnet50` and `resnext50_32x4d`
//! (Decoupling / classifier-balancing ImageNet-LT and iNaturalist backbones). Stem 7×7/2 conv,
//! BN, ReLU, maxpool 3×3/2 (pad 1), stages [3, 4, 6, 3], adaptive average pool → 2048-d.

use super::Backbone;
use super::blocks::{Bottleneck, bn, conv};
use candle_core::{D, Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, Conv2d, Linear, VarBuilder};

#[derive(Debug, Clone)]
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    layers: Vec<Vec<Bottleneck>>,
    head: Option<Linear>,
}

impl ResNet {
    pub fn resnet50(vb: VarBuilder, head: Option<Linear>) -> Result<Self> {
        Self::bottleneck([3, 4, 6, 3], 1, 64, vb, head)
    }

    pub fn resnext50_32x4d(vb: VarBuilder, head: Option<Linear>) -> Result<Self> {
        Self::bottleneck([3, 4, 6, 3], 32, 4, vb, head)
    }

    fn bottleneck(
        blocks: [usize; 4],
        groups: usize,
        base_width: usize,
        vb: VarBuilder,
        head: Option<Linear>,
    ) -> Result<Self> {
        let mut layers = Vec::new();
        let mut cin = 64;
        for (i, (&planes, &n)) in [64, 128, 256, 512].iter().zip(&blocks).enumerate() {
            let lvb = vb.pp(format!("layer{}", i + 1));
            let mut layer = Vec::new();
            for j in 0..n {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                layer.push(Bottleneck::new(
                    cin,
                    planes,
                    stride,
                    groups,
                    base_width,
                    lvb.pp(j),
                )?);
                cin = planes * Bottleneck::EXPANSION;
            }
            layers.push(layer);
        }
        Ok(Self {
            conv1: conv(3, 64, 7, 2, 3, 1, vb.pp("conv1"))?,
            bn1: bn(64, vb.pp("bn1"))?,
            layers,
            head,
        })
    }
}

impl Backbone for ResNet {
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.bn1.forward_t(&self.conv1.forward(x)?, train)?.relu()?;
        // MaxPool2d(3, 2, padding=1): the input is post-ReLU (≥ 0), so zero padding gives the
        // same maxima as PyTorch's -inf padding.
        let mut x = x
            .pad_with_zeros(2, 1, 1)?
            .pad_with_zeros(3, 1, 1)?
            .max_pool2d_with_stride(3, 2)?;
        for layer in &self.layers {
            for block in layer {
                x = block.forward_t(&x, train)?;
            }
        }
        x.mean(D::Minus1)?.mean(D::Minus1)
    }

    fn head(&self) -> Option<&Linear> {
        self.head.as_ref()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl ResNet {
    /// The stem (conv1, bn1; a 3×3/2 max-pool follows) and the stages' blocks.
    pub fn parts(&self) -> ((&Conv2d, &BatchNorm), &[Vec<Bottleneck>]) {
        ((&self.conv1, &self.bn1), &self.layers)
    }
}
