//! Which train views a bank's heads trained on, as a results folder records it: `config.json`
//! (`banks[].views`), the README, the printed table's title and the header of `retrain
//! compare`. The same bank gives other numbers with and without its views (vanilla-fc on
//! the default bank: 64.63 with 8 views, 67.37 without), so every output says which.
//!
//! A run that used views records their count, stored dtype, content fingerprint (the one its
//! records are keyed by) and whatever the bank's `meta.json` says about the views' transform,
//! copied as it is; a run that did not records `"used": false` and how many the bank has.

use bank::Bank;
use serde_json::{Value, json};

/// The views one bank's runs trained on.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewsUsed {
    /// Trained on the views: the bank has them and `--no-views` was not given.
    pub used: bool,
    /// Views in the bank's `train_views.safetensors` (0: the bank has none).
    pub available: usize,
    /// Stored dtype of the views (`f32`, `f16`, `bf16`), when the bank has them.
    pub dtype: Option<String>,
    /// [`Bank::views_fingerprint`], when used.
    pub fingerprint: Option<String>,
    /// What meta.json says about the views' transform ([`transform_in_meta`]).
    pub transform: Option<Value>,
}

impl ViewsUsed {
    /// The views of `bank` as its runs used them: `requested` is not `--no-views`;
    /// `fingerprint` is the views' fingerprint the records were keyed by.
    pub fn of(bank: &Bank, requested: bool, fingerprint: Option<String>) -> ViewsUsed {
        let views = bank.train_views.as_deref();
        let used = requested && views.is_some();
        ViewsUsed {
            used,
            available: views.map_or(0, |v| v.count),
            dtype: views.map(|v| v.dtype_name()),
            fingerprint: fingerprint.filter(|_| used),
            transform: transform_in_meta(&bank.meta),
        }
    }

    /// `banks[].views` of config.json.
    pub fn to_json(&self) -> Value {
        match (self.used, self.available) {
            (true, _) => json!({
                "used": true,
                "count": self.available,
                "dtype": self.dtype,
                "fingerprint": self.fingerprint,
                "file": "train_views.safetensors",
                "transform": self.transform,
            }),
            (false, 0) => json!({
                "used": false,
                "available": 0,
                "why": "the bank has no train_views.safetensors",
            }),
            (false, n) => json!({
                "used": false,
                "available": n,
                "dtype": self.dtype,
                "why": "--no-views",
            }),
        }
    }

    /// The table title's words: `heads trained on 8 f16 augmented views per row`, `no
    /// views: --no-views, the bank has 8` or `no views`.
    pub fn title(&self) -> String {
        match (self.used, self.available) {
            (true, n) => format!(
                "heads trained on {n} {} augmented views per row",
                self.dtype.as_deref().unwrap_or("?")
            ),
            (false, 0) => "no views".into(),
            (false, n) => format!("no views: --no-views, the bank has {n}"),
        }
    }

    /// The README's line: the title with the fingerprint and the transform.
    pub fn readme_line(&self) -> String {
        if !self.used {
            return self.title();
        }
        let transform = match &self.transform {
            Some(t) => format!("transform (meta.json): `{t}`"),
            None => "meta.json records no transform for the views".into(),
        };
        format!(
            "{} (train_views.safetensors, fingerprint {}); {transform}",
            self.title(),
            self.fingerprint.as_deref().unwrap_or("?")
        )
    }
}

/// What `meta` says about the train views' transform, copied as it is: every entry whose
/// key names the views or an augmentation (`view`, `augment`) and whose value is text or a
/// structure (a bare number is the view count), at the top level, in `provenance` and in
/// `provenance.transform`, keyed by its path (`provenance.views_transform`). None when
/// there is none (banks written before extract recorded it).
pub fn transform_in_meta(meta: &bank::Meta) -> Option<Value> {
    let meta = serde_json::to_value(meta).ok()?;
    let levels = [
        ("", &meta),
        ("provenance.", &meta["provenance"]),
        ("provenance.transform.", &meta["provenance"]["transform"]),
    ];
    let mut found = serde_json::Map::new();
    for (prefix, level) in levels {
        let Some(obj) = level.as_object() else {
            continue;
        };
        for (key, value) in obj {
            let lower = key.to_lowercase();
            let names = lower.contains("view") || lower.contains("augment");
            if names && (value.is_object() || value.is_array() || value.is_string()) {
                found.insert(format!("{prefix}{key}"), value.clone());
            }
        }
    }
    (!found.is_empty()).then_some(Value::Object(found))
}

/// How a results folder's `config.json` records one bank's views (`banks[].views`), for
/// comparing folders: `3 f32 views (fingerprint …)`, `no views`, or `not recorded` (a
/// folder written before views were recorded).
pub fn recorded(views: &Value) -> String {
    match views["used"].as_bool() {
        Some(true) => format!(
            "{} {} augmented views (fingerprint {})",
            views["count"],
            views["dtype"].as_str().unwrap_or("?"),
            views["fingerprint"].as_str().unwrap_or("?")
        ),
        Some(false) => "no views".into(),
        None => "views not recorded".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transform_is_copied_from_wherever_meta_json_keeps_it() {
        let meta: bank::Meta = serde_json::from_value(json!({
            "provenance": {
                "train_views": 8,
                "views_transform": {"crop_padding": 2, "flip": true},
                "transform": {"test": "ToTensor + Normalize", "train_views": "RandomCrop(28, 2)"},
            },
            "augmentation": "crop",
        }))
        .unwrap();
        let t = transform_in_meta(&meta).unwrap();
        assert_eq!(
            t,
            json!({
                "augmentation": "crop",
                "provenance.views_transform": {"crop_padding": 2, "flip": true},
                "provenance.transform.train_views": "RandomCrop(28, 2)",
            })
        );
        // today's meta.json: only the count
        let old: bank::Meta =
            serde_json::from_value(json!({"provenance": {"train_views": 0}})).unwrap();
        assert_eq!(transform_in_meta(&old), None);
    }

    #[test]
    fn recorded_views_read_back_from_config() {
        let used = ViewsUsed {
            used: true,
            available: 8,
            dtype: Some("f16".into()),
            fingerprint: Some("00ff".into()),
            transform: None,
        };
        assert_eq!(
            recorded(&used.to_json()),
            "8 f16 augmented views (fingerprint 00ff)"
        );
        let off = ViewsUsed {
            used: false,
            ..used
        };
        assert_eq!(recorded(&off.to_json()), "no views");
        assert_eq!(off.title(), "no views: --no-views, the bank has 8");
        assert_eq!(recorded(&Value::Null), "views not recorded");
    }
}
