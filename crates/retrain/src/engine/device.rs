//! Re-training on a candle [`Device`]: a CUDA GPU when the crate is built with
//! the `cuda` feature (`retrain --device cuda`). The same loop, formulas and update order as
//! [`crate::engine::trainer`], [`crate::engine::head`] and [`crate::engine::loss`], written in candle tensor ops and
//! kept on the device: the bank is uploaded once ([`DeviceBank`]) and shared by every run; a
//! step gathers its rows with `index_select`, runs the forward GEMM, the loss gradient
//! `∂L/∂z`, the two gradient GEMMs (no gradient for the features) and the SGD update without
//! leaving the device; the epoch loss is read back once per epoch and the head once per epoch
//! (for selection on val). Evaluation on the device is [`crate::eval::device`].
//!
//! On `Device::Cpu` the same code runs through candle's CPU backend: that is how the tests
//! check this path against the hand-written engine on machines without a GPU.
//!
//! Not on the device: the L-BFGS reference row (`logreg-balanced`) and `--one-pass`; the
//! minibatch order is drawn on the host by the same [`EpochSampler`] (identical batches).

use crate::engine::device_loss::{DeviceLoss, StepInputs};
use crate::engine::head::HeadState;
use crate::engine::loss::LossFn;
use crate::engine::sampler::EpochSampler;
use crate::engine::trainer::{TrainOptions, TrainOutcome, lr_at, maxnorm_limit};
use crate::method::{Head, Method, ProjectEvery};
use bank::{Bank, Split};
use candle_core::{DType, Device, Result, Tensor};

/// F.normalize's epsilon (as in [`crate::engine::head`]).
const NORM_EPS: f64 = 1e-12;

/// `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeviceChoice {
    /// The hand-written CPU engine.
    #[default]
    Cpu,
    /// GPU 0 (a binary built with `--features cuda`).
    Cuda,
    /// CUDA when available, else the CPU engine (with a notice).
    Auto,
}

/// The CUDA device for `choice` (`None`: the CPU engine), and a one-line notice when `auto`
/// fell back to the CPU.
pub fn select(choice: DeviceChoice) -> anyhow::Result<(Option<Device>, Option<String>)> {
    match choice {
        DeviceChoice::Cpu => Ok((None, None)),
        DeviceChoice::Cuda => cuda()
            .map(|d| (Some(d), None))
            .map_err(|e| anyhow::anyhow!("--device cuda: {e}")),
        DeviceChoice::Auto => match cuda() {
            Ok(d) => Ok((Some(d), None)),
            Err(e) => Ok((None, Some(format!("{e}; using the CPU")))),
        },
    }
}

