//! The ResNets on the inference path: a stem (conv + folded BN + ReLU, torchvision's 3×3/2
//! max-pool when it has one), residual blocks (BasicBlock, Bottleneck, LDAM's option-A block)
//! whose last convolution adds the shortcut and applies the ReLU in its output pass, and the
//! global average pool.

use super::conv::{
    Act, FoldedConv, features_by_task, gather_group, global_avg, max_pool3x3s2, to_group,
};
use crate::model::backbones::Backbone;
use candle_core::{Result, Tensor};
use candle_nn::Linear;

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

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

#[derive(Default)]
struct Buffers {
    x: Vec<f32>,
    a: Vec<f32>,
    t: [Vec<f32>; 2],
    s: Vec<f32>,
    col: Vec<f32>,
    /// The activations of all the images of a task, for the small-map blocks.
    late: Vec<f32>,
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

/// Maps of at most this many pixels (a CIFAR net's 8×8 and 4×4 stages, ResNet-50's 7×7) run
/// [`LATE_GROUPS`] groups of images at once: their GEMMs have few columns an image, and
/// more images per GEMM read the (large) weights of the last stage fewer times.
const SMALL_MAP: usize = 64;

/// Groups of images merged for the small-map blocks.
const LATE_GROUPS: usize = 8;

impl FastResNet {
    /// The output size of block `b` on an `h`×`w` input.
    fn block_out(b: &Block, h: usize, w: usize) -> (usize, usize) {
        b.main.iter().fold((h, w), |(h, w), c| c.out_size(h, w))
    }

    /// Blocks `blocks` on `g` images held in `a` ([ch, g, h, w]); the output replaces `a`.
    #[allow(clippy::too_many_arguments)]
    fn run_blocks(
        blocks: &[Block],
        g: usize,
        mut ch: usize,
        (mut h, mut w): (usize, usize),
        a: &mut Vec<f32>,
        t: &mut [Vec<f32>; 2],
        s: &mut Vec<f32>,
        col: &mut Vec<f32>,
    ) -> (usize, usize, usize) {
        for b in blocks {
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
        (ch, h, w)
    }

    /// The features of `n` images `x` [n, c, h, w] into `out` [n, dim]: groups of
    /// `self.group` images through the stem and the blocks of larger maps, then all `n`
    /// together through the blocks of small maps ([`SMALL_MAP`]) and the pool.
    #[allow(clippy::too_many_arguments)]
    fn images(
        &self,
        x: &[f32],
        n: usize,
        c: usize,
        (h0, w0): (usize, usize),
        out: &mut [f32],
        buf: &mut Buffers,
    ) {
        let Buffers {
            x: xg,
            a,
            t,
            s,
            col,
            late,
        } = buf;
        let g = self.group;
        let mut state = (0, h0, w0);
        let mut split = self.blocks.len();
        for i0 in (0..n).step_by(g) {
            let gi = g.min(n - i0);
            to_group(
                &x[i0 * c * h0 * w0..(i0 + gi) * c * h0 * w0],
                gi,
                c,
                h0 * w0,
                xg,
            );
            let (mut h, mut w) = self
                .stem
                .forward(xg, gi, h0, w0, &mut t[0], col, None, Act::Relu);
            let ch = self.stem.cout;
            if self.stem_pool {
                (h, w) = max_pool3x3s2(&t[0], ch * gi, h, w, a);
            } else {
                std::mem::swap(a, &mut t[0]);
            }
            // the blocks before the first whose output map is small
            let (mut bh, mut bw) = (h, w);
            split = self
                .blocks
                .iter()
                .position(|b| {
                    (bh, bw) = Self::block_out(b, bh, bw);
                    bh * bw <= SMALL_MAP
                })
                .unwrap_or(self.blocks.len());
            state = Self::run_blocks(&self.blocks[..split], gi, ch, (h, w), a, t, s, col);
            if n == gi {
                break;
            }
            // gather this group into the all-images layout [ch, n, h, w]
            let (ch, h, w) = state;
            gather_group(a, ch, gi, h * w, i0, n, late);
        }
        if n > g.min(n) {
            std::mem::swap(a, late);
        }
        let (ch, h, w) = state;
        let (ch, h, w) = Self::run_blocks(&self.blocks[split..], n, ch, (h, w), a, t, s, col);
        debug_assert_eq!(ch, self.dim);
        global_avg(a, self.dim, n, h * w, out);
    }
}

impl Backbone for FastResNet {
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            return self.model.features_t(x, true);
        }
        // up to LATE_GROUPS groups a task, but a task for every thread
        let per_task = |b: usize| {
            b.div_ceil(rayon::current_num_threads())
                .clamp(self.group, self.group * LATE_GROUPS)
        };
        features_by_task(x, self.dim, per_task, |imgs, n, (c, h, w), o| {
            // the worker's buffers, kept across batches: fresh ones would be page-faulted
            // in again every batch (the kernel zeroing pages took 15 % of the time)
            BUFFERS.with(|b| self.images(imgs, n, c, (h, w), o, &mut b.borrow_mut()))
        })
    }

    fn head(&self) -> Option<&Linear> {
        self.model.head()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
