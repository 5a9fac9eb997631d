//! The house rules of `crates/extract/src`, checked on the source text:
//!
//! - the rooms are, bottom to top, `source`, `model`, `infer`, `train`, `write`, `command`;
//!   a file of a room names (`crate::<room>`, in a `use` or a path) only its own room or rooms
//!   below it: every arrow points down the flow. The files beside the rooms (`error.rs`,
//!   `device.rs`, `interrupt.rs`) name no room at all;
//! - `src` holds at most 8 files at its top;
//! - only `command` (and `main.rs`) prints; unit tests (after `#[cfg(test)]`) may report;
//! - no file is over 600 lines.

use std::path::{Path, PathBuf};

const ROOMS: [&str; 6] = ["source", "model", "infer", "train", "write", "command"];

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

/// The files at the top of `src`, beside the rooms.
fn top_files() -> Vec<PathBuf> {
    let mut fs: Vec<PathBuf> = std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    fs.sort();
    fs
}

/// The lines of `text` without comments.
fn code(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|l| l.split("//").next().unwrap_or(""))
}

/// Every `crate::<room>` a file names, outside comments.
fn rooms_named(text: &str) -> Vec<&'static str> {
    let mut named = Vec::new();
    for code in code(text) {
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
    for f in top_files() {
        let name = f.file_name().unwrap().to_string_lossy();
        if name == "lib.rs" || name == "main.rs" {
            continue;
        }
        for r in rooms_named(&std::fs::read_to_string(&f).unwrap()) {
            bad.push(format!(
                "{} (beside the rooms) names crate::{r}",
                f.display()
            ));
        }
    }
    assert!(bad.is_empty(), "back-arrows:\n{}", bad.join("\n"));
}

#[test]
fn the_top_of_src_holds_at_most_8_files() {
    let top = top_files();
    assert!(
        top.len() <= 8,
        "{} files at the top of src (at most 8):\n{}",
        top.len(),
        top.iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn only_command_prints() {
    let mut fs = Vec::new();
    files(&src(), &mut fs);
    let mut bad = Vec::new();
    for f in fs {
        let rel = f.strip_prefix(src()).unwrap();
        if rel.starts_with("command") || rel == Path::new("main.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        // unit tests may report what they measured
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        let code: String = code(text).collect::<Vec<_>>().join("\n");
        for word in ["println!", "eprintln!", "print!(", "eprint!(", "dbg!("] {
            if code.contains(word) {
                bad.push(format!("{} prints ({word})", f.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
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
        rooms_named("use crate::write::plan::Plan; // crate::command"),
        vec!["write"]
    );
    assert!(rooms_named("use crate::sources::Thing;").is_empty());
    assert!(rooms_named("use crate::error::Result;").is_empty());
    assert_eq!(rooms_named("x = crate::infer::compile(m)"), vec!["infer"]);
}
