//! Stopping one run from outside (an interrupt, a custom loss that raised): a token made by
//! the face for its call and carried down to every place the engine checks it. The runner
//! starts no job and records no run once it is set, and the trainer stops at the next epoch;
//! the face reads the reason. Each call has its own token: cancelling one run never touches
//! another running in the same process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A run's cancellation token: clones share the one flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    set: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Cancel {
    /// A fresh token, not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the run holding this token to stop, for `reason` (the first reason is kept).
    pub fn cancel(&self, reason: &str) {
        let mut r = self.0.reason.lock().unwrap_or_else(|e| e.into_inner());
        r.get_or_insert_with(|| reason.to_string());
        self.0.set.store(true, Ordering::SeqCst);
    }

    /// True once [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.set.load(Ordering::Relaxed)
    }

    /// The reason, if cancelled.
    pub fn reason(&self) -> Option<String> {
        if !self.is_cancelled() {
            return None;
        }
        self.0
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
