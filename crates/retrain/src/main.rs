use clap::Parser;
use retrain::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match &cli.command {
        Some(Command::Synth {
            out,
            overwrite,
            spec,
        }) => retrain::synth::write_synthetic_bank(
            spec,
            out,
            *overwrite,
            retrain::linalg::Parallelism::Rayon(0),
        )
        .map(|_| eprintln!("retrain: wrote {}", out.display())),
        None => retrain::report::run(&cli.run),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("retrain: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}
