//! `--device cpu|cuda|auto`. The crate builds without CUDA by default; with `--features cuda`
//! candle runs the backbone on GPU 0.

use crate::error::{ExtractError, Result};
use candle_core::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda,
    /// CUDA when available, else the CPU (with a notice).
    Auto,
}

/// The device, and a one-line notice when `auto` fell back to the CPU.
pub fn select(choice: DeviceChoice) -> Result<(Device, Option<String>)> {
    match choice {
        DeviceChoice::Cpu => Ok((Device::Cpu, None)),
        DeviceChoice::Cuda => cuda().map(|d| (d, None)),
        DeviceChoice::Auto => match cuda() {
            Ok(d) => Ok((d, None)),
            Err(e) => Ok((Device::Cpu, Some(format!("{e}; using the CPU")))),
        },
    }
}

fn cuda() -> Result<Device> {
    if !candle_core::utils::cuda_is_available() {
        return Err(ExtractError::Device("CUDA requested, but this binary was built without CUDA (rebuild with `just build-cuda`)".into()));
    }
    Device::new_cuda(0).map_err(|e| {
        ExtractError::Device(format!(
            "CUDA requested, but no usable GPU: {}",
            e.to_string().lines().next().unwrap_or("")
        ))
    })
}

pub fn describe(d: &Device) -> &'static str {
    match d {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda:0",
        Device::Metal(_) => "metal",
    }
}
