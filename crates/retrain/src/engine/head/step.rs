//! A head's forward and backward pass on a gathered minibatch (the trainer's step).

use super::infer::{normalize_rows, sigmoid};
use super::{HeadState, NORM_EPS};
use crate::engine::linalg::{Parallelism, dot, matmul_abt, matmul_atb, norm};
use crate::method::Head;

/// Reusable buffers of one training run (no allocation per step).
#[derive(Debug, Default)]
pub struct StepBuffers {
    /// Minibatch features [B, D] (normalised in place for cosine heads).
    pub xb: Vec<f32>,
    pub yb: Vec<u32>,
    /// Logits [B, K] and ∂L/∂z [B, K].
    pub z: Vec<f32>,
    pub g: Vec<f32>,
    /// LWS and DisAlign pre-scale logits [B, K], DisAlign's gate values [B].
    u: Vec<f32>,
    gates: Vec<f32>,
    /// Cosine: s·Ŵ [K, D] and ‖w_i‖ [K].
    what: Vec<f32>,
    norms: Vec<f32>,
    /// Gradients of weight [K, D], bias [K], scales [K], shift [K], gate [D + 1].
    pub dw: Vec<f32>,
    pub db: Vec<f32>,
    pub dc: Vec<f32>,
    pub dt: Vec<f32>,
    pub dgate: Vec<f32>,
}

impl StepBuffers {
    pub fn new(batch: usize, k: usize, d: usize) -> StepBuffers {
        StepBuffers {
            xb: vec![0.0; batch * d],
            yb: vec![0; batch],
            z: vec![0.0; batch * k],
            g: vec![0.0; batch * k],
            u: vec![0.0; batch * k],
            gates: vec![0.0; batch],
            what: vec![0.0; k * d],
            norms: vec![0.0; k],
            dw: vec![0.0; k * d],
            db: vec![0.0; k],
            dc: vec![0.0; k],
            dt: vec![0.0; k],
            dgate: vec![0.0; d + 1],
        }
    }
}

/// Forward a gathered minibatch of `b` rows (in `buf.xb`) into `buf.z`.
pub fn forward(head: &HeadState, buf: &mut StepBuffers, b: usize, par: Parallelism) {
    let (k, d) = (head.num_classes, head.dim);
    match head.kind {
        Head::Linear => {
            for r in buf.z[..b * k].chunks_exact_mut(k) {
                r.copy_from_slice(&head.bias);
            }
            matmul_abt(&mut buf.z, &buf.xb, &head.weight, b, k, d, true, par);
        }
        Head::Cosine { scale } => {
            normalize_rows(&mut buf.xb[..b * d], d);
            for ((row, out), n) in head
                .weight
                .chunks_exact(d)
                .zip(buf.what.chunks_exact_mut(d))
                .zip(buf.norms.iter_mut())
            {
                *n = norm(row).max(NORM_EPS);
                let f = scale / *n;
                out.iter_mut().zip(row).for_each(|(o, w)| *o = w * f);
            }
            matmul_abt(&mut buf.z, &buf.xb, &buf.what, b, k, d, false, par);
        }
        Head::Lws { .. } => {
            for r in buf.u[..b * k].chunks_exact_mut(k) {
                r.copy_from_slice(&head.bias);
            }
            matmul_abt(&mut buf.u, &buf.xb, &head.weight, b, k, d, true, par);
            for (zr, ur) in buf.z[..b * k]
                .chunks_exact_mut(k)
                .zip(buf.u.chunks_exact(k))
            {
                for ((z, u), c) in zr.iter_mut().zip(ur).zip(&head.scales) {
                    *z = u * c;
                }
            }
        }
        Head::Ncm { .. } => unreachable!("an NCM head is not trained (MethodSpec::check)"),
        Head::DisAlign => {
            for r in buf.u[..b * k].chunks_exact_mut(k) {
                r.copy_from_slice(&head.bias);
            }
            matmul_abt(&mut buf.u, &buf.xb, &head.weight, b, k, d, true, par);
            let (v, c) = (&head.gate[..d], head.gate[d]);
            for (i, (zr, ur)) in buf.z[..b * k]
                .chunks_exact_mut(k)
                .zip(buf.u.chunks_exact(k))
                .enumerate()
            {
                let g = sigmoid(dot(&buf.xb[i * d..(i + 1) * d], v) + c);
                buf.gates[i] = g;
                for (((z, u), s), t) in zr.iter_mut().zip(ur).zip(&head.scales).zip(&head.shift) {
                    *z = u + g * (s * u + t);
                }
            }
        }
    }
}

