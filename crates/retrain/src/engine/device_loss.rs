//! The losses of [`crate::engine::loss`] on a candle device (`--device cuda`): the same
//! formulas as the host loss, in tensor ops, for [`crate::engine::device::train_on_device`].
//! The per-class constants come from the host [`LossFn`] (uploaded once); GCL's noise and
//! DRW's schedule stay on the host and arrive with each step ([`StepInputs`]).

use crate::engine::loss::LossFn;
use crate::method::{CbForm, Loss};
use candle_core::{DType, Device, Result, Tensor};

/// Row-wise softmax parts of logits `a` [B, K]: the shifted logits `s = a − max`, `Σ exp(s)`
/// [B, 1] and the probabilities `p = exp(s) / Σ exp(s)`.
fn softmax_parts(a: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let s = a.broadcast_sub(&a.max_keepdim(1)?)?;
    let e = s.exp()?;
    let sum = e.sum_keepdim(1)?;
    let p = e.broadcast_div(&sum)?;
    Ok((s, sum, p))
}

/// One-hot rows [B, K] (f32) of labels `y` [B].
fn one_hot(y: &Tensor, classes: &Tensor) -> Result<Tensor> {
    classes.broadcast_eq(&y.unsqueeze(1)?)?.to_dtype(DType::F32)
}

/// A [`LossFn`] on the device: the batch-mean loss (a scalar tensor) and `∂L/∂z`.
pub struct DeviceLoss {
    loss: Loss,
    k: usize,
    /// The loss's named per-class terms ([`crate::engine::loss::Terms`]) [K], when present.
    offset: Option<Tensor>,
    scale: Option<Tensor>,
    margin: Option<Tensor>,
    smoothing: Option<Tensor>,
    weight: Option<Tensor>,
    reweight: Option<Tensor>,
    lade_shift: Option<Tensor>,
    prior: Option<Tensor>,
    /// 0..K as u32 [K] (for one-hot rows).
    classes: Tensor,
}

/// What a step's loss needs from the host: GCL's noise [B, K] and whether the re-weighting
/// is on (DRW).
pub struct StepInputs<'a> {
    pub noise: Option<&'a Tensor>,
    pub reweight_on: bool,
}

impl DeviceLoss {
    pub fn new(f: &LossFn, reweight: Option<&[f32]>, device: &Device) -> Result<DeviceLoss> {
        let k = f.num_classes;
        let up = |v: &[f32]| -> Result<Option<Tensor>> {
            if v.is_empty() {
                Ok(None)
            } else {
                Tensor::from_slice(v, k, device).map(Some)
            }
        };
        let t = &f.terms;
        Ok(DeviceLoss {
            loss: f.loss,
            k,
            offset: up(&t.offset)?,
            scale: up(&t.scale)?,
            margin: up(&t.margin)?,
            smoothing: up(&t.smoothing)?,
            weight: up(&t.weight)?,
            reweight: up(reweight.unwrap_or(&[]))?,
            lade_shift: up(&t.lade_shift)?,
            prior: up(&t.prior)?,
            classes: Tensor::arange(0u32, k as u32, device)?,
        })
    }

    /// w_{y_i} as a column [B, 1].
    fn row_weights(w: &Tensor, y: &Tensor) -> Result<Tensor> {
        w.index_select(y, 0)?.unsqueeze(1)
    }

