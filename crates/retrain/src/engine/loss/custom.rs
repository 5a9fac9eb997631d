//! A loss written outside ltbench (the Python package's `Method.custom`): the engine does the
//! head's forward and backward, the SGD step and everything after; the loss is a callback
//! that gets the batch's logits and labels and returns the batch-mean loss and
//! ∂loss/∂logits. Callbacks are registered by id (a hash of the function's source and
//! constants, so that records of an unchanged function are reused).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a custom loss sees besides the batch.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub class_counts: Vec<usize>,
    pub num_classes: usize,
    /// 0-based epoch of `epochs`, and the optimiser step of the run (0-based).
    pub epoch: usize,
    pub epochs: usize,
    pub step: usize,
    pub seed: u64,
}

/// A loss callback: the batch-mean loss of `z` [B, K] with labels `y` [B], and ∂loss/∂z
/// written into `grad` [B, K]. An error stops the run (see [`crate::engine::abort`]).
pub trait CustomLoss: Send + Sync + std::fmt::Debug {
    fn loss_and_grad(
        &self,
        z: &[f32],
        y: &[u32],
        ctx: &Ctx,
        grad: &mut [f32],
    ) -> Result<f64, String>;
}

static REGISTRY: Mutex<Option<HashMap<u64, Arc<dyn CustomLoss>>>> = Mutex::new(None);

/// Register the callback of custom loss `id` (replacing one registered before).
pub fn register(id: u64, f: Arc<dyn CustomLoss>) {
    let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    r.get_or_insert_with(HashMap::new).insert(id, f);
}

/// Drop the callback of custom loss `id` (after the run that needed it).
pub fn unregister(id: u64) {
    let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = r.as_mut() {
        m.remove(&id);
    }
}

/// The callback of custom loss `id`, when registered.
pub fn get(id: u64) -> Option<Arc<dyn CustomLoss>> {
    let r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    r.as_ref().and_then(|m| m.get(&id).cloned())
}
