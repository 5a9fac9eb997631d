//! `extract` binary: thin glue over the library. Prints one line `extract: <error>` and exits 2
//! on failure.

use clap::Parser;
use extract::command::cli::{Args, MergeArgs};
use extract::command::run::{Event, Summary, run};
use extract::train::stage1::TrainEvent;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

// candle allocates a fresh buffer for every op; with glibc's malloc, buffers above its mmap
// threshold (the im2col and activation tensors of a training batch) are mmapped and unmapped
// each time (page faults, zeroing). mimalloc keeps them: stage-1 epochs 13 % faster here,
// identical weights.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("merge") {
        return merge_main();
    }
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match real_main(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "extract: {}",
                extract::source::transform::one_line(&e.to_string())
            );
            ExitCode::from(2)
        }
    }
}

/// `extract merge`: parse, merge, one closing line (or one error line, exit 2).
fn merge_main() -> ExitCode {
    let args = match MergeArgs::try_parse_from(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let start = std::time::Instant::now();
    match extract::write::assemble::merge(&args.parts, &args.out, args.overwrite) {
        Ok((out, done)) => {
            let rows: Vec<String> = done.rows.iter().map(|(s, n)| format!("{s} {n}")).collect();
            eprintln!(
                "extract: merged {} parts into {} ({}; head {}; {} skipped) in {:.1}s",
                args.parts.len(),
                out.display(),
                rows.join(", "),
                if done.head_written { "yes" } else { "no" },
                done.skipped,
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "extract: {}",
                extract::source::transform::one_line(&e.to_string())
            );
            ExitCode::from(2)
        }
    }
}

fn real_main(args: &Args) -> extract::Result<()> {
    let command = extract::command::cli::typed_command(std::env::args());
    let (plan, notice) = args.plan(command, git_revision())?;
    if let Some(n) = notice {
        eprintln!("extract: {n}");
    }
    let target = if plan.shard.is_whole() {
        plan.out.clone()
    } else {
        plan.shard.part_dir(&plan.out)
    };
    let partial = bank::write::partial_path(&target);
    let phase = Arc::new(Mutex::new(Phase::Starting));
    let stage1_checkpoint = plan.stage1.as_ref().and(plan.checkpoint.clone());
    on_interrupt(partial.clone(), stage1_checkpoint, phase.clone())?;
    let mut ui = Progress::new(args.quiet);
    let start = std::time::Instant::now();
    let summary = run(&plan, &mut |ev| {
        let now = match &ev {
            Event::Train(TrainEvent::EpochStart { epoch, epochs, .. }) => Some(Phase::Stage1 {
                finished: epoch - 1,
                epochs: *epochs,
            }),
            Event::Train(TrainEvent::EpochEnd(log)) => {
                match *phase.lock().unwrap_or_else(|e| e.into_inner()) {
                    Phase::Stage1 { epochs, .. } => Some(Phase::Stage1 {
                        finished: log.epoch,
                        epochs,
                    }),
                    _ => None,
                }
            }
            Event::Stage1Done(_) => Some(Phase::Starting),
            Event::Chunks { present, total } => {
                if plan.resume {
                    eprintln!(
                        "extract: resumed {present} of {total} chunks ({})",
                        partial.join("chunks").display()
                    );
                }
                Some(Phase::Chunks { total: *total })
            }
            Event::Written => Some(Phase::Written),
            _ => None,
        };
        if let Some(p) = now {
            *phase.lock().unwrap_or_else(|e| e.into_inner()) = p;
        }
        ui.show(ev)
    })?;
    if plan.stage1.as_ref().is_some_and(|s| s.only) {
        return Ok(());
    }
    if !plan.shard.is_whole() {
        eprintln!(
            "extract: wrote part {} of {} to {} in {:.1}s; when every part is done: extract merge {} --out {}",
            plan.shard.index,
            plan.shard.count,
            summary.out.display(),
            start.elapsed().as_secs_f64(),
            format!("{}.shard-*-of-{}", plan.out.display(), plan.shard.count),
            plan.out.display()
        );
        return Ok(());
    }
    print_summary(&summary, start.elapsed().as_secs_f64());
    Ok(())
}

/// How far the run is, for the line an interrupt prints.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Loading the data and the backbone (or between stage 1 and the chunks).
    Starting,
    /// Training stage 1: `finished` of `epochs` epochs done (and saved).
    Stage1 { finished: usize, epochs: usize },
    /// Extracting the chunks: `total` of them this run owns.
    Chunks { total: usize },
    /// The bank (or part) is in place: nothing left to interrupt.
    Written,
}

