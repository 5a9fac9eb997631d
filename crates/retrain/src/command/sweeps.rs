//! The sweeps of a run, expanded into configurations: each selected method over its δ
//! (`--sweep-delta`), τ (`--sweep-tau`) or any numeric constant (`--sweep PARAM=…`), then over
//! the lr × wd grid (`--grid`); and the names of the parameters that vary in the tables.

use super::cli::{DEFAULT_DELTAS, RunArgs};
use crate::method::{Loss, Method};
use anyhow::bail;

impl RunArgs {
    /// Every configuration to run: each method over its δ or τ sweep, then over the grid.
    pub(super) fn expand(&self, methods: &[Method]) -> anyhow::Result<Vec<Method>> {
        let mut expanded = Vec::new();
        for m in methods {
            if self.sweep_delta {
                expanded.extend(self.delta_sweep(m)?);
            } else if self.sweep_tau {
                expanded.extend(tau_sweep(m)?);
            } else if let Some(sw) = &self.sweep {
                for &v in &sw.values {
                    expanded.push(crate::method::params::with_param(m, &sw.param, v)?);
                }
            } else {
                expanded.push(m.clone());
            }
        }
        if let Some(g) = &self.grid {
            expanded = expanded
                .into_iter()
                .flat_map(|m| {
                    g.cells().into_iter().map(move |(lr, wd)| {
                        let mut v = m.clone();
                        v.hyper.lr = lr;
                        v.hyper.wd = wd;
                        v
                    })
                })
                .collect();
        }
        Ok(expanded)
    }

    fn delta_sweep(&self, m: &Method) -> anyhow::Result<Vec<Method>> {
        if !matches!(m.loss, Loss::Ce { .. }) {
            bail!(
                "--sweep-delta: method `{}` has no label smoothing (it applies to CE rows such as los)",
                m.name
            );
        }
        Ok(self
            .deltas
            .as_deref()
            .unwrap_or(&DEFAULT_DELTAS)
            .iter()
            .map(|&d| {
                let mut v = m.clone();
                v.loss = Loss::Ce { smoothing: d };
                v
            })
            .collect())
    }

    /// The parameters that vary between the rows of the tables.
    pub(super) fn swept(&self) -> Vec<String> {
        let mut swept: Vec<String> = Vec::new();
        if self.sweep_delta {
            swept.push("delta".into());
        }
        if let Some(s) = &self.sweep {
            swept.push(s.param.clone());
        }
        if self.grid.is_some() {
            swept.extend(["lr".into(), "wd".into()]);
        }
        if self.sweep_tau {
            swept.push("tau".into());
        }
        swept
    }
}

/// τ = 0, 0.1, …, 2 of a post-hoc method.
fn tau_sweep(m: &Method) -> anyhow::Result<Vec<Method>> {
    if m.tau().is_none() {
        bail!(
            "--sweep-tau: method `{}` has no τ (use tau-norm, logit-adjust, balanced-softmax, la-loss or vs)",
            m.name
        );
    }
    // i/10 in f64, then f32: 0.9 is 0.9 (not 9 × 0.1f32 = 0.90000004)
    Ok((0..=20)
        .map(|i| m.with_tau((i as f64 / 10.0) as f32))
        .collect())
}
