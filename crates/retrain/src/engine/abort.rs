//! Stopping a run from outside (an interrupt in the Python package, a custom loss that
//! raised): a process-wide flag with its reason. The runner starts no job and records no
//! run while it is set, and the trainer stops at the next epoch; the caller reads the reason
//! and clears it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static SET: AtomicBool = AtomicBool::new(false);
static REASON: Mutex<Option<String>> = Mutex::new(None);

/// Ask every run to stop, for `reason` (the first reason is kept).
pub fn abort(reason: &str) {
    let mut r = REASON.lock().unwrap_or_else(|e| e.into_inner());
    r.get_or_insert_with(|| reason.to_string());
    SET.store(true, Ordering::SeqCst);
}

/// True once [`abort`] was called (and until [`clear`]).
pub fn aborted() -> bool {
    SET.load(Ordering::Relaxed)
}

/// The reason, if aborted.
pub fn reason() -> Option<String> {
    if !aborted() {
        return None;
    }
    REASON.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Clear the flag (before a new run).
pub fn clear() {
    *REASON.lock().unwrap_or_else(|e| e.into_inner()) = None;
    SET.store(false, Ordering::SeqCst);
}
