//! The ResNets on the inference path: a stem (conv + folded BN + ReLU, torchvision's 3×3/2
//! max-pool when it has one), residual blocks (BasicBlock, Bottleneck, LDAM's option-A block)
//! whose last convolution adds the shortcut and applies the ReLU in its output pass, and the
//! global average pool.

use super::conv::{Act, FoldedConv, global_avg, max_pool3x3s2, to_group};
use crate::backbones::Backbone;
use candle_core::{Result, Tensor};
use candle_nn::Linear;
use rayon::prelude::*;

/// A block's shortcut.
pub enum Shortcut {
    Identity,
    /// 1×1 convolution (stride s) + BN.
    Conv(FoldedConv),
    /// LDAM's option A: `x[:, :, ::2, ::2]` with `pad` zero channels on each side.
    OptionA {
        pad: usize,
    },
}

/// A residual block: its main-path convolutions (ReLU after each; the last one after the add).
pub struct Block {
    pub main: Vec<FoldedConv>,
    pub short: Shortcut,
}

/// A ResNet compiled for inference; training and the head stay the candle model's.
pub struct FastResNet {
    pub stem: FoldedConv,
    pub stem_pool: bool,
    pub blocks: Vec<Block>,
    pub dim: usize,
    /// Images per GEMM (G of `[C, G, H, W]`).
    pub group: usize,
    pub model: Box<dyn Backbone>,
}

#[derive(Default)]
struct Buffers {
    x: Vec<f32>,
    a: Vec<f32>,
    t: [Vec<f32>; 2],
    s: Vec<f32>,
    col: Vec<f32>,
}

/// `x[:, ::2, ::2]` of `c` planes h×w, with `pad` zero planes before and after.
fn option_a(x: &[f32], c: usize, h: usize, w: usize, pad: usize, out: &mut Vec<f32>) {
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    out.clear();
    out.resize((c + 2 * pad) * oh * ow, 0.0);
    for ch in 0..c {
        let p = &x[ch * h * w..(ch + 1) * h * w];
        let o = &mut out[(pad + ch) * oh * ow..(pad + ch + 1) * oh * ow];
        for y in 0..oh {
            for xx in 0..ow {
                o[y * ow + xx] = p[2 * y * w + 2 * xx];
            }
        }
    }
}

impl FastResNet {
    /// The features of `g` images `x` [g, c, h, w] into `out` [g, dim].
    #[allow(clippy::too_many_arguments)]
    fn images(
        &self,
        x: &[f32],
        g: usize,
        c: usize,
        h: usize,
        w: usize,
        out: &mut [f32],
        buf: &mut Buffers,
    ) {
        let Buffers {
            x: xg,
            a,
            t,
            s,
            col,
        } = buf;
        to_group(x, g, c, h * w, xg);
        let (mut h, mut w) = self
            .stem
            .forward(xg, g, h, w, &mut t[0], col, None, Act::Relu);
        let mut ch = self.stem.cout;
        if self.stem_pool {
            (h, w) = max_pool3x3s2(&t[0], ch * g, h, w, a);
        } else {
            std::mem::swap(a, &mut t[0]);
        }
        for b in &self.blocks {
            let short: Option<&[f32]> = match &b.short {
                Shortcut::Identity => None,
                Shortcut::Conv(d) => {
                    d.forward(a, g, h, w, s, col, None, Act::None);
                    Some(&s[..])
                }
                Shortcut::OptionA { pad } => {
                    // [C, G, ...]: a channel is G planes, so C·G planes and pad·G zero planes
                    option_a(a, ch * g, h, w, *pad * g, s);
                    Some(&s[..])
                }
            };
            let (mut ih, mut iw) = (h, w);
            let last = b.main.len() - 1;
            let mut src = 0usize; // 0: a, 1: t[0], 2: t[1]
            for (i, conv) in b.main.iter().enumerate() {
                let dst = if src == 1 { 1 } else { 0 };
                let (input, output): (&[f32], &mut Vec<f32>) = match (src, dst) {
                    (0, 0) => (&a[..], &mut t[0]),
                    (1, 1) => {
                        let (l, r) = t.split_at_mut(1);
                        (&l[0][..], &mut r[0])
                    }
                    (2, 0) => {
                        let (l, r) = t.split_at_mut(1);
                        (&r[0][..], &mut l[0])
                    }
                    _ => unreachable!(),
                };
                let residual = if i == last {
                    Some(short.unwrap_or(&a[..]))
                } else {
                    None
                };
                (ih, iw) = conv.forward(input, g, ih, iw, output, col, residual, Act::Relu);
                src = dst + 1;
            }
            ch = b.main[last].cout;
            (h, w) = (ih, iw);
            std::mem::swap(a, &mut t[src - 1]);
        }
        global_avg(a, self.dim, g, h * w, out);
    }
}

impl Backbone for FastResNet {
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            return self.model.features_t(x, true);
        }
        let (b, c, h, w) = x.dims4()?;
        let xs: Vec<f32> = x
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let mut out = vec![0f32; b * self.dim];
        let g = self.group;
        out.par_chunks_mut(g * self.dim)
            .zip(xs.par_chunks(g * c * h * w))
            .for_each_init(Buffers::default, |buf, (o, imgs)| {
                let n = imgs.len() / (c * h * w);
                self.images(imgs, n, c, h, w, o, buf)
            });
        Tensor::from_vec(out, (b, self.dim), x.device())
    }

    fn head(&self) -> Option<&Linear> {
        self.model.head()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
