//! Test top-1 of the trained model, BatchNorm in eval mode, with and without flip TTA.

use crate::error::Result;
use crate::model::backbones::{Backbone, flip_lr};
use crate::source::batch::{batch_input, input_shape};
use crate::source::datasets::{Labeled, Normalize};
use candle_core::{D, Device, Tensor};

/// Top-1 (%) with BatchNorm in eval mode: the test view, and the mean of the test view's and its
/// flip's logits.
pub fn evaluate(
    model: &dyn Backbone,
    data: &Labeled,
    norm: &Normalize,
    batch_size: usize,
    device: &Device,
) -> Result<(f64, f64)> {
    let (c, h, w) = input_shape(data);
    let all: Vec<usize> = (0..data.len()).collect();
    let (mut plain, mut flip) = (0usize, 0usize);
    for rows in all.chunks(batch_size.max(1)) {
        let mut buf = Vec::with_capacity(rows.len() * c * h * w);
        for (_, img) in batch_input(data, rows, norm, 0, None) {
            buf.extend(img?);
        }
        let x = Tensor::from_vec(buf, (rows.len(), c, h, w), device)?;
        let a = model.logits(&x)?;
        let b = model.logits(&flip_lr(&x)?)?;
        let pa: Vec<u32> = a.argmax(D::Minus1)?.to_vec1()?;
        let pb: Vec<u32> = (a + b)?.argmax(D::Minus1)?.to_vec1()?;
        for (k, &i) in rows.iter().enumerate() {
            plain += (pa[k] == data.labels[i]) as usize;
            flip += (pb[k] == data.labels[i]) as usize;
        }
    }
    let n = data.len().max(1) as f64;
    Ok((100.0 * plain as f64 / n, 100.0 * flip as f64 / n))
}
