//! The kernels of the hand-written pass: dot products, per-channel statistics, 2×2 max-pool
//! and its gradient routing, im2col / col2im, the `gemm` matmul and the convolutions built on
//! them. Fixed reduction orders throughout (the same result for any thread count).

use super::CHUNK;
use rayon::prelude::*;

pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Per-channel mean and biased variance of `z` [B, C, HW] (f64, fixed order).
pub(super) fn channel_stats(z: &[f32], b: usize, c: usize, hw: usize) -> (Vec<f64>, Vec<f64>) {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let n = (b * hw) as f64;
            let mut s = 0f64;
            for i in 0..b {
                s += z[(i * c + ch) * hw..(i * c + ch + 1) * hw]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>();
            }
            let mean = s / n;
            let mut v = 0f64;
            for i in 0..b {
                v += z[(i * c + ch) * hw..(i * c + ch + 1) * hw]
                    .iter()
                    .map(|&x| (x as f64 - mean).powi(2))
                    .sum::<f64>();
            }
            (mean, v / n)
        })
        .unzip()
}

/// 2×2 max-pool (stride 2) of `planes` planes of h×w; the first maximum in row-major window
/// order wins (PyTorch's CPU kernel).
pub(super) fn max_pool(x: &[f32], planes: usize, h: usize, w: usize) -> (Vec<f32>, Vec<u8>) {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![0f32; planes * oh * ow];
    let mut arg = vec![0u8; planes * oh * ow];
    out.par_chunks_mut(oh * ow)
        .zip(arg.par_chunks_mut(oh * ow))
        .zip(x.par_chunks(h * w))
        .for_each(|((o, a), p)| {
            for oy in 0..oh {
                for ox in 0..ow {
                    let base = 2 * oy * w + 2 * ox;
                    let cand = [p[base], p[base + 1], p[base + w], p[base + w + 1]];
                    let mut best = 0;
                    for t in 1..4 {
                        if cand[t] > cand[best] {
                            best = t;
                        }
                    }
                    o[oy * ow + ox] = cand[best];
                    a[oy * ow + ox] = best as u8;
                }
            }
        });
    (out, arg)
}

/// The gradient of [`max_pool`]: each output's gradient goes to its window's maximum.
pub(super) fn max_unpool(g: &[f32], arg: &[u8], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![0f32; planes * h * w];
    out.par_chunks_mut(h * w)
        .zip(g.par_chunks(oh * ow))
        .zip(arg.par_chunks(oh * ow))
        .for_each(|((o, gp), ap)| {
            for oy in 0..oh {
                for ox in 0..ow {
                    let t = ap[oy * ow + ox] as usize;
                    o[(2 * oy + t / 2) * w + 2 * ox + t % 2] = gp[oy * ow + ox];
                }
            }
        });
    out
}

