//! ltbench's small CNN for Fashion-MNIST (1×28×28):
//! conv1(1→32, 3, pad 1) bn1 relu · conv2(32→64, 3, pad 1) bn2 relu · maxpool 2 ·
//! conv3(64→128, 3, pad 1) bn3 relu · maxpool 2 · global average pool → 128-d · `fc` → K.
//! Convolutions carry no bias (BatchNorm follows). Trainable: every BN runs through `ModuleT`.

use super::Backbone;
use super::blocks::{bn, conv, conv_im2col};
use candle_core::{D, Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, Conv2d, Linear, VarBuilder};

pub const FEATURE_DIM: usize = 128;

#[derive(Debug, Clone)]
pub struct SmallCnn {
    convs: Vec<(Conv2d, BatchNorm)>,
    head: Option<Linear>,
}

impl SmallCnn {
    pub fn new(vb: VarBuilder, head: Option<Linear>) -> Result<Self> {
        let mut convs = Vec::new();
        for (i, (cin, cout)) in [(1, 32), (32, 64), (64, FEATURE_DIM)]
            .into_iter()
            .enumerate()
        {
            convs.push((
                conv(cin, cout, 3, 1, 1, 1, vb.pp(format!("conv{}", i + 1)))?,
                bn(cout, vb.pp(format!("bn{}", i + 1)))?,
            ));
        }
        Ok(Self { convs, head })
    }
}

impl Backbone for SmallCnn {
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, (c, b)) in self.convs.iter().enumerate() {
            // Training: the same convolution as im2col + GEMM (fast gradients on the CPU).
            let y = if train {
                conv_im2col(&x, c.weight(), 1)?
            } else {
                c.forward(&x)?
            };
            x = b.forward_t(&y, train)?.relu()?;
            if i >= 1 {
                x = x.max_pool2d(2)?;
            }
        }
        x.mean(D::Minus1)?.mean(D::Minus1)
    }

    fn head(&self) -> Option<&Linear> {
        self.head.as_ref()
    }
}
