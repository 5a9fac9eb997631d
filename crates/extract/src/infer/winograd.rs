//! 3×3 stride-1 convolutions (padding 1) as Winograd F(2×2, 3×3) (Lavin & Gray, 2016): each
//! 2×2 output tile comes from a 4×4 input patch d as Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, so the
//! convolution is 16 GEMMs `M[ξ] = U[ξ] · V[ξ]` of [cout × cin] · [cin × tiles] — 16
//! multiplications per tile and channel pair instead of the 36 of im2col's one GEMM (2.25×
//! fewer), plus two cheap transforms made of additions only. The weight transform U = G g Gᵀ
//! is done once, at load, in f64.
//!
//! Layout as the rest of the inference path: a group of G images `[C, G, H, W]`; the tiles of
//! a group are numbered image by image, tile row by tile row.

/// The transformed weights of a folded 3×3 convolution: `[16][cout][cin]`.
pub fn transform_weights(weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    // G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let mut u = vec![0f32; 16 * cout * cin];
    for o in 0..cout {
        for i in 0..cin {
            let g = &weight[(o * cin + i) * 9..][..9];
            // G g Gᵀ
            let mut gg = [[0f64; 3]; 4];
            for (r, row) in G.iter().enumerate() {
                for c in 0..3 {
                    gg[r][c] = (0..3).map(|k| row[k] * g[k * 3 + c] as f64).sum();
                }
            }
            for r in 0..4 {
                for (c, col) in G.iter().enumerate() {
                    let v: f64 = (0..3).map(|k| gg[r][k] * col[k]).sum();
                    u[((r * 4 + c) * cout + o) * cin + i] = v as f32;
                }
            }
        }
    }
    u
}

/// One convolution's shapes.
pub struct Shape {
    pub cin: usize,
    pub cout: usize,
    pub imgs: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    /// Tile rows and columns of one image (outputs are h × w: stride 1, padding 1).
    fn tiles(&self) -> (usize, usize) {
        (self.h.div_ceil(2), self.w.div_ceil(2))
    }
}

/// Tiles per GEMM: the images of a group go through the transforms and the 16 GEMMs a few at
/// a time, so that V and M stay in the core's cache (a CIFAR net's 32×32 maps are 256 tiles an
/// image; its 4×4 maps 4).
const TILES_PER_CHUNK: usize = 256;

/// Lanes of the output transform's blocks (tiles are padded to a multiple).
pub(super) const L: usize = 16;

/// `out` [cout, imgs, h, w] = act(conv3×3(x) + bias (+ residual)), `x` [cin, imgs, h, w];
/// `u` from [`transform_weights`]; `scratch` holds V and M, reused across calls. The
/// transforms run with the widest vector instructions of the CPU (pulp's runtime dispatch:
/// the binary stays portable).
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
    let (th, tw) = s.tiles();
    let plan = Chunking {
        xi: 16,
        tiles_per_img: th * tw,
        tiles_per_chunk: TILES_PER_CHUNK,
        y_planes: 4,
    };
    let arch = pulp::Arch::new();
    chunked(
        s,
        &plan,
        u,
        out,
        scratch,
        |imgs, t, v| arch.dispatch(InputJob { s, x, imgs, t, v }),
        |imgs, t, m, y, out| {
            let job = OutJob {
                s,
                m,
                t,
                imgs,
                bias,
                residual,
                relu,
            };
            arch.dispatch(OutRun { job: &job, y, out })
        },
    );
}

/// How a Winograd variant cuts a convolution into chunks of images.
pub(super) struct Chunking {
    /// Transformed planes (16 for F(2×2, 3×3), 36 for F(4×4, 3×3)).
    pub xi: usize,
    pub tiles_per_img: usize,
    pub tiles_per_chunk: usize,
    /// Planes of the output transform's scratch.
    pub y_planes: usize,
}

