//! A re-training method as data: the paper's Eq. 1 split into its parts,
//! `Method { head, loss, sampler, constraint, posthoc }`, plus the optimiser settings it runs
//! with. A Table 1 row is one `[[method]]` entry of `baselines/table1.toml`; LOS is
//! `loss = { kind = "ce", smoothing = 0.98 }`, nothing more.
//!
//! `MethodSpec` is what a file or the command line says (unchecked); [`MethodSpec::check`]
//! turns it into a [`Method`], the only thing the trainer accepts.

use serde::{Deserialize, Serialize};

/// z = g(W, f(x)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Head {
    /// `z = W f + b` (nn.Linear).
    Linear,
    /// `z = s · cos(w_i, f)`: rows of W and the feature both L2-normalised, no bias (1/τ = s).
    Cosine {
        #[serde(default = "default_cosine_scale")]
        scale: f32,
    },
    /// Learnable weight scaling: `z = c ⊙ (W f + b)` with W, b frozen (stage 1), c trained from 1.
    Lws,
}

fn default_cosine_scale() -> f32 {
    16.0
}

/// −r_w(y) log softmax(z) and its relatives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Loss {
    /// Cross-entropy with PyTorch `label_smoothing = smoothing` (δ): true class 1 − δ + δ/K,
    /// others δ/K. δ = 0 is plain CE; LOS is δ = 0.98.
    Ce {
        #[serde(default)]
        smoothing: f32,
    },
    /// Focal loss, LDAM-DRW form: mean((1 − p_y)^γ · CE).
    Focal {
        #[serde(default = "default_gamma")]
        gamma: f32,
    },
    /// Class-balanced loss (Cui et al.): w_c = (1 − β)/(1 − β^n_c), normalised to sum K.
    ClassBalanced {
        #[serde(default = "default_beta")]
        beta: f32,
        #[serde(default)]
        form: CbForm,
    },
    /// LDAM: CE(s·(cos − m_y·1{y})), m_c ∝ n_c^(−1/4) scaled so max m = `max_margin`; s is the
    /// cosine head's scale.
    Ldam {
        #[serde(default = "default_max_margin")]
        max_margin: f32,
    },
    /// Balanced softmax: CE(z + log n_c) in training, plain z at test.
    BalancedSoftmax,
}

fn default_gamma() -> f32 {
    1.0
}
fn default_beta() -> f32 {
    0.9999
}
fn default_max_margin() -> f32 {
    0.5
}

/// Which loss the class-balanced weights multiply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CbForm {
    /// Σ_i w_{y_i} Σ_c BCE(z_ic, onehot_ic) / B (CB TF repo `sigmoid`; the paper's "with BCE").
    #[default]
    Sigmoid,
    /// Σ_i w_{y_i} CE_i / B (CB TF repo `softmax`).
    Softmax,
    /// Σ_i w_{y_i} Σ_c BCE(softmax(z_i)_c, onehot_ic) / (B K): LTWB's `CB_loss(.., "softmax")`,
    /// the code behind the class-balanced numbers of LTWB and the LOS paper.
    SoftmaxBce,
}

/// r_s: how minibatches are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampler {
    /// Every training row once per epoch, shuffled.
    #[default]
    InstanceBalanced,
    /// N draws per epoch: a class uniformly, then a row of it uniformly (with replacement).
    ClassBalanced,
}

/// Constraint on W applied by projection (PGD).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Constraint {
    #[default]
    None,
    /// MaxNorm (LTWB): rows with ‖w_i‖ > t are rescaled to t, with
    /// t = min‖w⁰‖ + thresh·(max‖w⁰‖ − min‖w⁰‖) from the initial head; bias unconstrained.
    MaxNorm {
        #[serde(default = "default_maxnorm_thresh")]
        thresh: f32,
        #[serde(default)]
        every: ProjectEvery,
    },
}

fn default_maxnorm_thresh() -> f32 {
    0.1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProjectEvery {
    /// After every optimiser step (the paper's PGD).
    #[default]
    Step,
    /// Once per epoch (what the LTWB code does: a known bug, kept to reproduce it).
    Epoch,
}

/// h: applied to the logits at inference.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PostHoc {
    #[default]
    None,
    /// τ-normalisation (Decoupling): z = (w_i/‖w_i‖^τ)ᵀ f, bias dropped.
    TauNorm {
        #[serde(default = "default_tau")]
        tau: f32,
    },
    /// Post-hoc logit adjustment (Menon et al.): z − τ log π_c, π = train class priors.
    LogitAdjust {
        #[serde(default = "default_tau")]
        tau: f32,
    },
}

