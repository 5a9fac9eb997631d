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
    /// The (convolution, BatchNorm) pairs, conv1..conv3.
    pub fn layers(&self) -> &[(Conv2d, BatchNorm)] {
        &self.convs
    }

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

/// 2×2 max-pool (stride 2) with PyTorch's gradient: the same values as `max_pool2d(2)`, and
/// each output's gradient goes whole to the first maximum of its window (row-major order).
/// candle 0.11.1's `max_pool2d` backward instead multiplies the gradient by (number of maxima
/// in the window) / 4, so a unique maximum gets a quarter of it: every layer below a pool
/// learned 4× (16× under two pools) too slowly. (A plain reshape + `max` is no fix either: it
/// gives the full gradient to *every* tied maximum, and ties are common on the uniform
/// backgrounds of Fashion-MNIST.)
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / 2, w / 2);
    // [B, C, OH, OW, 4], window positions in row-major order.
    let win = x
        .narrow(2, 0, 2 * oh)?
        .narrow(3, 0, 2 * ow)?
        .reshape((b, c, oh, 2, ow, 2))?
        .permute((0, 1, 2, 4, 3, 5))?
        .reshape((b, c, oh, ow, 4))?;
    let max = win.detach().max_keepdim(D::Minus1)?;
    let is_max = win.detach().broadcast_eq(&max)?.to_dtype(x.dtype())?;
    let first = (&is_max * is_max.cumsum(D::Minus1)?.eq(1f64)?.to_dtype(x.dtype())?)?;
    (win * first.detach())?.sum(D::Minus1)
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
                x = if train {
                    max_pool2x2(&x)?
                } else {
                    x.max_pool2d(2)?
                };
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Same values as `max_pool2d(2)`; the gradient reaches each window's maximum whole
    /// (candle 0.11.1's `max_pool2d` backward gives it a quarter).
    #[test]
    fn max_pool2x2_values_and_gradient() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 6, 4), &dev).unwrap()).unwrap();
        let a = max_pool2x2(x.as_tensor()).unwrap();
        let b = x.as_tensor().max_pool2d(2).unwrap();
        let d: f32 = (&a - &b)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(d, 0.0);
        let g = a.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = g
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // Random normal input: one maximum per window, which gets gradient 1.
        assert_eq!(g.iter().filter(|&&v| v == 1.0).count(), 2 * 3 * 3 * 2);
        assert_eq!(g.iter().filter(|&&v| v == 0.0).count(), 3 * 2 * 3 * 3 * 2);
    }

    /// Ties: the first maximum in row-major window order takes the whole gradient (PyTorch).
    #[test]
    fn max_pool2x2_gives_a_tie_to_the_first_maximum() {
        let dev = Device::Cpu;
        let v = [[0f32, 2.0, 5.0, 1.0], [2.0, 2.0, 5.0, 5.0]];
        let x = Var::from_tensor(&Tensor::new(&[[v]], &dev).unwrap()).unwrap();
        let p = max_pool2x2(x.as_tensor()).unwrap();
        let vals: Vec<f32> = p.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(vals, vec![2.0, 5.0]);
        let g = (p * Tensor::new(&[[[[1f32, 10.0]]]], &dev).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g: Vec<f32> = g
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(g, vec![0.0, 1.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
