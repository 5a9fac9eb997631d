//! 3×3 stride-1 convolutions (padding 1) as Winograd F(4×4, 3×3) (Lavin & Gray, 2016), for
//! the larger maps: each 4×4 output tile comes from a 6×6 input patch, so the convolution is
//! 36 GEMMs of [cout × cin] · [cin × tiles] — 36 multiplications per tile and channel pair
//! for 16 outputs, 4× fewer than im2col (F(2×2, 3×3): 2.25×) — and V holds 2.25 values per
//! output instead of 4. Its transforms have larger constants (points 0, ±1, ±2), so it is
//! used where the maps are at least [`super::conv`]'s threshold wide; the small maps of a
//! network's last stages stay on F(2×2, 3×3), whose GEMMs have four times the tiles.
//!
//! Layout as the rest of the inference path: images `[C, G, H, W]`; the tiles of a chunk are
//! numbered image by image, tile row by tile row.

use super::winograd::{Chunking, Shape, chunked, epilogue};

const BT: [[f32; 6]; 6] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];

const G: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

const AT: [[f32; 6]; 4] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

/// Tiles per chunk of images (V and M of a chunk stay in cache).
const TILES_PER_CHUNK: usize = 128;

/// Lanes of the output transform's blocks.
use super::winograd::L;

/// The transformed weights of a folded 3×3 convolution: `[36][cout][cin]`, U = G g Gᵀ in f64.
pub fn transform_weights(weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let mut u = vec![0f32; 36 * cout * cin];
    for o in 0..cout {
        for i in 0..cin {
            let g = &weight[(o * cin + i) * 9..][..9];
            let mut gg = [[0f64; 3]; 6];
            for (r, row) in G.iter().enumerate() {
                for c in 0..3 {
                    gg[r][c] = (0..3).map(|k| row[k] * g[k * 3 + c] as f64).sum();
                }
            }
            for r in 0..6 {
                for (c, col) in G.iter().enumerate() {
                    let v: f64 = (0..3).map(|k| gg[r][k] * col[k]).sum();
                    u[((r * 6 + c) * cout + o) * cin + i] = v as f32;
                }
            }
        }
    }
    u
}

fn tiles(s: &Shape) -> (usize, usize) {
    (s.h.div_ceil(4), s.w.div_ceil(4))
}

/// `out` [cout, imgs, h, w] = act(conv3×3(x) + bias (+ residual)); as
/// [`super::winograd::forward`] with 6×6 patches.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    s: &Shape,
    u: &[f32],
    bias: &[f32],
    x: &[f32],
    out: &mut Vec<f32>,
    scratch: &mut Vec<f32>,
    residual: Option<&[f32]>,
    relu: bool,
) {
    let (th, tw) = tiles(s);
    let plan = Chunking {
        xi: 36,
        tiles_per_img: th * tw,
        tiles_per_chunk: TILES_PER_CHUNK,
        y_planes: 16,
    };
    let arch = pulp::Arch::new();
    chunked(
        s,
        &plan,
        u,
        out,
        scratch,
        |imgs, t, v| arch.dispatch(Input { s, x, imgs, t, v }),
        |imgs, t, m, y, out| {
            arch.dispatch(Output {
                s,
                m,
                t,
                imgs,
                bias,
                residual,
                relu,
                y,
                out,
            })
        },
    );
}

struct Input<'a> {
    s: &'a Shape,
    x: &'a [f32],
    imgs: std::ops::Range<usize>,
    t: usize,
    v: &'a mut [f32],
}

