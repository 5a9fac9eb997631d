//! The rows a command runs: the selected rows of the method table with the flags applied —
//! `--recipe` (the LOS protocol or each source's own), `--init` (refused by a row whose init
//! is part of the method), `--lr`, `--delta`, `--tau`, … — each checked.

use super::cli::{MaxNormEvery, RunArgs};
use crate::method::table::MethodTable;
use crate::method::{
    Constraint, Init, Loss, Method, MethodSpec, PostHoc, ProjectEvery, los_defaults,
};
use anyhow::bail;

impl RunArgs {
    /// The table's defaults under the flags, filled with the LOS protocol.
    pub(super) fn defaults(&self, table: &MethodTable) -> crate::method::Hyper {
        let d = self.hyper_overrides().or(&table.defaults);
        let l = los_defaults();
        crate::method::Hyper {
            lr: d.lr.unwrap_or(l.lr),
            wd: d.wd.unwrap_or(l.wd),
            momentum: d.momentum.unwrap_or(l.momentum),
            epochs: d.epochs.unwrap_or(l.epochs),
            batch_size: d.batch_size.unwrap_or(l.batch_size),
            init: d.init.unwrap_or(l.init),
            schedule: d.schedule.unwrap_or(l.schedule),
        }
    }

    /// The selected rows of the method table, with the flags that override a row applied,
    /// checked; and each one's group.
    pub(super) fn methods(&self) -> anyhow::Result<(Vec<Method>, Vec<(String, String)>)> {
        let mut table = match &self.config {
            Some(p) => MethodTable::read(p)?,
            None => MethodTable::embedded(),
        };
        for row in &self.extra_rows {
            if table.methods.iter().any(|m| m.name == row.name) {
                bail!(
                    "method `{}`: name: a row of the table has this name already; choose another",
                    row.name
                );
            }
            table.methods.push(row.clone());
            table.groups.push("custom".into());
        }
        let defaults = self.defaults(&table);
        let mut wanted: Vec<&str> = Vec::new();
        for w in &self.method {
            let names = match w.as_str() {
                "all" => table.names(),
                g if table.groups.iter().any(|x| x == g) => table.group(g),
                name => vec![name],
            };
            for n in names {
                if !wanted.contains(&n) {
                    wanted.push(n);
                }
            }
        }
        let mut methods = Vec::new();
        let mut groups = Vec::new();
        for name in wanted {
            let Some(spec) = table.methods.iter().find(|m| m.name == name) else {
                let groups: Vec<&str> = crate::method::table::GROUPS
                    .iter()
                    .map(|(g, _)| *g)
                    .filter(|g| table.groups.iter().any(|x| x == g))
                    .collect();
                bail!(
                    "--method: unknown method `{name}` (choose from: {}, {}all)",
                    table.names().join(", "),
                    groups.iter().map(|g| format!("{g}, ")).collect::<String>()
                );
            };
            self.check_init_flag(spec)?;
            let custom = self
                .custom_losses
                .iter()
                .find(|(row, _)| *row == spec.name)
                .map(|(_, f)| f.clone());
            if let Loss::Custom { .. } = spec.loss {
                if custom.is_none() {
                    bail!(
                        "method `{}`: loss.kind custom: a custom loss is a Python function (ltbench.Method.custom); this one is not registered",
                        spec.name
                    );
                }
                if self.device != crate::engine::device::DeviceChoice::Cpu {
                    bail!(
                        "method `{}`: loss.kind custom: a custom loss runs on the CPU engine only; leave --device out",
                        spec.name
                    );
                }
            }
            if spec.logit_prior.is_none()
                && (self.prior_correct || spec.posthoc == PostHoc::PriorCorrect)
            {
                let what = if self.prior_correct {
                    "--prior-correct"
                } else {
                    "its prior-correct post-hoc step"
                };
                let msg = format!(
                    "method `{}`: logit_prior: not declared, and {what} needs to know which label prior the row's logits estimate (logit_prior = \"train\" or \"balanced\" in its row; Method.custom(..., logit_prior=...) in Python)",
                    spec.name
                );
                match &self.config {
                    Some(p) => bail!("{}: {msg}", p.display()),
                    None => bail!("{msg}"),
                }
            }
            let spec = self.recipe_row(spec)?;
            let checked = self.override_row(spec).check(&defaults);
            let mut checked = match (&self.config, checked) {
                (Some(p), Err(e)) => bail!("{}: {e}", p.display()),
                (_, m) => m?,
            };
            if let Loss::Custom { .. } = checked.loss {
                // the run carries its own callback: no lookup by id, no process-wide registry
                checked.custom = custom;
            }
            methods.push(checked);
            groups.push((
                name.to_string(),
                table.group_of(name).unwrap_or_default().to_string(),
            ));
        }
        Ok((methods, groups))
    }

    /// `--init` changes where the protocol's rows start; a row whose init is part of the
    /// method (NCM's centroids, cRT's fresh head, LIFT's class means) refuses another one.
    fn check_init_flag(&self, spec: &MethodSpec) -> anyhow::Result<()> {
        let Some(flag) = self.init else {
            return Ok(());
        };
        let own = match (spec.head, spec.hyper.init) {
            (crate::method::Head::Ncm { .. }, _) => Some("the class means of the train features"),
            (_, Some(Init::Fresh)) => Some("a fresh nn.Linear head"),
            (_, Some(Init::ClassMean)) => Some("the class means of the train features"),
            _ => None,
        };
        match own {
            Some(what) if spec.hyper.init != Some(flag) || spec.head_is_ncm() => bail!(
                "--init {}: method `{}`: init is part of the method ({what}); leave --init out or leave `{}` out of --method",
                init_name(flag),
                spec.name,
                spec.name
            ),
            _ => Ok(()),
        }
    }

    /// The row under `--recipe` ([`MethodSpec::with_recipe`]).
    fn recipe_row(&self, spec: &MethodSpec) -> anyhow::Result<MethodSpec> {
        spec.with_recipe(self.recipe).map_err(|e| {
            anyhow::anyhow!("--recipe source: {e}; leave it out of --method or use --recipe los")
        })
    }

    /// A row of the table with `--lr`, `--delta`, `--tau`, `--maxnorm-every`, … applied.
    fn override_row(&self, mut spec: MethodSpec) -> MethodSpec {
        spec.hyper = self.hyper_overrides().or(&spec.hyper);
        if let (Some(d), Loss::Ce { smoothing }) = (self.delta, &mut spec.loss) {
            if *smoothing > 0.0 || spec.name == "los" {
                *smoothing = d;
            }
        }
        if let Some(t) = self.tau {
            match (&mut spec.posthoc, &mut spec.loss) {
                (PostHoc::TauNorm { tau } | PostHoc::LogitAdjust { tau }, _) => *tau = t,
                (PostHoc::None, Loss::BalancedSoftmax { tau } | Loss::Vs { tau, .. }) => *tau = t,
                _ => {}
            }
        }
        if let (Some(e), Constraint::MaxNorm { every, .. }) =
            (self.maxnorm_every, &mut spec.constraint)
        {
            *every = match e {
                MaxNormEvery::Step => ProjectEvery::Step,
                MaxNormEvery::Epoch => ProjectEvery::Epoch,
            };
        }
        spec
    }
}

/// `--init`'s value as typed.
fn init_name(i: Init) -> &'static str {
    match i {
        Init::Stage1 => "stage1",
        Init::Fresh => "fresh",
        Init::ClassMean => "class-mean",
    }
}