fn default_tau() -> f32 {
    1.0
}

/// How the head is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Solver {
    /// Minibatch SGD with the row's optimiser settings (every Table 1 method).
    #[default]
    Sgd,
    /// Class-weighted (balanced, w_c = N/(K n_c)) multinomial logistic regression with an L2
    /// penalty, full batch, L-BFGS to convergence ([`crate::engine::logreg`]); the loss, sampler and
    /// optimiser settings of the row do not apply. A reference row.
    Lbfgs {
        #[serde(default = "default_l2")]
        l2: f32,
        #[serde(default = "default_max_iter")]
        max_iter: usize,
    },
}

fn default_l2() -> f32 {
    1e-4
}
fn default_max_iter() -> usize {
    200
}

/// Where the head starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// From the bank's stage-1 head (the LOS protocol).
    #[default]
    Stage1,
    /// PyTorch nn.Linear default init, U(±1/√D), seeded.
    Fresh,
}

/// Learning-rate schedule: cosine to 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// lr_e = lr (1 + cos(π e / T)) / 2 for epoch e = 0..T−1, stepped after each epoch (LOS).
    #[default]
    CosineEpoch,
    /// The same curve evaluated at every optimiser step.
    CosineStep,
    /// No decay.
    Constant,
}

/// Optimiser and loop settings; every field optional so that a row, the defaults and the
/// command line can be layered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HyperSpec {
    pub lr: Option<f32>,
    pub wd: Option<f32>,
    pub momentum: Option<f32>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub init: Option<Init>,
    pub schedule: Option<Schedule>,
}

impl HyperSpec {
    /// `self` where set, else `other`.
    pub fn or(&self, other: &HyperSpec) -> HyperSpec {
        HyperSpec {
            lr: self.lr.or(other.lr),
            wd: self.wd.or(other.wd),
            momentum: self.momentum.or(other.momentum),
            epochs: self.epochs.or(other.epochs),
            batch_size: self.batch_size.or(other.batch_size),
            init: self.init.or(other.init),
            schedule: self.schedule.or(other.schedule),
        }
    }
}

/// The LOS code's stage-2 defaults: lr 5e-4, wd 0, momentum 0.9, batch 64, 20 epochs,
/// init from stage 1, cosine stepped after each epoch.
pub fn los_defaults() -> Hyper {
    Hyper {
        lr: 5e-4,
        wd: 0.0,
        momentum: 0.9,
        epochs: 20,
        batch_size: 64,
        init: Init::Stage1,
        schedule: Schedule::CosineEpoch,
    }
}

/// Resolved optimiser settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hyper {
    pub lr: f32,
    pub wd: f32,
    pub momentum: f32,
    pub epochs: usize,
    pub batch_size: usize,
    pub init: Init,
    pub schedule: Schedule,
}

/// One row of `table1.toml`, unchecked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodSpec {
    pub name: String,
    #[serde(default = "default_head")]
    pub head: Head,
    #[serde(default = "default_loss")]
    pub loss: Loss,
    #[serde(default)]
    pub sampler: Sampler,
    #[serde(default)]
    pub constraint: Constraint,
    #[serde(default)]
    pub posthoc: PostHoc,
    #[serde(default)]
    pub solver: Solver,
    /// `false` for purely post-hoc rows (τ-norm, logit adjustment): the stage-1 head is
    /// evaluated as it is.
    #[serde(default = "default_true")]
    pub train: bool,
    #[serde(flatten)]
    pub hyper: HyperSpec,
}

fn default_head() -> Head {
    Head::Linear
}
fn default_loss() -> Loss {
    Loss::Ce { smoothing: 0.0 }
}
fn default_true() -> bool {
    true
}

/// A checked method: the only thing the trainer accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Method {
    pub name: String,
    pub head: Head,
    pub loss: Loss,
    pub sampler: Sampler,
    pub constraint: Constraint,
    pub posthoc: PostHoc,
    pub solver: Solver,
    pub train: bool,
    pub hyper: Hyper,
}

