//! Unit tests of the losses: gradients against finite differences, threads, GCL's noise.

use super::*;

/// Central finite difference of the loss w.r.t. every logit, in f64 via tiny steps on f32
/// logits of moderate size.
fn check_gradient(loss: Loss, head: Head) {
    let counts = [50usize, 20, 8, 3];
    let f = LossFn::new(loss, head, &counts);
    let (b, k) = (3, 4);
    let z: Vec<f32> = (0..b * k)
        .map(|i| ((i as f32) * 0.731).sin() * 2.0)
        .collect();
    let y = [0u32, 2, 3];
    let mut g = vec![0.0; b * k];
    f.loss_and_grad(&z, &y, &mut g);
    let mut scratch = vec![0.0; b * k];
    for j in 0..b * k {
        let h = 1e-2f32;
        let mut zp = z.clone();
        zp[j] += h;
        let lp = f.loss_and_grad(&zp, &y, &mut scratch);
        let mut zm = z.clone();
        zm[j] -= h;
        let lm = f.loss_and_grad(&zm, &y, &mut scratch);
        let fd = (lp - lm) / (2.0 * h as f64);
        assert!(
            (fd - g[j] as f64).abs() < 2e-4 + 1e-3 * fd.abs(),
            "{loss:?} logit {j}: fd {fd} vs analytic {}",
            g[j]
        );
    }
}

#[test]
fn every_loss_gradient_matches_finite_differences() {
    check_gradient(Loss::Ce { smoothing: 0.0 }, Head::Linear);
    check_gradient(Loss::Ce { smoothing: 0.98 }, Head::Linear);
    check_gradient(Loss::BalancedSoftmax { tau: 1.0 }, Head::Linear);
    check_gradient(Loss::Ldam { max_margin: 0.5 }, Head::Cosine { scale: 30.0 });
    check_gradient(
        Loss::ClassBalanced {
            beta: 0.9999,
            form: CbForm::Softmax,
        },
        Head::Linear,
    );
    check_gradient(
        Loss::ClassBalanced {
            beta: 0.9999,
            form: CbForm::Sigmoid,
        },
        Head::Linear,
    );
    check_gradient(
        Loss::ClassBalanced {
            beta: 0.9999,
            form: CbForm::SoftmaxBce,
        },
        Head::Linear,
    );
    check_gradient(Loss::Focal { gamma: 1.0 }, Head::Linear);
    check_gradient(Loss::Focal { gamma: 2.0 }, Head::Linear);
    check_gradient(Loss::Focal { gamma: 0.5 }, Head::Linear);
}

#[test]
fn threads_do_not_change_loss_or_gradient() {
    let (b, k) = (300, 50);
    let counts: Vec<usize> = (1..=k).collect();
    let z: Vec<f32> = (0..b * k)
        .map(|i| ((i as f32) * 0.37).sin() * 3.0)
        .collect();
    let y: Vec<u32> = (0..b).map(|i| (i * 7 % k) as u32).collect();
    for loss in [
        Loss::Ce { smoothing: 0.98 },
        Loss::Focal { gamma: 1.0 },
        Loss::ClassBalanced {
            beta: 0.99,
            form: CbForm::SoftmaxBce,
        },
    ] {
        let f = LossFn::new(loss, Head::Linear, &counts);
        let (mut g1, mut g2) = (vec![0.0; b * k], vec![0.0; b * k]);
        let l1 = f.loss_and_grad_par(&z, &y, &mut g1, Parallelism::None);
        let l2 = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(|| f.loss_and_grad_par(&z, &y, &mut g2, Parallelism::Rayon(2)));
        assert_eq!(l1, l2, "{loss:?}");
        assert_eq!(g1, g2, "{loss:?}");
    }
}

#[test]
fn plain_ce_by_hand() {
    // z = [0, ln 3] → p = [1/4, 3/4]; y = 1: CE = −ln(3/4); ∂ = p − onehot = [1/4, −1/4]
    let f = LossFn::new(Loss::Ce { smoothing: 0.0 }, Head::Linear, &[1, 1]);
    let mut g = vec![0.0; 2];
    let l = f.loss_and_grad(&[0.0, 3f32.ln()], &[1], &mut g);
    assert!((l - (4.0f64 / 3.0).ln()).abs() < 1e-6);
    assert!((g[0] - 0.25).abs() < 1e-6 && (g[1] + 0.25).abs() < 1e-6);
}

