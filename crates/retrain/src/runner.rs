//! Runs many (method, seed) jobs on one bank in parallel and returns their records.
//!
//! Threads: with at least as many jobs as threads, each job runs single-threaded, one per
//! core; with fewer jobs, the matmuls get the threads. Never more threads than `threads`.

use crate::device::{DeviceBank, SplitId, evaluate_on_device, train_on_device};
use crate::eval::{Evaluation, evaluate};
use crate::head::{EvalHead, HeadState};
use crate::linalg::Parallelism;
use crate::logreg::{LogRegOptions, fit_balanced_logreg};
use crate::loss::weights::log_priors;
use crate::method::{Init, Method, Solver};
use crate::multihead::{pass_key, shareable, train_many};
use crate::trainer::{TrainOptions, train};
use bank::Bank;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// One unit of work.
#[derive(Debug, Clone)]
pub struct Job {
    pub method: Method,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub threads: usize,
    pub shuffle: bool,
    /// Also track the best test epoch (a labelled oracle, never the default).
    pub oracle: bool,
    /// Flip test-time augmentation when the split has `features_flip`.
    pub tta: bool,
    /// Train the linear heads of jobs that share a batch sequence in one pass.
    pub one_pass: bool,
    /// Pick the epoch with the best val score when the bank has a val split (otherwise, and
    /// when false, the final epoch is used; val is still evaluated).
    pub select_on_val: bool,
    /// Training and evaluation run on a device (`--device cuda`); part of the record key.
    pub on_device: bool,
}

/// What one run produced (one line of the records file).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    pub method: Method,
    pub seed: u64,
    pub test: Evaluation,
    pub val: Option<Evaluation>,
    /// Epoch picked on val (0-based), when the bank has a val split.
    pub selected_epoch: Option<usize>,
    /// Best test top-1 over epochs and its epoch (only with `oracle`).
    pub oracle: Option<(f64, usize)>,
    pub final_train_loss: Option<f64>,
    pub seconds: f64,
    /// Set when the record was reused from another code identity (`--reuse-stale`): that
    /// identity. Never stored; every output labels such runs.
    #[serde(skip)]
    pub stale: Option<String>,
}

/// Run every job; `on_done(i, record)` is called as job i finishes (records file, progress).
/// With `dev`, the SGD runs and every evaluation run on that device (the bank already
/// uploaded there); the L-BFGS reference row stays on the CPU.
pub fn run_jobs(
    bank: &Bank,
    stage1: &HeadState,
    jobs: &[Job],
    opts: RunOptions,
    dev: Option<&DeviceBank>,
    on_done: &(dyn Fn(usize, &RunRecord) + Sync),
) -> anyhow::Result<Vec<RunRecord>> {
    let threads = opts.threads.max(1);
    // tasks: one job each, or (with one_pass) every shareable job with the same batch
    // sequence together
    let mut tasks: Vec<Vec<usize>> = Vec::new();
    let mut by_key: std::collections::HashMap<(u64, String, usize, usize), usize> =
        Default::default();
    for (i, job) in jobs.iter().enumerate() {
        if opts.one_pass && dev.is_none() && shareable(&job.method) {
            let key = pass_key(&job.method, job.seed);
            if let Some(&t) = by_key.get(&key) {
                tasks[t].push(i);
                continue;
            }
            by_key.insert(key, tasks.len());
        }
        tasks.push(vec![i]);
    }
    let par = if tasks.len() >= threads || threads == 1 {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let done: anyhow::Result<Vec<Vec<(usize, RunRecord)>>> = pool.install(|| {
        tasks
            .par_iter()
            .map(|task| {
                let out: Vec<(usize, RunRecord)> = if task.len() == 1 {
                    vec![(
                        task[0],
                        run_one(bank, stage1, &jobs[task[0]], opts, par, dev)?,
                    )]
                } else {
                    let group: Vec<&Job> = task.iter().map(|&i| &jobs[i]).collect();
                    task.iter()
                        .copied()
                        .zip(run_one_pass(bank, stage1, &group, opts, par))
                        .collect()
                };
                for (i, r) in &out {
                    on_done(*i, r);
                }
                Ok(out)
            })
            .collect()
    });
    let mut done: Vec<(usize, RunRecord)> = done?.into_iter().flatten().collect();
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, r)| r).collect())
}

