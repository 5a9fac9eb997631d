//! The house rules of `crates/extract/src`, checked on the source text with the workspace's one
//! layout checker (`crates/layout-check`):
//!
//! - the rooms are, bottom to top, `source`, `model`, `infer`, `train`, `write`, `command`;
//!   a file of a room names (`crate::<room>`, in a `use` or a path) only its own room or rooms
//!   below it: every arrow points down the flow. The files beside the rooms (`error.rs`,
//!   `device.rs`, `interrupt.rs`) name no room at all;
//! - `src` holds at most 8 files at its top;
//! - only the CLI face (`command/` and `main.rs`) prints, reads `std::env::args`, exits the
//!   process, installs a signal handler or names the clap structs (`Args`, `MergeArgs`); unit
//!   tests (after `#[cfg(test)]`) may report;
//! - no file is over 600 lines.

use layout_check::{back_arrows, clap_types, code, face_rules, long_files, rooms_named, sources};
use std::path::{Path, PathBuf};

const ROOMS: [&str; 6] = ["source", "model", "infer", "train", "write", "command"];

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

#[test]
fn every_arrow_points_down_the_flow() {
    let bad = back_arrows(&src(), &ROOMS, true);
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
fn only_command_prints_exits_or_names_the_clap_structs() {
    let all = sources(&src());
    let cli: Vec<_> = all
        .iter()
        .filter(|s| s.rel.starts_with("command/"))
        .cloned()
        .collect();
    let clap = clap_types(&cli);
    assert!(clap.iter().any(|c| c == "Args"), "clap structs: {clap:?}");
    let face = |rel: &str| rel.starts_with("command/") || rel == "main.rs";
    let bad = face_rules("extract/src/", &all, &face, &clap, true);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
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
            &code("use crate::write::plan::Plan; // crate::command"),
            &ROOMS
        ),
        vec!["write"]
    );
    assert!(rooms_named("use crate::sources::Thing;", &ROOMS).is_empty());
    assert!(rooms_named("use crate::error::Result;", &ROOMS).is_empty());
    assert_eq!(
        rooms_named("x = crate::infer::compile(m)", &ROOMS),
        vec!["infer"]
    );
}
