//! One pass for many heads: methods that share the sampler, seed, batch size and number of
//! epochs see the same minibatches, so their linear heads can be trained together —
//! `Z = X_b · [W_1 … W_M]ᵀ` and `[∂W_1 … ∂W_M] = [G_1 … G_M]ᵀ · X_b` are one GEMM each
//! (a wider, more efficient product, and the batch is gathered once). Each method keeps its own
//! loss, learning rate, weight decay, momentum and MaxNorm projection on its slice.
//!
//! This is an option (`--one-pass`), not the only path: [`crate::engine::trainer::train`] stays the
//! simple reference, and a test checks that both give the same heads.

use crate::engine::head::HeadState;
use crate::engine::linalg::{Parallelism, matmul_abt, matmul_atb};
use crate::engine::loss::LossFn;
use crate::engine::optim::{sgd_step, sgd_step_par};
use crate::engine::sampler::EpochSampler;
use crate::engine::trainer::{TrainOptions, lr_at, maxnorm_limit, project_rows};
use crate::method::{Head, Method, ProjectEvery, Solver};
use bank::Split;

/// Whether `method` can share a pass: a linear head trained by SGD.
pub fn shareable(method: &Method) -> bool {
    method.train && method.head == Head::Linear && method.solver == Solver::Sgd
}

/// The key of the batch sequence a method sees: methods with equal keys share a pass.
pub fn pass_key(method: &Method, seed: u64) -> (u64, String, usize, usize) {
    (
        seed,
        format!("{:?}", method.sampler),
        method.hyper.batch_size,
        method.hyper.epochs,
    )
}

/// The heads of one pass stacked: parameters [M·K, D] and [M·K], their momenta, each head's
/// loss and MaxNorm limit, and the minibatch buffers.
struct Stack<'a> {
    methods: &'a [&'a Method],
    k: usize,
    d: usize,
    w: Vec<f32>,
    b: Vec<f32>,
    mw: Vec<f32>,
    mb: Vec<f32>,
    losses: Vec<LossFn>,
    maxnorm: Vec<Option<(f32, ProjectEvery)>>,
    xb: Vec<f32>,
    yb: Vec<u32>,
    z: Vec<f32>,
    g: Vec<f32>,
    zm: Vec<f32>,
    gm: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