impl pulp::WithSimd for Input<'_> {
    type Output = ();
    /// V[ξ][c][tile] = (Bᵀ d B)[ξ] of each 6×6 patch d (rows and columns 4·t − 1 .. 4·t + 4,
    /// zero outside the image): Bᵀ d down the columns of a tile row's six padded input rows
    /// (whole-row vector operations), then across each tile's six columns.
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Input { s, x, imgs, t, v } = self;
        let (th, tw) = tiles(s);
        let (h, w) = (s.h, s.w);
        let pw = 4 * tw + 2;
        let used = imgs.len() * th * tw;
        let mut rows = vec![vec![0f32; pw]; 6];
        let mut cols = vec![vec![0f32; pw]; 6];
        for c in 0..s.cin {
            let mut vc: Vec<&mut [f32]> = v.chunks_exact_mut(t).skip(c).step_by(s.cin).collect();
            for p in vc.iter_mut() {
                p[used..].fill(0.0);
            }
            for (ii, img) in imgs.clone().enumerate() {
                let plane = &x[(c * s.imgs + img) * h * w..][..h * w];
                for ty in 0..th {
                    for (r, row) in rows.iter_mut().enumerate() {
                        let iy = (4 * ty + r) as isize - 1;
                        row.fill(0.0);
                        if iy >= 0 && iy < h as isize {
                            row[1..1 + w].copy_from_slice(&plane[iy as usize * w..][..w]);
                        }
                    }
                    for (xi, col) in cols.iter_mut().enumerate() {
                        let b = &BT[xi];
                        let col = &mut col[..pw];
                        col.fill(0.0);
                        for (k, row) in rows.iter().enumerate() {
                            if b[k] != 0.0 {
                                let (bk, row) = (b[k], &row[..pw]);
                                for j in 0..pw {
                                    col[j] += bk * row[j];
                                }
                            }
                        }
                    }
                    let k0 = (ii * th + ty) * tw;
                    for (r, col) in cols.iter().enumerate() {
                        for tx in 0..tw {
                            let q = &col[4 * tx..4 * tx + 6];
                            let (q0, q1, q2, q3, q4, q5) = (q[0], q[1], q[2], q[3], q[4], q[5]);
                            let o = [
                                4.0 * q0 - 5.0 * q2 + q4,
                                -4.0 * (q1 + q2) + q3 + q4,
                                4.0 * (q1 - q2) - q3 + q4,
                                -2.0 * q1 - q2 + 2.0 * q3 + q4,
                                2.0 * q1 - q2 - 2.0 * q3 + q4,
                                4.0 * q1 - 5.0 * q3 + q5,
                            ];
                            for (cc, val) in o.into_iter().enumerate() {
                                vc[r * 6 + cc][k0 + tx] = val;
                            }
                        }
                    }
                }
            }
        }
    }
}

struct Output<'a> {
    s: &'a Shape,
    m: &'a [f32],
    t: usize,
    imgs: std::ops::Range<usize>,
    bias: &'a [f32],
    residual: Option<&'a [f32]>,
    relu: bool,
    y: &'a mut [f32],
    out: &'a mut [f32],
}

