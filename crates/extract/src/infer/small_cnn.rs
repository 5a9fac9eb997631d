//! The small CNN on the inference path: conv1 bn1 relu · conv2 bn2 relu · maxpool · conv3 bn3
//! relu · maxpool · global average pool, each conv with its BatchNorm folded in.

use super::conv::{Act, FoldedConv, global_avg, max_pool2x2, to_group};
use crate::model::backbones::Backbone;
use crate::model::backbones::small_cnn::{FEATURE_DIM, SmallCnn};
use candle_core::{Result, Tensor};
use candle_nn::Linear;
use rayon::prelude::*;

/// [`SmallCnn`] compiled for inference; training (`features_t(.., true)`) and the head stay
/// the candle model's.
pub struct FastSmallCnn {
    convs: Vec<FoldedConv>,
    model: SmallCnn,
}

impl FastSmallCnn {
    pub fn new(model: &SmallCnn) -> Result<FastSmallCnn> {
        let convs = model
            .layers()
            .iter()
            .map(|(c, b)| FoldedConv::fold(c, b))
            .collect::<Result<Vec<_>>>()?;
        Ok(FastSmallCnn {
            convs,
            model: model.clone(),
        })
    }

    /// The features of `g` images [g, 1, h, w] into `out` [g, FEATURE_DIM].
    fn images(&self, x: &[f32], g: usize, h: usize, w: usize, out: &mut [f32], buf: &mut Buffers) {
        let (mut h, mut w) = (h, w);
        to_group(x, g, 1, h * w, &mut buf.a);
        for (i, c) in self.convs.iter().enumerate() {
            let (oh, ow) = c.forward(&buf.a, g, h, w, &mut buf.b, &mut buf.col, None, Act::Relu);
            (h, w) = (oh, ow);
            if i >= 1 {
                max_pool2x2(&buf.b, c.cout * g, h, w, &mut buf.a);
                (h, w) = (h / 2, w / 2);
            } else {
                std::mem::swap(&mut buf.a, &mut buf.b);
            }
        }
        global_avg(&buf.a, FEATURE_DIM, g, h * w, out);
    }
}

/// Images per GEMM: 16 × 7×7 = 784 columns in the last convolution.
const GROUP: usize = 16;

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

/// One worker's activations and im2col scratch, reused across its images and batches.
#[derive(Default)]
struct Buffers {
    a: Vec<f32>,
    b: Vec<f32>,
    col: Vec<f32>,
}

impl Backbone for FastSmallCnn {
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            return self.model.features_t(x, true);
        }
        let (b, c, h, w) = x.dims4()?;
        if c != 1 {
            candle_core::bail!("small-cnn: expected 1 input channel, got {c}");
        }
        let xs: Vec<f32> = x
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let mut out = vec![0f32; b * FEATURE_DIM];
        out.par_chunks_mut(GROUP * FEATURE_DIM)
            .zip(xs.par_chunks(GROUP * h * w))
            .for_each(|(o, imgs)| {
                // the worker's buffers, kept across batches (fresh ones are page-faulted in)
                BUFFERS.with(|b| {
                    let buf = &mut *b.borrow_mut();
                    self.images(imgs, imgs.len() / (h * w), h, w, o, buf)
                })
            });
        Tensor::from_vec(out, (b, FEATURE_DIM), x.device())
    }

    fn head(&self) -> Option<&Linear> {
        self.model.head()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
