//! A re-training method as data: the paper's Eq. 1 split into its parts,
//! `Method { head, loss, sampler, constraint, posthoc }`, plus the optimiser settings it runs
//! with. A Table 1 row is one `[[method]]` entry of `baselines/table1.toml`; LOS is
//! `loss = { kind = "ce", smoothing = 0.98 }`, nothing more.
//!
//! `MethodSpec` is what a file or the command line says (unchecked); [`MethodSpec::check`]
//! turns it into a [`Method`], the only thing the trainer accepts.

use serde::{Deserialize, Serialize};

pub use super::hyper::*;

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
    /// Learnable weight scaling: `z = c ⊙ (W f + b)`, c trained from 1; W, b frozen (stage 1,
    /// Decoupling's LWS) or, with `train_linear`, trained too (MiSLAS's stage 2) at
    /// `lr_factor` × the row's learning rate (MiSLAS `train_stage2.py`: two parameter groups,
    /// the classifier's at `config.lr_factor · lr`).
    Lws {
        #[serde(default)]
        train_linear: bool,
        #[serde(default = "default_one")]
        lr_factor: f32,
    },
    /// DisAlign (Zhang et al. 2021) as cvpods' `DisAlignLinear` (`cvpods/layers/wrappers.py`):
    /// W, b frozen; `z' = (1 + σ·s) ⊙ z + σ·t` with the gate `σ = sigmoid(vᵀf + c)`;
    /// s = 1, t = 0, v = 0.1 in every entry, c ~ U(±1/√D) (nn.Linear's bias init, seeded)
    /// at the start; s, t, v, c trained. (The paper's form `(1 − σ)z + σ(s' ⊙ z + t)` is the
    /// same function with s' = 1 + s.)
    DisAlign,
    /// Nearest class mean (Decoupling's `KNNClassifier`), not trained: features transformed by
    /// `features` (`un` as they are, `l2n` L2-normalised, `cl2n` centred on the train mean
    /// then L2-normalised), centroids the class means of the transformed train features (not
    /// re-normalised), scored by `distance`: `l2` −‖x − μ_c‖², `cos` x·μ_c / D.
    Ncm {
        #[serde(default)]
        features: NcmFeatures,
        #[serde(default)]
        distance: NcmDistance,
    },
}

/// How NCM transforms a feature (Decoupling's `--feat_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NcmFeatures {
    /// As they are.
    Un,
    /// L2-normalised.
    L2n,
    /// Centred on the mean train feature, then L2-normalised (Decoupling's default).
    #[default]
    Cl2n,
}

/// How NCM scores a feature against a centroid (Decoupling's `--dist_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NcmDistance {
    /// −‖x − μ_c‖² (Decoupling's default).
    #[default]
    L2,
    /// x·μ_c / D.
    Cos,
}

fn default_one() -> f32 {
    1.0
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
    /// Balanced softmax / logit-adjusted loss (Menon et al.): CE(z + τ log n_c) in training
    /// (the same softmax as z + τ log π_c), plain z at test; balanced softmax is τ = 1.
    BalancedSoftmax {
        #[serde(default = "default_tau")]
        tau: f32,
    },
    /// Label-aware smoothing (MiSLAS): per-class smoothing ε_y from ε_tail (n_min) to ε_head
    /// (n_max) along `shape`; `loss_i = (1 − ε_y)·NLL_i + ε_y·mean_c(−log p_ic)`.
    Las {
        #[serde(default = "default_eps_head")]
        eps_head: f32,
        #[serde(default = "default_eps_tail")]
        eps_tail: f32,
        #[serde(default)]
        shape: LasShape,
        /// Exponent of the `exp` shape.
        #[serde(default = "default_las_power")]
        power: f32,
    },
    /// Class-dependent temperatures (Ye et al.): CE(z_c / a_c), a_c = (n_max/n_c)^γ; plain z at test.
    Cdt {
        #[serde(default = "default_cdt_gamma")]
        gamma: f32,
    },
    /// Vector-scaling loss (Kini et al.): CE(Δ_c z_c + τ log π_c), Δ_c = (n_c/n_max)^γ; the
    /// defaults are `VSLoss`'s (γ = 0.3, τ = 1.0, VS-Loss `class_imbalance/losses.py`).
    Vs {
        #[serde(default = "default_vs_gamma")]
        gamma: f32,
        #[serde(default = "default_vs_tau")]
        tau: f32,
    },
    /// LADE (Hong et al.): CE(z + log π) + α·L_LADE, the batch's ReMINE estimate with λ.
    Lade {
        #[serde(default = "default_lade")]
        alpha: f32,
        #[serde(default = "default_lade")]
        lambda: f32,
    },
    /// Balanced BCE (Xu et al. 2023): Σ_c BCE(z_c + log π_c − log(1 − π_c), 1{c = y}) / B.
    BalBce,
    /// Gaussian clouded logits (Li et al. 2022), on a cosine head of scale s: training logits
    /// a = s·(cos θ_c − noise_mul·|ε_c|·σ_c − margin·1{c = y}), ε ~ N(0, (1/3)²) clipped to ±1,
    /// σ_c = (log n_max − log n_c)/(log n_max − log n_min); per row CE_i = CE(a_i, y_i), and
    /// the loss mean_i (1 − p_i)^γ·CE_i with p_i = exp(−CE_i) detached (GCL `losses.py`
    /// `focal_loss`, used with `train_cls = True`; γ = 0 is plain CE); plain s·cos at test.
    Gcl {
        #[serde(default = "default_max_margin")]
        margin: f32,
        #[serde(default = "default_max_margin")]
        noise_mul: f32,
        #[serde(default)]
        gamma: f32,
    },
    /// A loss written outside ltbench (the Python package's `Method.custom`). `id` keys its
    /// records (a hash of what the function computes); the callback itself travels with the
    /// checked row ([`Method::custom`]).
    Custom { id: u64 },
}

