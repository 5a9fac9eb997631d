//! The lock on a bank folder, held by an extraction ([`crate::command::run`]) and by
//! `extract merge` ([`crate::write::assemble::merge`]) while they write it.

use crate::error::{ExtractError, Result};

/// One extraction per bank folder: a lock on `.<name>.lock` beside it, held until the bank is
/// written (a second `extract` on the same `--out` stops at once, naming the holder's pid).
pub fn lock_output(out: &std::path::Path) -> Result<bank::lock::FolderLock> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| ExtractError::io(&parent, e))?;
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    bank::lock::FolderLock::acquire_file(
        &parent.join(format!(".{name}.lock")),
        &format!("--out {}", out.display()),
    )
    .map_err(|e| ExtractError::Usage(e.to_string()))
}
