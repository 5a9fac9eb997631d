//! Seeded random inputs for the unit tests of the inference path: SplitMix64 draws turned into
//! normal values by Box–Muller, so that every test input is the same on every run and machine
//! (candle's `Tensor::randn` on the CPU is unseeded).

use candle_core::{Device, Shape, Tensor};

/// SplitMix64 (Steele, Lea & Flood, 2014): the next 64 random bits of the state `s`.
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in (0, 1].
fn unit(s: &mut u64) -> f64 {
    ((next(s) >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// `n` draws of N(`mean`, `std`²) from seed `seed`.
pub fn normal(seed: u64, n: usize, mean: f32, std: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            let (u, v) = (unit(&mut s), unit(&mut s));
            let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            (mean as f64 + std as f64 * z) as f32
        })
        .collect()
}

/// A CPU tensor of `shape` filled with [`normal`] draws.
pub fn randn(seed: u64, mean: f32, std: f32, shape: impl Into<Shape>) -> Tensor {
    let shape = shape.into();
    let v = normal(seed, shape.elem_count(), mean, std);
    Tensor::from_vec(v, shape, &Device::Cpu).expect("a tensor of its own size")
}

#[test]
fn draws_are_reproducible_and_roughly_standard() {
    let a = normal(7, 20_000, 0.0, 1.0);
    assert_eq!(a, normal(7, 20_000, 0.0, 1.0));
    assert_ne!(a[..8], normal(8, 8, 0.0, 1.0)[..]);
    let m = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
    let v = a.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / a.len() as f64;
    assert!(
        m.abs() < 0.03 && (v - 1.0).abs() < 0.05,
        "mean {m}, variance {v}"
    );
}
