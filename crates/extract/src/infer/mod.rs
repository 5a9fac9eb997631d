//! The CPU inference path of the frozen backbones: a network in eval mode is a fixed function,
//! compiled once at load — BatchNorm folded into the convolutions, each convolution as im2col +
//! one `gemm` with the bias and activation in its output pass, buffers reused across the images
//! of a batch, the batch split over the cores (one image per task, single-threaded GEMMs, so no
//! oversubscription). It computes the same features as the candle path (checked against it and
//! against the PyTorch fixtures); candle stays the path for training (`--stage1`) and for
//! `--device cuda`.
//!
//! Covered: the small CNN ([`small_cnn`]) and the ResNets ([`resnet`]: CIFAR ResNet-34, LDAM
//! ResNet-32, ResNet-50, ResNeXt-50 32×4d with grouped convolutions) and EfficientNet-Lite0
//! ([`efficientnet`], depthwise convolutions as a direct stencil: [`depthwise`]). [`compile`]
//! builds the path from a loaded candle model.

pub mod conv;
pub mod depthwise;
pub mod efficientnet;
pub mod resnet;
pub mod small_cnn;
pub mod winograd;
pub mod winograd4;

#[cfg(test)]
pub(crate) mod seeded;

use crate::model::backbones::Backbone;
use crate::model::backbones::blocks::Downsample;
use crate::model::backbones::efficientnet::EfficientNetLite;
use crate::model::backbones::resnet_cifar::ResNetCifar;
use crate::model::backbones::resnet_imagenet::ResNet;
use crate::model::backbones::resnet32::ResNet32;
use crate::model::backbones::small_cnn::SmallCnn;
use candle_core::Result;
use candle_nn::{BatchNorm, Conv2d};
use conv::FoldedConv;
use resnet::{Block, FastResNet, Shortcut};

/// `model` compiled for the CPU inference path, when its architecture has one.
pub fn compile(model: &dyn Backbone) -> Option<Box<dyn Backbone>> {
    build(model).ok().flatten()
}

/// A (convolution, BatchNorm) pair, folded.
fn fold((c, b): (&Conv2d, &BatchNorm)) -> Result<FoldedConv> {
    FoldedConv::fold(c, b)
}

/// A block: its main path, folded, and its shortcut.
fn block<'a>(
    main: impl IntoIterator<Item = (&'a Conv2d, &'a BatchNorm)>,
    short: Shortcut,
) -> Result<Block> {
    Ok(Block {
        main: main.into_iter().map(fold).collect::<Result<_>>()?,
        short,
    })
}

/// The blocks of torchvision's stages (BasicBlock or Bottleneck, through `parts`): the main
/// path and the downsample (or identity) shortcut.
fn torchvision_blocks<'a, B: 'a, const N: usize>(
    layers: &'a [Vec<B>],
    parts: impl Fn(&'a B) -> ([(&'a Conv2d, &'a BatchNorm); N], Option<&'a Downsample>),
) -> Result<Vec<Block>> {
    layers
        .iter()
        .flatten()
        .map(|b| {
            let (main, down) = parts(b);
            let short = match down {
                Some(d) => Shortcut::Conv(fold(d.parts())?),
                None => Shortcut::Identity,
            };
            block(main, short)
        })
        .collect()
}

/// A compiled ResNet: stem, blocks, feature width, images per GEMM, the model it came from.
fn resnet(
    stem: (&Conv2d, &BatchNorm),
    stem_pool: bool,
    blocks: Vec<Block>,
    dim: usize,
    group: usize,
    model: Box<dyn Backbone>,
) -> Result<Option<Box<dyn Backbone>>> {
    Ok(Some(Box::new(FastResNet {
        stem: fold(stem)?,
        stem_pool,
        blocks,
        dim,
        group,
        model,
    })))
}

fn build(model: &dyn Backbone) -> Result<Option<Box<dyn Backbone>>> {
    let any = model.as_any();
    if let Some(m) = any.downcast_ref::<EfficientNetLite>() {
        return Ok(Some(Box::new(efficientnet::FastEfficientNet::new(m)?)));
    }
    if let Some(m) = any.downcast_ref::<SmallCnn>() {
        return Ok(Some(Box::new(small_cnn::FastSmallCnn::new(m)?)));
    }
    if let Some(m) = any.downcast_ref::<ResNetCifar>() {
        let (stem, layers) = m.parts();
        let blocks = torchvision_blocks(layers, |b| b.parts())?;
        // G measured on 2 cores, batch 128: 1 102, 2 114, 4 114, 8 111, 16 104 images/s
        // (larger groups make the first stage's im2col outgrow the caches)
        return resnet(stem, false, blocks, 512, 4, Box::new(m.clone()));
    }
    if let Some(m) = any.downcast_ref::<ResNet>() {
        let (stem, layers) = m.parts();
        let blocks = torchvision_blocks(layers, |b| b.parts())?;
        // G measured, batch 32: 1 33.2, 2 32.2, 4 32.6, 8 30.2 images/s (56×56 maps are wide
        // enough alone)
        return resnet(stem, true, blocks, 2048, 1, Box::new(m.clone()));
    }
    if let Some(m) = any.downcast_ref::<ResNet32>() {
        let (stem, layers) = m.parts();
        let blocks = layers
            .iter()
            .map(|b| {
                let (main, pad) = b.parts();
                let short = match pad {
                    Some(pad) => Shortcut::OptionA { pad },
                    None => Shortcut::Identity,
                };
                block(main, short)
            })
            .collect::<Result<_>>()?;
        return resnet(stem, false, blocks, 64, 4, Box::new(m.clone()));
    }
    Ok(None)
}
