//! One training epoch of a few heads on a device (`--device cuda` path), next to a pure-GEMM
//! measurement of the same shapes on the same device: the forward `X_b Wᵀ` and the gradient
//! `Gᵀ X_b` of every minibatch of one epoch (4·B·D·K FLOP per step; no gradient for X).
//!
//!     cargo run --release --features cuda -p retrain --example device_bench -- \
//!         features/synth-imagenet-lt-scale [cuda|cpu] [batch=512]
//!
//! The bank is any ltbench bank (e.g. `just synth-imagenet-scale`).

use candle_core::{DType, Device, Tensor};
use retrain::engine::device::{DeviceBank, train_on_device};
use retrain::engine::head::HeadState;
use retrain::engine::trainer::TrainOptions;
use retrain::method::table::MethodTable;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .ok_or_else(|| anyhow::anyhow!("usage: device_bench BANK_DIR [cuda|cpu] [BATCH]"))?;
    let device = match args.get(1).map(String::as_str).unwrap_or("cuda") {
        "cpu" => Device::Cpu,
        _ => retrain::engine::device::select(retrain::engine::device::DeviceChoice::Cuda)?
            .0
            .expect("a CUDA device"),
    };
    let batch: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(512);
    let bank = bank::Bank::open(std::path::Path::new(dir))?;
    let (n, d, k) = (bank.train.rows, bank.dim, bank.num_classes);
    let t = Instant::now();
    let db = DeviceBank::upload(&bank, &device)?;
    device.synchronize()?;
    println!(
        "bank {dir}: train {n} x {d}, K = {k}, batch {batch}; upload {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let steps = n.div_ceil(batch);
    let flop = |rows: usize| 4.0 * rows as f64 * d as f64 * k as f64;
    let epoch_flop = flop(n);

    // pure GEMM: the two products of every minibatch of one epoch (contiguous rows)
    let x = Tensor::from_slice(bank.train.features(), (n, d), &device)?;
    let w = Tensor::randn(0f32, 0.01, (k, d), &device)?;
    let gemm_epoch = || -> candle_core::Result<f64> {
        device.synchronize()?;
        let t = Instant::now();
        let mut acc = Tensor::zeros((k, d), DType::F32, &device)?;
        for s in 0..steps {
            let b = batch.min(n - s * batch);
            let xb = x.narrow(0, s * batch, b)?;
            let z = xb.matmul(&w.t()?)?;
            acc = z.t()?.matmul(&xb)?;
        }
        drop(acc);
        device.synchronize()?;
        Ok(t.elapsed().as_secs_f64())
    };
    gemm_epoch()?; // warm-up (cuBLAS handles, allocator)
    let g = (0..3)
        .map(|_| gemm_epoch())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let g = g.iter().cloned().fold(f64::INFINITY, f64::min);
    println!(
        "pure GEMM, one epoch ({steps} steps): {:.3} s = {:.0} GFLOP/s",
        g,
        epoch_flop / g / 1e9
    );

    let table = MethodTable::embedded();
    let defaults = retrain::method::los_defaults();
    let head = bank.head.as_ref().expect("the bank has a stage-1 head");
    for name in ["vanilla-fc", "los", "vanilla-cosine", "class-balanced"] {
        let spec = table.methods.iter().find(|m| m.name == name).unwrap();
        let mut m = spec.check(&defaults)?;
        m.hyper.epochs = 1;
        m.hyper.batch_size = batch;
        let init = HeadState::from_linear(m.head, k, d, head.weight.clone(), head.bias.clone());
        let mut best = f64::INFINITY;
        for rep in 0..3 {
            device.synchronize()?;
            let t = Instant::now();
            train_on_device(
                &db,
                &bank.train.labels,
                &bank.train_counts,
                init.clone(),
                &m,
                rep,
                &TrainOptions::default(),
                |_, _| {},
            )?;
            device.synchronize()?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{name:>15}: one epoch {:.3} s = {:.0} GFLOP/s = {:.0} % of pure GEMM (step {:.3} ms)",
            best,
            epoch_flop / best / 1e9,
            100.0 * g / best,
            1e3 * best / steps as f64
        );
    }
    Ok(())
}
