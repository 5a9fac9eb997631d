//! A loss written outside ltbench (the Python package's `Method.custom`): the engine does the
//! head's forward and backward, the SGD step and everything after; the loss is a callback
//! that gets the batch's logits and labels and returns the batch-mean loss and
//! ∂loss/∂logits.
//!
//! The callback travels with the run: the checked [`crate::method::Method`] of a custom row
//! holds it ([`CustomFn`]), as the caller attached it for that one call, and the engine calls
//! what its method holds. `Loss::Custom { id }` only keys the row's records (a hash of what
//! the function computes); two calls whose ids collide still run their own callbacks.

use std::sync::Arc;

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
/// written into `grad` [B, K]. An error stops the run (its `crate::engine::cancel::Cancel`).
pub trait CustomLoss: Send + Sync + std::fmt::Debug {
    fn loss_and_grad(
        &self,
        z: &[f32],
        y: &[u32],
        ctx: &Ctx,
        grad: &mut [f32],
    ) -> Result<f64, String>;
}

/// The callback of one custom row, shared by its jobs. Two are equal when they are the same
/// callback (the same allocation), not when they compute the same.
#[derive(Clone)]
pub struct CustomFn(pub Arc<dyn CustomLoss>);

impl std::fmt::Debug for CustomFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for CustomFn {
    fn eq(&self, other: &CustomFn) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Constant(f64);

    impl CustomLoss for Constant {
        fn loss_and_grad(
            &self,
            _: &[f32],
            _: &[u32],
            _: &Ctx,
            _: &mut [f32],
        ) -> Result<f64, String> {
            Ok(self.0)
        }
    }

    #[test]
    fn a_callback_equals_only_itself() {
        let a = CustomFn(Arc::new(Constant(1.0)));
        let same = CustomFn(Arc::new(Constant(1.0)));
        assert_eq!(a, a.clone());
        assert_ne!(a, same);
    }
}
