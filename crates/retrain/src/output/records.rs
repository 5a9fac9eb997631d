//! Durable, resumable runs. Every finished run is appended to `<out>/records.jsonl` (one JSON
//! object per line, flushed and fsynced) under a key that hashes every input its numbers
//! depend on — the bank's fingerprint (every feature, label and head value), the resolved
//! method with all its hyper-parameters, the seed, the evaluation switches (flip TTA, shuffle,
//! oracle, selection on val), the device and `--one-pass` — together with the [`CODE_ID`] of the build that
//! ran it. A rerun of the same command skips the runs recorded under the same key *and* code
//! identity, so a sweep killed at any point (even with SIGKILL) resumes where it stopped;
//! records of another code identity are stale and rerun (`--reuse-stale` keeps them, labelled).
//!
//! A record holds only what a run produced (per-class correct counts, logit statistics,
//! selected epoch, timings); everything chosen when the tables are built (shot groups and
//! their thresholds, aggregates over seeds) is computed from it then, so it is not in the key.
//!
//! Shards (`--shard i/n`) write `records.shard-i-of-n.jsonl`; all `records*.jsonl` files of the
//! output folder are read back, so a run without `--shard` afterwards merges the shards.

use crate::run::{Job, RunOptions, RunRecord};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The code identity of this build: a hash of every source file that can change a run's
/// numbers (see `build.rs`); a record made by another build is stale.
pub const CODE_ID: &str = env!("LTBENCH_CODE_ID");
/// The git revision this build was made from (`+dirty`: with uncommitted changes); provenance.
pub const GIT_REV: &str = env!("LTBENCH_GIT");

/// One line of a records file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    pub key: String,
    pub bank: String,
    /// [`CODE_ID`] of the build that made the record.
    pub code: String,
    pub record: RunRecord,
}

/// A recorded run and the code identity that made it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub code: String,
    pub record: RunRecord,
}

impl Stored {
    /// Made by this build.
    pub fn current(&self) -> bool {
        self.code == CODE_ID
    }
}

/// What an output folder's records files hold.
#[derive(Debug, Default)]
pub struct Recorded {
    /// key → the record of this build when there is one, else the last one in file order.
    pub runs: HashMap<String, Stored>,
    /// Lines in a format older than this build's (they are rerun).
    pub old_format: usize,
}

/// The key of a job: FNV-1a over a canonical JSON of every input its numbers depend on
/// (the code identity is stored beside it, so that a stale record can be recognised).
pub fn job_key(bank_fingerprint: &str, job: &Job, opts: &RunOptions) -> String {
    let mut canon = serde_json::json!({
        "bank": bank_fingerprint,
        "method": job.method,
        "seed": job.seed,
        "tta": opts.tta,
        "shuffle": opts.shuffle,
        "oracle": opts.oracle,
        "select_on_val": opts.select_on_val,
    });
    if opts.on_device {
        // device numbers differ from the CPU engine's in the last bits: separate records
        canon["device"] = "cuda".into();
    }
    let corrected = opts.corrected_priors(&job.method);
    if !corrected.is_empty() {
        // the record holds the corrected evaluation of each of these priors
        canon["prior_corrected"] = corrected
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .into();
    }
    if opts.one_pass && crate::engine::multihead::shareable(&job.method) {
        // one wide GEMM for several heads sums in another order: equal to 4 decimals, not
        // to the last bit, so such runs have records of their own
        canon["one_pass"] = true.into();
    }
    let mut h = bank::Fnv::default();
    h.write(canon.to_string().as_bytes());
    format!("{:016x}", h.0)
}

/// `i/n` of `--shard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("expected i/n (e.g. 0/4), got `{s}`"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("shard index `{i}` is not a number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("shard count `{n}` is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("need 0 ≤ i < n, got {index}/{count}"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Deterministic slice of a job list: job j belongs to shard j mod n.
    pub fn owns(&self, job_index: usize) -> bool {
        job_index % self.count == self.index
    }

    pub fn file_name(&self) -> String {
        format!("records.shard-{}-of-{}.jsonl", self.index, self.count)
    }
}

