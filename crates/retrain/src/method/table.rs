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
