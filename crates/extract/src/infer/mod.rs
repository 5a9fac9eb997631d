//! The CPU inference path of the frozen backbones: a network in eval mode is a fixed function,
//! compiled once at load — BatchNorm folded into the convolutions, each convolution as im2col +
//! one `gemm` with the bias and activation in its output pass, buffers reused across the images
//! of a batch, the batch split over the cores (one image per task, single-threaded GEMMs, so no
//! oversubscription). It computes the same features as the candle path (checked against it and
//! against the PyTorch fixtures); candle stays the path for training (`--stage1`) and for
//! `--device cuda`.
//!
//! Covered: the small CNN ([`small_cnn`]) and the ResNets ([`resnet`]: CIFAR ResNet-34, LDAM
//! ResNet-32, ResNet-50, ResNeXt-50 32×4d with grouped convolutions). [`compile`] builds the
//! path from a loaded candle model.

pub mod conv;
pub mod resnet;
pub mod small_cnn;

use crate::backbones::Backbone;
use crate::backbones::resnet_cifar::ResNetCifar;
use crate::backbones::resnet_imagenet::ResNet;
use crate::backbones::resnet32::ResNet32;
use crate::backbones::small_cnn::SmallCnn;
use candle_core::Result;
use conv::FoldedConv;
use resnet::{Block, FastResNet, Shortcut};

/// `model` compiled for the CPU inference path, when its architecture has one.
pub fn compile(model: &dyn Backbone) -> Option<Box<dyn Backbone>> {
    build(model).ok().flatten()
}

fn build(model: &dyn Backbone) -> Result<Option<Box<dyn Backbone>>> {
    let any = model.as_any();
    if let Some(m) = any.downcast_ref::<SmallCnn>() {
        return Ok(Some(Box::new(small_cnn::FastSmallCnn::new(m)?)));
    }
    let fold = |(c, b): (&candle_nn::Conv2d, &candle_nn::BatchNorm)| FoldedConv::fold(c, b);
    let net = if let Some(m) = any.downcast_ref::<ResNetCifar>() {
        let (stem, layers) = m.parts();
        let mut blocks = Vec::new();
        for b in layers.iter().flatten() {
            let (main, down) = b.parts();
            blocks.push(Block {
                main: main.into_iter().map(fold).collect::<Result<_>>()?,
                short: match down {
                    Some(d) => Shortcut::Conv(fold(d.parts())?),
                    None => Shortcut::Identity,
                },
            });
        }
        FastResNet {
            stem: fold(stem)?,
            stem_pool: false,
            blocks,
            dim: 512,
            // measured on 2 cores, batch 128: G = 1 102, 2 114, 4 114, 8 111, 16 104 images/s
            // (larger groups make the first stage's im2col outgrow the caches)
            group: 4,
            model: Box::new(m.clone()),
        }
    } else if let Some(m) = any.downcast_ref::<ResNet>() {
        let (stem, layers) = m.parts();
        let mut blocks = Vec::new();
        for b in layers.iter().flatten() {
            let (main, down) = b.parts();
            blocks.push(Block {
                main: main.into_iter().map(fold).collect::<Result<_>>()?,
                short: match down {
                    Some(d) => Shortcut::Conv(fold(d.parts())?),
                    None => Shortcut::Identity,
                },
            });
        }
        FastResNet {
            stem: fold(stem)?,
            stem_pool: true,
            blocks,
            dim: 2048,
            // measured, batch 32: G = 1 33.2, 2 32.2, 4 32.6, 8 30.2 images/s (56×56 maps are
            // wide enough alone)
            group: 1,
            model: Box::new(m.clone()),
        }
    } else if let Some(m) = any.downcast_ref::<ResNet32>() {
        let (stem, layers) = m.parts();
        let mut blocks = Vec::new();
        for b in layers {
            let (main, pad) = b.parts();
            blocks.push(Block {
                main: main.into_iter().map(fold).collect::<Result<_>>()?,
                short: match pad {
                    Some(pad) => Shortcut::OptionA { pad },
                    None => Shortcut::Identity,
                },
            });
        }
        FastResNet {
            stem: fold(stem)?,
            stem_pool: false,
            blocks,
            dim: 64,
            group: 4,
            model: Box::new(m.clone()),
        }
    } else {
        return Ok(None);
    };
    Ok(Some(Box::new(net)))
}
