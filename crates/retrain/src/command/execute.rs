//! The planned jobs of one bank, run: the stage-1 head, which jobs the records already hold
//! (resume; stale records of another code identity), the missing runs with a progress bar,
//! each appended to the records as it finishes, and the records of exactly the planned jobs,
//! in plan order, with their aggregated rows.

use crate::command::cli::RunArgs;
use crate::command::plan::Plan;
use crate::engine::device::DeviceBank;
use crate::engine::head::HeadState;
use crate::engine::linalg::Parallelism;
use crate::engine::stage1::fit_stage1_head;
use crate::method::Head;
use crate::output::records::{Appender, CODE_ID, Line, Stored, job_key};
use crate::output::tables::{Row, aggregate};
use crate::output::views::ViewsUsed;
use crate::run::{Job, RunOptions, RunRecord, run_jobs};
use bank::{Bank, ShotGroup};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;

/// Everything one bank produced.
pub struct BankRun<'a> {
    pub bank: &'a Bank,
    /// [`Bank::fingerprint`], computed once (it reads every feature).
    pub fingerprint: String,
    /// The train views the runs trained on (or not), as the outputs record them.
    pub views: ViewsUsed,
    pub groups: Vec<ShotGroup>,
    pub records: Vec<RunRecord>,
    pub rows: Vec<Row>,
    pub new_runs: usize,
    pub wall: f64,
}

/// Where a run's records go and what they already hold (key → record).
pub struct Records<'a> {
    pub done: &'a mut HashMap<String, Stored>,
    pub appender: &'a Appender,
}

/// The stage-1 head of the bank, or one fitted with plain CE when the bank has none.
pub fn stage1_head(bank: &Bank, threads: usize, log: &dyn Fn(&str)) -> HeadState {
    match &bank.head {
        Some(h) => HeadState::from_linear(
            Head::Linear,
            h.num_classes,
            h.dim,
            h.weight.clone(),
            h.bias.clone(),
        ),
        None => {
            log(&format!(
                "{}: no head.safetensors: fitting a stage-1 head with plain CE (≥ 30 epochs and ≥ 2000 steps, lr 0.05, seed 0)",
                bank.dir.display()
            ));
            fit_stage1_head(
                &bank.train,
                &bank.train_counts,
                30,
                0.05,
                0,
                Parallelism::Rayon(threads),
            )
        }
    }
}

/// Run `jobs` on `bank`: reuse what `rec` holds, run the rest, and return the bank's records
/// (none for a `--shard` run, which only records) and rows.
#[allow(clippy::too_many_arguments)]
pub fn run_bank<'a>(
    args: &RunArgs,
    plan: &Plan,
    bank: &'a Bank,
    jobs: &[Job],
    opts: RunOptions,
    rec: &mut Records,
    log: &dyn Fn(&str),
) -> anyhow::Result<BankRun<'a>> {
    let groups: Vec<ShotGroup> = bank.shots.groups(&bank.train_counts);
    let stage1 = stage1_head(bank, plan.threads, log);
    log(&bank_header(args, bank, &groups, &plan.methods));
    let started = std::time::Instant::now();
    let fingerprint = bank.fingerprint();
    // runs trained on the train views are keyed by them too: never resumed without them, or
    // with other views
    let views_fingerprint = if opts.views {
        bank.views_fingerprint()
    } else {
        None
    };
    let keyed = match &views_fingerprint {
        Some(v) => format!("{fingerprint}+views-{v}"),
        None => fingerprint.clone(),
    };
    let keys: Vec<String> = jobs.iter().map(|j| job_key(&keyed, j, &opts)).collect();
    let todo = jobs_to_run(args, plan, &keys, rec.done, log);
    let fresh = train_missing(args, plan, bank, &stage1, jobs, &keys, &todo, opts, rec)?;
    for (&i, record) in todo.iter().zip(fresh) {
        let code = CODE_ID.to_string();
        rec.done.insert(keys[i].clone(), Stored { code, record });
    }
    let records = match args.shard {
        Some(_) => Vec::new(),
        None => planned_records(&keys, rec.done, rec.appender.path(), bank.test.rows)?,
    };
    let blind = records
        .iter()
        .filter(|r| r.test.predictions.is_none())
        .count();
    if blind > 0 {
        log(&format!(
            "{blind} recorded run(s) have no per-row predictions (recorded by an older build, or their file under {}/predictions/ was removed): no intervals or marks for their rows; --rerun refreshes them",
            plan.records.display()
        ));
    }
    let mut rows = aggregate(&bank.name(), &groups, &records);
    let evidence = crate::output::evidence::table::annotate(
        &rows,
        &records,
        &bank.test.labels,
        bank.num_classes,
        &groups,
        args.baseline.as_deref().unwrap_or("vanilla-fc"),
        args.bootstrap,
        args.bootstrap_seed,
    );
    for (r, e) in rows.iter_mut().zip(evidence) {
        r.evidence = e;
    }
    Ok(BankRun {
        bank,
        fingerprint,
        views: ViewsUsed::of(bank, opts.views, views_fingerprint),
        groups,
        records,
        rows,
        new_runs: todo.len(),
        wall: started.elapsed().as_secs_f64(),
    })
}

