//! Runs many (method, seed) jobs on one bank in parallel and returns their records.
//!
//! Threads: with at least as many jobs as threads, each job runs single-threaded, one per
//! core; with fewer jobs, the matmuls get the threads. Never more threads than `threads`.

use crate::eval::{Evaluation, evaluate};
use crate::head::HeadState;
use crate::linalg::Parallelism;
use crate::logreg::{LogRegOptions, fit_balanced_logreg};
use crate::loss::weights::log_priors;
use crate::method::{Init, Method, Solver};
use crate::trainer::{TrainOptions, train};
use bank::{Bank, ShotGroup};
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
}

/// Run every job; `on_done(i, record)` is called as job i finishes (records file, progress).
pub fn run_jobs(
    bank: &Bank,
    groups: &[ShotGroup],
    stage1: &HeadState,
    jobs: &[Job],
    opts: RunOptions,
    on_done: &(dyn Fn(usize, &RunRecord) + Sync),
) -> Vec<RunRecord> {
    let threads = opts.threads.max(1);
    let par = if jobs.len() >= threads || threads == 1 {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    pool.install(|| {
        jobs.par_iter()
            .enumerate()
            .map(|(i, job)| {
                let r = run_one(bank, groups, stage1, job, opts, par);
                on_done(i, &r);
                r
            })
            .collect()
    })
}

pub fn run_one(
    bank: &Bank,
    groups: &[ShotGroup],
    stage1: &HeadState,
    job: &Job,
    opts: RunOptions,
    par: Parallelism,
) -> RunRecord {
    let started = std::time::Instant::now();
    let m = &job.method;
    let (k, d) = (bank.num_classes, bank.dim);
    let init = match m.hyper.init {
        Init::Stage1 => {
            HeadState::from_linear(m.head, k, d, stage1.weight.clone(), stage1.bias.clone())
        }
        Init::Fresh => {
            let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
            rng.set_stream(200);
            HeadState::fresh(m.head, k, d, &mut rng)
        }
    };
    let lp = log_priors(&bank.train_counts);
    let topts = TrainOptions {
        shuffle: opts.shuffle,
        record_steps: false,
        par,
    };
    // selection on val (ties go to the later epoch, as the reference code does)
    let mut best_val: Option<(f64, usize, HeadState)> = None;
    let mut oracle: Option<(f64, usize)> = None;
    if let Solver::Lbfgs { l2, max_iter } = m.solver {
        let lr_opts = LogRegOptions {
            l2: l2 as f64,
            max_iter,
            par,
            ..Default::default()
        };
        let fit = fit_balanced_logreg(&bank.train, &bank.train_counts, &lr_opts);
        let eval_head = fit.head.eval_head(m.posthoc, &lp);
        let mut oracle = None;
        let test = evaluate(&eval_head, &bank.test, groups, opts.tta, par);
        if opts.oracle {
            oracle = Some((test.top1, 0));
        }
        return RunRecord {
            method: m.clone(),
            seed: job.seed,
            val: bank
                .val
                .as_ref()
                .map(|v| evaluate(&eval_head, v, groups, opts.tta, par)),
            test,
            selected_epoch: None,
            oracle,
            final_train_loss: Some(fit.final_loss),
            seconds: started.elapsed().as_secs_f64(),
        };
    }
    let outcome = train(
        &bank.train,
        &bank.train_counts,
        init,
        m,
        job.seed,
        &topts,
        |epoch, head| {
            if let Some(val) = &bank.val {
                let e = evaluate(&head.eval_head(m.posthoc, &lp), val, groups, opts.tta, par);
                if best_val.as_ref().is_none_or(|(b, _, _)| e.top1 >= *b) {
                    best_val = Some((e.top1, epoch, head.clone()));
                }
            }
            if opts.oracle {
                let e = evaluate(
                    &head.eval_head(m.posthoc, &lp),
                    &bank.test,
                    groups,
                    opts.tta,
                    par,
                );
                if oracle.is_none_or(|(b, _)| e.top1 >= b) {
                    oracle = Some((e.top1, epoch));
                }
            }
        },
    );
    let (head, selected_epoch) = match best_val {
        Some((_, e, h)) => (h, Some(e)),
        None => (outcome.head, None),
    };
    let eval_head = head.eval_head(m.posthoc, &lp);
    let test = evaluate(&eval_head, &bank.test, groups, opts.tta, par);
    let val = bank
        .val
        .as_ref()
        .map(|v| evaluate(&eval_head, v, groups, opts.tta, par));
    if opts.oracle && !m.train {
        oracle = Some((test.top1, 0));
    }
    RunRecord {
        method: m.clone(),
        seed: job.seed,
        test,
        val,
        selected_epoch,
        oracle,
        final_train_loss: outcome.epoch_loss.last().copied(),
        seconds: started.elapsed().as_secs_f64(),
    }
}