/// Read every `records*.jsonl` in `dir`. A torn last line (a writer killed mid-line) is
/// skipped; a line of an older record format is counted in [`Recorded::old_format`]; any other
/// unreadable line is an error naming file and line.
pub fn read_all(dir: &Path) -> anyhow::Result<Recorded> {
    let mut out = Recorded::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with("records") && n.ends_with(".jsonl")
        })
        .collect();
    files.sort();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("{}: cannot read", f.display()))?;
        let complete = text.ends_with('\n');
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Line>(l) {
                Ok(line) => {
                    let keep_old = out
                        .runs
                        .get(&line.key)
                        .is_some_and(|s| s.current() && line.code != CODE_ID);
                    if !keep_old {
                        let stored = Stored {
                            code: line.code,
                            record: line.record,
                        };
                        out.runs.insert(line.key, stored);
                    }
                }
                Err(_) if i + 1 == lines.len() && !complete => {} // torn by a kill: rerun it
                Err(_) if is_old_format(l) => out.old_format += 1,
                Err(e) => anyhow::bail!("{}: line {}: not a run record ({e})", f.display(), i + 1),
            }
        }
    }
    Ok(out)
}

/// A complete record line of an earlier ltbench (a JSON object with a key and a record).
fn is_old_format(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .is_ok_and(|v| v.get("key").is_some_and(|k| k.is_string()) && v.get("record").is_some())
}

/// Appends records durably; shared by the worker threads.
pub struct Appender {
    path: PathBuf,
    file: Mutex<std::fs::File>,
    appended: std::sync::atomic::AtomicUsize,
}

impl Appender {
    pub fn open(path: &Path) -> anyhow::Result<Appender> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .with_context(|| format!("{}: cannot open for appending", path.display()))?;
        // a torn last line from a killed writer must not glue onto the next record; under the
        // file lock, so that a line another process is appending is never taken for one
        let repair = || -> std::io::Result<()> {
            file.lock()?;
            let bytes = std::fs::read(path)?;
            if !bytes.is_empty() && !bytes.ends_with(b"\n") {
                let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                file.set_len(keep as u64)?;
            }
            file.unlock()
        };
        repair().with_context(|| format!("{}: cannot repair", path.display()))?;
        Ok(Appender {
            path: path.into(),
            file: Mutex::new(file),
            appended: Default::default(),
        })
    }

    /// Append one line, whole: under this process's mutex and an exclusive `flock` of the
    /// file, so that the experiments of one bank, sharing its records file from several
    /// processes, never interleave a line.
    pub fn append(&self, line: &Line) -> anyhow::Result<()> {
        // the run's per-row predictions first: a recorded run always has them
        if let Some(p) = &line.record.test.predictions {
            let path = crate::output::predictions::sidecar(&self.path, &line.key, &line.code);
            crate::output::predictions::save(&path, p)?;
        }
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        let mut f = self.file.lock().expect("records lock");
        f.lock()
            .and_then(|_| f.write_all(text.as_bytes()))
            .and_then(|_| f.sync_data())
            .and_then(|_| f.unlock())
            .with_context(|| format!("{}: cannot append", self.path.display()))?;
        self.appended
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Hold the file: no line is appended by this process until the guard drops (a signal
    /// handler takes it before it exits, so that no line is left half written).
    pub fn hold(&self) -> std::sync::MutexGuard<'_, std::fs::File> {
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lines appended by this process.
    pub fn appended(&self) -> usize {
        self.appended.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parsing_and_ownership() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(
            (0..7).filter(|&j| s.owns(j)).collect::<Vec<_>>(),
            vec![1, 4]
        );
        assert!("3/3".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        // every job in exactly one shard
        for j in 0..20 {
            assert_eq!(
                (0..3)
                    .filter(|&i| Shard { index: i, count: 3 }.owns(j))
                    .count(),
                1
            );
        }
    }

    #[test]
    fn torn_last_line_is_skipped_but_garbage_in_the_middle_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("records.jsonl"), "{\"key\": \"a\", \"ba").unwrap();
        assert!(read_all(d.path()).unwrap().runs.is_empty());
        std::fs::write(d.path().join("records.jsonl"), "garbage\n{}\n").unwrap();
        let e = read_all(d.path()).unwrap_err().to_string();
        assert!(e.contains("records.jsonl: line 1"), "{e}");
    }
}