fn default_eps_head() -> f32 {
    0.4
}
fn default_eps_tail() -> f32 {
    0.1
}
fn default_las_power() -> f32 {
    3.0
}
fn default_cdt_gamma() -> f32 {
    0.2
}
fn default_vs_gamma() -> f32 {
    0.3
}
fn default_vs_tau() -> f32 {
    1.0
}
fn default_lade() -> f32 {
    0.1
}

/// How label-aware smoothing goes from ε_tail to ε_head, with x = (n_y − n_min)/(n_max − n_min).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LasShape {
    /// ε_t + (ε_h − ε_t)·sin(πx/2).
    #[default]
    Concave,
    /// ε_t + (ε_h − ε_t)·x.
    Linear,
    /// ε_h + (ε_h − ε_t)·sin(3π/2 + πx/2).
    Convex,
    /// ε_t + (ε_h − ε_t)·x^power.
    Exp,
}

/// Per-class weights on a softmax-CE loss, with PyTorch `cross_entropy(weight=w)` semantics:
/// `Σ_i w_{y_i} CE_i / Σ_i w_{y_i}`. `from` defers them (DRW): plain CE for the epochs
/// e < ⌊from·E⌋.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Reweight {
    #[default]
    None,
    /// w_c = (1 − β)/(1 − β^n_c), normalised to Σ_c w_c = K (Cui et al.; DRW).
    ClassBalanced {
        #[serde(default = "default_beta")]
        beta: f32,
        #[serde(default)]
        from: f32,
    },
    /// w_c = (n_min/n_c)^γ (BagofTricks' smooth CS-CE).
    Power {
        #[serde(default = "default_gamma")]
        gamma: f32,
        #[serde(default)]
        from: f32,
    },
    /// w_c ∝ π_c^(−ρ), normalised to Σ_c w_c = K (DisAlign's generalised re-weighting).
    Prior {
        #[serde(default = "default_rho")]
        rho: f32,
        #[serde(default)]
        from: f32,
    },
}

fn default_rho() -> f32 {
    0.3
}

impl Reweight {
    /// The fraction of the epochs before the weights apply.
    pub fn from(&self) -> f32 {
        match *self {
            Reweight::None => 0.0,
            Reweight::ClassBalanced { from, .. }
            | Reweight::Power { from, .. }
            | Reweight::Prior { from, .. } => from,
        }
    }
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
    /// N draws per epoch: class c with p_c = √n_c / Σ √n, then a row of it uniformly.
    SquareRoot,
    /// Progressively balanced: at epoch e of E, p_c = (1 − t)·π_c + t/K with t = e/(E − 1)
    /// (Decoupling's `np.linspace(0, 1, E)`: the first epoch instance-balanced, the last
    /// class-balanced), then a row.
    Progressive,
    /// Effective-number class sampler (GCL's `EffectNumRS`): p_c ∝ n_c·(1 − β)/(1 − β^n_c),
    /// β = 0.9999.
    EffectiveNumber,
    /// Decoupling's `ClassAwareSampler` (num_samples_cls = 4): the classes in a shuffled
    /// cycle (reshuffled at each pass), 4 consecutive rows of each visited class from its own
    /// shuffled cycle; an epoch is ⌊N/B⌋ whole batches (`run_networks.py`: `epoch_steps =
    /// int(N / batch_size)`), the streams carry on across epochs.
    ClassAware,
}

/// Rows a class-aware visit takes from its class (Decoupling's and MiSLAS's
/// `num_samples_cls = 4`).
pub const CLASS_AWARE_ROWS: usize = 4;

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
    /// PC-softmax / Bayes-optimal prior correction (Hong et al. 2021): z − log π_c + log q_c
    /// for the test prior q being evaluated (uniform unless `--test-prior` names others).
    PriorCorrect,
}