impl pulp::WithSimd for Output<'_> {
    type Output = ();
    /// out = act(Aᵀ M A + bias (+ residual)): the 16 outputs of every tile in blocks of L
    /// tiles (`y`: 16 × t), then placed row by row; outputs past the edge are dropped.
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Output {
            s,
            m,
            t,
            imgs,
            bias,
            residual,
            relu,
            y,
            out,
        } = self;
        let (th, tw) = tiles(s);
        let (h, w) = (s.h, s.w);
        let mut row = vec![0f32; 4 * tw];
        for o in 0..s.cout {
            for kb in (0..t).step_by(L) {
                let g: [&[f32; L]; 36] = std::array::from_fn(|xi| {
                    m[(xi * s.cout + o) * t + kb..][..L]
                        .try_into()
                        .expect("a block")
                });
                // per output row i: s[c] = Σ_r Aᵀ[i][r] m[r][c] (six vectors, in registers),
                // then y[i][j] = Σ_c Aᵀ[j][c] s[c]
                for (i, ai) in AT.iter().enumerate() {
                    let mut sv = [[0f32; L]; 6];
                    for (c, sc) in sv.iter_mut().enumerate() {
                        for l in 0..L {
                            let mut acc = 0f32;
                            for r in 0..6 {
                                acc += ai[r] * g[r * 6 + c][l];
                            }
                            sc[l] = acc;
                        }
                    }
                    for (j, aj) in AT.iter().enumerate() {
                        let d: &mut [f32; L] = (&mut y[(i * 4 + j) * t + kb..][..L])
                            .try_into()
                            .expect("a block");
                        for l in 0..L {
                            let mut acc = 0f32;
                            for c in 0..6 {
                                acc += aj[c] * sv[c][l];
                            }
                            d[l] = acc;
                        }
                    }
                }
            }
            let b = bias[o];
            for (ii, img) in imgs.clone().enumerate() {
                let plane = (o * s.imgs + img) * h * w;
                for ty in 0..th {
                    let k0 = (ii * th + ty) * tw;
                    for i in 0..4 {
                        let oy = 4 * ty + i;
                        if oy >= h {
                            break;
                        }
                        // interleave the four columns of each tile (one loop, four
                        // consecutive stores: shuffles, not scatters)
                        let y0 = &y[(i * 4) * t + k0..][..tw];
                        let y1 = &y[(i * 4 + 1) * t + k0..][..tw];
                        let y2 = &y[(i * 4 + 2) * t + k0..][..tw];
                        let y3 = &y[(i * 4 + 3) * t + k0..][..tw];
                        for (tx, q) in row.chunks_exact_mut(4).enumerate().take(tw) {
                            q[0] = y0[tx] + b;
                            q[1] = y1[tx] + b;
                            q[2] = y2[tx] + b;
                            q[3] = y3[tx] + b;
                        }
                        let at = plane + oy * w;
                        let dst = &mut out[at..at + w];
                        let src = &row[..w];
                        epilogue(dst, src, residual.map(|r| &r[at..at + w]), relu);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::winograd::Shape;
    use super::{TILES_PER_CHUNK, forward, transform_weights};
    use crate::infer::seeded::normal;

    /// act(conv3×3(x) + bias (+ residual)) the direct way, in f64 (stride 1, padding 1):
    /// `x` [cin, imgs, h, w], `wt` [cout, cin, 3, 3] → [cout, imgs, h, w].
    fn direct(
        s: &Shape,
        wt: &[f32],
        bias: &[f32],
        x: &[f32],
        res: Option<&[f32]>,
        relu: bool,
    ) -> Vec<f32> {
        let (h, w) = (s.h, s.w);
        let mut out = vec![0f32; s.cout * s.imgs * h * w];
        for o in 0..s.cout {
            for img in 0..s.imgs {
                for y in 0..h {
                    for xx in 0..w {
                        let mut acc = bias[o] as f64;
                        for c in 0..s.cin {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (iy, ix) = ((y + ky) as isize - 1, (xx + kx) as isize - 1);
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let (iy, ix) = (iy as usize, ix as usize);
                                    acc += wt[((o * s.cin + c) * 3 + ky) * 3 + kx] as f64
                                        * x[((c * s.imgs + img) * h + iy) * w + ix] as f64;
                                }
                            }
                        }
                        let at = ((o * s.imgs + img) * h + y) * w + xx;
                        if let Some(r) = res {
                            acc += r[at] as f64;
                        }
                        out[at] = if relu { acc.max(0.0) } else { acc } as f32;
                    }
                }
            }
        }
        out
    }

    /// F(4×4, 3×3) = the direct convolution on the shapes its chunking must get right: several
    /// images per call, with chunks that start after image 0 (a chunk holds at most
    /// `TILES_PER_CHUNK` = 128 tiles: a 32×32 map is 64 tiles, so 5 images run as chunks at
    /// images 0, 2 and 4, as a CIFAR net's first stage does; 33×32 is 72 tiles, one image a
    /// chunk; 50×47 is 156, more than a chunk holds); sides not divisible by 4 (cut edge
    /// tiles); an odd channel count; with the residual and ReLU and without. The buffers are
    /// reused across the cases, as a network reuses them across its convolutions, and the
    /// output starts as NaN, so a stale or unwritten value fails.
    #[test]
    fn winograd4_equals_the_direct_convolution_across_chunks() {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        for (case, (cin, cout, h, w, imgs)) in [
            (16, 8, 32, 32, 5),
            (20, 4, 33, 32, 3),
            (16, 12, 18, 23, 7),
            (17, 5, 50, 47, 2),
            (16, 16, 16, 17, 9),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 1000 + 100 * case as u64;
            let s = Shape {
                cin,
                cout,
                imgs,
                h,
                w,
            };
            let per_chunk = (TILES_PER_CHUNK / (h.div_ceil(4) * w.div_ceil(4))).clamp(1, imgs);
            assert!(per_chunk < imgs, "{h}×{w}×{imgs}: a single chunk");
            let wt = normal(seed, cout * cin * 9, 0.0, 0.3);
            let bias = normal(seed + 1, cout, 0.0, 0.2);
            let x = normal(seed + 2, cin * imgs * h * w, 0.0, 1.0);
            let res = normal(seed + 3, cout * imgs * h * w, 0.0, 1.0);
            let u = transform_weights(&wt, cout, cin);
            for (residual, relu) in [(Some(&res[..]), true), (None, false)] {
                out.clear();
                out.resize(cout * imgs * h * w, f32::NAN);
                forward(&s, &u, &bias, &x, &mut out, &mut scratch, residual, relu);
                let want = direct(&s, &wt, &bias, &x, residual, relu);
                assert_eq!(out.len(), want.len());
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                let mut err = 0f32;
                for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                    let d = (a - b).abs();
                    let (o, img) = (i / (imgs * h * w), i / (h * w) % imgs);
                    let (y, xx) = (i / w % h, i % w);
                    assert!(
                        d <= 1e-5 * scale,
                        "{cin}→{cout} {h}×{w}×{imgs}: out[{o}, {img}, {y}, {xx}] = {a}, direct {b}"
                    );
                    err = err.max(d);
                }
                eprintln!(
                    "F(4×4) {cin}→{cout} {h}×{w}×{imgs} ({per_chunk} a chunk): max |Δ| {:.2e} of the scale",
                    err / scale
                );
            }
        }
    }
}
