//! Feature-extraction throughput of a backbone on the CPU (or CUDA with `--device cuda` in a
//! CUDA build): hash-rule weights, random input, one warm-up batch, then `--batches` timed ones.
//! On the CPU the compiled inference path runs (`--candle`: the candle path), and the achieved
//! GFLOP/s is printed beside a pure-GEMM rate measured in the same run (one conv-shaped GEMM
//! per image, images across the threads, as the inference path runs them).
//!
//! `cargo run -p extract --example throughput -- --arch resnet50 --batch 32 --batches 3`

use candle_core::{Device, Tensor};
use clap::Parser;
use extract::Arch;
use extract::device::{DeviceChoice, select};
use extract::model::checkpoint::load_backbone;

// the allocator of the `extract` binary, so that the figure is the binary's
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum, default_value_t = Arch::Resnet50)]
    arch: Arch,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 3)]
    batches: usize,
    /// Input side (224 for the ImageNet nets, 32 for CIFAR, 28 for the small CNN).
    #[arg(long)]
    size: Option<usize>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    /// Time the candle path instead of the compiled inference path.
    #[arg(long)]
    candle: bool,
}

/// Multiply-accumulates of one forward pass at the architecture's usual input size.
fn macs(arch: Arch) -> f64 {
    match arch {
        Arch::Resnet50 => 4.09e9,
        Arch::Resnext50 => 4.23e9,
        Arch::Resnet34Cifar => 1.16e9,
        Arch::Resnet32 => 6.9e7,
        Arch::SmallCnn => 2.9e7,
        // the package's model at 224, convolutions + classifier (forward hooks)
        Arch::EfficientnetLite0 => 3.85e8,
    }
}

/// GFLOP/s of `gemm` on a [512 × 4608] · [4608 × 784] product (ResNet-50's stage-3 3×3 conv
/// as im2col), one per image, images across the rayon threads.
fn pure_gemm_rate() -> f64 {
    use rayon::prelude::*;
    let (m, k, n) = (512usize, 4608usize, 784usize);
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let run = |dst: &mut Vec<f32>| unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    };
    let threads = rayon::current_num_threads();
    let reps = 4 * threads;
    (0..threads)
        .into_par_iter()
        .for_each(|_| run(&mut vec![0.0; m * n]));
    let t = std::time::Instant::now();
    (0..reps)
        .into_par_iter()
        .for_each(|_| run(&mut vec![0.0; m * n]));
    2.0 * (m * n * k * reps) as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let (dev, _) = select(a.device)?;
    let size = a.size.unwrap_or(match a.arch {
        Arch::Resnet50 | Arch::Resnext50 | Arch::EfficientnetLite0 => 224,
        Arch::SmallCnn => 28,
        _ => 32,
    });
    let (model, _, _) = load_backbone(a.arch, None, 0, &dev)?;
    let fast = match (&dev, a.candle) {
        (Device::Cpu, false) => extract::infer::compile(model.as_ref()),
        _ => None,
    };
    let path = if fast.is_some() {
        "inference path"
    } else {
        "candle"
    };
    let model = fast.unwrap_or(model);
    let x = Tensor::randn(
        0f32,
        1f32,
        (a.batch, a.arch.in_channels(), size, size),
        &Device::Cpu,
    )?
    .to_device(&dev)?;
    model.features(&x)?.to_vec2::<f32>()?; // warm-up
    let t = std::time::Instant::now();
    for _ in 0..a.batches {
        model.features(&x)?.to_vec2::<f32>()?;
    }
    let s = t.elapsed().as_secs_f64();
    let n = a.batch * a.batches;
    let rate = n as f64 / s;
    let gflops = 2.0 * macs(a.arch) * rate / 1e9;
    println!(
        "{} {size}x{size} batch {} on {} ({path}): {n} images in {s:.2}s = {rate:.2} images/s, {gflops:.0} GFLOP/s against a pure GEMM of {:.0} GFLOP/s measured now (rayon threads: {})",
        a.arch,
        a.batch,
        extract::device::describe(&dev),
        pure_gemm_rate(),
        rayon::current_num_threads()
    );
    Ok(())
}
