//! EfficientNet-Lite0 on the inference path: every BatchNorm folded; the stem as im2col + GEMM
//! with its asymmetric "same" padding, the 1×1 expand / project / head convolutions as one
//! GEMM each (the project GEMM adds the skip in its output pass), the depthwise convolutions as
//! the direct stencil of [`super::depthwise`], ReLU6 in the output passes, the global average
//! pool. Images run one at a time through the blocks of large maps, then all the images of a
//! task together through the blocks of small maps (whose 1×1 GEMMs have few columns an image).

use super::conv::{Act, FoldedConv, features_by_task, gather_group, global_avg};
use super::depthwise::Depthwise;
use crate::model::backbones::Backbone;
use crate::model::backbones::efficientnet::{EfficientNetLite, MbConv, SameConv};
use candle_core::{Result, Tensor};
use candle_nn::{BatchNorm, Linear};

/// An MBConv block, folded.
pub struct FastMbConv {
    pub expand: Option<FoldedConv>,
    pub depthwise: Depthwise,
    pub project: FoldedConv,
    pub skip: bool,
}

/// EfficientNet-Lite compiled for inference; training and the head stay the candle model's.
pub struct FastEfficientNet {
    pub stem: FoldedConv,
    pub blocks: Vec<FastMbConv>,
    pub head_conv: FoldedConv,
    pub dim: usize,
    pub model: Box<dyn Backbone>,
}

/// Blocks whose output map has at most this many pixels (14×14 and 7×7 at 224) run on all the
/// images of a task at once.
const SMALL_MAP: usize = 196;

/// At most this many images a task.
const MAX_TASK: usize = 16;

fn folded((c, b): &(SameConv, BatchNorm)) -> Result<FoldedConv> {
    Ok(FoldedConv::fold(&c.conv, b)?.with_padding(c.pad.0, c.pad.1))
}

fn block(b: &MbConv) -> Result<FastMbConv> {
    let (dc, dbn) = &b.depthwise;
    Ok(FastMbConv {
        expand: b.expand.as_ref().map(folded).transpose()?,
        depthwise: Depthwise::fold(&dc.conv, dbn, dc.pad)?,
        project: folded(&b.project)?,
        skip: b.skip,
    })
}

impl FastEfficientNet {
    pub fn new(m: &EfficientNetLite) -> Result<Self> {
        Ok(Self {
            stem: folded(&m.stem)?,
            blocks: m.blocks.iter().map(block).collect::<Result<_>>()?,
            head_conv: folded(&m.head_conv)?,
            dim: m.head_conv.0.conv.weight().dim(0)?,
            model: Box::new(m.clone()),
        })
    }
}

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

#[derive(Default)]
struct Buffers {
    a: Vec<f32>,
    e: Vec<f32>,
    d: Vec<f32>,
    col: Vec<f32>,
    late: Vec<f32>,
}

impl FastMbConv {
    fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        self.depthwise.out_size(h, w)
    }

    /// `g` images `a` [cin, g, h, w] → `a` [cout, g, oh, ow].
    fn forward(&self, g: usize, (h, w): (usize, usize), bufs: &mut Buffers) -> (usize, usize) {
        let Buffers { a, e, d, col, .. } = bufs;
        let input: &[f32] = match &self.expand {
            Some(c) => {
                c.forward(a, g, h, w, e, col, None, Act::Relu6);
                e
            }
            None => a,
        };
        let (oh, ow) = self.depthwise.forward(input, g, h, w, d, Act::Relu6);
        let residual = self.skip.then_some(&a[..]);
        self.project
            .forward(d, g, oh, ow, e, col, residual, Act::None);
        std::mem::swap(a, e);
        (oh, ow)
    }
}

impl FastEfficientNet {
    /// The features of `n` images `x` [n, c, h, w] into `out` [n, dim].
    fn images(
        &self,
        x: &[f32],
        n: usize,
        c: usize,
        (h0, w0): (usize, usize),
        out: &mut [f32],
        b: &mut Buffers,
    ) {
        // the first block whose output map is small
        let mut hw = self.stem.out_size(h0, w0);
        let split = self
            .blocks
            .iter()
            .position(|blk| {
                hw = blk.out_size(hw.0, hw.1);
                hw.0 * hw.1 <= SMALL_MAP
            })
            .unwrap_or(self.blocks.len());
        let img = c * h0 * w0;
        let mut state = (0, 0, 0);
        for i in 0..n {
            let (mut h, mut w) = self.stem.forward(
                &x[i * img..(i + 1) * img],
                1,
                h0,
                w0,
                &mut b.a,
                &mut b.col,
                None,
                Act::Relu6,
            );
            for blk in &self.blocks[..split] {
                (h, w) = blk.forward(1, (h, w), b);
            }
            let ch = self.blocks[..split]
                .last()
                .map_or(self.stem.cout, |blk| blk.project.cout);
            state = (ch, h, w);
            if n > 1 {
                // gather into the all-images layout [ch, n, h, w]
                gather_group(&b.a, ch, 1, h * w, i, n, &mut b.late);
            }
        }
        if n > 1 {
            std::mem::swap(&mut b.a, &mut b.late);
        }
        let (_, mut h, mut w) = state;
        for blk in &self.blocks[split..] {
            (h, w) = blk.forward(n, (h, w), b);
        }
        let Buffers { a, e, col, .. } = b;
        let (h, w) = self.head_conv.forward(a, n, h, w, e, col, None, Act::Relu6);
        global_avg(e, self.dim, n, h * w, out);
    }
}

impl Backbone for FastEfficientNet {
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            return self.model.features_t(x, true);
        }
        let per_task = |b: usize| b.div_ceil(rayon::current_num_threads()).clamp(1, MAX_TASK);
        features_by_task(x, self.dim, per_task, |imgs, n, (c, h, w), o| {
            BUFFERS.with(|bf| self.images(imgs, n, c, (h, w), o, &mut bf.borrow_mut()))
        })
    }

    fn head(&self) -> Option<&Linear> {
        self.model.head()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
