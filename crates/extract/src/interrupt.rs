//! What an interrupt must not cut in two. The binary handles SIGINT and SIGTERM (`main.rs`):
//! before it says what is kept and exits (code 130) it takes [`writing`], so files that belong
//! together are finished first — a chunk file, the files of a stage-1 epoch, the bank's
//! assembly from its chunks — and never left half-written; the chunk being computed is
//! dropped. The library only holds the guard around those writes.

use std::sync::{Mutex, MutexGuard};

static WRITING: Mutex<()> = Mutex::new(());

/// Held while files that belong together are written: an interrupt waits for it.
pub fn writing() -> MutexGuard<'static, ()> {
    WRITING.lock().unwrap_or_else(|e| e.into_inner())
}
