//! Unit tests of the heads: gradients against finite differences, by-hand class means and
//! NCM, inference against the training forward, the post-hoc rules.

use super::*;
use crate::engine::linalg::Parallelism;
use crate::method::Head;

fn head(kind: Head) -> HeadState {
    let (k, d) = (3, 4);
    let w = (0..k * d).map(|i| ((i as f32) * 0.37).sin()).collect();
    let b = vec![0.1, -0.2, 0.3];
    let mut h = HeadState::from_linear(kind, k, d, w, b);
    if matches!(kind, Head::Lws { .. } | Head::DisAlign) {
        h.scales = vec![0.9, 1.2, 1.05];
    }
    if kind == Head::DisAlign {
        h.shift = vec![0.2, -0.1, 0.05];
        h.gate = vec![0.3, -0.2, 0.1, 0.4, -0.15];
    }
    h
}

/// loss = Σ z ⊙ R for a fixed R, so ∂L/∂z = R.
fn loss_of(h: &HeadState, x: &[f32], r: &[f32]) -> f64 {
    let mut buf = StepBuffers::new(2, 3, 4);
    buf.xb.copy_from_slice(x);
    forward(h, &mut buf, 2, Parallelism::None);
    buf.z.iter().zip(r).map(|(z, r)| (z * r) as f64).sum()
}

#[test]
fn head_gradients_match_finite_differences() {
    let x: Vec<f32> = (0..8).map(|i| ((i as f32) * 1.3).cos() + 0.5).collect();
    let r: Vec<f32> = (0..6).map(|i| ((i as f32) * 0.9).sin()).collect();
    for kind in [
        Head::Linear,
        Head::Cosine { scale: 16.0 },
        Head::Lws {
            train_linear: false,
            lr_factor: 1.0,
        },
        Head::Lws {
            train_linear: true,
            lr_factor: 1.0,
        },
        Head::DisAlign,
    ] {
        let h = head(kind);
        let mut buf = StepBuffers::new(2, 3, 4);
        buf.xb.copy_from_slice(&x);
        forward(&h, &mut buf, 2, Parallelism::None);
        buf.g.copy_from_slice(&r);
        backward(&h, &mut buf, 2, Parallelism::None);
        let eps = 1e-3f32;
        let params: Vec<(&str, usize)> = match kind {
            Head::Linear => vec![("w", 12), ("b", 3)],
            Head::Cosine { .. } => vec![("w", 12)],
            Head::Lws {
                train_linear: false,
                ..
            } => vec![("c", 3)],
            Head::Lws {
                train_linear: true, ..
            } => vec![("w", 12), ("b", 3), ("c", 3)],
            Head::DisAlign => vec![("c", 3), ("t", 3), ("v", 5)],
            Head::Ncm { .. } => unreachable!("not trained"),
        };
        for (name, n) in params {
            for j in 0..n {
                let bump = |delta: f32| {
                    let mut h2 = h.clone();
                    match name {
                        "w" => h2.weight[j] += delta,
                        "b" => h2.bias[j] += delta,
                        "t" => h2.shift[j] += delta,
                        "v" => h2.gate[j] += delta,
                        _ => h2.scales[j] += delta,
                    }
                    loss_of(&h2, &x, &r)
                };
                let fd = (bump(eps) - bump(-eps)) / (2.0 * eps as f64);
                let an = match name {
                    "w" => buf.dw[j],
                    "b" => buf.db[j],
                    "t" => buf.dt[j],
                    "v" => buf.dgate[j],
                    _ => buf.dc[j],
                } as f64;
                assert!(
                    (fd - an).abs() < 2e-2 * (1.0 + fd.abs()),
                    "{kind:?} {name}[{j}]: fd {fd} vs {an}"
                );
            }
        }
    }
}

