//! Checking a row: [`MethodSpec::check`] fills what the row leaves open from the defaults and
//! validates every constant against its range (one [`MethodError`] naming the row and the
//! field), and how the parts fit together.

use super::spec::*;

/// The most epochs (and L-BFGS iterations) a row may ask for.
pub const MAX_EPOCHS: usize = 100_000;

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
            reweight: self.reweight,
            solver: self.solver,
            train: self.train,
            hyper,
            logit_prior: self.logit_prior,
            tta: self.tta.unwrap_or(true),
            custom: None,
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
        if hyper.epochs > MAX_EPOCHS {
            return Err(err(
                "epochs",
                format!("at most {MAX_EPOCHS}, got {}", hyper.epochs),
            ));
        }
        if hyper.batch_size == 0 {
            return Err(err("batch_size", "must be ≥ 1".into()));
        }
        Ok(())
    }

    fn check_loss(&self) -> Result<(), MethodError> {
        let err = |field, msg| self.err(field, msg);
        let unit = |field: &'static str, v: f32| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(err(field, format!("must be in [0, 1), got {v}")))
            }
        };
        let nonneg = |field: &'static str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(err(field, format!("must be ≥ 0, got {v}")))
            }
        };
        let finite = |field: &'static str, v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(err(field, format!("must be finite, got {v}")))
            }
        };
        let cosine = matches!(self.head, Head::Cosine { .. });
        match self.loss {
            Loss::Ce { smoothing } => unit("loss.smoothing (δ)", smoothing)?,
            Loss::Focal { gamma } => nonneg("loss.gamma", gamma)?,
            Loss::ClassBalanced { beta, .. } => unit("loss.beta", beta)?,
            Loss::Ldam { max_margin } if !(max_margin.is_finite() && max_margin > 0.0) => {
                return Err(err(
                    "loss.max_margin",
                    format!("must be > 0, got {max_margin}"),
                ));
            }
            Loss::Ldam { .. } if !cosine => {
                return Err(err(
                    "loss",
                    "ldam needs a cosine head (head = { kind = \"cosine\", scale = 30 })".into(),
                ));
            }
            Loss::BalancedSoftmax { tau } => finite("loss.tau", tau)?,
            Loss::Las {
                eps_head,
                eps_tail,
                power,
                ..
            } => {
                unit("loss.eps_head", eps_head)?;
                unit("loss.eps_tail", eps_tail)?;
                if !(power.is_finite() && power > 0.0) {
                    return Err(err("loss.power", format!("must be > 0, got {power}")));
                }
            }
            Loss::Cdt { gamma } => nonneg("loss.gamma", gamma)?,
            Loss::Vs { gamma, tau } => {
                nonneg("loss.gamma", gamma)?;
                finite("loss.tau", tau)?;
            }
            Loss::Lade { alpha, lambda } => {
                nonneg("loss.alpha", alpha)?;
                nonneg("loss.lambda", lambda)?;
            }
            Loss::Gcl {
                margin,
                noise_mul,
                gamma,
            } => {
                nonneg("loss.margin", margin)?;
                nonneg("loss.noise_mul", noise_mul)?;
                nonneg("loss.gamma", gamma)?;
                if !cosine {
                    return Err(err(
                        "loss",
                        "gcl needs a cosine head (head = { kind = \"cosine\", scale = 30 })".into(),
                    ));
                }
            }
            _ => {}
        }
        self.check_reweight()
    }

    /// The re-weighting's constants, and that its loss is a softmax CE it can weight.
    fn check_reweight(&self) -> Result<(), MethodError> {
        let err = |field, msg| self.err(field, msg);
        match self.reweight {
            Reweight::None => return Ok(()),
            Reweight::ClassBalanced { beta, .. } if !(0.0..1.0).contains(&beta) => {
                return Err(err(
                    "reweight.beta",
                    format!("must be in [0, 1), got {beta}"),
                ));
            }
            Reweight::Power { gamma, .. } if !(gamma.is_finite() && gamma >= 0.0) => {
                return Err(err("reweight.gamma", format!("must be ≥ 0, got {gamma}")));
            }
            Reweight::Prior { rho, .. } if !(rho.is_finite() && rho >= 0.0) => {
                return Err(err("reweight.rho", format!("must be ≥ 0, got {rho}")));
            }
            _ => {}
        }
        let from = self.reweight.from();
        if !(0.0..=1.0).contains(&from) {
            return Err(err(
                "reweight.from",
                format!("must be in [0, 1], got {from}"),
            ));
        }
        if !self.loss.softmax_ce() {
            return Err(err(
                "reweight",
                "applies to the softmax cross-entropy losses (ce, balanced-softmax, ldam, las, cdt, vs, gcl)".into(),
            ));
        }
        Ok(())
    }

    /// Head, constraint, post-hoc, solver and init, and how they fit together.
    fn check_parts(&self, hyper: &Hyper) -> Result<(), MethodError> {
        let err = |field, msg| self.err(field, msg);
        if let Head::Cosine { scale } = self.head {
            if !(scale.is_finite() && scale > 0.0) {
                return Err(err("head.scale", format!("must be > 0, got {scale}")));
            }
        }
        if let Head::Lws { lr_factor, .. } = self.head {
            if !(lr_factor.is_finite() && lr_factor >= 0.0) {
                return Err(err(
                    "head.lr_factor",
                    format!("must be a finite number ≥ 0, got {lr_factor}"),
                ));
            }
        }
        if matches!(self.head, Head::Ncm { .. }) {
            if self.train {
                return Err(err(
                    "head",
                    "an ncm head is not trained: set train = false".into(),
                ));
            }
            if self.posthoc != PostHoc::None {
                return Err(err("posthoc", "an ncm head takes no post-hoc rule".into()));
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
            PostHoc::LogitAdjust { .. } | PostHoc::PriorCorrect if self.head == Head::DisAlign => {
                return Err(err(
                    "posthoc",
                    "logit-adjust does not apply to a disalign head (its gate follows the bias)"
                        .into(),
                ));
            }
            _ => {}
        }
        if let Solver::Lbfgs { l2, max_iter } = self.solver {
            if self.head != Head::Linear {
                return Err(err("solver", "lbfgs fits a linear head".into()));
            }
            if !(l2.is_finite() && l2 >= 0.0) || max_iter == 0 || max_iter > MAX_EPOCHS {
                return Err(err(
                    "solver",
                    format!("needs l2 ≥ 0 and 1 ≤ max_iter ≤ {MAX_EPOCHS}, got {l2}, {max_iter}"),
                ));
            }
        }
        let frozen = matches!(
            self.head,
            Head::Lws {
                train_linear: false,
                ..
            } | Head::DisAlign
        );
        if (frozen || !self.train) && hyper.init == Init::Fresh {
            return Err(err(
                "init",
                "this method works on the stage-1 head: --init fresh does not apply".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::los_defaults;

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