impl<'a> Stack<'a> {
    fn new(
        heads: &[HeadState],
        methods: &'a [&'a Method],
        train_counts: &[usize],
        bsz: usize,
    ) -> Self {
        let (k, d) = (heads[0].num_classes, heads[0].dim);
        let nk = methods.len() * k;
        Stack {
            methods,
            k,
            d,
            w: heads
                .iter()
                .flat_map(|h| h.weight.iter().copied())
                .collect(),
            b: heads.iter().flat_map(|h| h.bias.iter().copied()).collect(),
            mw: vec![0.0; nk * d],
            mb: vec![0.0; nk],
            losses: methods
                .iter()
                .map(|m| LossFn::for_method(m, train_counts))
                .collect(),
            maxnorm: methods
                .iter()
                .zip(heads)
                .map(|(m, h)| maxnorm_limit(h, m.constraint))
                .collect(),
            xb: vec![0.0; bsz * d],
            yb: vec![0; bsz],
            z: vec![0.0; bsz * nk],
            g: vec![0.0; bsz * nk],
            zm: vec![0.0; bsz * k],
            gm: vec![0.0; bsz * k],
            dw: vec![0.0; nk * d],
            db: vec![0.0; nk],
        }
    }

    /// One step on the rows `batch`: the wide forward GEMM, each head's loss gradient, the
    /// wide weight-gradient GEMM, then each head's SGD update (and MaxNorm per step). Adds
    /// each head's batch loss to `sums`.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        split: &Split,
        batch: &[u32],
        epoch: usize,
        step: usize,
        steps_per_epoch: usize,
        sums: &mut [f64],
        par: Parallelism,
        views: Option<(&bank::Views, &[u32])>,
    ) {
        let (k, d) = (self.k, self.d);
        let nk = self.methods.len() * k;
        let nb = batch.len();
        let features = split.features();
        for (j, &i) in batch.iter().enumerate() {
            let i = i as usize;
            let row = &mut self.xb[j * d..(j + 1) * d];
            match views {
                Some((v, choice)) => v.row_into(choice[i] as usize, i, row),
                None => row.copy_from_slice(&features[i * d..(i + 1) * d]),
            }
            self.yb[j] = split.labels[i];
        }
        for r in self.z[..nb * nk].chunks_exact_mut(nk) {
            r.copy_from_slice(&self.b);
        }
        matmul_abt(&mut self.z, &self.xb, &self.w, nb, nk, d, true, par);
        for (mi, loss) in self.losses.iter().enumerate() {
            for r in 0..nb {
                self.zm[r * k..(r + 1) * k]
                    .copy_from_slice(&self.z[r * nk + mi * k..r * nk + (mi + 1) * k]);
            }
            sums[mi] += loss.loss_and_grad_par(
                &self.zm[..nb * k],
                &self.yb[..nb],
                &mut self.gm[..nb * k],
                par,
            );
            for r in 0..nb {
                self.g[r * nk + mi * k..r * nk + (mi + 1) * k]
                    .copy_from_slice(&self.gm[r * k..(r + 1) * k]);
            }
        }
        matmul_atb(&mut self.dw, &self.g, &self.xb, nb, nk, d, par);
        self.db.fill(0.0);
        for gr in self.g[..nb * nk].chunks_exact(nk) {
            self.db.iter_mut().zip(gr).for_each(|(s, v)| *s += v);
        }
        for (mi, m) in self.methods.iter().enumerate() {
            let hp = m.hyper;
            let lr = lr_at(&hp, epoch, step, steps_per_epoch * hp.epochs);
            let (rw, rb) = (mi * k * d..(mi + 1) * k * d, mi * k..(mi + 1) * k);
            sgd_step_par(
                &mut self.w[rw.clone()],
                &self.dw[rw.clone()],
                &mut self.mw[rw.clone()],
                lr,
                hp.momentum,
                hp.wd,
                par,
            );
            sgd_step(
                &mut self.b[rb.clone()],
                &self.db[rb.clone()],
                &mut self.mb[rb],
                lr,
                hp.momentum,
                hp.wd,
            );
            if let Some((t, ProjectEvery::Step)) = self.maxnorm[mi] {
                project_rows(&mut self.w[rw], d, t);
            }
        }
    }

    /// After an epoch: MaxNorm per epoch where it applies.
    fn end_epoch(&mut self) {
        let (k, d) = (self.k, self.d);
        for mi in 0..self.methods.len() {
            if let Some((t, ProjectEvery::Epoch)) = self.maxnorm[mi] {
                project_rows(&mut self.w[mi * k * d..(mi + 1) * k * d], d, t);
            }
        }
    }

    /// Head `mi` of the stack, in the shape of `like`.
    fn head(&self, mi: usize, like: &HeadState) -> HeadState {
        let (k, d) = (self.k, self.d);
        let mut h = like.clone();
        h.weight
            .copy_from_slice(&self.w[mi * k * d..(mi + 1) * k * d]);
        h.bias.copy_from_slice(&self.b[mi * k..(mi + 1) * k]);
        h
    }
}

