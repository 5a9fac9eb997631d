//! The code identity of this build, for the run records' key (`records.rs`).
//!
//! `LTBENCH_CODE_ID` is an FNV-1a hash of every source file that can change a run's numbers
//! (this crate's and the bank crate's `src/`, their manifests, the workspace manifest with its
//! profiles, and `Cargo.lock` with the versions of gemm, candle, …), so it changes with any
//! edit, committed or not, and with nothing else (a README commit keeps it). `LTBENCH_GIT` is
//! the git revision (`+dirty` with uncommitted changes), for provenance only; `unknown` outside
//! a git checkout.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = here.join("../..");
    let inputs = [
        here.join("src"),
        here.join("build.rs"),
        here.join("Cargo.toml"),
        root.join("crates/bank/src"),
        root.join("crates/bank/Cargo.toml"),
        root.join("Cargo.toml"),
        root.join("Cargo.lock"),
    ];
    let mut paths = Vec::new();
    for i in &inputs {
        println!("cargo:rerun-if-changed={}", i.display());
        if i.is_dir() {
            files(i, &mut paths);
        } else if i.exists() {
            paths.push(i.clone());
        }
    }
    // relative names, sorted: the identity does not depend on where the checkout lives
    let mut named: Vec<(String, PathBuf)> = paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap_or(&p).to_string_lossy();
            (rel.replace('\\', "/"), p)
        })
        .collect();
    named.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut write = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (rel, p) in &named {
        write(rel.as_bytes());
        write(&[0]);
        write(&std::fs::read(p).unwrap_or_default());
        write(&[0]);
    }
    println!("cargo:rustc-env=LTBENCH_CODE_ID=src-{h:016x}");

    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(&root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    println!(
        "cargo:rustc-env=LTBENCH_GIT={rev}{}",
        if dirty { "+dirty" } else { "" }
    );
    // a new commit moves the branch ref (HEAD itself only names the branch)
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={}", root.join(head).display());
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(r) = git(&["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={}", root.join(r).display());
        }
    }
}