fn default_tau() -> f32 {
    1.0
}

/// Which label prior a row's final logits (after its post-hoc step) estimate the posterior
/// under: what `--prior-correct` takes away before it adds the test prior's log q. LADE's
/// test-time rule (`hyperconnect/LADE` `run_networks.py:594-599`): a model trained with plain
/// softmax CE on a dot-product head gets `− log π_train`; a model trained prior-balanced
/// (its PriorCE / balanced softmax and LADE) gets `+ log q` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogitPrior {
    /// The training label prior π (instance-balanced draws, an unweighted loss, no post-hoc
    /// balancing): corrected by log q − log π.
    Train,
    /// A balanced (uniform) prior: the row balances by its sampler, its loss, its weights, its
    /// head or its post-hoc step; corrected by log q − log(1/K), so a uniform q leaves it as
    /// it is.
    Balanced,
}

impl LogitPrior {
    /// The name in TOML and in outputs.
    pub fn name(self) -> &'static str {
        match self {
            LogitPrior::Train => "train",
            LogitPrior::Balanced => "balanced",
        }
    }
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
    pub reweight: Reweight,
    #[serde(default)]
    pub solver: Solver,
    /// `false` for purely post-hoc rows (τ-norm, logit adjustment): the stage-1 head is
    /// evaluated as it is.
    #[serde(default = "default_true")]
    pub train: bool,
    #[serde(flatten)]
    pub hyper: HyperSpec,
    /// The row's stage-2 recipe as its source runs it (`--recipe source`).
    #[serde(default)]
    pub recipe: Option<SourceRecipe>,
    /// The label prior the row's final logits estimate (`--prior-correct` needs it; every
    /// row of the embedded tables declares it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_prior: Option<LogitPrior>,
    /// Why: the source line that says so, or the reasoning where no source covers the row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_prior_why: Option<String>,
    /// Flip test-time augmentation for this row (when the run has it, not `--no-tta`): set
    /// from the source recipe under `--recipe source`; `None` is on (the LOS protocol).
    #[serde(skip)]
    pub tta: Option<bool>,
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
    #[serde(default)]
    pub reweight: Reweight,
    pub solver: Solver,
    pub train: bool,
    pub hyper: Hyper,
    /// The label prior the final logits estimate (see [`LogitPrior`]); `None` when the row
    /// does not declare one (then `--prior-correct` refuses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_prior: Option<LogitPrior>,
    /// Evaluated with flip test-time augmentation when the bank has flips and the run keeps
    /// them (off under `--recipe source` for the rows whose source does not average flips).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub tta: bool,
    /// The callback of a `Loss::Custom` row, attached by the caller for its run (the Python
    /// package); never stored or keyed (the loss's `id` is).
    #[serde(skip)]
    pub custom: Option<super::custom::CustomFn>,
}

fn is_true(b: &bool) -> bool {
    *b
}

/// What is wrong with a method, named by field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("method `{method}`: {field} {msg}")]
pub struct MethodError {
    pub method: String,
    pub field: &'static str,
    pub msg: String,
}

impl Loss {
    /// True for the losses that are a softmax cross-entropy on adjusted logits (the ones
    /// [`Reweight`] can weight).
    pub fn softmax_ce(&self) -> bool {
        matches!(
            self,
            Loss::Ce { .. }
                | Loss::BalancedSoftmax { .. }
                | Loss::Ldam { .. }
                | Loss::Las { .. }
                | Loss::Cdt { .. }
                | Loss::Vs { .. }
                | Loss::Gcl { .. }
        )
    }
}

impl MethodSpec {
    /// True for an NCM row (its head is its init).
    pub fn head_is_ncm(&self) -> bool {
        matches!(self.head, Head::Ncm { .. })
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

    /// The τ of the row, for tables and sweeps: the post-hoc τ (tau-norm, logit-adjust), else
    /// the loss's (balanced-softmax / la-loss, vs).
    pub fn tau(&self) -> Option<f32> {
        match self.posthoc {
            PostHoc::TauNorm { tau } | PostHoc::LogitAdjust { tau } => Some(tau),
            PostHoc::None => match self.loss {
                Loss::BalancedSoftmax { tau } | Loss::Vs { tau, .. } => Some(tau),
                _ => None,
            },
            PostHoc::PriorCorrect => None,
        }
    }

    /// The row with τ set to `t` (see [`Method::tau`]); unchanged when it has none.
    pub fn with_tau(&self, t: f32) -> Method {
        let mut v = self.clone();
        match &mut v.posthoc {
            PostHoc::TauNorm { tau } | PostHoc::LogitAdjust { tau } => *tau = t,
            PostHoc::None => match &mut v.loss {
                Loss::BalancedSoftmax { tau } | Loss::Vs { tau, .. } => *tau = t,
                _ => {}
            },
            PostHoc::PriorCorrect => {}
        }
        v
    }
}