/// Keeps the val-selected head and the oracle epoch of one run.
struct Tracker<'a> {
    bank: &'a Bank,
    method: &'a Method,
    log_priors: Vec<f64>,
    opts: RunOptions,
    par: Parallelism,
    dev: Option<&'a DeviceBank>,
    best_val: Option<(f64, usize, HeadState)>,
    oracle: Option<(f64, usize)>,
    /// The first device error of an evaluation (reported when the run finishes).
    error: Option<candle_core::Error>,
}

impl<'a> Tracker<'a> {
    fn new(
        bank: &'a Bank,
        method: &'a Method,
        opts: RunOptions,
        par: Parallelism,
        dev: Option<&'a DeviceBank>,
    ) -> Self {
        Tracker {
            bank,
            method,
            log_priors: log_priors(&bank.train_counts),
            opts,
            par,
            dev,
            best_val: None,
            oracle: None,
            error: None,
        }
    }

    /// `head` on a split, on the device when there is one.
    fn evaluate(&self, head: &EvalHead, id: SplitId) -> candle_core::Result<Evaluation> {
        let split = match id {
            SplitId::Val => self.bank.val.as_ref().expect("val split"),
            SplitId::Test => &self.bank.test,
            SplitId::Train => &self.bank.train,
        };
        match self.dev {
            Some(db) => evaluate_on_device(db, id, split, head, self.opts.tta),
            None => Ok(evaluate(head, split, self.opts.tta, self.par)),
        }
    }

    /// After every epoch: selection on val by mean per-class accuracy (ties go to the later
    /// epoch, as the reference code does) and the oracle.
    fn on_epoch(&mut self, epoch: usize, head: &HeadState) {
        if let Err(e) = self.try_on_epoch(epoch, head) {
            self.error.get_or_insert(e);
        }
    }

    fn try_on_epoch(&mut self, epoch: usize, head: &HeadState) -> candle_core::Result<()> {
        if self.error.is_some() {
            return Ok(());
        }
        let eval_head = head.eval_head(self.method.posthoc, &self.log_priors);
        if let (Some(_), true) = (&self.bank.val, self.opts.select_on_val) {
            let score = self.evaluate(&eval_head, SplitId::Val)?.balanced();
            if self.best_val.as_ref().is_none_or(|(b, _, _)| score >= *b) {
                self.best_val = Some((score, epoch, head.clone()));
            }
        }
        if self.opts.oracle {
            let e = self.evaluate(&eval_head, SplitId::Test)?;
            if self.oracle.is_none_or(|(b, _)| e.top1 >= b) {
                self.oracle = Some((e.top1, epoch));
            }
        }
        Ok(())
    }

    fn finish(
        mut self,
        job: &Job,
        last: HeadState,
        final_train_loss: Option<f64>,
        started: std::time::Instant,
    ) -> candle_core::Result<RunRecord> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let (head, selected_epoch) = match self.best_val.take() {
            Some((_, e, h)) => (h, Some(e)),
            None => (last, None),
        };
        let eval_head = head.eval_head(self.method.posthoc, &self.log_priors);
        let test = self.evaluate(&eval_head, SplitId::Test)?;
        let val = match self.bank.val {
            Some(_) => Some(self.evaluate(&eval_head, SplitId::Val)?),
            None => None,
        };
        let mut oracle = self.oracle;
        if self.opts.oracle && !self.method.train {
            oracle = Some((test.top1, 0));
        }
        Ok(RunRecord {
            method: self.method.clone(),
            seed: job.seed,
            test,
            val,
            selected_epoch,
            oracle,
            final_train_loss,
            seconds: started.elapsed().as_secs_f64(),
            stale: None,
        })
    }
}

