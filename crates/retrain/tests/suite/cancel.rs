//! A run's cancellation token is its own: two runs in one process, one cancelled part-way
//! (as a Ctrl-C or a failing custom loss does), leave the other's records exactly those of
//! the same run alone.

use bank::Bank;
use retrain::command::synth::SynthSpec;
use retrain::engine::cancel::Cancel;
use retrain::engine::head::HeadState;
use retrain::engine::linalg::Parallelism;
use retrain::method::Head;
use retrain::method::table::MethodTable;
use retrain::run::{Job, RunOptions, RunRecord, run_jobs};
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};

fn bank(dir: &std::path::Path) -> Bank {
    let spec = SynthSpec {
        classes: 5,
        dim: 8,
        ir: 10.0,
        img_max: 40,
        test_per_class: 10,
        val_per_class: 0,
        separation: 1.0,
        latent_dim: 4,
        ambient_noise: 0.5,
        stage1_epochs: 2,
        stage1_lr: 0.05,
        seed: 3,
        f16: false,
    };
    retrain::command::synth::write_synthetic_bank(&spec, dir, true, Parallelism::None).unwrap();
    Bank::open(dir).unwrap()
}

fn opts() -> RunOptions {
    RunOptions {
        threads: 1,
        shuffle: true,
        oracle: false,
        tta: true,
        one_pass: false,
        select_on_val: false,
        on_device: false,
        test_priors: 0,
        prior_correct: false,
        views: false,
    }
}

/// The records without their wall times.
fn numbers(mut r: Vec<RunRecord>) -> Vec<RunRecord> {
    r.iter_mut().for_each(|r| r.seconds = 0.0);
    r
}

#[test]
fn a_cancelled_run_leaves_a_concurrent_run_exactly_as_it_is_alone() {
    let t = tempfile::tempdir().unwrap();
    let bank = bank(&t.path().join("bank"));
    let h = bank.head.as_ref().unwrap();
    let stage1 = HeadState::from_linear(
        Head::Linear,
        h.num_classes,
        h.dim,
        h.weight.clone(),
        h.bias.clone(),
    );
    let table = MethodTable::embedded();
    let jobs: Vec<Job> = table
        .methods
        .iter()
        .take(3)
        .flat_map(|spec| {
            let mut m = spec.check(&retrain::method::los_defaults()).unwrap();
            m.hyper.epochs = m.hyper.epochs.min(3);
            m.hyper.batch_size = m.hyper.batch_size.min(32);
            (0..2).map(move |seed| Job {
                method: m.clone(),
                seed,
            })
        })
        .collect();
    let alone = run_jobs(
        &bank,
        &stage1,
        &jobs,
        opts(),
        None,
        &Cancel::new(),
        &|_, _| {},
    )
    .unwrap();

    // the survivor finishes its first job, then waits until the other run is cancelled
    // (after its own first job) before it goes on
    let (started, cancelled) = (Barrier::new(2), Barrier::new(2));
    let (stopped, kept) = (Cancel::new(), Cancel::new());
    let (n_stopped, n_kept) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let (stopped_out, kept_out) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            run_jobs(&bank, &stage1, &jobs, opts(), None, &stopped, &|_, _| {
                if n_stopped.fetch_add(1, Ordering::SeqCst) == 0 {
                    started.wait();
                    stopped.cancel("interrupted (test)");
                    cancelled.wait();
                }
            })
        });
        let b = s.spawn(|| {
            run_jobs(&bank, &stage1, &jobs, opts(), None, &kept, &|_, _| {
                if n_kept.fetch_add(1, Ordering::SeqCst) == 0 {
                    started.wait();
                    cancelled.wait();
                }
            })
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    let err = stopped_out.expect_err("the cancelled run fails");
    assert_eq!(err.to_string(), "interrupted (test)");
    assert_eq!(
        n_stopped.load(Ordering::SeqCst),
        1,
        "no run recorded after the cancel"
    );
    assert!(!kept.is_cancelled());
    let kept_out = kept_out.expect("the other run is not stopped");
    assert_eq!(n_kept.load(Ordering::SeqCst), jobs.len());
    assert_eq!(numbers(kept_out), numbers(alone));
}
