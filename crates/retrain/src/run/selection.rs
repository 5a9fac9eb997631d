//! Which head a run reports: the epoch with the best val mean per-class accuracy when the bank
//! has a val split (ties to the later epoch, as the reference code does), else the final one;
//! and, with `--oracle`, the best test epoch (a labelled oracle). [`Tracker`] sees every
//! epoch's head and evaluates it, on the device when there is one.

use super::job::{Job, RunOptions, RunRecord};
use crate::engine::device::{DeviceBank, SplitId};
use crate::engine::head::{EvalHead, HeadState};
use crate::engine::linalg::Parallelism;
use crate::engine::loss::weights::log_priors;
use crate::eval::device::evaluate_on_device;
use crate::eval::priors::corrected_eval_head;
use crate::eval::{Evaluation, evaluate_with};
use crate::method::Method;
use bank::Bank;

/// Keeps the val-selected head and the oracle epoch of one run.
pub struct Tracker<'a> {
    bank: &'a Bank,
    method: &'a Method,
    log_priors: Vec<f64>,
    opts: RunOptions,
    par: Parallelism,
    dev: Option<&'a DeviceBank>,
    best_val: Option<(f64, usize, HeadState)>,
    oracle: Option<(f64, usize)>,
    /// The first device error of an evaluation (reported when the run finishes).
    error: Option<candle_core::Error>,
}

impl<'a> Tracker<'a> {
    pub fn new(
        bank: &'a Bank,
        method: &'a Method,
        opts: RunOptions,
        par: Parallelism,
        dev: Option<&'a DeviceBank>,
    ) -> Self {
        Tracker {
            bank,
            method,
            log_priors: log_priors(&bank.train_counts),
            opts,
            par,
            dev,
            best_val: None,
            oracle: None,
            error: None,
        }
    }

    /// `head` on a split, on the device when there is one; `keep`: with per-row predictions.
    fn evaluate(
        &self,
        head: &EvalHead,
        id: SplitId,
        keep: bool,
    ) -> candle_core::Result<Evaluation> {
        let split = match id {
            SplitId::Val => self.bank.val.as_ref().expect("val split"),
            SplitId::Test => &self.bank.test,
            SplitId::Train => &self.bank.train,
        };
        // flip TTA when the run keeps it and the row's recipe evaluates with it
        let tta = self.opts.tta && self.method.tta;
        match self.dev {
            Some(db) => evaluate_on_device(db, id, split, head, tta, keep),
            None => Ok(evaluate_with(head, split, tta, self.par, keep)),
        }
    }

    /// After every epoch: selection on val by mean per-class accuracy (ties go to the later
    /// epoch, as the reference code does) and the oracle.
    pub fn on_epoch(&mut self, epoch: usize, head: &HeadState) {
        if let Err(e) = self.try_on_epoch(epoch, head) {
            self.error.get_or_insert(e);
        }
    }

    fn try_on_epoch(&mut self, epoch: usize, head: &HeadState) -> candle_core::Result<()> {
        if self.error.is_some() {
            return Ok(());
        }
        let eval_head = head.eval_head(self.method.posthoc, &self.log_priors);
        if let (Some(_), true) = (&self.bank.val, self.opts.select_on_val) {
            let score = self.evaluate(&eval_head, SplitId::Val, false)?.balanced();
            if self.best_val.as_ref().is_none_or(|(b, _, _)| score >= *b) {
                self.best_val = Some((score, epoch, head.clone()));
            }
        }
        if self.opts.oracle {
            let e = self.evaluate(&eval_head, SplitId::Test, false)?;
            if self.oracle.is_none_or(|(b, _)| e.top1 >= b) {
                self.oracle = Some((e.top1, epoch));
            }
        }
        Ok(())
    }

    pub fn finish(
        mut self,
        job: &Job,
        last: HeadState,
        final_train_loss: Option<f64>,
        started: std::time::Instant,
    ) -> candle_core::Result<RunRecord> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let (head, selected_epoch) = match self.best_val.take() {
            Some((_, e, h)) => (h, Some(e)),
            None => (last, None),
        };
        let eval_head = head.eval_head(self.method.posthoc, &self.log_priors);
        // the test rows' predictions go with the record (beside it on disk); val's do not
        let test = self.evaluate(&eval_head, SplitId::Test, true)?;
        let val = match self.bank.val {
            Some(_) => Some(self.evaluate(&eval_head, SplitId::Val, false)?),
            None => None,
        };
        let mut prior_corrected = Vec::new();
        for q in self.opts.corrected_priors(self.method) {
            // refused before any work (`command::rows`); never reached with a declared row
            let prior = self.method.logit_prior.ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "method `{}`: logit_prior is not declared; --prior-correct needs it",
                    self.method.name
                ))
            })?;
            let log_q: Vec<f64> = q
                .weights(&self.bank.train_counts)
                .iter()
                .map(|w| w.ln())
                .collect();
            let h =
                corrected_eval_head(&head, self.method.posthoc, prior, &self.log_priors, &log_q);
            let e = self.evaluate(&h, SplitId::Test, false)?;
            prior_corrected.push((q.to_string(), e.per_class_correct));
        }
        let mut oracle = self.oracle;
        if self.opts.oracle && !self.method.train {
            oracle = Some((test.top1, 0));
        }
        Ok(RunRecord {
            method: self.method.clone(),
            seed: job.seed,
            test,
            val,
            selected_epoch,
            oracle,
            final_train_loss,
            prior_corrected,
            seconds: started.elapsed().as_secs_f64(),
            stale: None,
        })
    }
}
