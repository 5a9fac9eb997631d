//! LOS / LTWB CIFAR ResNet-34 (LOS `models/resnet.py`, LTWB `ResnetEncoder(34, poolSize=4)`):
//! torchvision resnet34 with `conv1 = Conv2d(3, 64, 3, 1, 1)`, no maxpool, `avg_pool2d(4)`
//! on the 4×4 map of a 32×32 input → 512-d feature. Keys as torchvision (`conv1`, `bn1`,
//! `layer1.0.conv1`, ..., `fc`); LTWB's `encoder.` prefix is stripped by the checkpoint loader.

use super::Backbone;
use super::blocks::{BasicBlock, basic_layer, bn, conv};
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, Conv2d, Linear, VarBuilder};

#[derive(Debug, Clone)]
pub struct ResNetCifar {
    conv1: Conv2d,
    bn1: BatchNorm,
    layers: Vec<Vec<BasicBlock>>,
    head: Option<Linear>,
}

impl ResNetCifar {
    /// BasicBlocks [3, 4, 6, 3], widths 64/128/256/512, strides 1/2/2/2.
    pub fn resnet34(vb: VarBuilder, head: Option<Linear>) -> Result<Self> {
        let mut layers = Vec::new();
        let mut cin = 64;
        for (i, (&planes, &blocks)) in [64, 128, 256, 512].iter().zip(&[3, 4, 6, 3]).enumerate() {
            let stride = if i == 0 { 1 } else { 2 };
            layers.push(basic_layer(
                cin,
                planes,
                blocks,
                stride,
                vb.pp(format!("layer{}", i + 1)),
            )?);
            cin = planes;
        }
        Ok(Self {
            conv1: conv(3, 64, 3, 1, 1, 1, vb.pp("conv1"))?,
            bn1: bn(64, vb.pp("bn1"))?,
            layers,
            head,
        })
    }
}

impl Backbone for ResNetCifar {
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self.bn1.forward_t(&self.conv1.forward(x)?, train)?.relu()?;
        for layer in &self.layers {
            for block in layer {
                x = block.forward_t(&x, train)?;
            }
        }
        // F.avg_pool2d(x, 4): 4×4 → 1×1 for 32×32 inputs.
        x.avg_pool2d(4)?.flatten_from(1)
    }

    fn head(&self) -> Option<&Linear> {
        self.head.as_ref()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl ResNetCifar {
    /// The stem (conv1, bn1) and the stages' blocks.
    pub fn parts(&self) -> ((&Conv2d, &BatchNorm), &[Vec<BasicBlock>]) {
        ((&self.conv1, &self.bn1), &self.layers)
    }
}
