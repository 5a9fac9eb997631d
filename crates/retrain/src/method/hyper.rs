//! A row's optimiser settings: where the head starts, the schedule, the layered
//! [`HyperSpec`] (row, table defaults, flags) and the resolved [`Hyper`], and the stage-2
//! recipe a row's source runs ([`SourceRecipe`], `--recipe source`).

use serde::{Deserialize, Serialize};

/// Where the head starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// From the bank's stage-1 head (the LOS protocol).
    #[default]
    Stage1,
    /// PyTorch nn.Linear default init, U(±1/√D), seeded.
    Fresh,
    /// LIFT's class means (`trainer.py`): W_c = μ_c/‖μ_c‖ · r with μ_c the mean of the raw
    /// train features of class c and r the mean row norm of the stage-1 head; b = 0.
    ClassMean,
}

/// Learning-rate schedule: cosine to 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// lr_e = lr (1 + cos(π e / T)) / 2 for epoch e = 0..T−1, stepped after each epoch (LOS).
    #[default]
    CosineEpoch,
    /// The same curve stepped at the start of each epoch (Decoupling's `run_networks.py`):
    /// lr_e = lr (1 + cos(π (e + 1) / T)) / 2, the last epoch at 0.
    CosineEpochStart,
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

/// A row's own stage-2 recipe, as its source repository runs it (`--recipe source`);
/// `source` cites the file and line of each constant. What it leaves out stays the row's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRecipe {
    pub lr: Option<f32>,
    pub wd: Option<f32>,
    pub momentum: Option<f32>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub schedule: Option<Schedule>,
    /// The source's evaluation: whether it averages the logits of each test image and its
    /// horizontal flip (the LOS code does; none of the zoo's sources does). Required: a
    /// recipe declares how it evaluates.
    pub tta: bool,
    pub source: String,
}

impl SourceRecipe {
    /// The recipe's optimiser settings (`init` stays the row's).
    pub fn hyper(&self) -> HyperSpec {
        HyperSpec {
            lr: self.lr,
            wd: self.wd,
            momentum: self.momentum,
            epochs: self.epochs,
            batch_size: self.batch_size,
            init: None,
            schedule: self.schedule,
        }
    }
}

/// `--recipe`: which stage-2 recipe the rows run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Recipe {
    /// The LOS protocol for every row (the table's `[defaults]`; the paper's point: one
    /// protocol for all).
    #[default]
    Los,
    /// Each row with its source's own stage-2 recipe (`[method.recipe]` in the table).
    Source,
}

impl super::MethodSpec {
    /// The row under `recipe`: as it is (`Los`), or with its source recipe's optimiser
    /// settings and evaluation (`Source`; a row that is not trained by SGD takes only the
    /// recipe's evaluation). A trained row without a recipe is refused under `Source`: its
    /// source trains end to end.
    pub fn with_recipe(&self, recipe: Recipe) -> Result<super::MethodSpec, super::MethodError> {
        let mut spec = self.clone();
        if recipe == Recipe::Los {
            return Ok(spec);
        }
        let trained = spec.train && spec.solver == super::Solver::Sgd;
        match (&self.recipe, trained) {
            (Some(r), true) => {
                spec.hyper = r.hyper().or(&spec.hyper);
                spec.tta = Some(r.tta);
            }
            // no optimiser to set; the source's evaluation still applies
            (Some(r), false) => spec.tta = Some(r.tta),
            (None, false) => {}
            (None, true) => {
                return Err(super::MethodError {
                    method: spec.name.clone(),
                    field: "recipe",
                    msg: "is missing: the table has no source stage-2 recipe for it (its source trains end to end)"
                        .into(),
                });
            }
        }
        Ok(spec)
    }
}
