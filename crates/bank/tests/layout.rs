//! The house rules of `crates/bank/src` (a library with no face), checked on the source text
//! with the workspace's one layout checker (`crates/layout-check`):
//!
//! - no file prints, reads `std::env::args`, exits the process or installs a signal handler:
//!   its callers (the `retrain` and `extract` faces) say what happened; unit tests (after
//!   `#[cfg(test)]`) may report;
//! - no file is over 600 lines.

use layout_check::{face_rules, long_files, sources};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn nothing_prints_exits_or_reads_the_arguments() {
    let bad = face_rules("bank/src/", &sources(&src()), &|_| false, &[], true);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn no_source_file_is_over_600_lines() {
    let long = long_files(&src(), 600);
    assert!(long.is_empty(), "{}", long.join("\n"));
}