/// The convolution chunk by chunk of images: `input(imgs, t, V)` fills V (`xi` planes of
/// `t` tiles, padded to whole blocks of L with zeros), the GEMMs make M, `output(imgs, t, M,
/// y, out)` writes the chunk's outputs.
pub(super) fn chunked(
    s: &Shape,
    c: &Chunking,
    u: &[f32],
    out: &mut Vec<f32>,
    scratch: &mut Vec<f32>,
    input: impl Fn(std::ops::Range<usize>, usize, &mut [f32]),
    output: impl Fn(std::ops::Range<usize>, usize, &[f32], &mut [f32], &mut [f32]),
) {
    let step = (c.tiles_per_chunk / c.tiles_per_img).clamp(1, s.imgs);
    out.resize(s.cout * s.imgs * s.h * s.w, 0.0);
    let t_max = (step * c.tiles_per_img).next_multiple_of(L);
    scratch.resize(c.xi * (s.cin + s.cout) * t_max + c.y_planes * t_max, 0.0);
    let (v, rest) = scratch.split_at_mut(c.xi * s.cin * t_max);
    let (m, y) = rest.split_at_mut(c.xi * s.cout * t_max);
    for i0 in (0..s.imgs).step_by(step) {
        let imgs = i0..(i0 + step).min(s.imgs);
        let t = (imgs.len() * c.tiles_per_img).next_multiple_of(L);
        let v = &mut v[..c.xi * s.cin * t];
        input(imgs.clone(), t, v);
        gemms(c.xi, s.cout, s.cin, t, u, v, m);
        output(
            imgs,
            t,
            &m[..c.xi * s.cout * t],
            &mut y[..c.y_planes * t],
            out,
        );
    }
}

/// The transforms as pulp jobs: run inside its dispatch and inlined there, so that they are
/// compiled for the dispatched instruction set.
struct InputJob<'a> {
    s: &'a Shape,
    x: &'a [f32],
    imgs: std::ops::Range<usize>,
    t: usize,
    v: &'a mut [f32],
}

impl pulp::WithSimd for InputJob<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        input_transform(self.s, self.x, self.imgs, self.t, self.v)
    }
}

struct OutRun<'a, 'b> {
    job: &'a OutJob<'b>,
    y: &'a mut [f32],
    out: &'a mut [f32],
}

impl pulp::WithSimd for OutRun<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        output_transform(self.job, self.y, self.out)
    }
}

/// `dst = act(src (+ res))`: the last pass of an output transform, over one output row.
#[inline(always)]
pub(super) fn epilogue(dst: &mut [f32], src: &[f32], res: Option<&[f32]>, relu: bool) {
    match (res, relu) {
        (Some(res), true) => {
            for ((d, a), r) in dst.iter_mut().zip(src).zip(res) {
                *d = (a + r).max(0.0);
            }
        }
        (Some(res), false) => {
            for ((d, a), r) in dst.iter_mut().zip(src).zip(res) {
                *d = a + r;
            }
        }
        (None, true) => {
            for (d, a) in dst.iter_mut().zip(src) {
                *d = a.max(0.0);
            }
        }
        (None, false) => dst.copy_from_slice(src),
    }
}