#[test]
fn los_gradient_is_p_minus_smoothed_targets() {
    // uniform logits, K = 100: p = 0.01 everywhere; ∂ = p − q = 0.01 − 0.0298 (true), 0.01 − 0.0098
    let k = 100;
    let f = LossFn::new(Loss::Ce { smoothing: 0.98 }, Head::Linear, &vec![1; k]);
    let mut g = vec![0.0; k];
    f.loss_and_grad(&vec![0.0; k], &[7], &mut g);
    assert!((g[7] - (0.01 - 0.0298)).abs() < 1e-7);
    assert!((g[0] - (0.01 - 0.0098)).abs() < 1e-7);
}

#[test]
fn balanced_softmax_shifts_by_log_counts() {
    // equal logits, counts [1, e²]: adjusted [0, 2]
    let f = LossFn::new(Loss::BalancedSoftmax { tau: 1.0 }, Head::Linear, &[1, 7]);
    let mut g = vec![0.0; 2];
    let l = f.loss_and_grad(&[0.0, 0.0], &[0], &mut g);
    let want = -(1.0f64 / (1.0 + 7.0)).ln();
    assert!((l - want).abs() < 1e-6, "{l} vs {want}");
}

#[test]
fn focal_with_gamma_zero_is_ce() {
    let z = [0.3f32, -1.0, 2.0, 0.5];
    let (mut g1, mut g2) = (vec![0.0; 4], vec![0.0; 4]);
    let a = LossFn::new(Loss::Focal { gamma: 0.0 }, Head::Linear, &[1, 1, 1, 1]).loss_and_grad(
        &z,
        &[2],
        &mut g1,
    );
    let b = LossFn::new(Loss::Ce { smoothing: 0.0 }, Head::Linear, &[1, 1, 1, 1]).loss_and_grad(
        &z,
        &[2],
        &mut g2,
    );
    assert!((a - b).abs() < 1e-6);
    for (x, y) in g1.iter().zip(&g2) {
        assert!((x - y).abs() < 1e-6);
    }
}

