//! Command line, in two layers (ripgrep style): [`Cli`] holds the flags as typed; [`super::plan::Plan`]
//! (built in [`super::plan`]) is what they mean once the bank, the method table and the overrides are loaded and checked.

use crate::command::synth::SynthSpec;
use crate::method::{HyperSpec, Init, MethodSpec, Recipe, Schedule};
use anyhow::bail;
use bank::Bank;
use clap::{Parser, Subcommand};

pub use super::grid::{Grid, Sweep};
use std::path::{Path, PathBuf};

/// The δ grid of the paper's Fig. 4.
pub const DEFAULT_DELTAS: [f32; 11] = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99];

/// Re-train classifier heads on a cached feature bank with every LOS Table 1 method.
///
/// Runs each selected method for each seed (in parallel), evaluates on test (final epoch, or
/// the epoch with the best val mean per-class accuracy when the bank has a val split), and
/// writes into --out: table1.csv (mean ± std over seeds, intervals, metrics), runs.csv (long
/// format), per-class.csv, predictions.parquet (every run's per-row test predictions),
/// loma.csv, loma-segments.csv, config.json, figures (PNG + SVG), prior-shift.csv (with
/// --test-prior) and records.jsonl (finished runs; a rerun resumes).
///
/// Definitions: All = micro top-1; Many/Medium/Few = mean per-class accuracy over the classes
/// with > many-above / in between / < few-below training rows; the ± on stdout and
/// `<group>_ci_lo/hi` = 95 % percentile interval of a seeded bootstrap over the test rows
/// (B = --bootstrap resamples, the same for every row, pooled over seeds); `all_t_lo/hi` = the
/// t-interval over seeds (n ≥ 2); `vs` / `vs_baseline_*` = the paired bootstrap difference of
/// All against --baseline (▲ / ▼ when its interval excludes 0); top5 = micro top-5; hmean /
/// gmean = harmonic / geometric mean of the per-class accuracies; macro_precision = mean over
/// classes of TP/predicted (0 for a class never predicted); macro_f1 = mean of 2TP/(predicted +
/// count), also per group; ECE = expected calibration
/// error over 15 equal-width confidence bins; LoMa_i = mean of logit i over the test samples
/// of class i − mean of logit i over the other test samples; loma_norm = LoMa_i / mean_j
/// LoMa_j; RSD_i = population std of logit i over the test samples of class i / LoMa_i;
/// loma_cv = std/mean of LoMa across classes.
#[derive(Debug, Parser)]
#[command(name = "retrain", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare results. `compare A B`: every method of folder B against the same method
    /// (name, params, seed) of folder A, on the same test rows — Δ All/Many/Medium/Few (B − A),
    /// the paired bootstrap 95 % interval of Δ and its two-sided p-value, McNemar's exact test
    /// (b = rows right in A only, c = in B only, summed over seeds); `compare --baseline M
    /// [A]`: every method of A against M. Both print and write compare.csv (into B, or A).
    /// Without folders or --baseline: our table1.csv next to the paper's published table,
    /// with the protocol differences.
    Compare(CompareArgs),
    /// Write a deterministic synthetic long-tailed bank (CIFAR100-LT-like by default).
    Synth {
        /// Output folder.
        #[arg(long, default_value = "features/synth-cifar100-lt-ir100")]
        out: PathBuf,
        /// Replace an existing bank.
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        spec: SynthSpec,
    },
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Results folders (each with predictions.parquet and per-class.csv): A B, or A with
    /// --baseline.
    #[arg(num_args = 0..=2)]
    pub folders: Vec<PathBuf>,
    /// Compare every method of one folder with this one.
    #[arg(long)]
    pub baseline: Option<String>,
    /// Bootstrap resamples of the test rows.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap resamples.
    #[arg(long, default_value_t = 0)]
    pub bootstrap_seed: u64,
    /// Where compare.csv goes [default: <B>/compare.csv, or <A>/compare.csv with --baseline].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Published table: table1 (baselines/paper/table1.csv) or a CSV path.
    #[arg(long, default_value = "table1")]
    pub paper: String,
    /// Our table1.csv, or the folder holding it (default: the default bank's table, as
    /// `cargo run -p retrain` writes it); also the folder of --baseline when none is given.
    #[arg(long, default_value = "results/fmnist-lt-ir100/all")]
    pub results: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Bank folder [default: features/fmnist-lt-ir100 if present, else the synthetic
    /// CIFAR100-LT-like bank features/synth-cifar100-lt-ir100, generated on first use].
    #[arg(long)]
    /// Several banks, comma-separated (one per backbone or imbalance ratio), give a
    /// bank × method table (the paper's Table 4 layout) and one line per bank in sweeps.
    #[arg(long, value_delimiter = ',')]
    pub bank: Vec<PathBuf>,
    /// Methods, comma-separated, or a group: `table1` (the paper's Table 1 rows and the
    /// reference rows), `zoo` (the stage-2 methods of the toolboxes), `all` (both, paper
    /// rows first). With --config FILE, `all` is every row of FILE.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    pub method: Vec<String>,
    /// Method table [default: baselines/table1.toml, as compiled into the binary].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Number of seeds per configuration (seed, seed+1, ...).
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub lr: Option<f32>,
    #[arg(long)]
    pub wd: Option<f32>,
    #[arg(long)]
    pub momentum: Option<f32>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Start from the bank's stage-1 head (LOS protocol), a fresh nn.Linear init, or the class
    /// means. Refused by a row whose init is part of its method (ncm, crt, class-mean-init).
    #[arg(long, value_enum)]
    pub init: Option<Init>,
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    /// `los`: every row under the LOS stage-2 protocol (lr 5e-4, wd 0, batch 64, 20 epochs,
    /// cosine); `source`: each row with its source repository's own stage-2 recipe (lr, wd,
    /// batch, epochs, schedule; `[method.recipe]` in baselines/*.toml, with file:line). A row
    /// without one is refused under `source`. Flags such as --lr still apply on top.
    #[arg(long, value_enum, default_value = "los")]
    pub recipe: Recipe,
    /// Label-smoothing δ of LOS (and of any other CE row with smoothing).
    #[arg(long)]
    pub delta: Option<f32>,
    /// τ of the rows that have one: post-hoc (tau-norm, logit-adjust) or in the loss
    /// (balanced-softmax, la-loss, vs).
    #[arg(long)]
    pub tau: Option<f32>,
    /// Run each selected CE-based method over a grid of δ (see --deltas) and write
    /// <out>/<method>-delta-sweep.csv.
    #[arg(long)]
    pub sweep_delta: bool,
    /// δ grid for --sweep-delta [default: 0,0.1,0.2,0.3,0.5,0.7,0.8,0.9,0.95,0.98,0.99].
    #[arg(long, value_delimiter = ',')]
    pub deltas: Option<Vec<f32>>,
    /// Run each selected method over a learning-rate × weight-decay grid, e.g.
    /// `lr=1e-4,5e-4,1e-3,5e-3:wd=0,5e-4,5e-3,5e-2`; writes <out>/<method>-grid.csv and a
    /// heat map. The best cell is picked on val when the bank has a val split; without one,
    /// the best test cell is printed as a labelled oracle.
    #[arg(long, value_name = "lr=..:wd=..")]
    pub grid: Option<Grid>,
    /// Tune lr and wd per method on a grid (--grid, default
    /// lr=1e-4,5e-4,1e-3,5e-3,1e-2:wd=0,5e-4,5e-3), scoring each cell's final-epoch head by
    /// mean per-class accuracy on the bank's val split, or on a held-out 20 % of train when it
    /// has none (every 5th row of each class with ≥ 5 rows; those rows were seen by the
    /// backbone and the stage-1 head, so their scores are optimistic: only the ranking of
    /// cells is used); then run the chosen cell on the full train split. Writes
    /// <out>/tune.csv.
    #[arg(long)]
    pub tune: bool,
    /// Split that --tune selects on; `test` is an oracle and is labelled so everywhere.
    #[arg(long, value_enum, default_value = "val")]
    pub tune_on: TuneOn,
    /// Run each selected method with a τ (tau-norm, logit-adjust, balanced-softmax,
    /// la-loss, vs) over τ = 0, 0.1, ..., 2 and print the curve.
    #[arg(long)]
    pub sweep_tau: bool,
    /// Run each selected method over values of one of its numeric constants, e.g.
    /// `--method las --sweep eps_head=0.2,0.3,0.4`; PARAM is a row's field (`eps_head`,
    /// `gamma`, `beta`, `scale`, `lr`, `epochs`, … or a dotted path such as `reweight.beta`).
    /// Writes <out>/<method>-<param>-sweep.csv.
    #[arg(long, value_name = "PARAM=v1,v2,..")]
    pub sweep: Option<Sweep>,
    /// MaxNorm projection after every step (paper) or once per epoch (LTWB code).
    #[arg(long, value_enum)]
    pub maxnorm_every: Option<MaxNormEvery>,
    /// Many-shot classes have more than this many training rows [default: bank's meta.json, else 100].
    #[arg(long)]
    pub many_above: Option<usize>,
    /// Few-shot classes have fewer than this many training rows [default: meta.json, else 20].
    #[arg(long)]
    pub few_below: Option<usize>,
    /// Also report the best test epoch, labelled `oracle` (selection on test; for comparison
    /// with published numbers only).
    #[arg(long)]
    pub oracle: bool,
    /// Do not average the logits of `features` and `features_flip` at test time.
    #[arg(long)]
    pub no_tta: bool,
    /// Keep file order in every epoch (instance-balanced sampler; for parity checks).
    #[arg(long)]
    pub no_shuffle: bool,
    /// Output folder [default: <results>/<bank>/<experiment>/, named from the bank and the
    /// command, e.g. results/fmnist-lt-ir100/all/ or .../table1/]. With the default, the runs are recorded
    /// in <results>/<bank>/records.jsonl, shared by every experiment on that bank; with --out,
    /// in <out>/records.jsonl. Rerunning a command skips the runs already recorded (resume
    /// after a crash or kill).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Root of the experiment folders and of their index (index.md), when --out is not given.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Ignore the runs recorded in <out> and run everything again.
    #[arg(long)]
    pub rerun: bool,
    /// Keep the runs in <out> recorded by another code identity (another ltbench build)
    /// instead of rerunning them; they are labelled [stale] in every output.
    #[arg(long)]
    pub reuse_stale: bool,
    /// Run only the deterministic slice i of n of the jobs (job j belongs to shard j mod n),
    /// recording into <out>/records.shard-i-of-n.jsonl; a later run without --shard on the
    /// union of the shards' records builds the tables.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<crate::output::records::Shard>,
    /// Worker threads [default: number of cores; 2 with --device cuda].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Train the linear heads of all methods that share a batch sequence (same seed, sampler,
    /// batch size and epochs) in one pass: one wider GEMM per step instead of one per method.
    /// Same tables as separate runs (to their 4 decimals; recorded under keys of their own).
    #[arg(long)]
    pub one_pass: bool,
    /// Where the heads train: `cpu` (the hand-written engine), `cuda` (GPU 0; a binary built
    /// with `just build-cuda`), `auto` (CUDA when available).
    #[arg(long, value_enum, default_value_t = crate::engine::device::DeviceChoice::Cpu)]
    pub device: crate::engine::device::DeviceChoice,
    /// The row the stdout table compares every row with (the `vs` column: ▲ better, ▼ worse,
    /// = no difference, by the paired bootstrap of All at α = 0.05) [default: vanilla-fc,
    /// when selected].
    #[arg(long)]
    pub baseline: Option<String>,
    /// Bootstrap resamples of the test rows behind the intervals: table1.csv's
    /// `<group>_ci_lo/hi` (95 % percentile interval, the same resampled rows for every row of
    /// the table, pooled over seeds) and the ± of the stdout table (its half-width). 0: none.
    /// `all_t_lo/hi` is the t-interval over seeds (n ≥ 2), a different question: how much
    /// the number moves with the seed, not with the test sample.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap resamples.
    #[arg(long, default_value_t = 0)]
    pub bootstrap_seed: u64,
    /// Report every row's accuracy under shifted test priors (SADE's protocol), comma-separated:
    /// `uniform`, `forward-R`, `backward-R` with R ∈ {2, 5, 10, 25, 50} (class c ranked by
    /// train count gets test weight ∝ R^(−rank/(K−1)), `backward` the reverse):
    /// prior-shift.csv (accuracy = Σ_c q_c·acc_c, the exact expectation; Many/Medium/Few the
    /// same within the group) and a figure of accuracy against the prior.
    #[arg(long, value_delimiter = ',', value_parser = parse_prior)]
    pub test_prior: Vec<crate::eval::priors::TestPrior>,
    /// Also evaluate every row corrected for each --test-prior q, as LADE does it
    /// (run_networks.py:594-599): the row's own inference head (its post-hoc step and
    /// DisAlign's gate kept) plus log q − log p̂, where p̂ is the label prior the row declares
    /// its logits estimate (`logit_prior` in baselines/*.toml): the training prior π for rows
    /// trained by plain CE on instance draws (PC-softmax: z − log π + log q), uniform for rows
    /// that balance (+ log q only; a uniform q leaves them as they are). prior-shift.csv then
    /// reports the corrected accuracies.
    #[arg(long)]
    pub prior_correct: bool,
    /// Do not draw figures (PNG/SVG).
    #[arg(long)]
    pub no_plots: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Train on the cached `features` even when the bank has `train_views.safetensors` (by
    /// default each epoch draws one of every train row's augmented views, as the LOS code's
    /// stage 2 sees a fresh crop + flip each step).
    #[arg(long)]
    pub no_views: bool,
    /// Banks already in memory (the Python package's `Bank.from_arrays` / `Bank.open`), used
    /// instead of `--bank`.
    #[arg(skip)]
    pub preloaded: Vec<Bank>,
    /// Rows added to the method table, in the group `custom` (the Python package's `Method`
    /// objects).
    #[arg(skip)]
    pub extra_rows: Vec<MethodSpec>,
    /// The callbacks of the custom rows (`loss.kind = "custom"`) of this call, by row name
    /// (the Python package's `Method.custom` losses): each row's jobs carry their own.
    #[arg(skip)]
    pub custom_losses: Vec<(String, crate::method::custom::CustomFn)>,
    /// Run inside another program (the Python package): no signal handler of ours (the host
    /// stops a run through [`RunArgs::cancel`]).
    #[arg(skip)]
    pub embedded: bool,
    /// This run's cancellation token (each call its own): the CLI's signal handler or the
    /// host (an interrupt in Python) sets it, and so does a custom loss of this run that
    /// fails; the run then stops and fails with the reason. Another run in the same process
    /// is not touched.
    #[arg(skip)]
    pub cancel: crate::engine::cancel::Cancel,
    /// How this run was made, as its face says it (the CLI: its command line; Python: the
    /// `ltbench.run` call and the equivalent command), for the folder's README, `index.md`
    /// and `config.json`.
    #[arg(skip)]
    pub provenance: crate::output::notebook::Provenance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TuneOn {
    /// The bank's val split, or a held-out 20 % of train.
    Val,
    /// The test split (oracle).
    Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MaxNormEvery {
    Step,
    Epoch,
}

fn parse_prior(s: &str) -> Result<crate::eval::priors::TestPrior, String> {
    s.parse()
}

pub const DEFAULT_BANK: &str = "features/fmnist-lt-ir100";
pub const SYNTH_BANK: &str = "features/synth-cifar100-lt-ir100";

/// Where `rel` (a repository-relative path) is: under the current directory, else under the
/// workspace this binary was built from.
pub fn repo_path(rel: &str) -> PathBuf {
    let here = PathBuf::from(rel);
    if here.exists() {
        return here;
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    if built.exists() { built } else { here }
}

impl RunArgs {
    pub fn hyper_overrides(&self) -> HyperSpec {
        HyperSpec {
            lr: self.lr,
            wd: self.wd,
            momentum: self.momentum,
            epochs: self.epochs,
            batch_size: self.batch_size,
            init: self.init,
            schedule: self.schedule,
        }
    }

    /// The bank folder to use, generating the synthetic default when nothing else exists.
    pub fn resolve_bank(&self, log: &dyn Fn(&str)) -> anyhow::Result<PathBuf> {
        if let Some(b) = self.bank.first() {
            return Ok(b.clone());
        }
        let real = repo_path(DEFAULT_BANK);
        if real.join("train.safetensors").exists() {
            return Ok(real);
        }
        let synth = repo_path(SYNTH_BANK);
        if !synth.join("train.safetensors").exists() {
            log(&format!(
                "no bank given and none at {DEFAULT_BANK}: generating the synthetic CIFAR100-LT-like bank at {}",
                synth.display()
            ));
            crate::command::synth::write_synthetic_bank(
                &SynthSpec::default(),
                &synth,
                true,
                crate::engine::linalg::Parallelism::Rayon(0),
            )?;
        }
        Ok(synth)
    }

    pub(super) fn check_flags(&self) -> anyhow::Result<()> {
        use super::limits::{MAX_BOOTSTRAP, MAX_JOBS, MAX_SEEDS, at_most};
        if self.seeds == 0 {
            bail!("--seeds must be ≥ 1");
        }
        at_most("--seeds", self.seeds, MAX_SEEDS)?;
        at_most("--jobs", self.jobs.unwrap_or(1), MAX_JOBS)?;
        at_most("--bootstrap", self.bootstrap, MAX_BOOTSTRAP)?;
        if let Some(d) = self.delta {
            if !(0.0..1.0).contains(&d) {
                bail!("--delta must be in [0, 1), got {d}");
            }
        }
        if let Some(ds) = &self.deltas {
            if let Some(d) = ds.iter().find(|d| !(0.0..1.0).contains(*d)) {
                bail!("--deltas: every δ must be in [0, 1), got {d}");
            }
        }
        if self.jobs == Some(0) {
            bail!("--jobs must be ≥ 1");
        }
        if let Some(b) = &self.baseline {
            if !self.methods()?.0.iter().any(|m| &m.name == b) {
                bail!("--baseline: `{b}` is not one of the selected methods");
            }
        }
        if self.sweep.is_some() && (self.sweep_delta || self.sweep_tau) {
            bail!("--sweep: one sweep at a time (leave out --sweep-delta / --sweep-tau)");
        }
        Ok(())
    }
}
