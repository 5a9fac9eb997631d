//! The method tables: `baselines/table1.toml` (the defaults and one `[[method]]` row per
//! Table 1 method) and `baselines/zoo.toml` (the stage-2 methods of the toolboxes). Both are
//! compiled into the binary, so `retrain` runs from anywhere; `--config FILE` reads another
//! one. Each row belongs to a group (the file it came from): `--method table1` / `zoo` pick
//! one, `all` every row, paper rows first.

use crate::method::{HyperSpec, MethodSpec, SourceRecipe};
use serde::Deserialize;
use std::path::Path;

/// The repository's `baselines/table1.toml`, embedded at build time.
pub const EMBEDDED_TABLE1: &str = include_str!("../../../../baselines/table1.toml");
/// The repository's `baselines/zoo.toml`, embedded at build time.
pub const EMBEDDED_ZOO: &str = include_str!("../../../../baselines/zoo.toml");

/// The groups of the embedded tables: (`--method` name, label on stdout).
pub const GROUPS: [(&str, &str); 2] = [
    ("table1", "Table 1 of the LOS paper (and reference rows)"),
    (
        "zoo",
        "the stage-2 zoo (BagofTricks-LT, MiSLAS, Decoupling, DisAlign, GCL, LADE, VS, LIFT)",
    ),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodTable {
    #[serde(default)]
    pub defaults: HyperSpec,
    /// The source recipe of every row that has none of its own (Table 1: the LOS code's).
    #[serde(default)]
    pub recipe: Option<SourceRecipe>,
    #[serde(rename = "method")]
    pub methods: Vec<MethodSpec>,
    /// The group of each row (parallel to `methods`): `table1`, `zoo`, or the file's name.
    #[serde(skip)]
    pub groups: Vec<String>,
}

impl MethodTable {
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<MethodTable> {
        let table: MethodTable = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let msg = e.message().replace('\n', " ");
            match line {
                Some(l) => anyhow::anyhow!("{origin}: line {l}: {msg}"),
                None => anyhow::anyhow!("{origin}: {msg}"),
            }
        })?;
        let mut table = table;
        table.groups = vec![origin.to_string(); table.methods.len()];
        if let Some(r) = &table.recipe {
            for m in table.methods.iter_mut().filter(|m| m.recipe.is_none()) {
                m.recipe = Some(r.clone());
            }
        }
        let mut seen = std::collections::HashSet::new();
        for m in &table.methods {
            anyhow::ensure!(
                seen.insert(m.name.as_str()),
                "{origin}: method `{}` is listed twice",
                m.name
            );
        }
        Ok(table)
    }

    pub fn read(path: &Path) -> anyhow::Result<MethodTable> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        MethodTable::parse(&text, &path.display().to_string())
    }

    /// Table 1, then the zoo (whose rows carry the zoo's defaults).
    pub fn embedded() -> MethodTable {
        let mut t = MethodTable::parse(EMBEDDED_TABLE1, "baselines/table1.toml (embedded)")
            .expect("the embedded table1.toml parses");
        let zoo = MethodTable::parse(EMBEDDED_ZOO, "baselines/zoo.toml (embedded)")
            .expect("the embedded zoo.toml parses");
        t.groups = vec![GROUPS[0].0.to_string(); t.methods.len()];
        for mut m in zoo.methods {
            assert!(
                !t.methods.iter().any(|x| x.name == m.name),
                "zoo.toml repeats `{}`",
                m.name
            );
            m.hyper = m.hyper.or(&zoo.defaults);
            t.methods.push(m);
            t.groups.push(GROUPS[1].0.to_string());
        }
        t
    }

    pub fn names(&self) -> Vec<&str> {
        self.methods.iter().map(|m| m.name.as_str()).collect()
    }

    /// The rows of group `group` (`table1`, `zoo`), in table order.
    pub fn group(&self, group: &str) -> Vec<&str> {
        self.methods
            .iter()
            .zip(&self.groups)
            .filter(|(_, g)| *g == group)
            .map(|(m, _)| m.name.as_str())
            .collect()
    }

    /// The group of the row `name`.
    pub fn group_of(&self, name: &str) -> Option<&str> {
        self.methods
            .iter()
            .zip(&self.groups)
            .find(|(m, _)| m.name == name)
            .map(|(_, g)| g.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::los_defaults;

    #[test]
    fn the_embedded_table_has_the_twelve_rows_plus_stage1_and_all_check() {
        let t = MethodTable::embedded();
        assert_eq!(
            t.group("table1"),
            [
                "stage1",
                "logreg-balanced",
                "vanilla-fc",
                "vanilla-cosine",
                "lws",
                "ldam",
                "balanced-softmax",
                "re-sampling",
                "focal",
                "class-balanced",
                "maxnorm",
                "tau-norm",
                "logit-adjust",
                "los"
            ]
        );
        let defaults = t.defaults.or(&HyperSpec::default());
        let base = crate::method::Hyper {
            lr: defaults.lr.unwrap_or(los_defaults().lr),
            ..los_defaults()
        };
        for m in &t.methods {
            m.check(&base).unwrap();
        }
        assert_eq!(
            t.group("zoo"),
            [
                "crt",
                "ncm",
                "las",
                "mislas",
                "cdt",
                "vs",
                "la-loss",
                "cs-ce",
                "drw",
                "sqrt-sampling",
                "progressive",
                "disalign",
                "gcl",
                "lade",
                "bal-bce",
                "class-mean-init",
                "prior-correct"
            ]
        );
        assert_eq!(t.group_of("gcl"), Some("zoo"));
    }

    /// `--prior-correct` reads each row's declared prior: every embedded row has one and says
    /// why (a source line, or the reasoning); the rows LADE's own configs cover
    /// (`run_networks.py:594-599`) are on its side.
    #[test]
    fn every_embedded_row_declares_its_logit_prior_and_why() {
        use crate::method::LogitPrior;
        let t = MethodTable::embedded();
        for m in &t.methods {
            assert!(m.logit_prior.is_some(), "{}: logit_prior", m.name);
            let why = m.logit_prior_why.as_deref().unwrap_or("");
            assert!(why.len() > 40, "{}: logit_prior_why `{why}`", m.name);
            assert!(
                why.contains(".py:")
                    || why.contains(".yaml:")
                    || why.starts_with("no source covers it;"),
                "{}: cite a source line or say no source covers it: `{why}`",
                m.name
            );
        }
        let prior = |n: &str| {
            t.methods
                .iter()
                .find(|m| m.name == n)
                .unwrap()
                .logit_prior
                .unwrap()
        };
        for n in ["stage1", "vanilla-fc"] {
            assert_eq!(prior(n), LogitPrior::Train, "{n}");
        }
        for n in ["balanced-softmax", "la-loss", "lade"] {
            assert_eq!(prior(n), LogitPrior::Balanced, "{n}");
        }
    }

    /// `--recipe source` resolves every row to its source's recipe, checked against the source
    /// table of `../shared/reference/zoo-sources-audit-2.md` (each value with its file:line in
    /// the row's `source`): lr, wd, batch, epochs, schedule, momentum 0.9, and the evaluation
    /// (flip TTA only where the source averages flips: the LOS code, `train/validate.py:15`).
    #[test]
    fn every_row_resolves_to_its_sources_recipe() {
        use crate::method::{Recipe, Schedule::*};
        let t = MethodTable::embedded();
        // (row, lr, wd, batch, epochs, schedule)
        let zoo = [
            ("crt", 0.2, 5e-4, 512, 10, CosineEpochStart),
            ("mislas", 0.1, 2e-4, 128, 10, CosineEpoch),
            ("disalign", 0.1, 5e-4, 256, 10, CosineEpoch),
            ("gcl", 0.002, 2e-4, 64, 30, CosineEpoch),
            ("class-mean-init", 0.01, 5e-4, 128, 10, CosineEpoch),
        ];
        let base = los_defaults();
        let (mut resolved, mut refused) = (0, 0);
        for (spec, group) in t.methods.iter().zip(&t.groups) {
            let under = match spec.with_recipe(Recipe::Source) {
                Ok(s) => s,
                Err(e) => {
                    assert!(
                        group.contains("zoo") && spec.train && spec.recipe.is_none(),
                        "{}: {e}",
                        spec.name
                    );
                    assert_eq!(e.field, "recipe");
                    refused += 1;
                    continue;
                }
            };
            resolved += 1;
            let m = under.check(&base).unwrap();
            let los = spec.check(&base).unwrap();
            assert_eq!(m.hyper.momentum, 0.9, "{}", m.name);
            if group.contains("table1") {
                // the LOS code ran every Table 1 row with the LOS protocol, flips averaged
                assert_eq!(m.hyper, los.hyper, "{}", m.name);
                assert!(m.tta, "{}: LOS averages flips", m.name);
                continue;
            }
            assert!(!m.tta, "{}: its source does not average flips", m.name);
            assert!(los.tta, "{}: the LOS protocol keeps flips", m.name);
            if !m.train {
                continue;
            }
            let &(_, lr, wd, b, e, sched) = zoo
                .iter()
                .find(|r| r.0 == m.name)
                .unwrap_or_else(|| panic!("{}: not in the source table", m.name));
            let h = m.hyper;
            assert_eq!(
                (h.lr, h.wd, h.batch_size, h.epochs, h.schedule),
                (lr as f32, wd as f32, b, e, sched),
                "{}",
                m.name
            );
        }
        assert_eq!((resolved, refused), (21, 10));
    }

    #[test]
    fn a_typo_names_the_line() {
        let e = MethodTable::parse(
            "[[method]]\nname = \"a\"\nloss = { kind = \"cee\" }\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("t.toml: line 3:"), "{e}");
        assert!(!e.contains('\n'));
    }
}
