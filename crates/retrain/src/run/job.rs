//! What a run is asked ([`Job`], [`RunOptions`]) and what it returns ([`RunRecord`]): the
//! types that the runner and the epoch selection both use, below both of them.

use crate::eval::Evaluation;
use crate::method::Method;

/// One unit of work.
#[derive(Debug, Clone)]
pub struct Job {
    pub method: Method,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub threads: usize,
    pub shuffle: bool,
    /// Also track the best test epoch (a labelled oracle, never the default).
    pub oracle: bool,
    /// Flip test-time augmentation when the split has `features_flip`.
    pub tta: bool,
    /// Train the linear heads of jobs that share a batch sequence in one pass.
    pub one_pass: bool,
    /// Pick the epoch with the best val score when the bank has a val split (otherwise, and
    /// when false, the final epoch is used; val is still evaluated).
    pub select_on_val: bool,
    /// Training and evaluation run on a device (`--device cuda`); part of the record key.
    pub on_device: bool,
    /// The test priors of `--test-prior`, as a set of indices into
    /// [`crate::eval::priors::TestPrior::all`].
    pub test_priors: u16,
    /// `--prior-correct`: every row is also evaluated corrected for each test prior (log q −
    /// log p̂ added to its final logits, p̂ the prior it declares; the `prior-correct` row
    /// always is).
    pub prior_correct: bool,
    /// Train on the bank's train views when it has them (not `--no-views`); part of the
    /// record key.
    pub views: bool,
}

impl RunOptions {
    /// The test priors to evaluate `method` corrected for (none unless it is the
    /// `prior-correct` row or `--prior-correct` is on).
    pub fn corrected_priors(&self, method: &Method) -> Vec<crate::eval::priors::TestPrior> {
        let corrects = self.prior_correct || method.posthoc == crate::method::PostHoc::PriorCorrect;
        if !corrects {
            return Vec::new();
        }
        crate::eval::priors::TestPrior::all()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| self.test_priors & (1 << i) != 0)
            .map(|(_, p)| p)
            .collect()
    }
}

/// What one run produced (one line of the records file).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    pub method: Method,
    pub seed: u64,
    pub test: Evaluation,
    pub val: Option<Evaluation>,
    /// Epoch picked on val (0-based), when the bank has a val split.
    pub selected_epoch: Option<usize>,
    /// Best test top-1 over epochs and its epoch (only with `oracle`).
    pub oracle: Option<(f64, usize)>,
    pub final_train_loss: Option<f64>,
    /// Per test prior (`forward-10`, …): the per-class correct counts of the head corrected for
    /// it ([`crate::eval::priors::corrected_eval_head`]: log q − log p̂ on the row's final
    /// logits), for the `prior-correct` row and with `--prior-correct`.
    #[serde(default)]
    pub prior_corrected: Vec<(String, Vec<usize>)>,
    pub seconds: f64,
    /// Set when the record was reused from another code identity (`--reuse-stale`): that
    /// identity. Never stored; every output labels such runs.
    #[serde(skip)]
    pub stale: Option<String>,
}
