//! Frozen backbones: image batch [B, C, H, W] → features [B, D] (after global pooling, before
//! the classifier), written with candle-nn and keyed exactly like the PyTorch `state_dict`s
//! they load, so checkpoints load unchanged.
//!
//! | arch | source | input | D |
//! |---|---|---|---|
//! | `resnet34-cifar` | LOS / LTWB CIFAR ResNet-34 (3×3 stem, no maxpool, avg-pool 4) | 3×32×32 | 512 |
//! | `resnet32` | LDAM-DRW / BALMS ResNet-32 (option-A shortcuts) | 3×32×32 | 64 |
//! | `resnet50` | torchvision resnet50 | 3×224×224 | 2048 |
//! | `resnext50-32x4d` | torchvision resnext50_32x4d | 3×224×224 | 2048 |
//! | `small-cnn` | ltbench's Fashion-MNIST CNN | 1×28×28 | 128 |
//! | `efficientnet-lite0` | `efficientnet-lite-pytorch` EfficientNet-Lite0 | 3×224×224 | 1280 |

pub mod blocks;
pub mod efficientnet;
pub mod resnet32;
pub mod resnet_cifar;
pub mod resnet_imagenet;
pub mod small_cnn;

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

/// A feature extractor with an optional stage-1 classifier.
pub trait Backbone: Send + Sync {
    /// Features [B, D]; `train` selects batch statistics in BatchNorm (stage-1 training).
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor>;

    /// Eval-mode features [B, D] (BatchNorm with running statistics).
    fn features(&self, x: &Tensor) -> Result<Tensor> {
        self.features_t(x, false)
    }

    /// The stage-1 classifier (`fc` / `linear`), when the model was built with one.
    fn head(&self) -> Option<&Linear>;

    /// The concrete network (the inference path, [`crate::infer::compile`], reads its layers).
    fn as_any(&self) -> &dyn std::any::Any;

    /// Logits [B, K] = head(features); an error when there is no head.
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let f = self.features(x)?;
        match self.head() {
            Some(h) => h.forward(&f),
            None => candle_core::bail!("this backbone has no classifier head"),
        }
    }
}

/// The architectures `extract` knows. Strings become this enum at the CLI edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Arch {
    #[value(name = "resnet34-cifar", alias = "resnet34_cifar")]
    Resnet34Cifar,
    #[value(name = "resnet32", alias = "resnet32_ldam")]
    Resnet32,
    #[value(name = "resnet50")]
    Resnet50,
    #[value(name = "resnext50-32x4d", alias = "resnext50_32x4d")]
    Resnext50,
    #[value(name = "small-cnn", alias = "small_cnn")]
    SmallCnn,
    #[value(name = "efficientnet-lite0", alias = "efficientnet_lite0")]
    EfficientnetLite0,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Resnet34Cifar => "resnet34-cifar",
            Arch::Resnet32 => "resnet32",
            Arch::Resnet50 => "resnet50",
            Arch::Resnext50 => "resnext50-32x4d",
            Arch::SmallCnn => "small-cnn",
            Arch::EfficientnetLite0 => "efficientnet-lite0",
        }
    }

    pub fn feature_dim(self) -> usize {
        match self {
            Arch::Resnet34Cifar => 512,
            Arch::Resnet32 => 64,
            Arch::Resnet50 | Arch::Resnext50 => 2048,
            Arch::SmallCnn => small_cnn::FEATURE_DIM,
            Arch::EfficientnetLite0 => efficientnet::FEATURE_DIM,
        }
    }

    /// The input side the network was trained at, for an ImageNet network (224): smaller
    /// grey images (Fashion-MNIST) are resized to it.
    pub fn imagenet_side(self) -> Option<usize> {
        match self {
            Arch::Resnet50 | Arch::Resnext50 | Arch::EfficientnetLite0 => Some(224),
            _ => None,
        }
    }

    /// Elements of the network's widest activation (one tensor) for one H×W input: the
    /// small CNN's conv2 (64 × H × W), ResNet-32's first stage (16 × H × W), the CIFAR
    /// ResNet-34's (64 × H × W), the ImageNet ResNets' stem (64 × H/2 × W/2, as wide as their
    /// layer1's 256 × H/4 × W/4), EfficientNet-Lite0's second block's expansion
    /// (96 × H/2 × W/2). A lower bound of what a forward pass holds per image.
    pub fn widest_activation(self, h: usize, w: usize) -> usize {
        let half = h.div_ceil(2) * w.div_ceil(2);
        match self {
            Arch::SmallCnn | Arch::Resnet34Cifar => 64 * h * w,
            Arch::Resnet32 => 16 * h * w,
            Arch::Resnet50 | Arch::Resnext50 => 64 * half,
            Arch::EfficientnetLite0 => 96 * half,
        }
    }

    /// Input channels the stem expects.
    pub fn in_channels(self) -> usize {
        match self {
            Arch::SmallCnn => 1,
            _ => 3,
        }
    }

    /// The state_dict prefix of the stage-1 classifier.
    pub fn head_name(self) -> &'static str {
        match self {
            Arch::Resnet32 => "linear",
            Arch::EfficientnetLite0 => "_fc",
            _ => "fc",
        }
    }

    /// Build the network from `vb` (keys relative to the model root). With `num_classes`, the
    /// classifier `head_name()` [K, D] + bias [K] is built too.
    pub fn build(self, num_classes: Option<usize>, vb: VarBuilder) -> Result<Box<dyn Backbone>> {
        let head = match num_classes {
            Some(k) => Some(candle_nn::linear(
                self.feature_dim(),
                k,
                vb.pp(self.head_name()),
            )?),
            None => None,
        };
        Ok(match self {
            Arch::Resnet34Cifar => Box::new(resnet_cifar::ResNetCifar::resnet34(vb, head)?),
            Arch::Resnet32 => Box::new(resnet32::ResNet32::new(vb, head)?),
            Arch::Resnet50 => Box::new(resnet_imagenet::ResNet::resnet50(vb, head)?),
            Arch::Resnext50 => Box::new(resnet_imagenet::ResNet::resnext50_32x4d(vb, head)?),
            Arch::SmallCnn => Box::new(small_cnn::SmallCnn::new(vb, head)?),
            Arch::EfficientnetLite0 => Box::new(efficientnet::EfficientNetLite::lite0(vb, head)?),
        })
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Left-right flip of an image batch [B, C, H, W] (`torch.flip(x, dims=[3])`).
pub fn flip_lr(x: &Tensor) -> Result<Tensor> {
    let w = x.dim(3)?;
    let idx = Tensor::from_vec((0..w as u32).rev().collect::<Vec<u32>>(), w, x.device())?;
    x.index_select(&idx, 3)
}
