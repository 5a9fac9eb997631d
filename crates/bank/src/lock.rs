//! One writer per output: an advisory lock (`flock` through std's `File::try_lock`) on a lock
//! file, held for the whole run by `retrain` (`<out>/.lock`; `--shard i/n` runs lock
//! `.lock.shard-i-of-n` in their records folder, so that shards run side by side) and by
//! `extract` (`.<bank>.lock` beside the bank folder it writes). A second process stops at once,
//! naming the output and the holder's pid (written into the lock file), before it writes
//! anything. The OS drops the lock with the process, so a holder killed with SIGKILL does not
//! block the next run.

use anyhow::{Context, bail};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held while the value lives.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    pub path: PathBuf,
}

impl FolderLock {
    /// Lock `<dir>/<name>`; `flag` names the option that chose `dir` in the error.
    pub fn acquire(dir: &Path, name: &str, flag: &str) -> anyhow::Result<FolderLock> {
        FolderLock::acquire_file(&dir.join(name), &format!("{flag} {}", dir.display()))
    }

    /// Lock the file `path`; `shown` names the output in the error (`--out features/x`).
    pub fn acquire_file(path: &Path, shown: &str) -> anyhow::Result<FolderLock> {
        let path = path.to_path_buf();
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("{shown}: {} is not writable", dir.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                bail!(
                    "{shown}: in use by another process (pid {}); wait for it to finish, or choose another folder",
                    if pid.is_empty() { "unknown" } else { pid }
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("{}: cannot lock", path.display()));
            }
        }
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| write!(file, "{}", std::process::id()))
            .and_then(|_| file.flush())
            .with_context(|| format!("{}: cannot write the pid", path.display()))?;
        Ok(FolderLock { _file: file, path })
    }
}

/// Remove the temporary files this process left in `dir` (`<name>.<pid>.<n>.tmp`, see
/// `bank::write::write_atomic`); returns how many.
pub fn remove_own_temp_files(dir: &Path) -> usize {
    let pid = format!(".{}.", std::process::id());
    let own = |name: &str| {
        name.strip_suffix(".tmp")
            .and_then(|n| n.rsplit_once('.'))
            .is_some_and(|(rest, count)| {
                count.bytes().all(|b| b.is_ascii_digit()) && format!("{rest}.").ends_with(&pid)
            })
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| own(&e.file_name().to_string_lossy()))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_process_s_temp_files_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let pid = std::process::id();
        for name in [
            format!("a.csv.{pid}.0.tmp"),
            format!("b.safetensors.{pid}.17.tmp"),
            format!("c.csv.{}.3.tmp", pid + 1),
            "d.csv".to_string(),
            format!("e.{pid}.csv"),
        ] {
            std::fs::write(d.path().join(name), b"x").unwrap();
        }
        assert_eq!(remove_own_temp_files(d.path()), 2);
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 3, "{left:?}");
    }

    #[test]
    fn a_second_lock_on_the_same_folder_is_refused_with_the_holder_pid() {
        let d = tempfile::tempdir().unwrap();
        let held = FolderLock::acquire(d.path(), ".lock", "--out").unwrap();
        let e = FolderLock::acquire(d.path(), ".lock", "--out").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("in use by another process"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        // another name (a shard) is another lock
        let _shard = FolderLock::acquire(d.path(), ".lock.shard-0-of-2", "--shard").unwrap();
        drop(held);
        FolderLock::acquire(d.path(), ".lock", "--out").unwrap();
    }
}
