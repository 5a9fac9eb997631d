//! `--grid lr=..:wd=..`: the learning-rate × weight-decay grid of `--grid` and `--tune`.

/// `--grid lr=a,b,..:wd=c,d,..`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub lr: Vec<f32>,
    pub wd: Vec<f32>,
}

impl Grid {
    pub fn cells(&self) -> Vec<(f32, f32)> {
        self.lr
            .iter()
            .flat_map(|&lr| self.wd.iter().map(move |&wd| (lr, wd)))
            .collect()
    }
}

impl std::str::FromStr for Grid {
    type Err = String;
    fn from_str(s: &str) -> Result<Grid, String> {
        let (mut lr, mut wd) = (None, None);
        for part in s.split(':') {
            let (name, values) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected name=v1,v2,..."))?;
            let vals: Vec<f32> = values
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f32>()
                        .map_err(|_| format!("{name}: `{v}` is not a number"))
                })
                .collect::<Result<_, _>>()?;
            if let Some(v) = vals.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                return Err(format!("{name}: values must be finite and ≥ 0, got {v}"));
            }
            match name.trim() {
                "lr" => lr = Some(vals),
                "wd" => wd = Some(vals),
                other => return Err(format!("unknown grid axis `{other}` (use lr and wd)")),
            }
        }
        Ok(Grid {
            lr: lr.ok_or("missing lr=...")?,
            wd: wd.unwrap_or_else(|| vec![0.0]),
        })
    }
}

/// `--sweep PARAM=v1,v2,…`: one numeric constant of the selected rows over a list of values.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub param: String,
    pub values: Vec<f64>,
}

impl std::str::FromStr for Sweep {
    type Err = String;
    fn from_str(s: &str) -> Result<Sweep, String> {
        let (name, values) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected PARAM=v1,v2,..."))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("`{s}`: the parameter name is empty"));
        }
        let values: Vec<f64> = values
            .split(',')
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| format!("{name}: `{v}` is not a finite number"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Sweep {
            param: name.to_string(),
            values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_parses_and_bad_ones_say_why() {
        let s: Sweep = "eps_head=0.2,0.3, 0.4".parse().unwrap();
        assert_eq!(s.param, "eps_head");
        assert_eq!(s.values, vec![0.2, 0.3, 0.4]);
        assert!("eps_head".parse::<Sweep>().unwrap_err().contains("PARAM="));
        assert!("x=1,a".parse::<Sweep>().unwrap_err().contains("`a`"));
        assert!("=1".parse::<Sweep>().is_err());
    }
}