/// Columns of a 3×3, padding 1, stride 1 convolution: `cols` [C·9, H·W], row `ci·9 + ky·3 + kx`
/// (PyTorch's weight order), column `oy·W + ox`.
pub(super) fn im2col(x: &[f32], c: usize, h: usize, w: usize, cols: &mut [f32]) {
    let hw = h * w;
    for ci in 0..c {
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &mut cols[(ci * 9 + ky * 3 + kx) * hw..][..hw];
                for oy in 0..h {
                    let dst = &mut row[oy * w..(oy + 1) * w];
                    let iy = oy + ky;
                    if iy < 1 || iy > h {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &x[ci * hw + (iy - 1) * w..][..w];
                    match kx {
                        0 => {
                            dst[0] = 0.0;
                            dst[1..].copy_from_slice(&src[..w - 1]);
                        }
                        1 => dst.copy_from_slice(src),
                        _ => {
                            dst[..w - 1].copy_from_slice(&src[1..]);
                            dst[w - 1] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds `cols` back onto the image `dx` [C, H, W].
pub(super) fn col2im_add(cols: &[f32], c: usize, h: usize, w: usize, dx: &mut [f32]) {
    let hw = h * w;
    for ci in 0..c {
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &cols[(ci * 9 + ky * 3 + kx) * hw..][..hw];
                for oy in 0..h {
                    let iy = oy + ky;
                    if iy < 1 || iy > h {
                        continue;
                    }
                    let src = &row[oy * w..(oy + 1) * w];
                    let dst = &mut dx[ci * hw + (iy - 1) * w..][..w];
                    let (d, s) = match kx {
                        0 => (&mut dst[..w - 1], &src[1..]),
                        1 => (&mut dst[..], src),
                        _ => (&mut dst[1..], &src[..w - 1]),
                    };
                    for (a, &v) in d.iter_mut().zip(s) {
                        *a += v;
                    }
                }
            }
        }
    }
}

/// `dst[m, n] (+)= a[m, k] · b[k, n]`, `dst` row-major, `a` and `b` given by (row, column)
/// strides into their slices; single-threaded (the callers parallelise over images).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    m: usize,
    n: usize,
    k: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |(rs, cs): (usize, usize), r: usize, c: usize| (r - 1) * rs + (c - 1) * cs;
    assert!(dst.len() >= m * n, "matmul: dst too small");
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    assert!(a.len() > last(a_strides, m, k), "matmul: a too small");
    assert!(b.len() > last(b_strides, k, n), "matmul: b too small");
    // SAFETY: every index the strides reach was bounds-checked above.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_strides.1 as isize,
            a_strides.0 as isize,
            b.as_ptr(),
            b_strides.1 as isize,
            b_strides.0 as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `z` [B, cout, HW] = conv3x3(x [B, cin, H, W], w [cout, cin, 3, 3]).
pub(super) fn conv_forward(
    x: &[f32],
    w: &[f32],
    z: &mut [f32],
    cin: usize,
    cout: usize,
    h: usize,
    ww: usize,
) {
    let (hw, kk) = (h * ww, cin * 9);
    z.par_chunks_mut(cout * hw)
        .zip(x.par_chunks(cin * hw))
        .for_each_init(
            || vec![0f32; kk * hw],
            |cols, (zi, xi)| {
                im2col(xi, cin, h, ww, cols);
                matmul(zi, false, w, (kk, 1), cols, (hw, 1), cout, hw, kk);
            },
        );
}

/// Gradients of [`conv_forward`]: (dw [cout, cin·9], dx [B, cin, H, W] when `need_dx`).
#[allow(clippy::too_many_arguments)]
pub(super) fn conv_backward(
    x: &[f32],
    w: &[f32],
    dz: &[f32],
    cin: usize,
    cout: usize,
    h: usize,
    ww: usize,
    need_dx: bool,
) -> (Vec<f32>, Vec<f32>) {
    let (hw, kk) = (h * ww, cin * 9);
    let b = x.len() / (cin * hw);
    let mut dx = vec![0f32; if need_dx { b * cin * hw } else { 0 }];
    let chunks = b.div_ceil(CHUNK);
    let mut partial = vec![0f32; chunks * cout * kk];
    let dx_chunk = if need_dx { CHUNK * cin * hw } else { 1 };
    let mut dx_parts: Vec<&mut [f32]> = if need_dx {
        dx.chunks_mut(dx_chunk).collect()
    } else {
        (0..chunks).map(|_| <&mut [f32]>::default()).collect()
    };
    partial
        .par_chunks_mut(cout * kk)
        .zip(dx_parts.par_iter_mut())
        .enumerate()
        .for_each(|(ci, (dwp, dxp))| {
            let mut cols = vec![0f32; kk * hw];
            let lo = ci * CHUNK;
            let hi = (lo + CHUNK).min(b);
            for (j, i) in (lo..hi).enumerate() {
                let dzi = &dz[i * cout * hw..(i + 1) * cout * hw];
                im2col(&x[i * cin * hw..(i + 1) * cin * hw], cin, h, ww, &mut cols);
                // dw[co, r] += Σ_p dz[co, p] · cols[r, p]
                matmul(dwp, j > 0, dzi, (hw, 1), &cols, (1, hw), cout, kk, hw);
                if need_dx {
                    // dcols[r, p] = Σ_co w[co, r] · dz[co, p], then back onto the image.
                    matmul(&mut cols, false, w, (1, kk), dzi, (hw, 1), kk, hw, cout);
                    col2im_add(
                        &cols,
                        cin,
                        h,
                        ww,
                        &mut dxp[j * cin * hw..(j + 1) * cin * hw],
                    );
                }
            }
        });
    let mut dw = vec![0f32; cout * kk];
    for p in partial.chunks(cout * kk) {
        for (a, &v) in dw.iter_mut().zip(p) {
            *a += v;
        }
    }
    (dw, dx)
}