/// The log line that describes a bank and its shot groups.
fn bank_header(
    args: &RunArgs,
    bank: &Bank,
    groups: &[ShotGroup],
    methods: &[crate::method::Method],
) -> String {
    let count = |g| groups.iter().filter(|&&x| x == g).count();
    // rows whose source recipe evaluates without flips (`--recipe source`)
    let no_flip: Vec<&str> = methods
        .iter()
        .filter(|m| !m.tta)
        .map(|m| m.name.as_str())
        .collect();
    format!(
        "bank {} ({}): K={} D={}, train {} rows (max {}, min {}){}, test {}{}{}; many>{} ({}), medium ({}), few<{} ({})",
        bank.name(),
        bank.dir.display(),
        bank.num_classes,
        bank.dim,
        bank.train.rows,
        bank.train_counts.iter().max().unwrap(),
        bank.train_counts.iter().min().unwrap(),
        match (&bank.train_views, args.no_views) {
            (Some(v), false) => format!(", trained on {} views per row", v.count),
            (Some(v), true) => format!(" ({} views not used: --no-views)", v.count),
            _ => String::new(),
        },
        bank.test.rows,
        bank.val
            .as_ref()
            .map(|v| format!(", val {}", v.rows))
            .unwrap_or_default(),
        match (
            bank.test.features_flip.is_some() && !args.no_tta,
            no_flip.is_empty()
        ) {
            (false, _) => String::new(),
            (true, true) => ", flip TTA".to_string(),
            (true, false) => format!(
                ", flip TTA (not for {}: their source recipes evaluate without)",
                no_flip.join(", ")
            ),
        },
        bank.shots.many_above,
        count(ShotGroup::Many),
        count(ShotGroup::Medium),
        bank.shots.few_below,
        count(ShotGroup::Few),
    )
}

