//! The two matrix products a classifier head needs, on `gemm` (the kernel candle's CPU matmul
//! is built on), called directly so that no gradient for the feature batch is computed and
//! nothing is allocated per step.
//!
//! All matrices are row-major slices.

pub use gemm::Parallelism;

/// How often a threaded branch was taken on this thread, per kind: tests read them to show
/// that a threaded configuration really threads (each shape has a threshold below which it
/// runs on one thread). The branch is counted on the thread that calls it (the run's thread),
/// so tests running beside it do not add to it. `Gemm` counts the products big enough for
/// `gemm` to split (`m·n·k` at least its `get_threading_threshold()`, more than one thread).
pub mod threaded {
    use std::cell::Cell;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Branch {
        Gemm,
        Loss,
        Sgd,
    }

    thread_local! {
        static COUNTS: Cell<[usize; 3]> = const { Cell::new([0; 3]) };
    }

    /// Count one taken branch.
    pub fn note(b: Branch) {
        COUNTS.with(|c| {
            let mut v = c.get();
            v[b as usize] += 1;
            c.set(v);
        });
    }

    /// The branches taken on this thread so far.
    pub fn count(b: Branch) -> usize {
        COUNTS.with(|c| c.get()[b as usize])
    }
}

/// Count a GEMM that `gemm` will split over threads.
fn note_gemm(m: usize, n: usize, k: usize, par: Parallelism) {
    if matches!(par, Parallelism::Rayon(t) if t != 1)
        && m.saturating_mul(n).saturating_mul(k) >= gemm::get_threading_threshold()
    {
        threaded::note(threaded::Branch::Gemm);
    }
}

/// `z[m, n] = x[m, k] · w[n, k]ᵀ`, plus `z`'s previous content when `accumulate`.
pub fn matmul_abt(
    z: &mut [f32],
    x: &[f32],
    w: &[f32],
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
    par: Parallelism,
) {
    assert!(
        z.len() >= m * n && x.len() >= m * k && w.len() >= n * k,
        "matmul_abt: buffer too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            z[..m * n].fill(0.0);
        }
        return;
    }
    note_gemm(m, n, k, par);
    // SAFETY: the bounds were checked above; strides describe the row-major layouts
    // (x: rs = k, cs = 1; wᵀ as [k, n]: rs = 1, cs = k; z: rs = n, cs = 1).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            z.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// `dw[n, k] = g[m, n]ᵀ · x[m, k]` (overwrites `dw`).
pub fn matmul_atb(
    dw: &mut [f32],
    g: &[f32],
    x: &[f32],
    m: usize,
    n: usize,
    k: usize,
    par: Parallelism,
) {
    assert!(
        dw.len() >= n * k && g.len() >= m * n && x.len() >= m * k,
        "matmul_atb: buffer too small"
    );
    if n == 0 || k == 0 {
        return;
    }
    if m == 0 {
        dw[..n * k].fill(0.0);
        return;
    }
    note_gemm(m, n, k, par);
    // SAFETY: bounds checked above; gᵀ as [n, m]: rs = 1, cs = n; x: rs = k, cs = 1.
    unsafe {
        gemm::gemm(
            n,
            k,
            m,
            dw.as_mut_ptr(),
            1,
            k as isize,
            false,
            g.as_ptr(),
            n as isize,
            1,
            x.as_ptr(),
            1,
            k as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Partial sums of the vectorised reductions below.
const LANES: usize = 16;

/// `Σ a_i b_i` with 16 independent partial sums (so that the compiler vectorises it; a plain
/// `.sum()` over f32 is one serial chain of additions), added in a fixed order: the same
/// result on every call.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    fold_lanes(acc) + tail
}

/// `Σ a_i` with 16 partial sums in a fixed order (see [`dot`]).
#[inline]
pub fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let c = a.chunks_exact(LANES);
    let tail: f32 = c.remainder().iter().sum();
    for x in c {
        for i in 0..LANES {
            acc[i] += x[i];
        }
    }
    fold_lanes(acc) + tail
}

/// The 16 partial sums of [`dot`] / [`sum`], added pairwise (a fixed order).
#[inline]
fn fold_lanes(mut acc: [f32; LANES]) -> f32 {
    let mut w = acc.len();
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0]
}

/// `max_i a_i` (−∞ for an empty slice), vectorised like [`dot`].
#[inline]
pub fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let c = a.chunks_exact(LANES);
    let tail = c
        .remainder()
        .iter()
        .cloned()
        .fold(f32::NEG_INFINITY, f32::max);
    for x in c {
        for i in 0..LANES {
            acc[i] = acc[i].max(x[i]);
        }
    }
    acc.iter().cloned().fold(tail, f32::max)
}

/// `‖a‖₂` (see [`dot`]).
#[inline]
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_f64_sum() {
        for n in [0usize, 1, 15, 16, 17, 100, 512, 1000] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!(
                (dot(&a, &b) as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                "n = {n}"
            );
        }
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
        let v: Vec<f32> = (0..37).map(|i| ((i * 7) % 37) as f32 - 3.0).collect();
        assert_eq!(sum(&v), v.iter().map(|&x| x as f64).sum::<f64>() as f32);
        assert_eq!(max(&v), 33.0);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
    }

    fn naive_abt(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut z = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                z[i * n + j] = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum();
            }
        }
        z
    }

    #[test]
    fn products_match_the_naive_loops() {
        let (m, n, k) = (5, 3, 7);
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut z = vec![1.0; m * n];
        matmul_abt(&mut z, &x, &w, m, n, k, true, Parallelism::None);
        let want = naive_abt(&x, &w, m, n, k);
        for (a, b) in z.iter().zip(&want) {
            assert!((a - (b + 1.0)).abs() < 1e-5);
        }
        // gᵀx with g = z
        let mut dw = vec![9.0; n * k];
        matmul_atb(&mut dw, &want, &x, m, n, k, Parallelism::None);
        for j in 0..n {
            for t in 0..k {
                let e: f32 = (0..m).map(|i| want[i * n + j] * x[i * k + t]).sum();
                assert!((dw[j * k + t] - e).abs() < 1e-4);
            }
        }
    }
}