    pub fn loss_and_grad(
        &self,
        z: &Tensor,
        y: &Tensor,
        step: &StepInputs,
    ) -> Result<(Tensor, Tensor)> {
        let b = z.dim(0)?;
        let inv_b = 1.0 / b as f64;
        let t = one_hot(y, &self.classes)?;
        let reweight = match (&self.reweight, step.reweight_on) {
            (Some(w), true) => Some(Self::row_weights(w, y)?),
            _ => None,
        };
        if let Loss::Custom { .. } = self.loss {
            // refused before any run (`--device` with a custom loss)
            unreachable!("a custom loss does not run on the device");
        }
        match self.loss {
            Loss::Ce { .. }
            | Loss::BalancedSoftmax { .. }
            | Loss::Ldam { .. }
            | Loss::Las { .. }
            | Loss::Cdt { .. }
            | Loss::Vs { .. }
            | Loss::Gcl { .. }
            | Loss::Lade { .. } => {
                let smoothing = match self.loss {
                    Loss::Ce { smoothing } => smoothing as f64,
                    _ => 0.0,
                };
                let (l, g) = self.softmax_ce(
                    z,
                    y,
                    &t,
                    smoothing,
                    reweight.as_ref(),
                    true,
                    step.noise,
                    inv_b,
                )?;
                match self.loss {
                    Loss::Lade { alpha, lambda } => {
                        let (lr, gr) = self.lade(z, &t, alpha as f64, lambda as f64)?;
                        Ok(((l + lr)?, (g + gr)?))
                    }
                    _ => Ok((l, g)),
                }
            }
            Loss::ClassBalanced {
                form: CbForm::Softmax,
                ..
            } => {
                let r = Self::row_weights(self.weight.as_ref().expect("cb weights"), y)?;
                self.softmax_ce(z, y, &t, 0.0, Some(&r), false, None, inv_b)
            }
            Loss::Focal { gamma } => {
                let gamma = gamma as f64;
                let (s, sum, p) = softmax_parts(z)?;
                // CE_i = log Σe − s_y
                let ce = (sum.log()? - (&t * &s)?.sum_keepdim(1)?)?;
                let pt = ce.neg()?.exp()?;
                let one_minus = pt.affine(-1.0, 1.0)?;
                let modulator = one_minus.powf(gamma)?;
                let loss = ((&modulator * &ce)?.sum_all()? * inv_b)?;
                let factor = if gamma == 0.0 {
                    modulator
                } else {
                    // γ p (1 − p)^(γ−1) CE, 0 where 1 − p = 0 (as the host loss)
                    let extra = ((one_minus.maximum(1e-30)?.powf(gamma - 1.0)? * &pt)? * &ce)?
                        .affine(gamma, 0.0)?;
                    let zeros = extra.zeros_like()?;
                    let extra = one_minus.gt(0.0)?.where_cond(&extra, &zeros)?;
                    (modulator + extra)?
                };
                let g = (p - &t)?.broadcast_mul(&factor.affine(inv_b, 0.0)?)?;
                Ok((loss, g))
            }
            Loss::ClassBalanced {
                form: CbForm::Sigmoid,
                ..
            }
            | Loss::BalBce => {
                let w = match &self.weight {
                    Some(w) => Self::row_weights(w, y)?,
                    None => Tensor::ones((b, 1), DType::F32, z.device())?,
                };
                let z = match (&self.offset, self.loss) {
                    (Some(o), Loss::BalBce) => z.broadcast_add(o)?,
                    _ => z.clone(),
                };
                // max(z, 0) − z t + log(1 + e^(−|z|))
                let bce = ((z.relu()? - (&z * &t)?)?
                    + z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?;
                let loss = ((bce.sum_keepdim(1)? * &w)?.sum_all()? * inv_b)?;
                let sig = z.neg()?.exp()?.affine(1.0, 1.0)?.recip()?;
                let g = (sig - &t)?.broadcast_mul(&w.affine(inv_b, 0.0)?)?;
                Ok((loss, g))
            }
            Loss::Custom { .. } => unreachable!("checked above"),
            Loss::ClassBalanced {
                form: CbForm::SoftmaxBce,
                ..
            } => {
                let norm = inv_b / self.k as f64;
                let w = Self::row_weights(self.weight.as_ref().expect("cb weights"), y)?;
                let (_, _, p) = softmax_parts(z)?;
                let log_p = p.log()?.maximum(-100.0)?;
                let log_q = p.affine(-1.0, 1.0)?.log()?.maximum(-100.0)?;
                let l = t.to_dtype(DType::U8)?.where_cond(&log_p, &log_q)?;
                let loss = ((l.sum_keepdim(1)? * &w)?.sum_all()? * (-norm))?;
                let var = (&p * p.affine(-1.0, 1.0)?)?.maximum(1e-12)?;
                let a = ((&p - &t)? / var)?.broadcast_mul(&w.affine(norm, 0.0)?)?;
                let dot = (&a * &p)?.sum_keepdim(1)?;
                let g = (p * a.broadcast_sub(&dot)?)?;
                Ok((loss, g))
            }
        }
    }

    /// Softmax CE on the adjusted logits `a = m ⊙ z + o − μ_y·1{y} − ν` with label smoothing δ
    /// (or the per-class ε_y), row weights r and the mean over B, or over Σ r with
    /// `weighted_mean`; see `loss/softmax_ce.rs`.
    #[allow(clippy::too_many_arguments)]
    fn softmax_ce(
        &self,
        z: &Tensor,
        y: &Tensor,
        t: &Tensor,
        smoothing: f64,
        r: Option<&Tensor>,
        weighted_mean: bool,
        noise: Option<&Tensor>,
        inv_b: f64,
    ) -> Result<(Tensor, Tensor)> {
        let mut a = z.clone();
        if let Some(m) = &self.scale {
            a = a.broadcast_mul(m)?;
        }
        if let Some(o) = &self.offset {
            a = a.broadcast_add(o)?;
        }
        if let Some(m) = &self.margin {
            a = (a - t.broadcast_mul(m)?)?;
        }
        if let Some(n) = noise {
            a = (a - n)?;
        }
        let (s, sum, p) = softmax_parts(&a)?;
        let k = self.k as f64;
        let q = match &self.smoothing {
            Some(eps) => {
                let e = Self::row_weights(eps, y)?;
                (t.broadcast_mul(&e.affine(-1.0, 1.0)?)?
                    + e.affine(1.0 / k, 0.0)?.broadcast_as(t.shape())?)?
            }
            None => t.affine(1.0 - smoothing, smoothing / k)?,
        };
        // −Σ q log p = log Σe − Σ q s
        let row = (sum.log()? - (&q * &s)?.sum_keepdim(1)?)?;
        // the mean's denominator Σ r before a focal factor (as the host loss)
        let d = match r {
            Some(r) if weighted_mean => Some(r.sum_all()?),
            _ => None,
        };
        // GCL's focal factor (1 − p_i)^γ, p_i = exp(−r_i CE_i) detached: a row weight
        let focal = match self.loss {
            Loss::Gcl { gamma, .. } if gamma != 0.0 => {
                let rce = match r {
                    Some(r) => (&row * r)?,
                    None => row.clone(),
                };
                let f = rce
                    .neg()?
                    .exp()?
                    .affine(-1.0, 1.0)?
                    .relu()?
                    .powf(gamma as f64)?;
                Some(match r {
                    Some(r) => (r * f)?,
                    None => f,
                })
            }
            _ => None,
        };
        let r = focal.as_ref().or(r);
        let (loss, g) = match r {
            Some(r) if weighted_mean && d.is_some() => {
                let d = d.expect("weighted mean");
                let loss = (row * r)?.sum_all()?.broadcast_div(&d)?;
                let g = (p - q)?.broadcast_mul(r)?.broadcast_div(&d)?;
                (loss, g)
            }
            Some(r) => (
                ((row * r)?.sum_all()? * inv_b)?,
                (p - q)?.broadcast_mul(&r.affine(inv_b, 0.0)?)?,
            ),
            None => ((row.sum_all()? * inv_b)?, ((p - q)? * inv_b)?),
        };
        let g = match &self.scale {
            Some(m) => g.broadcast_mul(m)?,
            None => g,
        };
        Ok((loss, g))
    }

    /// LADE's regulariser α·L and its gradient (see `loss/mod.rs`, `lade_regulariser`).
    fn lade(&self, z: &Tensor, t: &Tensor, alpha: f64, lambda: f64) -> Result<(Tensor, Tensor)> {
        let b = z.dim(0)? as f64;
        let shift = self.lade_shift.as_ref().expect("lade terms");
        let prior = self.prior.as_ref().expect("lade terms");
        let zc = z.broadcast_add(shift)?;
        let max = zc.max_keepdim(0)?;
        let e = zc.broadcast_sub(&max)?.exp()?;
        let sum = e.sum_keepdim(0)?;
        let p = e.broadcast_div(&sum)?;
        let second = ((max + sum.log()?)? - b.ln())?; // [1, K]
        let n = t.sum_keepdim(0)?.affine(1.0, 1e-8)?;
        let first = (z * t)?.sum_keepdim(0)?.broadcast_div(&n)?;
        let est = ((&first - &second)? - second.sqr()?.affine(lambda, 0.0)?)?;
        let loss = (est.broadcast_mul(&prior.unsqueeze(0)?)?.sum_all()? * (-alpha))?;
        let pull = second.affine(2.0 * lambda, 1.0)?;
        let inner = (t.broadcast_div(&n)? - p.broadcast_mul(&pull)?)?;
        let g = inner
            .broadcast_mul(&prior.unsqueeze(0)?)?
            .affine(-alpha, 0.0)?;
        Ok((loss, g))
    }
}