/// Two classes in 2-D, by hand: class 0 rows (3, 4) and (1, 0) normalise to (0.6, 0.8) and
/// (1, 0), mean (0.8, 0.4), unit (2, 1)/√5; scaled to radius 2.
#[test]
/// Two classes in 2-D, by hand (LIFT: the mean of the raw rows, then normalised): class 0
/// rows (3, 4) and (1, 0) have mean (2, 2), unit (1, 1)/√2; scaled to radius 2.
fn class_mean_head_by_hand() {
    let x = [3.0f32, 4.0, 1.0, 0.0, 0.0, -2.0];
    let h = HeadState::class_mean(Head::Linear, 2, &x, &[0, 0, 1], 2.0);
    let r2 = 2f32.sqrt();
    assert!((h.weight[0] - r2).abs() < 1e-6 && (h.weight[1] - r2).abs() < 1e-6);
    assert_eq!(&h.weight[2..], &[0.0, -2.0]);
    assert_eq!(h.bias, vec![0.0, 0.0]);
}

/// NCM cl2n + l2 by hand: rows (3, 4), (1, 0) of class 0 and (0, −2) of class 1 have mean
/// (4/3, 2/3); centred and normalised they are (1, 2)/√5, −(1, 2)/√5, −(1, 2)/√5, so
/// μ_0 = 0 and μ_1 = −(1, 2)/√5. The row (3, 4) scores −‖x̂ − μ_0‖² = −1 and
/// −‖x̂ − μ_1‖² = −‖2(1, 2)/√5‖² = −4; with `cos` (x̂·μ/D) 0 and −1/2.
#[test]
fn ncm_cl2n_by_hand() {
    let x = [3.0f32, 4.0, 1.0, 0.0, 0.0, -2.0];
    let l2 = HeadState::ncm(NcmFeatures::Cl2n, NcmDistance::L2, 2, &x, &[0, 0, 1]);
    assert!((l2.center[0] - 4.0 / 3.0).abs() < 1e-6 && (l2.center[1] - 2.0 / 3.0).abs() < 1e-6);
    let mut z = vec![0.0; 2];
    let e = l2.eval_head(PostHoc::None, &[0.0; 2]);
    e.logits(&x[..2], 1, &mut z, &mut Vec::new(), Parallelism::None);
    assert!(
        (z[0] + 1.0).abs() < 1e-5 && (z[1] + 4.0).abs() < 1e-5,
        "{z:?}"
    );
    let cos = HeadState::ncm(NcmFeatures::Cl2n, NcmDistance::Cos, 2, &x, &[0, 0, 1]);
    let e = cos.eval_head(PostHoc::None, &[0.0; 2]);
    e.logits(&x[..2], 1, &mut z, &mut Vec::new(), Parallelism::None);
    assert!(z[0].abs() < 1e-6 && (z[1] + 0.5).abs() < 1e-6, "{z:?}");
}

/// A correction added to a gated head's logits lands after the gate: the gated logits
/// plus `delta`, exactly.
#[test]
fn a_correction_of_a_gated_head_is_added_after_the_gate() {
    let x: Vec<f32> = (0..8).map(|i| ((i as f32) * 1.3).cos() + 0.5).collect();
    let h = head(Head::DisAlign);
    let plain = h.eval_head(PostHoc::None, &[0.0; 3]);
    let mut shifted = plain.clone();
    let delta = [0.5f32, -1.0, 2.0];
    shifted.add_to_logits(&delta);
    assert_eq!(shifted.bias, plain.bias);
    let (mut a, mut b) = (vec![0.0; 6], vec![0.0; 6]);
    plain.logits(&x, 2, &mut a, &mut Vec::new(), Parallelism::None);
    shifted.logits(&x, 2, &mut b, &mut Vec::new(), Parallelism::None);
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!((b - a - delta[i % 3]).abs() < 1e-6);
    }
}

