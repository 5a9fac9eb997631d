//! The hand-written pass against candle's autograd and finite differences.

use super::kernels::*;
use super::*;
use crate::Arch;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// The hand-written pass computes candle's train-mode small CNN (with a correct max-pool
/// gradient): loss, logits, every parameter gradient and the updated running statistics.
#[test]
fn matches_candle_autograd_on_the_small_cnn() {
    let dev = Device::Cpu;
    let (b, h, w, k) = (6, 12, 8, 4);
    let vm = VarMap::new();
    let model = Arch::SmallCnn
        .build(Some(k), VarBuilder::from_varmap(&vm, DType::F32, &dev))
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut fast = SmallCnnCpu::new(1, k);
    let vars: Vec<_> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut vars = vars;
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, var) in &vars {
        let v: Vec<f32> = (0..var.elem_count())
            .map(|_| {
                if key.ends_with("running_var") {
                    rng.random_range(0.5..2.0)
                } else {
                    rng.random_range(-0.5..0.5)
                }
            })
            .collect();
        var.set(&Tensor::from_slice(&v, var.shape(), &dev).unwrap())
            .unwrap();
        fast.set(key, &v).unwrap();
    }
    let x: Vec<f32> = (0..b * h * w)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let y: Vec<u32> = (0..b as u32).map(|i| i % k as u32).collect();

    let pass = fast.forward_backward(&x, h, w, &y).unwrap();

    let xt = Tensor::from_slice(&x, (b, 1, h, w), &dev).unwrap();
    let yt = Tensor::from_slice(&y, b, &dev).unwrap();
    let logits = model
        .head()
        .unwrap()
        .forward(&model.features_t(&xt, true).unwrap())
        .unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &yt).unwrap();
    let grads = loss.backward().unwrap();
    let l = loss.to_scalar::<f32>().unwrap() as f64;
    assert!(
        (pass.loss - l).abs() < 1e-5 * l.abs().max(1.0),
        "{} {l}",
        pass.loss
    );
    let lg: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
    assert!(max_rel_diff(&lg, &pass.logits) < 1e-4);
    for ((name, _), g) in fast.param_names().iter().zip(&pass.grads) {
        let var = &vars.iter().find(|(k, _)| k == name).unwrap().1;
        let want: Vec<f32> = grads
            .get(var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let d = max_rel_diff(&want, g);
        assert!(d < 1e-3, "gradient of {name}: max relative difference {d}");
    }
    for (key, var) in &vars {
        if key.contains("running") {
            let want: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let d = max_rel_diff(&want, fast.get(key).unwrap());
            assert!(d < 1e-5, "{key}: {d}");
        }
    }
}

/// A check independent of candle: central finite differences of the loss agree with the
/// analytic gradient (BatchNorm in train mode; the running statistics do not enter the
/// loss).
#[test]
fn gradients_match_finite_differences() {
    let (b, h, w, k) = (4, 8, 8, 3);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut net = SmallCnnCpu::new(1, k);
    for (name, shape) in net.param_names() {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                if name.starts_with("bn") && name.ends_with("weight") {
                    rng.random_range(0.5..1.5)
                } else {
                    rng.random_range(-0.5..0.5)
                }
            })
            .collect();
        net.set(&name, &v).unwrap();
    }
    let x: Vec<f32> = (0..b * h * w)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let y = vec![0, 1, 2, 1];
    let pass = net.clone().forward_backward(&x, h, w, &y).unwrap();
    let eps = 1e-3f32;
    for (pi, (name, _)) in net.param_names().iter().enumerate() {
        for t in 0..3 {
            let j = (t * 7919 + 13) % net.params[pi].len();
            let mut plus = net.clone();
            plus.params[pi][j] += eps;
            let mut minus = net.clone();
            minus.params[pi][j] -= eps;
            let fd = (plus.forward_backward(&x, h, w, &y).unwrap().loss
                - minus.forward_backward(&x, h, w, &y).unwrap().loss)
                / (2.0 * eps as f64);
            let an = pass.grads[pi][j] as f64;
            assert!(
                (fd - an).abs() < 2e-3 + 0.05 * an.abs(),
                "{name}[{j}]: finite difference {fd}, analytic {an}"
            );
        }
    }
}