/// The indices of this shard's jobs that must run: not recorded, or recorded by another code
/// identity (unless `--reuse-stale`). Says how many are resumed and how many are stale.
fn jobs_to_run(
    args: &RunArgs,
    plan: &Plan,
    keys: &[String],
    done: &HashMap<String, Stored>,
    log: &dyn Fn(&str),
) -> Vec<usize> {
    let owned: Vec<usize> = (0..keys.len())
        .filter(|i| args.shard.is_none_or(|s| s.owns(*i)))
        .collect();
    let stale: Vec<usize> = owned
        .iter()
        .copied()
        .filter(|&i| done.get(&keys[i]).is_some_and(|s| !s.current()))
        .collect();
    let reusable = |i: &usize| match done.get(&keys[*i]) {
        Some(s) => s.current() || args.reuse_stale,
        None => false,
    };
    let todo: Vec<usize> = owned.iter().copied().filter(|i| !reusable(i)).collect();
    if todo.len() < owned.len() {
        log(&format!(
            "resuming: {} of {} runs already recorded in {}",
            owned.len() - todo.len(),
            owned.len(),
            plan.records.display()
        ));
    }
    if !stale.is_empty() {
        let codes: std::collections::BTreeSet<&str> = stale
            .iter()
            .map(|&i| done[&keys[i]].code.as_str())
            .collect();
        let codes: Vec<&str> = codes.into_iter().collect();
        log(&format!(
            "{} {} recorded by another code identity ({}; this build is {CODE_ID}){}",
            if args.reuse_stale {
                "reusing"
            } else {
                "rerunning"
            },
            stale.len(),
            codes.join(", "),
            if args.reuse_stale {
                ": --reuse-stale keeps them, labelled [stale] in every output"
            } else {
                ": --reuse-stale would keep them"
            }
        ));
    }
    todo
}

fn progress_bar(quiet: bool, len: usize) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs ({per_sec}, eta {eta})",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    bar
}

/// Run the jobs `todo` (indices into `jobs`), on the device when the plan has one, appending
/// each record as it finishes; their records in `todo` order.
#[allow(clippy::too_many_arguments)]
fn train_missing(
    args: &RunArgs,
    plan: &Plan,
    bank: &Bank,
    stage1: &HeadState,
    jobs: &[Job],
    keys: &[String],
    todo: &[usize],
    opts: RunOptions,
    rec: &Records,
) -> anyhow::Result<Vec<RunRecord>> {
    let bar = progress_bar(args.quiet, todo.len());
    let append_error = std::sync::Mutex::new(None);
    let todo_jobs: Vec<Job> = todo.iter().map(|&i| jobs[i].clone()).collect();
    let bank_name = bank.name();
    let dev_bank = match (&plan.device, todo.is_empty()) {
        (Some(d), false) => Some(DeviceBank::upload(bank, d).map_err(|e| {
            anyhow::anyhow!(
                "--device: could not upload bank {} to the GPU: {}",
                bank.dir.display(),
                e.to_string().lines().next().unwrap_or("")
            )
        })?),
        _ => None,
    };
    let fresh = run_jobs(
        bank,
        stage1,
        &todo_jobs,
        opts,
        dev_bank.as_ref(),
        &args.cancel,
        &|i, record| {
            let line = Line {
                key: keys[todo[i]].clone(),
                bank: bank_name.clone(),
                code: CODE_ID.to_string(),
                record: record.clone(),
            };
            if let Err(e) = rec.appender.append(&line) {
                append_error.lock().unwrap().get_or_insert(e);
            }
            bar.inc(1);
        },
    );
    drop(dev_bank);
    bar.finish_and_clear();
    if let Some(e) = append_error.into_inner().unwrap() {
        return Err(e);
    }
    fresh
}

/// The records of exactly the planned runs, in plan order, with their per-row predictions
/// (read back from beside the records file `records` for resumed runs; a run recorded by an
/// older build may have none); a reused stale one carries the identity that made it.
fn planned_records(
    keys: &[String],
    done: &HashMap<String, Stored>,
    records: &std::path::Path,
    test_rows: usize,
) -> anyhow::Result<Vec<RunRecord>> {
    keys.iter()
        .map(|k| {
            let s = done.get(k).expect("every planned run is recorded");
            let mut r = s.record.clone();
            r.stale = (!s.current()).then(|| s.code.clone());
            if r.test.predictions.is_none() {
                let path = crate::output::predictions::sidecar(records, k, &s.code);
                if path.exists() {
                    r.test.predictions = Some(crate::output::predictions::load(&path, test_rows)?);
                }
            }
            Ok(r)
        })
        .collect()
}