/// What the trainer sees (forward) is what inference computes (eval_head), for every head.
#[test]
fn inference_logits_equal_training_forward() {
    let x: Vec<f32> = (0..8).map(|i| ((i as f32) * 1.3).cos() + 0.5).collect();
    for kind in [
        Head::Linear,
        Head::Cosine { scale: 16.0 },
        Head::Lws {
            train_linear: true,
            lr_factor: 1.0,
        },
        Head::DisAlign,
    ] {
        let h = head(kind);
        let mut buf = StepBuffers::new(2, 3, 4);
        buf.xb.copy_from_slice(&x);
        forward(&h, &mut buf, 2, Parallelism::None);
        let e = h.eval_head(PostHoc::None, &[0.0; 3]);
        let mut z = vec![0.0; 6];
        e.logits(&x, 2, &mut z, &mut Vec::new(), Parallelism::None);
        for (a, b) in z.iter().zip(&buf.z) {
            assert!((a - b).abs() < 1e-5, "{kind:?}: {z:?} vs {:?}", buf.z);
        }
    }
}

#[test]
fn tau_norm_with_tau_one_gives_unit_rows_and_no_bias() {
    let e = head(Head::Linear).eval_head(PostHoc::TauNorm { tau: 1.0 }, &[0.0; 3]);
    for row in e.weight.chunks_exact(4) {
        assert!((row.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
    }
    assert!(e.bias.iter().all(|&b| b == 0.0));
    // τ = 0 leaves W unchanged
    let e0 = head(Head::Linear).eval_head(PostHoc::TauNorm { tau: 0.0 }, &[0.0; 3]);
    assert_eq!(e0.weight, head(Head::Linear).weight);
}

#[test]
fn logit_adjust_subtracts_tau_log_prior() {
    let lp = [(0.5f64).ln(), (0.3f64).ln(), (0.2f64).ln()];
    let e = head(Head::Linear).eval_head(PostHoc::LogitAdjust { tau: 1.0 }, &lp);
    assert!((e.bias[2] - (0.3 - (0.2f64).ln() as f32)).abs() < 1e-6);
}

/// DisAlign's start (cvpods `DisAlignLinear`): s = 1, t = 0, v = 0.1, and the gate bias c an
/// nn.Linear bias draw, U(−1/√D, 1/√D): the same for one seed, different across seeds, and
/// over many seeds within the bound with the uniform's mean 0 and variance bound²/3.
#[test]
fn disalign_gate_bias_is_nn_linear_init_and_seeded() {
    use rand::SeedableRng;
    let (k, d) = (3, 16);
    let start = |seed: u64| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        HeadState::from_linear(Head::DisAlign, k, d, vec![0.5; k * d], vec![0.0; k])
            .with_disalign_gate_bias(&mut rng)
    };
    let h = start(7);
    assert_eq!(h.scales, vec![1.0; k]);
    assert_eq!(h.shift, vec![0.0; k]);
    assert!(h.gate[..d].iter().all(|&v| v == DISALIGN_GATE_WEIGHT));
    assert_eq!(h.gate[d], start(7).gate[d]);
    assert_ne!(h.gate[d], start(8).gate[d]);
    let bound = 1.0 / (d as f64).sqrt();
    let c: Vec<f64> = (0..4000).map(|s| start(s).gate[d] as f64).collect();
    assert!(c.iter().all(|v| v.abs() < bound));
    let mean = c.iter().sum::<f64>() / c.len() as f64;
    let var = c.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c.len() as f64;
    // sd of the mean: bound/√3/√4000 ≈ 0.0023
    assert!(mean.abs() < 0.01, "{mean}");
    assert!((var / (bound * bound / 3.0) - 1.0).abs() < 0.08, "{var}");
    // other heads are untouched
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let lin = HeadState::from_linear(Head::Linear, k, d, vec![0.5; k * d], vec![0.0; k]);
    assert_eq!(lin.clone().with_disalign_gate_bias(&mut rng), lin);
}
