//! `baselines/table1.toml`: the defaults and one `[[method]]` row per Table 1 method. The file
//! in the repository is also compiled into the binary, so `retrain` runs from anywhere;
//! `--config FILE` reads another one.

use crate::method::{HyperSpec, MethodSpec};
use serde::Deserialize;
use std::path::Path;

/// The repository's `baselines/table1.toml`, embedded at build time.
pub const EMBEDDED_TABLE1: &str = include_str!("../../../../baselines/table1.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodTable {
    #[serde(default)]
    pub defaults: HyperSpec,
    #[serde(rename = "method")]
    pub methods: Vec<MethodSpec>,
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

    pub fn embedded() -> MethodTable {
        MethodTable::parse(EMBEDDED_TABLE1, "baselines/table1.toml (embedded)")
            .expect("the embedded table1.toml parses")
    }

    pub fn names(&self) -> Vec<&str> {
        self.methods.iter().map(|m| m.name.as_str()).collect()
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
            t.names(),
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
