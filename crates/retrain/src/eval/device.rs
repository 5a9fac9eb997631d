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
    keep: bool,
) -> Result<Evaluation> {
    let dev = &db.device;
    let split = db.split(id);
    let (k, d) = (head.num_classes, head.dim);
    let w = Tensor::from_slice(&head.weight, (k, d), dev)?;
    let wt = w.t()?;
    let b = Tensor::from_slice(&head.bias, k, dev)?;
    // DisAlign's gate (cvpods): z' = z + σ(xv + c)·(s ⊙ z + t)
    let gate = match &head.gate {
        Some(g) => Some((
            Tensor::from_slice(&g.v, (d, 1), dev)?,
            g.c as f64,
            Tensor::from_slice(&g.scale, k, dev)?,
            Tensor::from_slice(&g.shift, k, dev)?,
        )),
        None => None,
    };
    let center = match &head.center {
        Some(m) => Some(Tensor::from_slice(m, d, dev)?),
        None => None,
    };
    let after_gate = match &head.after_gate {
        Some(a) => Some(Tensor::from_slice(a, k, dev)?),
        None => None,
    };
    let logits = |x: &Tensor| -> Result<Tensor> {
        let x = match &center {
            Some(m) => x.broadcast_sub(m)?,
            None => x.clone(),
        };
        let x = if head.normalize_input {
            normalize_rows(&x)?
        } else {
            x
        };
        let mut z = x.matmul(&wt)?.broadcast_add(&b)?;
        if head.minus_sq_norm {
            z = z.broadcast_sub(&x.sqr()?.sum_keepdim(1)?)?;
        }
        let z = match &gate {
            Some((v, c, s1, t)) => {
                let g = x
                    .matmul(v)?
                    .affine(1.0, *c)?
                    .neg()?
                    .exp()?
                    .affine(1.0, 1.0)?
                    .recip()?;
                (&z + z.broadcast_mul(s1)?.broadcast_add(t)?.broadcast_mul(&g)?)?
            }
            None => z,
        };
        match &after_gate {
            Some(a) => z.broadcast_add(a),
            None => Ok(z),
        }
    };
    let mut tally = if keep {
        Tally::keeping(k)
    } else {
        Tally::new(k)
    };
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