/// Train several linear heads in one pass. All `methods` must be [`shareable`] with the same
/// [`pass_key`]. `on_epoch(m, e, &head)` runs after every epoch for every head.
pub fn train_many(
    split: &Split,
    train_counts: &[usize],
    heads: Vec<HeadState>,
    methods: &[&Method],
    seed: u64,
    opts: &TrainOptions,
    mut on_epoch: impl FnMut(usize, usize, &HeadState),
) -> Vec<(HeadState, Vec<f64>)> {
    let m_count = methods.len();
    assert!(m_count > 0 && heads.len() == m_count);
    let k = heads[0].num_classes;
    let hp0 = methods[0].hyper;
    let bsz = hp0.batch_size.min(split.rows);
    let mut stack = Stack::new(&heads, methods, train_counts, bsz);
    let cancel = opts.cancel.cloned().unwrap_or_default();
    for l in &mut stack.losses {
        l.set_cancel(&cancel);
    }
    let mut sampler = EpochSampler::new(methods[0].sampler, &split.labels, k, seed, opts.shuffle)
        .with_epochs(hp0.epochs)
        .with_batch(bsz);
    let steps_per_epoch = crate::engine::trainer::epoch_steps(methods[0], split.rows);
    let mut order = Vec::with_capacity(split.rows);
    let mut step = 0usize;
    let mut epoch_loss = vec![Vec::with_capacity(hp0.epochs); m_count];
    for epoch in 0..hp0.epochs {
        if cancel.is_cancelled() {
            break;
        }
        sampler.next_epoch(&mut order);
        let choice = opts
            .views
            .map(|v| crate::engine::sampler::view_choices(seed, epoch, split.rows, v.count));
        for (l, m) in stack.losses.iter_mut().zip(methods) {
            l.start_epoch(epoch, m.hyper.epochs);
        }
        let mut sums = vec![0.0f64; m_count];
        for batch in order.chunks(bsz) {
            stack.step(
                split,
                batch,
                epoch,
                step,
                steps_per_epoch,
                &mut sums,
                opts.par,
                opts.views.zip(choice.as_deref()),
            );
            step += 1;
        }
        for (l, s) in epoch_loss.iter_mut().zip(&sums) {
            l.push(s / steps_per_epoch as f64);
        }
        stack.end_epoch();
        for (mi, h) in heads.iter().enumerate() {
            on_epoch(mi, epoch, &stack.head(mi, h));
        }
    }
    heads
        .iter()
        .enumerate()
        .zip(epoch_loss)
        .map(|((mi, h), l)| (stack.head(mi, h), l))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::linalg::Parallelism;
    use crate::engine::trainer::train;
    use crate::method::{Hyper, Init, MethodSpec, Schedule};
    use bank::Features;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Bit-identical at the widths of real heads (here K = 100). For very narrow heads
    /// (K < 16) gemm uses a different edge kernel for the wider product and the last bits of
    /// the forward GEMM can differ (seen at K = 5: |Δw| ≈ 2e-8 after 3 epochs).
    #[test]
    fn one_pass_gives_the_same_heads_as_separate_runs() {
        let (n, d, k) = (400, 64, 100);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<u32> = (0..n)
            .map(|i| {
                if i < k {
                    i as u32
                } else {
                    ((i * i + i) % 101 % k) as u32
                }
            })
            .collect();
        let split = Split {
            path: "t".into(),
            rows: n,
            dim: d,
            features: Features::Owned(x),
            features_flip: None,
            labels: y,
        };
        let counts = split.class_counts(k);
        let hyper = Hyper {
            lr: 0.05,
            wd: 5e-4,
            momentum: 0.9,
            epochs: 3,
            batch_size: 32,
            init: Init::Stage1,
            schedule: Schedule::CosineEpoch,
        };
        let rows = [
            "name = \"a\"",
            "name = \"los\"\nloss = { kind = \"ce\", smoothing = 0.98 }",
            "name = \"bs\"\nloss = { kind = \"balanced-softmax\" }\nlr = 0.01",
            "name = \"f\"\nloss = { kind = \"focal\", gamma = 2.0 }\nwd = 0.0",
            "name = \"mn\"\nconstraint = { kind = \"max-norm\", thresh = 0.1 }",
            "name = \"cb\"\nloss = { kind = \"class-balanced\", beta = 0.99, form = \"sigmoid\" }",
        ];
        let methods: Vec<Method> = rows
            .iter()
            .map(|r| {
                toml::from_str::<MethodSpec>(r)
                    .unwrap()
                    .check(&hyper)
                    .unwrap()
            })
            .collect();
        let init = HeadState::fresh(Head::Linear, k, d, &mut rng);
        for par in [Parallelism::None, Parallelism::Rayon(2)] {
            let opts = TrainOptions {
                par,
                ..Default::default()
            };
            let refs: Vec<&Method> = methods.iter().collect();
            let together = train_many(
                &split,
                &counts,
                vec![init.clone(); methods.len()],
                &refs,
                11,
                &opts,
                |_, _, _| {},
            );
            for (m, (h, losses)) in methods.iter().zip(&together) {
                let run = train(&split, &counts, init.clone(), m, 11, &opts, |_, _| {});
                assert_eq!(&run.epoch_loss, losses, "{}: epoch losses", m.name);
                let alone = run.head;
                let max = alone
                    .weight
                    .iter()
                    .zip(&h.weight)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    alone == *h,
                    "{}: one-pass head differs from the single run (max |Δw| = {max:e})",
                    m.name
                );
            }
        }
    }
}
