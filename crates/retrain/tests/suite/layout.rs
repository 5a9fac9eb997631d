//! The house rules of `crates/retrain/src`, checked on the source text:
//!
//! - the rooms are, bottom to top, `method`, `engine`, `eval`, `run`, `output`, `command`;
//!   a file of a room names (`crate::<room>`, in a `use` or a path) only its own room or rooms
//!   below it: every arrow points down the flow;
//! - the rooms below `output` know nothing of CSV, polars or plotters, and only `command`
//!   (and `main.rs`) prints;
//! - only `main.rs` writes to stdout: below the binary the commands return their text, so the
//!   Python face writes nothing to file descriptor 1;
//! - no file is over 600 lines.

use std::path::{Path, PathBuf};

const ROOMS: [&str; 6] = ["method", "engine", "eval", "run", "output", "command"];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `crate::<room>` a file names, outside comments.
fn rooms_named(text: &str) -> Vec<&'static str> {
    let mut named = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            if let Some(r) = ROOMS.iter().find(|r| {
                rest.starts_with(**r)
                    && !rest[r.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
            }) {
                named.push(*r);
            }
        }
    }
    named
}

#[test]
fn every_arrow_points_down_the_flow() {
    let mut bad = Vec::new();
    for (level, room) in ROOMS.iter().enumerate() {
        let mut fs = Vec::new();
        files(&src().join(room), &mut fs);
        assert!(!fs.is_empty(), "room {room} is empty");
        for f in fs {
            let text = std::fs::read_to_string(&f).unwrap();
            for r in rooms_named(&text) {
                let to = ROOMS.iter().position(|x| *x == r).unwrap();
                if to > level {
                    bad.push(format!(
                        "{} names crate::{r} (a room above {room})",
                        f.display()
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "back-arrows:\n{}", bad.join("\n"));
}

#[test]
fn the_rooms_below_output_know_no_csv_polars_or_plotters_and_only_command_prints() {
    let mut bad = Vec::new();
    for room in ROOMS {
        let mut fs = Vec::new();
        files(&src().join(room), &mut fs);
        for f in fs {
            let text = std::fs::read_to_string(&f).unwrap();
            let code: String = text
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            if !matches!(room, "output" | "command") {
                for word in ["polars", "plotters", "CsvWriter", "csv::"] {
                    if code.contains(word) {
                        bad.push(format!("{} uses {word}", f.display()));
                    }
                }
            }
            if room != "command" {
                for word in ["println!", "eprintln!", "print!(", "eprint!("] {
                    if code.contains(word) {
                        bad.push(format!("{} prints ({word})", f.display()));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Every way a line of code writes to stdout (`print!`, `println!`, `stdout()`), outside
/// comments; `eprint!`, `eprintln!` and a longer name (`my_print!`) are not.
fn stdout_writes(text: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for word in ["print!", "println!", "stdout()"] {
            let hit = code
                .match_indices(word)
                .any(|(at, _)| !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
            if hit {
                found.push(word);
            }
        }
    }
    found
}

#[test]
fn only_main_writes_to_stdout() {
    let mut fs = Vec::new();
    files(&src(), &mut fs);
    let main = src().join("main.rs");
    let mut bad = Vec::new();
    for f in fs.iter().filter(|f| **f != main) {
        for word in stdout_writes(&std::fs::read_to_string(f).unwrap()) {
            bad.push(format!("{} writes to stdout ({word})", f.display()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(!stdout_writes(&std::fs::read_to_string(&main).unwrap()).is_empty());
}

#[test]
fn the_checker_sees_a_write_to_stdout() {
    assert_eq!(
        stdout_writes("print!(\"{x}\"); eprintln!(\"e\")"),
        vec!["print!"]
    );
    assert_eq!(
        stdout_writes("let o = std::io::stdout();"),
        vec!["stdout()"]
    );
    assert_eq!(stdout_writes("    println!(\"x\");"), vec!["println!"]);
    assert!(stdout_writes("eprintln!(\"x\"); eprint!(\"y\"); // println!").is_empty());
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut fs = Vec::new();
    files(&src(), &mut fs);
    let long: Vec<String> = fs
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 600).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "{}", long.join("\n"));
}

#[test]
fn the_checker_sees_a_back_arrow() {
    // the checker itself: a line naming a room is found, a comment or a longer name is not
    assert_eq!(
        rooms_named("use crate::output::tables::Row; // crate::command"),
        vec!["output"]
    );
    assert!(rooms_named("use crate::runner::Job;").is_empty());
    assert_eq!(rooms_named("x = crate::run::run_jobs(a)"), vec!["run"]);
}
