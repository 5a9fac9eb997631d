//! `meta.json`: everything about a bank that is not a tensor. Every field is optional, so a
//! folder holding only `train.safetensors` and `test.safetensors` is a valid bank; unknown
//! fields are kept (and written back) untouched.

use crate::error::{BankError, Result};
use crate::shots::ShotThresholds;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Dataset name, e.g. `cifar100-lt-ir100`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Number of classes K. Derived from the labels (and the head) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    /// Training count per class; must agree with the train labels when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_counts: Option<Vec<usize>>,
    /// Shot-group thresholds (default many > 100, few < 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shots: Option<ShotThresholds>,
    /// Free-form description of the backbone and checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone: Option<serde_json::Value>,
    /// How the bank was made: command, seed, code version, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<serde_json::Value>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Meta {
    pub fn read(path: &Path) -> Result<Meta> {
        let text = std::fs::read_to_string(path).map_err(|source| BankError::Io {
            path: path.into(),
            err: source,
        })?;
        serde_json::from_str(&text).map_err(|e| {
            // serde_json names the offending key in its message ("invalid type ... for key ..").
            BankError::Meta {
                path: path.into(),
                field: json_field_of(&e, &text),
                msg: e.to_string(),
            }
        })
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("Meta serialises")
    }
}

/// Best effort: the top-level key on the line where serde_json stopped.
fn json_field_of(e: &serde_json::Error, text: &str) -> String {
    let line = text.lines().nth(e.line().saturating_sub(1)).unwrap_or("");
    line.split('"')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_else(|| "<document>".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let m: Meta = serde_json::from_str(r#"{"num_classes": 3, "note": "x"}"#).unwrap();
        assert_eq!(m.num_classes, Some(3));
        assert_eq!(m.extra["note"], "x");
        let back: Meta = serde_json::from_str(&m.to_json_pretty()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn a_bad_field_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.json");
        std::fs::write(&p, "{\n \"num_classes\": \"ten\"\n}").unwrap();
        let err = Meta::read(&p).unwrap_err().to_string();
        assert!(
            err.contains("meta.json") && err.contains("num_classes"),
            "{err}"
        );
    }
}