/// What is wrong with a method, named by field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("method `{method}`: {field} {msg}")]
pub struct MethodError {
    pub method: String,
    pub field: &'static str,
    pub msg: String,
}

impl MethodSpec {
    /// Validate against the resolved hyper-parameters (`defaults` fill what the row leaves open).
    pub fn check(&self, defaults: &Hyper) -> Result<Method, MethodError> {
        let hyper = self.resolve(defaults);
        self.check_hyper(&hyper)?;
        self.check_loss()?;
        self.check_parts(&hyper)?;
        Ok(Method {
            name: self.name.clone(),
            head: self.head,
            loss: self.loss,
            sampler: self.sampler,
            constraint: self.constraint,
            posthoc: self.posthoc,
            solver: self.solver,
            train: self.train,
            hyper,
        })
    }

    fn err(&self, field: &'static str, msg: String) -> MethodError {
        MethodError {
            method: self.name.clone(),
            field,
            msg,
        }
    }

    /// The row's settings, with `defaults` where it leaves one open.
    fn resolve(&self, defaults: &Hyper) -> Hyper {
        let h = &self.hyper;
        Hyper {
            lr: h.lr.unwrap_or(defaults.lr),
            wd: h.wd.unwrap_or(defaults.wd),
            momentum: h.momentum.unwrap_or(defaults.momentum),
            epochs: h.epochs.unwrap_or(defaults.epochs),
            batch_size: h.batch_size.unwrap_or(defaults.batch_size),
            init: h.init.unwrap_or(defaults.init),
            schedule: h.schedule.unwrap_or(defaults.schedule),
        }
    }

    fn check_hyper(&self, hyper: &Hyper) -> Result<(), MethodError> {
        let err = |field, msg| self.err(field, msg);
        if !(hyper.lr.is_finite() && hyper.lr >= 0.0) {
            return Err(err(
                "lr",
                format!("must be a finite number ≥ 0, got {}", hyper.lr),
            ));
        }
        if !(hyper.wd.is_finite() && hyper.wd >= 0.0) {
            return Err(err(
                "wd",
                format!("must be a finite number ≥ 0, got {}", hyper.wd),
            ));
        }
        if !(0.0..1.0).contains(&hyper.momentum) {
            return Err(err(
                "momentum",
                format!("must be in [0, 1), got {}", hyper.momentum),
            ));
        }
        if self.train && hyper.epochs == 0 {
            return Err(err("epochs", "must be ≥ 1".into()));
        }
        if hyper.batch_size == 0 {
            return Err(err("batch_size", "must be ≥ 1".into()));
        }
        Ok(())
    }

