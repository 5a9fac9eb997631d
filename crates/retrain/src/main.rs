use clap::Parser;
use retrain::command::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    // a file-size limit (`ulimit -f`, a quota) must fail the write that hits it, with an error
    // naming the file, not kill the process with SIGXFSZ
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let cli = Cli::parse();
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
        .map(|_| eprintln!("retrain: wrote {}", out.display())),
        Some(Command::Compare { paper, results }) => compare(paper, results),
        None => retrain::command::run::run(&cli.run),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("retrain: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}

fn compare(paper: &str, results: &std::path::Path) -> anyhow::Result<()> {
    let paper_csv = match paper {
        "table1" => retrain::command::cli::repo_path("baselines/paper/table1.csv"),
        p => std::path::PathBuf::from(p),
    };
    let ours = if results.is_dir() {
        results.join("table1.csv")
    } else {
        results.to_path_buf()
    };
    anyhow::ensure!(
        ours.exists(),
        "{}: no such file (run `cargo run -p retrain` first)",
        ours.display()
    );
    print!(
        "{}",
        retrain::output::compare::compare_tables(&ours, &paper_csv)?
    );
    Ok(())
}
