//! The numeric constants of a method by name, for the generic `--sweep PARAM=v1,v2,…` and
//! for the tables: every number of a row (`loss.eps_head`, `head.scale`, `reweight.beta`,
//! `lr`, `epochs`, …) is a parameter, found through the row's serialised form, so a new
//! variant's constants are sweepable with no code of their own.

use super::spec::{Method, MethodError, MethodSpec};
use serde_json::Value;

/// Every numeric constant of `m` as (path, value): `loss.eps_head`, `hyper.lr`, ….
pub fn numeric_params(m: &Method) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let v = serde_json::to_value(m).expect("a method serialises");
    walk(&v, "", &mut out);
    out
}

fn walk(v: &Value, prefix: &str, out: &mut Vec<(String, f64)>) {
    if let Value::Object(map) = v {
        for (k, x) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match x {
                Value::Number(n) => out.push((path, n.as_f64().unwrap_or(f64::NAN))),
                Value::Object(_) => walk(x, &path, out),
                _ => {}
            }
        }
    }
}

/// The full path of `name` in `m`: itself, or the one path whose last part(s) it is
/// (`eps_head` → `loss.eps_head`, `lr` → `hyper.lr`, `reweight.beta`).
pub fn resolve(m: &Method, name: &str) -> Result<String, MethodError> {
    let params = numeric_params(m);
    let hits: Vec<&String> = params
        .iter()
        .map(|(p, _)| p)
        .filter(|p| *p == name || p.ends_with(&format!(".{name}")))
        .collect();
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(MethodError {
            method: m.name.clone(),
            field: "--sweep",
            msg: format!(
                "has no numeric parameter `{name}` (it has: {})",
                params
                    .iter()
                    .map(|(p, _)| p.trim_start_matches("hyper.").to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
        many => Err(MethodError {
            method: m.name.clone(),
            field: "--sweep",
            msg: format!(
                "`{name}` is ambiguous: say which of {}",
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// The value of parameter `name` (as [`resolve`] finds it), when `m` has it.
pub fn value(m: &Method, name: &str) -> Option<f64> {
    let path = resolve(m, name).ok()?;
    numeric_params(m)
        .into_iter()
        .find(|(p, _)| *p == path)
        .map(|(_, v)| v)
}

/// `m` with parameter `name` set to `value`, checked again as a row (a value out of range is
/// the row's error, naming the field).
pub fn with_param(m: &Method, name: &str, value: f64) -> Result<Method, MethodError> {
    let path = resolve(m, name)?;
    let mut v = serde_json::to_value(m).expect("a method serialises");
    let mut slot = &mut v;
    for part in path.split('.') {
        slot = slot.get_mut(part).expect("a resolved path exists");
    }
    let integer = slot.is_u64();
    *slot = if integer {
        if value < 0.0 || value.fract() != 0.0 {
            return Err(MethodError {
                method: m.name.clone(),
                field: "--sweep",
                msg: format!("`{path}` takes a whole number ≥ 0, got {value}"),
            });
        }
        Value::from(value as u64)
    } else {
        // through the f32 the row holds, so that 0.1 stays 0.1
        Value::from(value as f32)
    };
    let changed: Method = serde_json::from_value(v).map_err(|e| MethodError {
        method: m.name.clone(),
        field: "--sweep",
        msg: format!("`{path}` = {value}: {e}"),
    })?;
    let mut checked = changed.respec().check(&changed.hyper)?;
    // a custom row's callback is not data: it stays what the caller attached
    checked.custom = m.custom.clone();
    Ok(checked)
}

impl Method {
    /// Back to a row (every optimiser setting given), to check it again after a change.
    pub fn respec(&self) -> MethodSpec {
        let h = self.hyper;
        MethodSpec {
            name: self.name.clone(),
            head: self.head,
            loss: self.loss,
            sampler: self.sampler,
            constraint: self.constraint,
            posthoc: self.posthoc,
            reweight: self.reweight,
            solver: self.solver,
            train: self.train,
            hyper: super::spec::HyperSpec {
                lr: Some(h.lr),
                wd: Some(h.wd),
                momentum: Some(h.momentum),
                epochs: Some(h.epochs),
                batch_size: Some(h.batch_size),
                init: Some(h.init),
                schedule: Some(h.schedule),
            },
            recipe: None,
            logit_prior: self.logit_prior,
            logit_prior_why: None,
            tta: Some(self.tta),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{Loss, los_defaults};

    fn las() -> Method {
        toml::from_str::<MethodSpec>("name = \"las\"\nloss = { kind = \"las\" }")
            .unwrap()
            .check(&los_defaults())
            .unwrap()
    }

    #[test]
    fn a_short_name_finds_the_constant_and_a_sweep_sets_it() {
        let m = las();
        assert_eq!(resolve(&m, "eps_head").unwrap(), "loss.eps_head");
        assert_eq!(value(&m, "eps_head"), Some(0.4f32 as f64));
        let v = with_param(&m, "eps_head", 0.2).unwrap();
        assert!(matches!(v.loss, Loss::Las { eps_head, .. } if eps_head == 0.2));
        assert_eq!(with_param(&m, "epochs", 5.0).unwrap().hyper.epochs, 5);
        assert_eq!(with_param(&m, "lr", 0.01).unwrap().hyper.lr, 0.01);
    }

    #[test]
    fn unknown_out_of_range_and_fractional_values_name_the_row_and_field() {
        let m = las();
        let e = with_param(&m, "eps_hed", 0.2).unwrap_err();
        assert_eq!((e.method.as_str(), e.field), ("las", "--sweep"));
        assert!(e.msg.contains("eps_head"), "{}", e.msg);
        let e = with_param(&m, "eps_head", 1.0).unwrap_err();
        assert_eq!(e.field, "loss.eps_head");
        assert!(with_param(&m, "epochs", 2.5).is_err());
    }
}