    fn check_loss(&self) -> Result<(), MethodError> {
        let err = |field, msg| self.err(field, msg);
        match self.loss {
            Loss::Ce { smoothing } if !(0.0..1.0).contains(&smoothing) => Err(err(
                "loss.smoothing (δ)",
                format!("must be in [0, 1), got {smoothing}"),
            )),
            Loss::Focal { gamma } if !(gamma.is_finite() && gamma >= 0.0) => {
                Err(err("loss.gamma", format!("must be ≥ 0, got {gamma}")))
            }
            Loss::ClassBalanced { beta, .. } if !(0.0..1.0).contains(&beta) => {
                Err(err("loss.beta", format!("must be in [0, 1), got {beta}")))
            }
            Loss::Ldam { max_margin } if !(max_margin.is_finite() && max_margin > 0.0) => Err(err(
                "loss.max_margin",
                format!("must be > 0, got {max_margin}"),
            )),
            Loss::Ldam { .. } if !matches!(self.head, Head::Cosine { .. }) => Err(err(
                "loss",
                "ldam needs a cosine head (head = { kind = \"cosine\", scale = 30 })".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Head, constraint, post-hoc, solver and init, and how they fit together.
    fn check_parts(&self, hyper: &Hyper) -> Result<(), MethodError> {
        let err = |field, msg| self.err(field, msg);
        if let Head::Cosine { scale } = self.head {
            if !(scale.is_finite() && scale > 0.0) {
                return Err(err("head.scale", format!("must be > 0, got {scale}")));
            }
        }
        if let Constraint::MaxNorm { thresh, .. } = self.constraint {
            if !(0.0..=1.0).contains(&thresh) {
                return Err(err(
                    "constraint.thresh",
                    format!("must be in [0, 1], got {thresh}"),
                ));
            }
        }
        match self.posthoc {
            PostHoc::TauNorm { tau } | PostHoc::LogitAdjust { tau } if !tau.is_finite() => {
                return Err(err("posthoc.tau", format!("must be finite, got {tau}")));
            }
            PostHoc::TauNorm { .. } if self.head != Head::Linear => {
                return Err(err("posthoc", "tau-norm applies to a linear head".into()));
            }
            _ => {}
        }
        if let Solver::Lbfgs { l2, max_iter } = self.solver {
            if self.head != Head::Linear {
                return Err(err("solver", "lbfgs fits a linear head".into()));
            }
            if !(l2.is_finite() && l2 >= 0.0) || max_iter == 0 {
                return Err(err(
                    "solver",
                    format!("needs l2 ≥ 0 and max_iter ≥ 1, got {l2}, {max_iter}"),
                ));
            }
        }
        if (self.head == Head::Lws || !self.train) && hyper.init == Init::Fresh {
            return Err(err(
                "init",
                "this method works on the stage-1 head: --init fresh does not apply".into(),
            ));
        }
        Ok(())
    }
}

impl Method {
    /// True when the seed cannot change the result (no training, or a deterministic
    /// full-batch solver): such methods run once, with n = 1 in the tables.
    pub fn seed_independent(&self) -> bool {
        !self.train || matches!(self.solver, Solver::Lbfgs { .. })
    }

    /// The label-smoothing δ when the loss is CE (LOS), for tables and sweeps.
    pub fn delta(&self) -> Option<f32> {
        match self.loss {
            Loss::Ce { smoothing } => Some(smoothing),
            _ => None,
        }
    }

    /// The post-hoc τ, for tables and sweeps.
    pub fn tau(&self) -> Option<f32> {
        match self.posthoc {
            PostHoc::TauNorm { tau } | PostHoc::LogitAdjust { tau } => Some(tau),
            PostHoc::None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_row: &str) -> MethodSpec {
        toml::from_str(toml_row).unwrap()
    }

    #[test]
    fn los_is_ce_with_smoothing() {
        let m = spec("name = \"los\"\nloss = { kind = \"ce\", smoothing = 0.98 }")
            .check(&los_defaults())
            .unwrap();
        assert_eq!(m.loss, Loss::Ce { smoothing: 0.98 });
        assert_eq!(m.hyper, los_defaults());
        assert_eq!(m.delta(), Some(0.98));
    }

    #[test]
    fn row_overrides_defaults() {
        let m = spec("name = \"x\"\nlr = 0.01\nepochs = 5")
            .check(&los_defaults())
            .unwrap();
        assert_eq!(
            (m.hyper.lr, m.hyper.epochs, m.hyper.batch_size),
            (0.01, 5, 64)
        );
    }

    #[test]
    fn rejects_delta_outside_unit_interval() {
        let e = spec("name = \"los\"\nloss = { kind = \"ce\", smoothing = 1.0 }")
            .check(&los_defaults())
            .unwrap_err();
        assert_eq!(e.field, "loss.smoothing (δ)");
    }

    #[test]
    fn rejects_negative_lr_and_zero_batch() {
        assert_eq!(
            spec("name = \"a\"\nlr = -1.0")
                .check(&los_defaults())
                .unwrap_err()
                .field,
            "lr"
        );
        assert_eq!(
            spec("name = \"a\"\nbatch_size = 0")
                .check(&los_defaults())
                .unwrap_err()
                .field,
            "batch_size"
        );
    }

    #[test]
    fn ldam_needs_cosine() {
        let e = spec("name = \"l\"\nloss = { kind = \"ldam\" }")
            .check(&los_defaults())
            .unwrap_err();
        assert_eq!(e.field, "loss");
    }

    #[test]
    fn unknown_field_is_an_error() {
        assert!(toml::from_str::<MethodSpec>("name = \"a\"\nlearning_rate = 1.0").is_err());
    }
}
