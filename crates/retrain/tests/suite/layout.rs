//! The house rules of `crates/retrain/src`, checked on the source text with the workspace's one
//! layout checker (`crates/layout-check`):
//!
//! - the rooms are, bottom to top, `method`, `engine`, `eval`, `run`, `output`, `command`;
//!   a file of a room names (`crate::<room>`, in a `use` or a path) only its own room or rooms
//!   below it: every arrow points down the flow;
//! - the rooms below `output` know nothing of CSV, polars or plotters, and only `command`
//!   (and `main.rs`) prints;
//! - only `main.rs` writes to stdout: below the binary the commands return their text, so the
//!   Python face writes nothing to file descriptor 1;
//! - nothing outside the CLI face (`command/`, `main.rs`) prints, reads `std::env::args`, exits
//!   the process, installs a signal handler or names the clap structs (`Cli`, `RunArgs`, …) —
//!   neither in this crate nor in the Python face (`crates/python/src`), which is to build the
//!   engine's typed description itself; today's exceptions are [`ALLOWED`], a list that can only
//!   shrink;
//! - no file is over 600 lines.

use layout_check::{
    PRINTS, against_allow_list, back_arrows, clap_types, code, face_rules, long_files, room_of,
    rooms_named, sources, words_used,
};
use std::path::{Path, PathBuf};

const ROOMS: [&str; 6] = ["method", "engine", "eval", "run", "output", "command"];

/// Every way a line of code writes to stdout; `eprint!`, `eprintln!` and a longer name
/// (`my_print!`) are not.
const STDOUT: [&str; 3] = ["print!", "println!", "stdout()"];

/// Today's violations of the face rule (`the_faces_alone_print_exit_or_name_the_clap_structs`),
/// `<file>: <what> (<word>)`, to be taken off as the engine gets its own typed entry (issue 33):
/// the Python face still parses an argument vector with the CLI's clap structs.
const ALLOWED: [&str; 2] = [
    // `_ltbench.run` and `_ltbench.compare`: keywords → argv → `Cli::try_parse_from`
    "python/src/lib.rs: names the clap struct (Cli)",
    // … and matches on the parsed `Command::Run` / `Command::Compare`
    "python/src/lib.rs: names the clap struct (Command)",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_arrow_points_down_the_flow() {
    let bad = back_arrows(&src(), &ROOMS, false);
    assert!(bad.is_empty(), "back-arrows:\n{}", bad.join("\n"));
}

#[test]
fn the_rooms_below_output_know_no_csv_polars_or_plotters_and_only_command_prints() {
    let mut bad = Vec::new();
    for s in sources(&src()) {
        let Some(room) = room_of(&s, &ROOMS) else {
            continue;
        };
        if !matches!(room, "output" | "command") {
            for word in ["polars", "plotters", "CsvWriter", "csv::"] {
                if s.code.contains(word) {
                    bad.push(format!("{} uses {word}", s.path.display()));
                }
            }
        }
        if room != "command" {
            for word in words_used(&s.code, &PRINTS) {
                bad.push(format!("{} prints ({word})", s.path.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The face rule's violations, in this crate and in the Python face.
fn face_violations() -> Vec<String> {
    let ours = sources(&src());
    let clap = clap_types(
        &ours
            .iter()
            .filter(|s| s.rel.starts_with("command/"))
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        clap,
        ["Cli", "Command", "CompareArgs", "RunArgs", "SynthSpec"]
    );
    let face = |rel: &str| rel.starts_with("command/") || rel == "main.rs";
    let python = sources(&src().join("../../python/src"));
    assert!(!python.is_empty());
    let mut found = face_rules("retrain/src/", &ours, &face, &clap, false);
    found.extend(face_rules("python/src/", &python, &|_| false, &clap, false));
    found
}

#[test]
fn the_faces_alone_print_exit_or_name_the_clap_structs() {
    let found = face_violations();
    let new: Vec<&String> = found
        .iter()
        .filter(|f| !ALLOWED.contains(&f.as_str()))
        .collect();
    assert!(new.is_empty(), "{new:#?}");
}

#[test]
fn the_allow_list_has_no_stale_entries() {
    // a fixed violation leaves the list with it: the list only shrinks
    if let Err(e) = against_allow_list(&face_violations(), &ALLOWED) {
        panic!("{e}");
    }
}

#[test]
fn only_main_writes_to_stdout() {
    let mut bad = Vec::new();
    let mut main_writes = false;
    for s in sources(&src()) {
        let used = words_used(&s.code, &STDOUT);
        if s.rel == "main.rs" {
            main_writes = !used.is_empty();
            continue;
        }
        for word in used {
            bad.push(format!("{} writes to stdout ({word})", s.path.display()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(main_writes);
}

#[test]
fn the_checker_sees_a_write_to_stdout() {
    let stdout_writes = |text: &str| words_used(&code(text), &STDOUT);
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
fn the_checker_sees_what_only_a_face_may_do() {
    let file = |rel: &str, text: &str| layout_check::Source {
        path: rel.into(),
        rel: rel.into(),
        text: text.into(),
        code: code(text),
    };
    let fs = [
        file("engine/a.rs", "fn f(a: &RunArgs) { eprintln!(\"x\"); }"),
        file(
            "engine/b.rs",
            "let v: Vec<_> = std::env::args().collect(); std::process::exit(2);",
        ),
        file(
            "engine/c.rs",
            "// RunArgs, println!\nlet s = \"signal_hook\";",
        ),
        file("command/d.rs", "fn g(a: &RunArgs) { println!(\"x\") }"),
    ];
    let face = |rel: &str| rel.starts_with("command/");
    assert_eq!(
        face_rules("", &fs, &face, &["RunArgs".into()], false),
        vec![
            "engine/a.rs: prints (eprintln!)",
            "engine/a.rs: names the clap struct (RunArgs)",
            "engine/b.rs: reads the arguments (env::args)",
            "engine/b.rs: exits the process (process::exit)",
        ]
    );
}

#[test]
fn no_source_file_is_over_600_lines() {
    let long = long_files(&src(), 600);
    assert!(long.is_empty(), "{}", long.join("\n"));
}

#[test]
fn the_checker_sees_a_back_arrow() {
    // the checker itself: a line naming a room is found, a comment or a longer name is not
    assert_eq!(
        rooms_named(
            &code("use crate::output::tables::Row; // crate::command"),
            &ROOMS
        ),
        vec!["output"]
    );
    assert!(rooms_named("use crate::runner::Job;", &ROOMS).is_empty());
    assert_eq!(
        rooms_named("x = crate::run::run_jobs(a)", &ROOMS),
        vec!["run"]
    );
}
