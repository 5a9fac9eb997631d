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
