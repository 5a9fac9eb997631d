//! LDAM-DRW ResNet-32 (`models/resnet_cifar.py`, also BALMS `ResNet32Feature`): 16/32/64
//! channels, 5 BasicBlocks per stage, option-A shortcuts (`x[:, :, ::2, ::2]` zero-padded by
//! planes/4 channels on each side), global average pool → 64-d feature, classifier `linear`.
//! Keys: `conv1`, `bn1`, `layer{1,2,3}.{0..4}.{conv1,bn1,conv2,bn2}`, `linear`.

use super::Backbone;
use super::blocks::{bn, conv};
use candle_core::{D, Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, Conv2d, Linear, VarBuilder};

/// LDAM's block: two 3×3 convolutions and the option-A shortcut (`x[:, :, ::2, ::2]`, zero
/// channels on each side) where the shape changes.
#[derive(Debug, Clone)]
pub struct BlockA {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    /// Channels zero-padded on each side of the subsampled shortcut (option A), when the block
    /// changes shape.
    pad: Option<usize>,
}

impl BlockA {
    fn new(cin: usize, planes: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: conv(cin, planes, 3, stride, 1, 1, vb.pp("conv1"))?,
            bn1: bn(planes, vb.pp("bn1"))?,
            conv2: conv(planes, planes, 3, 1, 1, 1, vb.pp("conv2"))?,
            bn2: bn(planes, vb.pp("bn2"))?,
            pad: (stride != 1 || cin != planes).then_some(planes / 4),
        })
    }

    /// The main path's (convolution, BatchNorm) pairs and the zero channels of the shortcut.
    pub fn parts(&self) -> ([(&Conv2d, &BatchNorm); 2], Option<usize>) {
        (
            [(&self.conv1, &self.bn1), (&self.conv2, &self.bn2)],
            self.pad,
        )
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.bn1.forward_t(&self.conv1.forward(x)?, train)?.relu()?;
        let y = self.bn2.forward_t(&self.conv2.forward(&y)?, train)?;
        let short = match self.pad {
            Some(p) => subsample2(x)?.pad_with_zeros(1, p, p)?,
            None => x.clone(),
        };
        (y + short)?.relu()
    }
}

/// `x[:, :, ::2, ::2]`.
fn subsample2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let x = if h % 2 == 1 || w % 2 == 1 {
        x.pad_with_zeros(2, 0, h % 2)?.pad_with_zeros(3, 0, w % 2)?
    } else {
        x.clone()
    };
    let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
    x.reshape((b, c, h2, 2, w2, 2))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((b, c, h2, w2))
}

#[derive(Debug, Clone)]
pub struct ResNet32 {
    conv1: Conv2d,
    bn1: BatchNorm,
    layers: Vec<BlockA>,
    head: Option<Linear>,
}

impl ResNet32 {
    pub fn new(vb: VarBuilder, head: Option<Linear>) -> Result<Self> {
        let mut layers = Vec::new();
        let mut cin = 16;
        for (i, &planes) in [16, 32, 64].iter().enumerate() {
            let lvb = vb.pp(format!("layer{}", i + 1));
            for j in 0..5 {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                layers.push(BlockA::new(cin, planes, stride, lvb.pp(j))?);
                cin = planes;
            }
        }
        Ok(Self {
            conv1: conv(3, 16, 3, 1, 1, 1, vb.pp("conv1"))?,
            bn1: bn(16, vb.pp("bn1"))?,
            layers,
            head,
        })
    }
}

impl Backbone for ResNet32 {
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self.bn1.forward_t(&self.conv1.forward(x)?, train)?.relu()?;
        for block in &self.layers {
            x = block.forward_t(&x, train)?;
        }
        // F.avg_pool2d(out, out.size()[3]) == global average pool.
        x.mean(D::Minus1)?.mean(D::Minus1)
    }

    fn head(&self) -> Option<&Linear> {
        self.head.as_ref()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl ResNet32 {
    /// The stem (conv1, bn1) and the 15 blocks.
    pub fn parts(&self) -> ((&Conv2d, &BatchNorm), &[BlockA]) {
        ((&self.conv1, &self.bn1), &self.layers)
    }
}
