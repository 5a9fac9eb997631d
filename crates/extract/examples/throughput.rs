//! Feature-extraction throughput of a backbone on the CPU (or CUDA with `--device cuda` in a
//! CUDA build): hash-rule weights, random input, one warm-up batch, then `--batches` timed ones.
//!
//! `cargo run -p extract --example throughput -- --arch resnet50 --batch 32 --batches 3`

use candle_core::{Device, Tensor};
use clap::Parser;
use extract::Arch;
use extract::device::{DeviceChoice, select};
use extract::run::load_backbone;

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
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let (dev, _) = select(a.device)?;
    let size = a.size.unwrap_or(match a.arch {
        Arch::Resnet50 | Arch::Resnext50 => 224,
        Arch::SmallCnn => 28,
        _ => 32,
    });
    let (model, _, _) = load_backbone(a.arch, None, 0, &dev)?;
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
    println!(
        "{} {size}x{size} batch {} on {}: {n} images in {s:.2}s = {:.2} images/s (rayon threads: {})",
        a.arch,
        a.batch,
        extract::device::describe(&dev),
        n as f64 / s,
        rayon::current_num_threads()
    );
    Ok(())
}
