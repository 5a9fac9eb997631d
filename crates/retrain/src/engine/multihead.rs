//! One pass for many heads: methods that share the sampler, seed, batch size and number of
//! epochs see the same minibatches, so their linear heads can be trained together —
//! `Z = X_b · [W_1 … W_M]ᵀ` and `[∂W_1 … ∂W_M] = [G_1 … G_M]ᵀ · X_b` are one GEMM each
//! (a wider, more efficient product, and the batch is gathered once). Each method keeps its own
//! loss, learning rate, weight decay, momentum and MaxNorm projection on its slice.
//!
//! This is an option (`--one-pass`), not the only path: [`crate::engine::trainer::train`] stays the
//! simple reference, and a test checks that both give the same heads.

use crate::engine::head::HeadState;
use crate::engine::linalg::{matmul_abt, matmul_atb};
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
    let (k, d) = (heads[0].num_classes, heads[0].dim);
    let hp0 = methods[0].hyper;
    let nk = m_count * k;
    // stacked parameters [M·K, D] and [M·K]
    let mut w: Vec<f32> = heads
        .iter()
        .flat_map(|h| h.weight.iter().copied())
        .collect();
    let mut b: Vec<f32> = heads.iter().flat_map(|h| h.bias.iter().copied()).collect();
    let (mut mw, mut mb) = (vec![0.0f32; nk * d], vec![0.0f32; nk]);
    let losses: Vec<LossFn> = methods
        .iter()
        .map(|m| LossFn::new(m.loss, m.head, train_counts))
        .collect();
    let maxnorm: Vec<Option<(f32, ProjectEvery)>> = methods
        .iter()
        .zip(&heads)
        .map(|(m, h)| maxnorm_limit(h, m.constraint))
        .collect();
    let bsz = hp0.batch_size.min(split.rows);
    let mut sampler = EpochSampler::new(methods[0].sampler, &split.labels, k, seed, opts.shuffle);
    let (mut xb, mut yb) = (vec![0.0f32; bsz * d], vec![0u32; bsz]);
    let (mut z, mut g) = (vec![0.0f32; bsz * nk], vec![0.0f32; bsz * nk]);
    let (mut zm, mut gm) = (vec![0.0f32; bsz * k], vec![0.0f32; bsz * k]);
    let mut dw = vec![0.0f32; nk * d];
    let mut db = vec![0.0f32; nk];
    let features = split.features();
    let steps_per_epoch = split.rows.div_ceil(bsz);
    let mut order = Vec::with_capacity(split.rows);
    let mut step = 0usize;
    let mut epoch_loss = vec![Vec::with_capacity(hp0.epochs); m_count];
    for epoch in 0..hp0.epochs {
        sampler.next_epoch(&mut order);
        let mut sums = vec![0.0f64; m_count];
        for batch in order.chunks(bsz) {
            let nb = batch.len();
            for (j, &i) in batch.iter().enumerate() {
                let i = i as usize;
                xb[j * d..(j + 1) * d].copy_from_slice(&features[i * d..(i + 1) * d]);
                yb[j] = split.labels[i];
            }
            for r in z[..nb * nk].chunks_exact_mut(nk) {
                r.copy_from_slice(&b);
            }
            matmul_abt(&mut z, &xb, &w, nb, nk, d, true, opts.par);
            for (mi, loss) in losses.iter().enumerate() {
                for r in 0..nb {
                    zm[r * k..(r + 1) * k]
                        .copy_from_slice(&z[r * nk + mi * k..r * nk + (mi + 1) * k]);
                }
                sums[mi] +=
                    loss.loss_and_grad_par(&zm[..nb * k], &yb[..nb], &mut gm[..nb * k], opts.par);
                for r in 0..nb {
                    g[r * nk + mi * k..r * nk + (mi + 1) * k]
                        .copy_from_slice(&gm[r * k..(r + 1) * k]);
                }
            }
            matmul_atb(&mut dw, &g, &xb, nb, nk, d, opts.par);
            db.fill(0.0);
            for gr in g[..nb * nk].chunks_exact(nk) {
                db.iter_mut().zip(gr).for_each(|(s, v)| *s += v);
            }
            for (mi, m) in methods.iter().enumerate() {
                let hp = m.hyper;
                let lr = lr_at(&hp, epoch, step, steps_per_epoch * hp.epochs);
                let (rw, rb) = (mi * k * d..(mi + 1) * k * d, mi * k..(mi + 1) * k);
                sgd_step_par(
                    &mut w[rw.clone()],
                    &dw[rw.clone()],
                    &mut mw[rw.clone()],
                    lr,
                    hp.momentum,
                    hp.wd,
                    opts.par,
                );
                sgd_step(
                    &mut b[rb.clone()],
                    &db[rb.clone()],
                    &mut mb[rb],
                    lr,
                    hp.momentum,
                    hp.wd,
                );
                if let Some((t, ProjectEvery::Step)) = maxnorm[mi] {
                    project_rows(&mut w[rw], d, t);
                }
            }
            step += 1;
        }
        for (l, s) in epoch_loss.iter_mut().zip(&sums) {
            l.push(s / steps_per_epoch as f64);
        }
        let mut out_heads = Vec::new();
        for (mi, h) in heads.iter().enumerate() {
            if let Some((t, ProjectEvery::Epoch)) = maxnorm[mi] {
                project_rows(&mut w[mi * k * d..(mi + 1) * k * d], d, t);
            }
            let mut h = h.clone();
            h.weight.copy_from_slice(&w[mi * k * d..(mi + 1) * k * d]);
            h.bias.copy_from_slice(&b[mi * k..(mi + 1) * k]);
            out_heads.push(h);
        }
        for (mi, h) in out_heads.iter().enumerate() {
            on_epoch(mi, epoch, h);
        }
    }
    heads
        .into_iter()
        .enumerate()
        .zip(epoch_loss)
        .map(|((mi, mut h), l)| {
            h.weight.copy_from_slice(&w[mi * k * d..(mi + 1) * k * d]);
            h.bias.copy_from_slice(&b[mi * k..(mi + 1) * k]);
            (h, l)
        })
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