fn initial_head(bank: &Bank, stage1: &HeadState, job: &Job) -> HeadState {
    let (k, d, m) = (bank.num_classes, bank.dim, &job.method);
    match m.hyper.init {
        Init::Stage1 => {
            HeadState::from_linear(m.head, k, d, stage1.weight.clone(), stage1.bias.clone())
        }
        Init::Fresh => {
            let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
            rng.set_stream(200);
            HeadState::fresh(m.head, k, d, &mut rng)
        }
    }
}

/// Several shareable jobs (same seed, sampler, batch size, epochs) in one pass.
fn run_one_pass(
    bank: &Bank,
    stage1: &HeadState,
    jobs: &[&Job],
    opts: RunOptions,
    par: Parallelism,
) -> Vec<RunRecord> {
    let started = std::time::Instant::now();
    let methods: Vec<&Method> = jobs.iter().map(|j| &j.method).collect();
    let heads: Vec<HeadState> = jobs.iter().map(|j| initial_head(bank, stage1, j)).collect();
    let mut trackers: Vec<Tracker> = methods
        .iter()
        .map(|m| Tracker::new(bank, m, opts, par, None))
        .collect();
    let topts = TrainOptions {
        shuffle: opts.shuffle,
        record_steps: false,
        par,
    };
    let out = train_many(
        &bank.train,
        &bank.train_counts,
        heads,
        &methods,
        jobs[0].seed,
        &topts,
        |m, e, h| trackers[m].on_epoch(e, h),
    );
    trackers
        .into_iter()
        .zip(out)
        .zip(jobs)
        .map(|((t, (head, losses)), job)| {
            t.finish(job, head, losses.last().copied(), started)
                .expect("host evaluation does not fail")
        })
        .collect()
}

pub fn run_one(
    bank: &Bank,
    stage1: &HeadState,
    job: &Job,
    opts: RunOptions,
    par: Parallelism,
    dev: Option<&DeviceBank>,
) -> anyhow::Result<RunRecord> {
    let device_error = |e: candle_core::Error| {
        anyhow::anyhow!(
            "--device: {} (seed {}) failed on the device: {}",
            job.method.name,
            job.seed,
            e.to_string().lines().next().unwrap_or("")
        )
    };
    let started = std::time::Instant::now();
    let m = &job.method;
    let mut tracker = Tracker::new(bank, m, opts, par, dev);
    if let Solver::Lbfgs { l2, max_iter } = m.solver {
        let lr_opts = LogRegOptions {
            l2: l2 as f64,
            max_iter,
            par,
            ..Default::default()
        };
        let fit = fit_balanced_logreg(&bank.train, &bank.train_counts, &lr_opts);
        if opts.oracle {
            tracker.on_epoch(0, &fit.head);
        }
        return tracker
            .finish(job, fit.head, Some(fit.final_loss), started)
            .map_err(device_error);
    }
    let topts = TrainOptions {
        shuffle: opts.shuffle,
        record_steps: false,
        par,
    };
    let init = initial_head(bank, stage1, job);
    let outcome = match dev {
        Some(db) => train_on_device(
            db,
            &bank.train.labels,
            &bank.train_counts,
            init,
            m,
            job.seed,
            &topts,
            |e, h| tracker.on_epoch(e, h),
        )
        .map_err(device_error)?,
        None => train(
            &bank.train,
            &bank.train_counts,
            init,
            m,
            job.seed,
            &topts,
            |e, h| tracker.on_epoch(e, h),
        ),
    };
    tracker
        .finish(
            job,
            outcome.head,
            outcome.epoch_loss.last().copied(),
            started,
        )
        .map_err(device_error)
}
