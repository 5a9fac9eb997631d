use clap::Parser;
use retrain::command::cli::{Cli, Command};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // a file-size limit (`ulimit -f`, a quota) must fail the write that hits it, with an error
    // naming the file, not kill the process with SIGXFSZ
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let mut cli = Cli::parse();
    // provenance is the face's to say: the command line as typed
    cli.run.provenance = retrain::output::notebook::Provenance::Cli {
        command: retrain::command::experiment::typed_command(std::env::args()),
    };
    let res = match &cli.command {
        Some(Command::Synth {
            out,
            overwrite,
            spec,
        }) => retrain::command::synth::write_synthetic_bank(
            spec,
            out,
            *overwrite,
            retrain::engine::linalg::Parallelism::Rayon(0),
        )
        .map(|_| {
            eprintln!("retrain: wrote {}", out.display());
            String::new()
        }),
        Some(Command::Compare(args)) => retrain::command::compare::run(args),
        None => retrain::command::run::run(&cli.run),
    };
    // the library returns what the command shows; the binary alone writes it to stdout
    let res = res.and_then(|text| {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(())
    });
    // a run stopped by SIGINT/SIGTERM (its token cancelled by the handler): the handler
    // finishes the records, says what is kept and exits 130; this thread only waits for it
    if res.is_err() && cli.run.cancel.is_cancelled() {
        loop {
            std::thread::park();
        }
    }
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("retrain: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}