/// Fixed-order reductions: one thread and three threads give bit-identical results.
#[test]
fn a_step_does_not_depend_on_the_thread_count() {
    let (b, h, w, k) = (19, 8, 12, 5);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut net = SmallCnnCpu::new(1, k);
    for (name, shape) in net.param_names() {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-0.5..0.5)).collect();
        net.set(&name, &v).unwrap();
    }
    let x: Vec<f32> = (0..b * h * w)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let y: Vec<u32> = (0..b as u32).map(|i| (i * 3) % k as u32).collect();
    let run = |threads: usize| {
        let mut n = net.clone();
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let p = n.forward_backward(&x, h, w, &y).unwrap();
                n.sgd_step(&p.grads, 0.1, 0.9, 5e-3);
                (p.loss, p.grads, n.params, n.running)
            })
    };
    let (a, b3) = (run(1), run(3));
    assert_eq!(a.0.to_bits(), b3.0.to_bits());
    assert!(a.1 == b3.1 && a.2 == b3.2 && a.3 == b3.3);
}

#[test]
fn max_pool_routes_the_gradient_to_the_first_maximum() {
    let x = [1.0, 4.0, 3.0, 4.0, /* row 2 */ 0.0, 2.0, 9.0, 5.0];
    let (p, a) = max_pool(&x, 1, 2, 4);
    assert_eq!(p, vec![4.0, 9.0]);
    let g = max_unpool(&[1.0, 2.0], &a, 1, 2, 4);
    assert_eq!(g, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0]);
}

#[test]
fn sgd_step_is_pytorchs_coupled_weight_decay_momentum() {
    let mut net = SmallCnnCpu::new(1, 2);
    let names = net.param_names();
    net.set(&names[0].0, &[0.5; 9 * 32]).unwrap();
    let mut g: Vec<Vec<f32>> = net.params.iter().map(|p| vec![0.0; p.len()]).collect();
    g[0].fill(1.0);
    net.sgd_step(&g, 0.1, 0.9, 0.01);
    // buf = 1 + 0.01·0.5 = 1.005; w = 0.5 − 0.1·1.005
    assert!((net.params[0][0] - 0.3995).abs() < 1e-6);
    net.sgd_step(&g, 0.1, 0.9, 0.01);
    let buf = 0.9 * 1.005 + (1.0 + 0.01 * 0.3995);
    assert!((net.get("momentum.conv1.weight").unwrap()[0] - buf).abs() < 1e-6);
    assert!((net.params[0][0] - (0.3995 - 0.1 * buf)).abs() < 1e-6);
}

#[test]
fn rejects_unknown_names_wrong_sizes_and_bad_batches() {
    let mut net = SmallCnnCpu::new(1, 2);
    assert!(net.set("conv9.weight", &[0.0]).is_err());
    assert!(net.set("bn1.running_mean", &[0.0; 3]).is_err());
    assert!(net.set("bn1.running_mean", &[0.5; 32]).is_ok());
    assert_eq!(net.get("bn1.running_mean").unwrap()[0], 0.5);
    assert_eq!(net.get("bn3.running_var").unwrap().len(), 128);
    assert!(net.get("momentum.fc.bias").is_some());
    let x = vec![0.0; 2 * 16];
    let e = net.forward_backward(&x, 4, 4, &[0, 2]).unwrap_err();
    assert!(e.to_string().contains("label 2 is not in 0..2"), "{e}");
    let e = net.forward_backward(&x, 4, 4, &[0]).unwrap_err();
    assert!(e.to_string().contains("at least 2 images"), "{e}");
    let e = net.forward_backward(&x[..30], 4, 4, &[0, 1]).unwrap_err();
    assert!(e.to_string().contains("is not [2, 1, 4, 4]"), "{e}");
}
