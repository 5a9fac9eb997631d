//! Runs many (method, seed) jobs on one bank in parallel and returns their records.
//!
//! Threads: with at least as many jobs as threads, each job runs single-threaded, one per
//! core; with fewer jobs, the matmuls get the threads. Never more threads than `threads`.

use super::job::{Job, RunOptions, RunRecord};
use super::selection::Tracker;
use crate::engine::cancel::Cancel;
use crate::engine::device::{DeviceBank, train_on_device};
use crate::engine::head::HeadState;
use crate::engine::linalg::Parallelism;
use crate::engine::logreg::{LogRegOptions, fit_balanced_logreg};
use crate::engine::multihead::{pass_key, shareable, train_many};
use crate::engine::trainer::{TrainOptions, train};
use crate::method::{Head, Init, Method, Solver};
use bank::Bank;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Run every job; `on_done(i, record)` is called as job i finishes (records file, progress).
/// With `dev`, the SGD runs and every evaluation run on that device (the bank already
/// uploaded there); the L-BFGS reference row stays on the CPU. Once `cancel` is set (by the
/// face, or by a custom loss of these jobs that failed) no job starts, none finished after it
/// is recorded, and the call fails with its reason.
pub fn run_jobs(
    bank: &Bank,
    stage1: &HeadState,
    jobs: &[Job],
    opts: RunOptions,
    dev: Option<&DeviceBank>,
    cancel: &Cancel,
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
                if cancel.is_cancelled() {
                    return Ok(Vec::new());
                }
                let out: Vec<(usize, RunRecord)> = if task.len() == 1 {
                    vec![(
                        task[0],
                        run_one(bank, stage1, &jobs[task[0]], opts, par, dev, cancel)?,
                    )]
                } else {
                    let group: Vec<&Job> = task.iter().map(|&i| &jobs[i]).collect();
                    task.iter()
                        .copied()
                        .zip(run_one_pass(bank, stage1, &group, opts, par, cancel))
                        .collect()
                };
                // a run cut short by a cancel is not a result: nothing is recorded
                if cancel.is_cancelled() {
                    return Ok(Vec::new());
                }
                for (i, r) in &out {
                    on_done(*i, r);
                }
                Ok(out)
            })
            .collect()
    });
    if let Some(reason) = cancel.reason() {
        anyhow::bail!("{reason}");
    }
    let mut done: Vec<(usize, RunRecord)> = done?.into_iter().flatten().collect();
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, r)| r).collect())
}

/// The head a run starts from: NCM's centroids, or the row's init; DisAlign's gate bias is
/// drawn from the run's seed (stream 201).
pub fn initial_head(bank: &Bank, stage1: &HeadState, job: &Job) -> HeadState {
    let (k, d, m) = (bank.num_classes, bank.dim, &job.method);
    if let Head::Ncm { features, distance } = m.head {
        return HeadState::ncm(
            features,
            distance,
            k,
            bank.train.features(),
            &bank.train.labels,
        );
    }
    let head = match m.hyper.init {
        Init::Stage1 => {
            HeadState::from_linear(m.head, k, d, stage1.weight.clone(), stage1.bias.clone())
        }
        Init::Fresh => {
            let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
            rng.set_stream(200);
            HeadState::fresh(m.head, k, d, &mut rng)
        }
        Init::ClassMean => {
            let norms = stage1.row_norms();
            let radius = norms.iter().sum::<f32>() / norms.len().max(1) as f32;
            HeadState::class_mean(m.head, k, bank.train.features(), &bank.train.labels, radius)
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
    rng.set_stream(201);
    head.with_disalign_gate_bias(&mut rng)
}

/// Several shareable jobs (same seed, sampler, batch size, epochs) in one pass.
fn run_one_pass(
    bank: &Bank,
    stage1: &HeadState,
    jobs: &[&Job],
    opts: RunOptions,
    par: Parallelism,
    cancel: &Cancel,
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
        views: if opts.views {
            bank.train_views.as_deref()
        } else {
            None
        },
        cancel: Some(cancel),
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
    cancel: &Cancel,
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
        views: if opts.views {
            bank.train_views.as_deref()
        } else {
            None
        },
        cancel: Some(cancel),
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
