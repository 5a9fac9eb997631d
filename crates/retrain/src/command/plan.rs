//! Flags → a checked [`Plan`]: the methods (with their sweeps and grid), the banks, the jobs,
//! the output folder and its lock ([`super::experiment`]), the device and the thread count.
//! Apart from [`super::cli`] (the flags as given) so that the flags know nothing of where the
//! outputs go.

use super::cli::RunArgs;
use crate::method::Method;
use crate::run::Job;
use anyhow::bail;
use bank::{Bank, ShotThresholds};
use std::path::PathBuf;

/// Everything a run needs, checked.
pub struct Plan {
    pub banks: Vec<Bank>,
    pub jobs: Vec<Job>,
    pub methods: Vec<Method>,
    /// Where the tables and figures go.
    pub out: PathBuf,
    /// Where the run records are read and appended.
    pub records: PathBuf,
    /// With the default `--out`: the results root and the experiment's folder under it.
    pub experiment: Option<(PathBuf, String)>,
    /// This process's lock on `out` (or, with `--shard`, on its shard of `records`).
    pub lock: bank::lock::FolderLock,
    pub threads: usize,
    /// The GPU of `--device` (`None`: the CPU engine).
    pub device: Option<candle_core::Device>,
    pub swept: Vec<String>,
    pub sweep_delta: bool,
    pub sweep_tau: bool,
    /// The parameter of `--sweep`.
    pub sweep: Option<String>,
    pub grid: bool,
    /// Each selected method's group (`table1`, `zoo`, or the --config file), for the
    /// grouped table on stdout.
    pub groups: Vec<(String, String)>,
}

impl RunArgs {
    /// What the flags mean: the checked methods (with their sweeps and grid), the banks, the
    /// jobs, the output folder, the device and the thread count. Cheap checks first: a bad
    /// flag must not wait for a bank to load.
    pub fn plan(&self, log: &dyn Fn(&str)) -> anyhow::Result<Plan> {
        self.check_flags()?;
        let (methods, groups) = self.methods()?;
        let expanded = self.expand(&methods)?;
        let banks = self.open_banks(log)?;
        for b in &banks {
            super::limits::check_bootstrap(
                "--bootstrap",
                self.bootstrap,
                b.test.rows,
                b.num_classes,
            )?;
        }
        let (out, records, experiment) = super::experiment::folders(self, &banks);
        if let Some((root, _)) = &experiment {
            crate::output::notebook::read_index(root)?;
        }
        let lock = super::experiment::lock(self, &out, &records)?;
        let jobs = self.jobs_of(&expanded);
        let (device, notice) = crate::engine::device::select(self.device)?;
        if let Some(n) = notice {
            log(&format!("--device auto: {n}"));
        }
        if device.is_some() && !self.no_views && banks.iter().any(|b| b.train_views.is_some()) {
            bail!(
                "--device: training on a bank's train views runs on the CPU engine only; pass --no-views or leave --device out"
            );
        }
        if self.one_pass && device.is_some() {
            bail!("--one-pass is an option of the CPU engine; leave it out with --device cuda");
        }
        Ok(Plan {
            banks,
            jobs,
            methods,
            out,
            records,
            experiment,
            lock,
            threads: self.threads(device.is_some()),
            device,
            swept: self.swept(),
            sweep_delta: self.sweep_delta,
            sweep_tau: self.sweep_tau,
            sweep: self.sweep.as_ref().map(|s| s.param.clone()),
            grid: self.grid.is_some(),
            groups,
        })
    }

    /// The banks, with `--many-above/--few-below` applied and checked.
    fn open_banks(&self, log: &dyn Fn(&str)) -> anyhow::Result<Vec<Bank>> {
        if !self.preloaded.is_empty() {
            let mut banks = self.preloaded.clone();
            for bank in &mut banks {
                if self.many_above.is_some() || self.few_below.is_some() {
                    bank.shots = self.shots(bank)?;
                }
            }
            return Ok(banks);
        }
        let dirs = if self.bank.len() > 1 {
            self.bank.clone()
        } else {
            vec![self.resolve_bank(log)?]
        };
        let mut banks = Vec::new();
        for dir in &dirs {
            let mut bank = Bank::open(dir)?;
            if self.many_above.is_some() || self.few_below.is_some() {
                bank.shots = self.shots(&bank)?;
            }
            if banks.iter().any(|b: &Bank| b.name() == bank.name()) {
                bail!(
                    "--bank: two banks are named `{}` (rename a folder or set `dataset` in meta.json)",
                    bank.name()
                );
            }
            banks.push(bank);
        }
        Ok(banks)
    }

    fn shots(&self, bank: &Bank) -> anyhow::Result<ShotThresholds> {
        let shots = ShotThresholds {
            many_above: self.many_above.unwrap_or(bank.shots.many_above),
            few_below: self.few_below.unwrap_or(bank.shots.few_below),
        };
        if shots.many_above + 1 < shots.few_below {
            bail!(
                "--many-above {} / --few-below {}: the many (n > {}) and few (n < {}) groups overlap",
                shots.many_above,
                shots.few_below,
                shots.many_above,
                shots.few_below
            );
        }
        Ok(shots)
    }

    /// Every configuration × seed; deterministic methods run once (n = 1 in the tables).
    fn jobs_of(&self, expanded: &[Method]) -> Vec<Job> {
        let seeds: Vec<u64> = (0..self.seeds as u64).map(|i| self.seed + i).collect();
        expanded
            .iter()
            .flat_map(|m| {
                let n = if m.seed_independent() { 1 } else { seeds.len() };
                seeds[..n].iter().map(move |&seed| Job {
                    method: m.clone(),
                    seed,
                })
            })
            .collect()
    }

    /// `--jobs`, or every core on the CPU; on a GPU two host threads keep it busiest
    /// (measured on an H200: Table 1 at ImageNet-LT scale 55.7 s with 1, 42.3 s with 2,
    /// slower with 16).
    fn threads(&self, on_device: bool) -> usize {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        self.jobs
            .unwrap_or(if on_device { cores.min(2) } else { cores })
    }
}