/// `M[ξ] = U[ξ] · V[ξ]` for ξ < `n`: [cout × cin] · [cin × t], row-major, one thread each.
pub(super) fn gemms(
    n: usize,
    cout: usize,
    cin: usize,
    t: usize,
    u: &[f32],
    v: &[f32],
    m: &mut [f32],
) {
    assert!(u.len() >= n * cout * cin && v.len() >= n * cin * t && m.len() >= n * cout * t);
    for xi in 0..n {
        // SAFETY: dst M[ξ] [cout, t], lhs U[ξ] [cout, cin], rhs V[ξ] [cin, t]: row-major and
        // in bounds of `m`, `u` and `v` (asserted above).
        unsafe {
            gemm::gemm(
                cout,
                t,
                cin,
                m.as_mut_ptr().add(xi * cout * t),
                1,
                t as isize,
                false,
                u.as_ptr().add(xi * cout * cin),
                1,
                cin as isize,
                v.as_ptr().add(xi * cin * t),
                1,
                t as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// V[ξ][c][tile] = (Bᵀ d B)[ξ] of every 4×4 input patch d (zero outside the image) of the
/// images `imgs`, with Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]. A
/// tile row's four input rows are read de-interleaved (E[j] = p[2j], O[j] = p[2j + 1] of the
/// zero-padded row p), so both passes are whole-row vector operations: Bᵀ d down the columns,
/// then across the tiles (tile `tx` reads E[tx], O[tx], E[tx + 1], O[tx + 1]). `t`: tiles
/// per plane of V, padded.
#[inline(always)]
fn input_transform(s: &Shape, x: &[f32], imgs: std::ops::Range<usize>, t: usize, v: &mut [f32]) {
    let (th, tw) = s.tiles();
    let (h, w) = (s.h, s.w);
    let n = tw + 1;
    let used = imgs.len() * th * tw;
    let mut e = [vec![0f32; n], vec![0f32; n], vec![0f32; n], vec![0f32; n]];
    let mut o = [vec![0f32; n], vec![0f32; n], vec![0f32; n], vec![0f32; n]];
    for c in 0..s.cin {
        let mut vc: [&mut [f32]; 16] = {
            let mut it = v.chunks_exact_mut(t).skip(c).step_by(s.cin);
            std::array::from_fn(|_| it.next().expect("16 planes"))
        };
        for p in vc.iter_mut() {
            p[used..].fill(0.0);
        }
        for (ii, img) in imgs.clone().enumerate() {
            let plane = &x[(c * s.imgs + img) * h * w..][..h * w];
            for ty in 0..th {
                for r in 0..4 {
                    let iy = (2 * ty + r) as isize - 1;
                    let (er, or) = (&mut e[r][..n], &mut o[r][..n]);
                    er.fill(0.0);
                    or.fill(0.0);
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let row = &plane[iy as usize * w..][..w];
                    // p[j] = row[j − 1]: O[j] = row[2j], E[j + 1] = row[2j + 1]
                    for (j, pair) in row.chunks_exact(2).enumerate() {
                        or[j] = pair[0];
                        er[j + 1] = pair[1];
                    }
                    if w % 2 == 1 {
                        or[w / 2] = row[w - 1];
                    }
                }
                // Bᵀ d, in place: rows (d0 − d2, d1 + d2, d2 − d1, d1 − d3)
                for q in [&mut e, &mut o] {
                    let [r0, r1, r2, r3] = q;
                    let (r0, r1, r2, r3) = (&mut r0[..n], &mut r1[..n], &mut r2[..n], &mut r3[..n]);
                    for j in 0..n {
                        let (a, b, c, d) = (r0[j], r1[j], r2[j], r3[j]);
                        r0[j] = a - c;
                        r1[j] = b + c;
                        r2[j] = c - b;
                        r3[j] = b - d;
                    }
                }
                let k0 = (ii * th + ty) * tw;
                for r in 0..4 {
                    let (er, or) = (&e[r][..n], &o[r][..n]);
                    let [a, b, c, d] = &mut vc[4 * r..4 * r + 4] else {
                        unreachable!()
                    };
                    let (a, b, c, d) = (
                        &mut a[k0..k0 + tw],
                        &mut b[k0..k0 + tw],
                        &mut c[k0..k0 + tw],
                        &mut d[k0..k0 + tw],
                    );
                    for tx in 0..tw {
                        a[tx] = er[tx] - er[tx + 1];
                        b[tx] = or[tx] + er[tx + 1];
                        c[tx] = er[tx + 1] - or[tx];
                        d[tx] = or[tx] - or[tx + 1];
                    }
                }
            }
        }
    }
}

/// One output transform: M of a chunk of images and what goes on top of it.
struct OutJob<'a> {
    s: &'a Shape,
    m: &'a [f32],
    /// Tiles per plane of M (padded to L).
    t: usize,
    imgs: std::ops::Range<usize>,
    bias: &'a [f32],
    residual: Option<&'a [f32]>,
    relu: bool,
}

/// out = act(Aᵀ M A + bias (+ residual)) per tile, Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]: the
/// four outputs of every tile in blocks of L tiles (`y`: 4 × t scratch), then placed row by
/// row; the outputs past an odd edge are dropped.
#[inline(always)]
fn output_transform(job: &OutJob, y: &mut [f32], out: &mut [f32]) {
    let OutJob {
        s,
        m,
        t,
        ref imgs,
        bias,
        residual,
        relu,
    } = *job;
    let (th, tw) = s.tiles();
    let (h, w) = (s.h, s.w);
    let mut row = vec![0f32; 2 * tw];
    for o in 0..s.cout {
        let (y0, rest) = y.split_at_mut(t);
        let (y1, rest) = rest.split_at_mut(t);
        let (y2, y3) = rest.split_at_mut(t);
        for kb in (0..t).step_by(L) {
            let g: [&[f32; L]; 16] = std::array::from_fn(|xi| {
                m[(xi * s.cout + o) * t + kb..][..L]
                    .try_into()
                    .expect("a block")
            });
            let (d0, d1, d2, d3): (&mut [f32; L], &mut [f32; L], &mut [f32; L], &mut [f32; L]) = (
                (&mut y0[kb..kb + L]).try_into().expect("a block"),
                (&mut y1[kb..kb + L]).try_into().expect("a block"),
                (&mut y2[kb..kb + L]).try_into().expect("a block"),
                (&mut y3[kb..kb + L]).try_into().expect("a block"),
            );
            // Aᵀ M by rows (s0 = m0 + m1 + m2, s1 = m1 − m2 − m3), then · A by columns
            let mut s0 = [[0f32; L]; 4];
            let mut s1 = [[0f32; L]; 4];
            for c in 0..4 {
                let (m0, m1, m2, m3) = (g[c], g[4 + c], g[8 + c], g[12 + c]);
                for l in 0..L {
                    s0[c][l] = m0[l] + m1[l] + m2[l];
                    s1[c][l] = m1[l] - m2[l] - m3[l];
                }
            }
            for l in 0..L {
                d0[l] = s0[0][l] + s0[1][l] + s0[2][l];
                d1[l] = s0[1][l] - s0[2][l] - s0[3][l];
                d2[l] = s1[0][l] + s1[1][l] + s1[2][l];
                d3[l] = s1[1][l] - s1[2][l] - s1[3][l];
            }
        }
        let b = bias[o];
        for (ii, img) in imgs.clone().enumerate() {
            let plane = (o * s.imgs + img) * h * w;
            for ty in 0..th {
                let k0 = (ii * th + ty) * tw;
                for (r, (ya, yb)) in [(&*y0, &*y1), (&*y2, &*y3)].into_iter().enumerate() {
                    let oy = 2 * ty + r;
                    if oy >= h {
                        break;
                    }
                    let (ya, yb) = (&ya[k0..k0 + tw], &yb[k0..k0 + tw]);
                    for (pair, (a, c)) in row.chunks_exact_mut(2).zip(ya.iter().zip(yb)) {
                        pair[0] = a + b;
                        pair[1] = c + b;
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

#[cfg(test)]
mod tests {
    use super::super::conv::{Act, FoldedConv};
    use crate::infer::seeded::{normal, randn};
    use candle_nn::{BatchNorm, Conv2d, Conv2dConfig};

    /// Winograd = im2col on the same folded convolution: even and odd sizes, several images
    /// per chunk and one, with a residual and without.
    #[test]
    fn winograd_equals_im2col() {
        for (case, (cin, cout, h, w, imgs)) in [
            (16, 8, 8, 8, 3),
            (32, 16, 7, 5, 2),
            (16, 24, 1, 1, 5),
            (20, 4, 33, 32, 1),
            (16, 16, 3, 4, 70),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 100 * case as u64;
            let wt = randn(seed, 0.0, 0.3, (cout, cin, 3, 3));
            let cfg = Conv2dConfig {
                padding: 1,
                ..Default::default()
            };
            let conv = Conv2d::new(wt, None, cfg);
            let mean = randn(seed + 1, 0.0, 0.3, cout);
            let var = (randn(seed + 2, 0.0, 0.3, cout).abs().unwrap() + 0.5).unwrap();
            let g = randn(seed + 3, 1.0, 0.2, cout);
            let b = randn(seed + 4, 0.0, 0.2, cout);
            let bn = BatchNorm::new(cout, mean, var, g, b, 1e-5).unwrap();
            let fast = FoldedConv::fold(&conv, &bn).unwrap();
            let slow = fast.clone().im2col_only();
            let x = normal(seed + 5, cin * imgs * h * w, 0.0, 1.0);
            let res = normal(seed + 6, cout * imgs * h * w, 0.0, 1.0);
            for (residual, act) in [
                (None, Act::Relu),
                (Some(&res[..]), Act::Relu),
                (None, Act::None),
            ] {
                let (mut a, mut b, mut col) = (Vec::new(), Vec::new(), Vec::new());
                assert_eq!(
                    fast.forward(&x, imgs, h, w, &mut a, &mut col, residual, act),
                    (h, w)
                );
                slow.forward(&x, imgs, h, w, &mut b, &mut col, residual, act);
                assert_eq!(a.len(), b.len());
                let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                let err = a
                    .iter()
                    .zip(&b)
                    .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(
                    err <= 1e-5 * scale,
                    "{cin}→{cout} {h}×{w}×{imgs}: {err} of {scale}"
                );
            }
        }
    }

    /// U = G g Gᵀ by hand for a kernel of ones: rows of G sum to 1, 1.5, 0.5, 1.
    #[test]
    fn weight_transform_by_hand() {
        let u = super::transform_weights(&[1.0; 9], 1, 1);
        let r = [1.0f32, 1.5, 0.5, 1.0];
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(u[i * 4 + j], r[i] * r[j]);
            }
        }
    }
}