/// Gradients of the trainable parameters from `buf.g` = ∂L/∂z (after [`forward`]).
pub fn backward(head: &HeadState, buf: &mut StepBuffers, b: usize, par: Parallelism) {
    let (k, d) = (head.num_classes, head.dim);
    match head.kind {
        Head::Linear => {
            matmul_atb(&mut buf.dw, &buf.g, &buf.xb, b, k, d, par);
            buf.db.fill(0.0);
            for gr in buf.g[..b * k].chunks_exact(k) {
                buf.db.iter_mut().zip(gr).for_each(|(s, g)| *s += g);
            }
        }
        Head::Cosine { scale } => {
            // ∂(s ŵ) = Gᵀ x̂ → ∂ŵ = s Gᵀ x̂
            matmul_atb(&mut buf.dw, &buf.g, &buf.xb, b, k, d, par);
            for ((dwr, whr), n) in buf
                .dw
                .chunks_exact_mut(d)
                .zip(buf.what.chunks_exact(d))
                .zip(&buf.norms)
            {
                // what row = s ŵ; dwr = Gᵀx̂ row = ∂z/∂(s ŵ)
                let dot: f32 = dot(dwr, whr) / (scale * scale);
                let f = scale / n;
                dwr.iter_mut()
                    .zip(whr)
                    .for_each(|(a, w)| *a = f * (*a - dot * w));
            }
            buf.db.fill(0.0);
        }
        Head::Lws { train_linear, .. } => {
            buf.dc.fill(0.0);
            for (gr, ur) in buf.g[..b * k].chunks_exact(k).zip(buf.u.chunks_exact(k)) {
                for ((s, g), u) in buf.dc.iter_mut().zip(gr).zip(ur) {
                    *s += g * u;
                }
            }
            if train_linear {
                // ∂u = G ⊙ c, in place (G is not needed after this)
                for gr in buf.g[..b * k].chunks_exact_mut(k) {
                    gr.iter_mut().zip(&head.scales).for_each(|(g, c)| *g *= c);
                }
                matmul_atb(&mut buf.dw, &buf.g, &buf.xb, b, k, d, par);
                buf.db.fill(0.0);
                for gr in buf.g[..b * k].chunks_exact(k) {
                    buf.db.iter_mut().zip(gr).for_each(|(s, g)| *s += g);
                }
            }
        }
        Head::Ncm { .. } => unreachable!("an NCM head is not trained (MethodSpec::check)"),
        Head::DisAlign => {
            buf.dc.fill(0.0);
            buf.dt.fill(0.0);
            buf.dgate.fill(0.0);
            for (i, (gr, ur)) in buf.g[..b * k]
                .chunks_exact(k)
                .zip(buf.u.chunks_exact(k))
                .enumerate()
            {
                let g = buf.gates[i];
                let mut dg = 0.0f32;
                for (c, (gz, u)) in gr.iter().zip(ur).enumerate() {
                    buf.dc[c] += gz * g * u;
                    buf.dt[c] += gz * g;
                    dg += gz * (head.scales[c] * u + head.shift[c]);
                }
                let h = dg * g * (1.0 - g);
                let x = &buf.xb[i * d..(i + 1) * d];
                buf.dgate[..d]
                    .iter_mut()
                    .zip(x)
                    .for_each(|(s, x)| *s += h * x);
                buf.dgate[d] += h;
            }
        }
    }
}
