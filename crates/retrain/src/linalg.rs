//! The two matrix products a classifier head needs, on `gemm` (the kernel candle's CPU matmul
//! is built on), called directly so that no gradient for the feature batch is computed and
//! nothing is allocated per step.
//!
//! All matrices are row-major slices.

pub use gemm::Parallelism;

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

#[cfg(test)]
mod tests {
    use super::*;

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