fn cuda() -> anyhow::Result<Device> {
    if !candle_core::utils::cuda_is_available() {
        anyhow::bail!("this binary was built without CUDA (build it with `just build-cuda`)");
    }
    let device = Device::new_cuda(0).map_err(|e| {
        anyhow::anyhow!(
            "no usable GPU: {}",
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = &device {
        // SAFETY: every run's tensors live and die on the thread (so the per-thread stream)
        // that made them; the shared bank is synchronised after its upload (DeviceBank) and
        // outlives the runs. Without the per-launch event bookkeeping a step's ~30 small
        // kernels cost a fraction of the time.
        unsafe { d.disable_event_tracking() };
    }
    Ok(device)
}

/// A split's features on the device.
pub struct DeviceSplit {
    pub x: Tensor,
    pub flip: Option<Tensor>,
}

impl DeviceSplit {
    fn upload(split: &Split, device: &Device) -> Result<DeviceSplit> {
        let shape = (split.rows, split.dim);
        Ok(DeviceSplit {
            x: Tensor::from_slice(split.features(), shape, device)?,
            flip: match &split.features_flip {
                Some(f) => Some(Tensor::from_slice(f.as_slice(), shape, device)?),
                None => None,
            },
        })
    }
}

/// Which split of a [`DeviceBank`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitId {
    Train,
    Val,
    Test,
}

/// A bank's splits uploaded once (f32), shared by all runs on the device.
pub struct DeviceBank {
    pub device: Device,
    train: DeviceSplit,
    train_labels: Tensor,
    val: Option<DeviceSplit>,
    test: DeviceSplit,
}

impl DeviceBank {
    pub fn upload(bank: &Bank, device: &Device) -> Result<DeviceBank> {
        Ok(DeviceBank {
            device: device.clone(),
            train: DeviceSplit::upload(&bank.train, device)?,
            train_labels: Tensor::from_slice(&bank.train.labels, bank.train.rows, device)?,
            val: match &bank.val {
                Some(v) => Some(DeviceSplit::upload(v, device)?),
                None => None,
            },
            test: DeviceSplit::upload(&bank.test, device)?,
        })
        .and_then(|db| {
            // the runs read the bank from other threads' streams: finish the copies first
            device.synchronize()?;
            Ok(db)
        })
    }

    pub fn split(&self, id: SplitId) -> &DeviceSplit {
        match id {
            SplitId::Train => &self.train,
            SplitId::Val => self.val.as_ref().expect("the bank has a val split"),
            SplitId::Test => &self.test,
        }
    }
}

/// Rows scaled to unit L2 norm (F.normalize).
pub fn normalize_rows(x: &Tensor) -> Result<Tensor> {
    let n = x.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(NORM_EPS)?;
    x.broadcast_div(&n)
}

/// A head's parameters and momentum buffers on the device.
struct DeviceHead {
    kind: Head,
    weight: Tensor,
    bias: Tensor,
    scales: Tensor,
    /// DisAlign: shift t [K], gate v [D, 1] and c [1] (zeros for other heads).
    shift: Tensor,
    gate_v: Tensor,
    gate_c: Tensor,
    m_weight: Tensor,
    m_bias: Tensor,
    m_scales: Tensor,
    m_shift: Tensor,
    m_gate_v: Tensor,
    m_gate_c: Tensor,
}

/// What the forward pass keeps for the backward pass.
struct Forward {
    /// The GEMM's input (normalised rows for cosine heads).
    x: Tensor,
    z: Tensor,
    /// LWS, DisAlign: pre-scale logits; cosine: s·Ŵ and s/‖w_i‖; DisAlign: the gate [B, 1].
    u: Option<Tensor>,
    what: Option<(Tensor, Tensor)>,
    gate: Option<Tensor>,
}

/// σ(a), elementwise.
fn sigmoid(a: &Tensor) -> Result<Tensor> {
    a.neg()?.exp()?.affine(1.0, 1.0)?.recip()
}

impl DeviceHead {
    fn upload(h: &HeadState, device: &Device) -> Result<DeviceHead> {
        let (k, d) = (h.num_classes, h.dim);
        let scales = if h.scales.is_empty() {
            Tensor::ones(k, DType::F32, device)?
        } else {
            Tensor::from_slice(&h.scales, k, device)?
        };
        Ok(DeviceHead {
            kind: h.kind,
            weight: Tensor::from_slice(&h.weight, (k, d), device)?,
            bias: Tensor::from_slice(&h.bias, k, device)?,
            scales,
            shift: if h.shift.is_empty() {
                Tensor::zeros(k, DType::F32, device)?
            } else {
                Tensor::from_slice(&h.shift, k, device)?
            },
            gate_v: if h.gate.is_empty() {
                Tensor::zeros((d, 1), DType::F32, device)?
            } else {
                Tensor::from_slice(&h.gate[..d], (d, 1), device)?
            },
            gate_c: Tensor::from_slice(&[h.gate.get(d).copied().unwrap_or(0.0)], 1, device)?,
            m_weight: Tensor::zeros((k, d), DType::F32, device)?,
            m_bias: Tensor::zeros(k, DType::F32, device)?,
            m_scales: Tensor::zeros(k, DType::F32, device)?,
            m_shift: Tensor::zeros(k, DType::F32, device)?,
            m_gate_v: Tensor::zeros((d, 1), DType::F32, device)?,
            m_gate_c: Tensor::zeros(1, DType::F32, device)?,
        })
    }

    fn download(&self, like: &HeadState) -> Result<HeadState> {
        let mut h = like.clone();
        h.weight = self.weight.flatten_all()?.to_vec1()?;
        h.bias = self.bias.to_vec1()?;
        if !h.scales.is_empty() {
            h.scales = self.scales.to_vec1()?;
        }
        if !h.shift.is_empty() {
            h.shift = self.shift.to_vec1()?;
            h.gate = self.gate_v.flatten_all()?.to_vec1()?;
            h.gate.extend(self.gate_c.to_vec1::<f32>()?);
        }
        Ok(h)
    }

    fn forward(&self, xb: &Tensor) -> Result<Forward> {
        match self.kind {
            Head::Linear => Ok(Forward {
                z: xb.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?,
                x: xb.clone(),
                u: None,
                what: None,
                gate: None,
            }),
            Head::Cosine { scale } => {
                let x = normalize_rows(xb)?;
                let norms = self
                    .weight
                    .sqr()?
                    .sum_keepdim(1)?
                    .sqrt()?
                    .maximum(NORM_EPS)?;
                let f = norms.recip()?.affine(scale as f64, 0.0)?;
                let what = self.weight.broadcast_mul(&f)?;
                Ok(Forward {
                    z: x.matmul(&what.t()?)?,
                    x,
                    u: None,
                    what: Some((what, f)),
                    gate: None,
                })
            }
            Head::Lws { .. } => {
                let u = xb.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?;
                Ok(Forward {
                    z: u.broadcast_mul(&self.scales)?,
                    x: xb.clone(),
                    u: Some(u),
                    what: None,
                    gate: None,
                })
            }
            Head::DisAlign => {
                let u = xb.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?;
                let g = sigmoid(&xb.matmul(&self.gate_v)?.broadcast_add(&self.gate_c)?)?;
                let inner = u.broadcast_mul(&self.scales)?.broadcast_add(&self.shift)?;
                Ok(Forward {
                    z: (&u + inner.broadcast_mul(&g)?)?,
                    x: xb.clone(),
                    u: Some(u),
                    what: None,
                    gate: Some(g),
                })
            }
            Head::Ncm { .. } => unreachable!("an NCM head is not trained (MethodSpec::check)"),
        }
    }

    /// Gradients from `g` = ∂L/∂z, then the SGD step (PyTorch order, see [`crate::engine::optim`]).
    fn backward_and_step(
        &mut self,
        fwd: &Forward,
        g: &Tensor,
        lr: f64,
        mu: f64,
        wd: f64,
    ) -> Result<()> {
        fn sgd(
            p: &Tensor,
            grad: &Tensor,
            m: &Tensor,
            lr: f64,
            mu: f64,
            wd: f64,
        ) -> Result<(Tensor, Tensor)> {
            let grad = if wd == 0.0 {
                grad.clone()
            } else {
                (grad + p.affine(wd, 0.0)?)?
            };
            let m = (m.affine(mu, 0.0)? + grad)?;
            let p = (p - m.affine(lr, 0.0)?)?;
            Ok((p, m))
        }
        match self.kind {
            Head::Linear => {
                let dw = g.t()?.matmul(&fwd.x)?;
                let db = g.sum(0)?;
                (self.weight, self.m_weight) = sgd(&self.weight, &dw, &self.m_weight, lr, mu, wd)?;
                (self.bias, self.m_bias) = sgd(&self.bias, &db, &self.m_bias, lr, mu, wd)?;
            }
            Head::Cosine { scale } => {
                let (what, f) = fwd.what.as_ref().expect("cosine forward");
                // A = Gᵀ x̂ = ∂L/∂(s ŵ); ∂w = (s/‖w‖) (A − (A·ŵ) ŵ)
                let a = g.t()?.matmul(&fwd.x)?;
                let dot = (&a * what)?
                    .sum_keepdim(1)?
                    .affine(1.0 / (scale as f64 * scale as f64), 0.0)?;
                let dw = (a - what.broadcast_mul(&dot)?)?.broadcast_mul(f)?;
                (self.weight, self.m_weight) = sgd(&self.weight, &dw, &self.m_weight, lr, mu, wd)?;
            }
            Head::Lws {
                train_linear,
                lr_factor,
            } => {
                let u = fwd.u.as_ref().expect("lws forward");
                let dc = (g * u)?.sum(0)?;
                if train_linear {
                    let gu = g.broadcast_mul(&self.scales)?;
                    let dw = gu.t()?.matmul(&fwd.x)?;
                    let db = gu.sum(0)?;
                    let lr_w = lr * lr_factor as f64;
                    (self.weight, self.m_weight) =
                        sgd(&self.weight, &dw, &self.m_weight, lr_w, mu, wd)?;
                    (self.bias, self.m_bias) = sgd(&self.bias, &db, &self.m_bias, lr_w, mu, wd)?;
                }
                (self.scales, self.m_scales) = sgd(&self.scales, &dc, &self.m_scales, lr, mu, wd)?;
            }
            Head::DisAlign => {
                let u = fwd.u.as_ref().expect("disalign forward");
                let gate = fwd.gate.as_ref().expect("disalign forward");
                let gg = g.broadcast_mul(gate)?;
                let ds = (&gg * u)?.sum(0)?;
                let dt = gg.sum(0)?;
                let inner = u.broadcast_mul(&self.scales)?.broadcast_add(&self.shift)?;
                let dgate = (g * inner)?.sum_keepdim(1)?;
                let h = (dgate * gate)?.mul(&gate.affine(-1.0, 1.0)?)?;
                let dv = fwd.x.t()?.matmul(&h)?;
                let dc = h.sum(0)?;
                (self.scales, self.m_scales) = sgd(&self.scales, &ds, &self.m_scales, lr, mu, wd)?;
                (self.shift, self.m_shift) = sgd(&self.shift, &dt, &self.m_shift, lr, mu, wd)?;
                (self.gate_v, self.m_gate_v) = sgd(&self.gate_v, &dv, &self.m_gate_v, lr, mu, wd)?;
                (self.gate_c, self.m_gate_c) = sgd(&self.gate_c, &dc, &self.m_gate_c, lr, mu, wd)?;
            }
            Head::Ncm { .. } => unreachable!("an NCM head is not trained (MethodSpec::check)"),
        }
        Ok(())
    }

    /// MaxNorm: rows with ‖w_i‖ > t rescaled to norm t.
    fn project_rows(&mut self, t: f32) -> Result<()> {
        let n = self.weight.sqr()?.sum_keepdim(1)?.sqrt()?;
        let f = n.recip()?.affine(t as f64, 0.0)?.minimum(1.0)?;
        self.weight = self.weight.broadcast_mul(&f)?;
        Ok(())
    }
}

/// [`crate::engine::trainer::train`] on the device: the same batches (the host sampler), the same
/// formulas; `labels` are the train split's labels on the host (for the sampler).
#[allow(clippy::too_many_arguments)]
pub fn train_on_device(
    db: &DeviceBank,
    labels: &[u32],
    train_counts: &[usize],
    head: HeadState,
    method: &Method,
    seed: u64,
    opts: &TrainOptions,
    mut on_epoch: impl FnMut(usize, &HeadState),
) -> Result<TrainOutcome> {
    if !method.train {
        return Ok(TrainOutcome {
            head,
            epoch_loss: Vec::new(),
            step_loss: Vec::new(),
        });
    }
    let dev = &db.device;
    let hp = method.hyper;
    let rows = labels.len();
    // the host loss draws GCL's noise and keeps DRW's schedule; the device loss computes
    let mut host_loss = LossFn::for_method(method, train_counts);
    host_loss.seed_noise(seed);
    let loss = DeviceLoss::new(&host_loss, Some(host_loss.reweight()), dev)?;
    let k = head.num_classes;
    let maxnorm = maxnorm_limit(&head, method.constraint);
    let bsz = hp.batch_size.min(rows);
    let mut sampler = EpochSampler::new(method.sampler, labels, k, seed, opts.shuffle)
        .with_epochs(hp.epochs)
        .with_batch(bsz);
    let mut dh = DeviceHead::upload(&head, dev)?;
    let steps_per_epoch = crate::engine::trainer::epoch_steps(method, rows);
    let total_steps = steps_per_epoch * hp.epochs;
    let mut order = Vec::with_capacity(rows);
    let (mut epoch_loss, mut step_loss) = (Vec::with_capacity(hp.epochs), Vec::new());
    let mut step = 0usize;
    let mut current = head;
    for epoch in 0..hp.epochs {
        if opts.cancel.is_some_and(|c| c.is_cancelled()) {
            break;
        }
        sampler.next_epoch(&mut order);
        host_loss.start_epoch(epoch, hp.epochs);
        let order_t = Tensor::from_slice(&order, order.len(), dev)?;
        let mut epoch_sum = Tensor::zeros((), DType::F32, dev)?;
        for start in (0..order.len()).step_by(bsz) {
            let b = bsz.min(order.len() - start);
            let lr = lr_at(&hp, epoch, step, total_steps);
            let idx = order_t.narrow(0, start, b)?;
            let xb = db.train.x.index_select(&idx, 0)?;
            let yb = db.train_labels.index_select(&idx, 0)?;
            let fwd = dh.forward(&xb)?;
            host_loss.prepare_step(b);
            let noise = match host_loss.noise() {
                Some(n) => Some(Tensor::from_slice(n, (b, k), dev)?),
                None => None,
            };
            let inputs = StepInputs {
                noise: noise.as_ref(),
                reweight_on: host_loss.active_reweight().is_some(),
            };
            let (l, g) = loss.loss_and_grad(&fwd.z, &yb, &inputs)?;
            dh.backward_and_step(&fwd, &g, lr as f64, hp.momentum as f64, hp.wd as f64)?;
            if let Some((t, ProjectEvery::Step)) = maxnorm {
                dh.project_rows(t)?;
            }
            if opts.record_steps {
                step_loss.push(l.to_scalar::<f32>()? as f64);
            }
            epoch_sum = (epoch_sum + l)?;
            step += 1;
        }
        if let Some((t, ProjectEvery::Epoch)) = maxnorm {
            dh.project_rows(t)?;
        }
        epoch_loss.push(epoch_sum.to_scalar::<f32>()? as f64 / steps_per_epoch as f64);
        current = dh.download(&current)?;
        on_epoch(epoch, &current);
    }
    Ok(TrainOutcome {
        head: current,
        epoch_loss,
        step_loss,
    })
}