/// SIGINT / SIGTERM (Ctrl-C, `kill`, `scancel`): wait for the files being written (a chunk,
/// the files of a stage-1 epoch, the bank's assembly: [`extract::interrupt`]), remove this
/// process's temporary files, say in one line what is kept and how to go on, and exit 130. The
/// chunk being computed is dropped; `<out>.partial/` is kept (a plain run would remove it on an
/// error), so that `--resume` continues from its chunks.
fn on_interrupt(
    partial: PathBuf,
    stage1_checkpoint: Option<PathBuf>,
    phase: Arc<Mutex<Phase>>,
) -> extract::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| {
        extract::ExtractError::Usage(format!("cannot handle SIGINT and SIGTERM: {e}"))
    })?;
    std::thread::spawn(move || {
        let Some(sig) = signals.forever().next() else {
            return;
        };
        let _writing = extract::interrupt::writing();
        let phase = *phase.lock().unwrap_or_else(|e| e.into_inner());
        if let Phase::Written = phase {
            // too late to stop: the bank is in place and the run ends with its summary
            return;
        }
        let chunks = partial.join("chunks");
        for d in [&partial, &chunks] {
            bank::lock::remove_own_temp_files(d);
        }
        let written = std::fs::read_dir(&chunks).map_or(0, |r| {
            r.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
                .count()
        });
        let kept = match (phase, &stage1_checkpoint) {
            (Phase::Stage1 { finished, epochs }, Some(ck)) => format!(
                "stopped in stage 1 with {finished} of {epochs} epochs finished, saved in {} (and its .resume.json); run the same command with --resume to continue training from there",
                ck.display()
            ),
            (Phase::Chunks { total }, _) => format!(
                "stopped; {written} of {total} chunks are kept in {} (the chunk being extracted is dropped); run the same command with --resume to continue from them",
                chunks.display()
            ),
            _ => "stopped before the extraction started; run the same command again".to_owned(),
        };
        use std::io::IsTerminal;
        eprintln!(
            "{}extract: {}: {kept}",
            if std::io::stderr().is_terminal() {
                "\n"
            } else {
                ""
            },
            if sig == SIGINT {
                "interrupted (SIGINT)"
            } else {
                "terminated (SIGTERM)"
            }
        );
        std::process::exit(130);
    });
    Ok(())
}

/// `git rev-parse HEAD` of the working directory, if there is one.
fn git_revision() -> Option<String> {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// Progress bars (per split, per stage-1 epoch) and the stage-1 lines on stderr.
struct Progress {
    quiet: bool,
    style: ProgressStyle,
    train_style: ProgressStyle,
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        let style =
            ProgressStyle::with_template("{prefix:>5} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
                .expect("valid template")
                .progress_chars("=> ");
        let train_style = ProgressStyle::with_template(
            "{prefix:>13} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        Progress {
            quiet,
            style,
            train_style,
            bar: None,
        }
    }

    fn show(&mut self, ev: Event) {
        match ev {
            Event::Train(t) => self.show_train(t),
            Event::Stage1Done(r) => {
                eprintln!(
                    "stage1: {} ({} params, {} epochs, {:.1}s training) -> {}: test top-1 {:.2}% ({:.2}% with flip TTA)",
                    r.arch,
                    r.parameters,
                    r.recipe.epochs,
                    r.train_secs,
                    r.checkpoint.display(),
                    r.test_top1,
                    r.test_top1_flip
                );
            }
            Event::Start { split, rows } if !self.quiet => {
                let b = ProgressBar::new(rows as u64)
                    .with_style(self.style.clone())
                    .with_prefix(split.to_owned());
                self.bar = Some(b);
            }
            Event::Advance { done, .. } => {
                if let Some(b) = &self.bar {
                    b.set_position(done as u64);
                }
            }
            Event::Finish { .. } => {
                if let Some(b) = self.bar.take() {
                    b.finish();
                }
            }
            _ => {}
        }
    }

    fn show_train(&mut self, ev: TrainEvent) {
        match ev {
            TrainEvent::EpochStart {
                epoch,
                epochs,
                rows,
            } if !self.quiet => {
                let b = ProgressBar::new(rows as u64)
                    .with_style(self.train_style.clone())
                    .with_prefix(format!("epoch {epoch}/{epochs}"));
                self.bar = Some(b);
            }
            TrainEvent::Advance { done, loss } => {
                if let Some(b) = &self.bar {
                    b.set_position(done as u64);
                    b.set_message(format!("loss {loss:.4}"));
                }
            }
            TrainEvent::EpochEnd(l) => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                eprintln!(
                    "stage1: epoch {:>3}  lr {:.5}  loss {:.4}  train acc {:5.2}%  {:.1}s",
                    l.epoch, l.lr, l.loss, l.train_acc, l.secs
                );
            }
            TrainEvent::Evaluating { rows } if !self.quiet => {
                eprintln!("stage1: evaluating on {rows} test images (BatchNorm in eval mode)");
            }
            _ => {}
        }
    }
}

/// The closing line: where the bank went, its splits and the throughput.
fn print_summary(summary: &Summary, secs: f64) {
    let rows: Vec<String> = summary
        .rows
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    let total: usize = summary.rows.iter().map(|(_, n)| n).sum();
    eprintln!(
        "extract: wrote {} ({}; D={}; head {}; {} skipped) in {:.1}s, {:.0} images/s",
        summary.out.display(),
        rows.join(", "),
        summary.dim,
        if summary.head_written { "yes" } else { "no" },
        summary.skipped,
        secs,
        total as f64 / secs.max(1e-9)
    );
}
