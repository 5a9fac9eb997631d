//! [`crate::eval::evaluate`] on a candle device: the logits of a split already uploaded
//! ([`DeviceBank`]) are computed there, chunk by chunk, and tallied on the host by the same
//! [`Tally`], so the metrics are those of the CPU path.

use crate::engine::device::{DeviceBank, SplitId, normalize_rows};
use crate::engine::head::EvalHead;
use crate::eval::metrics::{Evaluation, Tally};
use bank::Split;
use candle_core::{Result, Tensor};

/// Rows per evaluation chunk.
const EVAL_CHUNK: usize = 16384;

/// [`crate::eval::evaluate`] with the logits computed on the device (`host` is the same split
/// on the host, for its labels).
pub fn evaluate_on_device(
    db: &DeviceBank,
    id: SplitId,
    host: &Split,
    head: &EvalHead,
    tta: bool,
) -> Result<Evaluation> {
    let dev = &db.device;
    let split = db.split(id);
    let (k, d) = (head.num_classes, head.dim);
    let w = Tensor::from_slice(&head.weight, (k, d), dev)?;
    let wt = w.t()?;
    let b = Tensor::from_slice(&head.bias, k, dev)?;
    let logits = |x: &Tensor| -> Result<Tensor> {
        let x = if head.normalize_input {
            normalize_rows(x)?
        } else {
            x.clone()
        };
        x.matmul(&wt)?.broadcast_add(&b)
    };
    let mut tally = Tally::new(k);
    for start in (0..host.rows).step_by(EVAL_CHUNK) {
        let rows = EVAL_CHUNK.min(host.rows - start);
        let mut z = logits(&split.x.narrow(0, start, rows)?)?;
        if let (true, Some(f)) = (tta, &split.flip) {
            z = ((z + logits(&f.narrow(0, start, rows)?)?)? * 0.5)?;
        }
        let z: Vec<f32> = z.flatten_all()?.to_vec1()?;
        tally.add(&z, &host.labels[start..start + rows]);
    }
    Ok(tally.finish())
}