/// GCL's noise as production draws it (`LossFn::for_method` → `seed_noise` →
/// `prepare_step`): ν_ic = |clamp(ε, −1, 1)|·s·noise_mul·σ_c with ε ~ N(0, (1/3)²) fresh per
/// step, row and class. E|ε| of a half-normal with sd 1/3 is (1/3)·√(2/π) = 0.26596 (the
/// clamp at 3 sd changes it by < 1e-4); P(|ε| ≥ 1) = P(|Z| ≥ 3) = 0.0027.
#[test]
fn gcl_noise_is_the_seeded_clamped_half_normal_scaled_by_sigma() {
    use crate::method::{Constraint, Hyper, Method, PostHoc, Reweight, Sampler, Solver};
    let counts = [1000usize, 100, 10];
    let (s, noise_mul) = (20.0f32, 0.5f32);
    let method = Method {
        name: "gcl".into(),
        head: Head::Cosine { scale: s },
        loss: Loss::Gcl {
            margin: 0.1,
            noise_mul,
            gamma: 1.0,
        },
        sampler: Sampler::ClassBalanced,
        constraint: Constraint::None,
        posthoc: PostHoc::None,
        reweight: Reweight::None,
        solver: Solver::Sgd,
        train: true,
        hyper: Hyper {
            lr: 0.1,
            wd: 0.0,
            momentum: 0.9,
            epochs: 1,
            batch_size: 64,
            init: crate::method::Init::Stage1,
            schedule: crate::method::Schedule::CosineEpoch,
        },
        logit_prior: Some(crate::method::LogitPrior::Balanced),
        tta: true,
        custom: None,
    };
    let draw = |seed: u64, steps: usize, rows: usize| {
        let mut f = LossFn::for_method(&method, &counts);
        f.seed_noise(seed);
        let mut all = Vec::new();
        for _ in 0..steps {
            f.prepare_step(rows);
            all.push(f.noise().unwrap().to_vec());
        }
        all
    };
    // σ = (log 1000 − log n)/(log 1000 − log 10) = 0, 1/2, 1
    let sigma = weights::gcl_sigma(&counts);
    assert!(sigma[0] == 0.0 && (sigma[1] - 0.5).abs() < 1e-12 && sigma[2] == 1.0);
    let steps = draw(3, 200, 100);
    let scale = (s * noise_mul) as f64;
    let (mut sum, mut n, mut at_one, mut mid) = (0.0f64, 0usize, 0usize, 0.0f64);
    for step in &steps {
        for row in step.chunks_exact(3) {
            assert_eq!(row[0], 0.0, "the head class gets no noise (σ = 0)");
            let e = row[2] as f64 / scale;
            assert!((0.0..=1.0 + 1e-6).contains(&e), "|clamp(ε)| in [0, 1]: {e}");
            at_one += (e > 1.0 - 1e-6) as usize;
            sum += e;
            mid += row[1] as f64 / (scale * 0.5);
            n += 1;
        }
    }
    let mean = sum / n as f64;
    let want = (2.0 / std::f64::consts::PI).sqrt() / 3.0;
    // 20 000 draws: sd of the mean = 0.2009/3/√20000 ≈ 4.7e-4
    assert!((mean - want).abs() < 3e-3, "E|ε| {mean} vs {want}");
    assert!(
        (mid / n as f64 - want).abs() < 3e-3,
        "σ = 1/2 scales the same draw law"
    );
    // P(|ε| ≥ 1) = 0.0027: 54 of 20 000 expected
    assert!((20..=100).contains(&at_one), "clamped draws: {at_one}");
    // seeded: the same stream for a seed, another for another seed, fresh each step
    assert_eq!(draw(3, 2, 100), steps[..2].to_vec());
    assert_ne!(draw(4, 1, 100)[0], steps[0]);
    assert_ne!(steps[0], steps[1]);
}

/// A callback that writes its own constant as every gradient and returns it as the loss.
#[derive(Debug)]
struct Constant(f32);

impl crate::method::custom::CustomLoss for Constant {
    fn loss_and_grad(&self, _: &[f32], _: &[u32], _: &Ctx, g: &mut [f32]) -> Result<f64, String> {
        g.fill(self.0);
        Ok(self.0 as f64)
    }
}

/// Two rows with the same custom-loss id (a key collision) but their own callbacks, trained
/// at the same time on two threads: each calls the callback its row carries, never the other's.
#[test]
fn a_custom_loss_calls_the_callback_its_row_carries_even_when_ids_collide() {
    use crate::method::custom::CustomFn;
    use std::sync::Arc;
    let row = |name: &str, value: f32| {
        let text = format!("name = \"{name}\"\nloss = {{ kind = \"custom\", id = 7 }}");
        let mut m = toml::from_str::<crate::method::MethodSpec>(&text)
            .unwrap()
            .check(&crate::method::los_defaults())
            .unwrap();
        m.custom = Some(CustomFn(Arc::new(Constant(value))));
        m
    };
    let (a, b) = (row("a", 0.5), row("b", 0.9));
    assert_eq!(a.loss, b.loss, "one id, one record key");
    let run = |m: &Method| {
        let f = LossFn::for_method(m, &[5, 3]);
        (0..200)
            .map(|_| {
                let mut g = vec![0.0f32; 4];
                let l = f.loss_and_grad(&[0.0; 4], &[0, 1], &mut g);
                assert!(g.iter().all(|&x| x as f64 == l));
                l
            })
            .collect::<Vec<f64>>()
    };
    let (la, lb) = std::thread::scope(|s| {
        let ta = s.spawn(|| run(&a));
        let tb = s.spawn(|| run(&b));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert!(la.iter().all(|&l| l == 0.5f32 as f64), "{la:?}");
    assert!(lb.iter().all(|&l| l == 0.9f32 as f64), "{lb:?}");
}
