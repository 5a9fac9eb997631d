//! Training-step and epoch benches at CIFAR100-LT and ImageNet-LT scale, each next to a
//! pure-GEMM measurement of the same shapes (the roofline the step is measured against).
//! Throughput is reported in elements/s where one element = one FLOP, so criterion's
//! "Gelem/s" reads as GFLOP/s. Counted FLOPs: forward X·Wᵀ and backward Gᵀ·X, 4·B·D·K per
//! step (no gradient for X is computed).
//!
//! `cargo bench -p retrain` runs the CIFAR shapes and an ImageNet-LT-scale step;
//! `LTBENCH_BIG=1 cargo bench -p retrain -- imagenet` adds a full ImageNet-LT-scale epoch
//! (115 846 × 2048, K = 1000, batch 512: about 6 s per iteration).

use bank::{Features, Split};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use retrain::engine::head::HeadState;
use retrain::engine::linalg::{Parallelism, matmul_abt, matmul_atb};
use retrain::engine::trainer::Trainer;
use retrain::method::{Head, Hyper, Init, MethodSpec, Schedule};
use std::hint::black_box;

fn bank(rows: usize, dim: usize, k: usize) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x: Vec<f32> = (0..rows * dim)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let y: Vec<u32> = (0..rows).map(|i| (i % k) as u32).collect();
    Split {
        path: "bench".into(),
        rows,
        dim,
        features: Features::Owned(x),
        features_flip: None,
        labels: y,
    }
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn shapes(
    c: &mut Criterion,
    name: &str,
    rows: usize,
    d: usize,
    k: usize,
    batch: usize,
    epoch: bool,
) {
    let split = bank(rows, d, k);
    let counts = vec![rows / k; k];
    let par = Parallelism::Rayon(threads());
    let method =
        toml::from_str::<MethodSpec>("name = \"los\"\nloss = { kind = \"ce\", smoothing = 0.98 }")
            .unwrap()
            .check(&Hyper {
                lr: 1e-3,
                wd: 5e-4,
                momentum: 0.9,
                epochs: 1,
                batch_size: batch,
                init: Init::Stage1,
                schedule: Schedule::CosineEpoch,
            })
            .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let head = HeadState::fresh(Head::Linear, k, d, &mut rng);
    let flops = (4 * batch * d * k) as u64;
    let mut g = c.benchmark_group(name);
    g.sample_size(if rows * d > 10_000_000 { 10 } else { 30 });

    // roofline: the two products of a step, nothing else
    let x = &split.features()[..batch * d];
    let mut z = vec![0.0f32; batch * k];
    let mut dw = vec![0.0f32; k * d];
    g.throughput(Throughput::Elements(flops));
    g.bench_function(format!("pure gemm B={batch}"), |b| {
        b.iter(|| {
            matmul_abt(&mut z, x, &head.weight, batch, k, d, false, par);
            matmul_atb(&mut dw, &z, x, batch, k, d, par);
            black_box(&dw);
        })
    });

    let mut trainer = Trainer::new(&split, &counts, head.clone(), &method, par);
    let idx: Vec<u32> = (0..batch as u32)
        .map(|i| (i * 7919) % rows as u32)
        .collect();
    g.bench_function(format!("train step B={batch}"), |b| {
        b.iter(|| black_box(trainer.step(&idx, 1e-4)))
    });

    if epoch {
        let steps = rows.div_ceil(batch) as u64;
        g.throughput(Throughput::Elements(flops * steps));
        let order: Vec<u32> = (0..rows as u32).collect();
        g.bench_function(format!("epoch B={batch}"), |b| {
            b.iter(|| {
                for chunk in order.chunks(batch) {
                    black_box(trainer.step(chunk, 1e-4));
                }
            })
        });
    }
    g.finish();
}

fn cifar(c: &mut Criterion) {
    shapes(c, "cifar100-lt 10847x512 K=100", 10_847, 512, 100, 64, true);
    shapes(
        c,
        "cifar100-lt 10847x512 K=100",
        10_847,
        512,
        100,
        512,
        true,
    );
}

fn imagenet(c: &mut Criterion) {
    let big = std::env::var("LTBENCH_BIG").is_ok();
    shapes(
        c,
        "imagenet-lt 115846x2048 K=1000",
        115_846,
        2048,
        1000,
        512,
        big,
    );
}

criterion_group!(benches, cifar, imagenet);
criterion_main!(benches);
