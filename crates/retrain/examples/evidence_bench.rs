//! The evidence of an ImageNet-LT-scale table, timed: 36 runs (12 rows × 3 seeds) × 50 000 test
//! rows × K = 1000 with made-up predictions (~60 % right, head classes more often): the
//! bootstrap resamples (B = 1000), every row's pooled intervals, paired differences against a
//! baseline row, McNemar's test, the shifted priors, and predictions.parquet (size).
//! `cargo run --example evidence_bench` (`just bench-evidence`); prints seconds and the peak
//! memory growth (VmHWM).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use retrain::eval::metrics::Predictions;
use retrain::eval::priors::{TestPrior, shifted_accuracy};
use retrain::output::evidence::bootstrap::{Resamples, interval, p_value};
use retrain::output::evidence::paired::{discordant, mcnemar_exact};
use retrain::output::evidence::table::pooled_correct;
use retrain::output::predictions::{RunPredictions, frame, write_parquet};
use std::time::Instant;

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let (n, k, rows, seeds) = (50_000usize, 1000usize, 12usize, 3usize);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let labels: Vec<u32> = (0..n).map(|i| (i % k) as u32).collect();
    let train_counts: Vec<usize> = (0..k).map(|c| 1280 * 5 / (5 + c)).collect();
    let groups: Vec<Option<usize>> = train_counts
        .iter()
        .map(|&c| {
            Some(if c > 100 {
                0
            } else if c >= 20 {
                1
            } else {
                2
            })
        })
        .collect();
    let runs: Vec<Predictions> = (0..rows * seeds)
        .map(|_| {
            let pred: Vec<u32> = labels
                .iter()
                .map(|&y| {
                    let p_right = 0.8 - 0.4 * y as f64 / k as f64;
                    if rng.random::<f64>() < p_right {
                        y
                    } else {
                        rng.random_range(0..k as u32)
                    }
                })
                .collect();
            Predictions {
                // the rest of the top 5 and p_true at random: no easier to compress than real ones
                top5: pred
                    .iter()
                    .map(|&p| {
                        let mut t = [p; 5];
                        t[1..]
                            .iter_mut()
                            .for_each(|x| *x = rng.random_range(0..k as u32));
                        t
                    })
                    .collect(),
                p_true: (0..n).map(|_| rng.random::<f32>()).collect(),
                pred,
            }
        })
        .collect();
    let before = vm_hwm_mb();
    let t = Instant::now();
    let res = Resamples::new(&labels, k, 1000, 0);
    let t_res = t.elapsed().as_secs_f64();
    let correct: Vec<Vec<bool>> = runs
        .iter()
        .map(|p| p.pred.iter().zip(&labels).map(|(a, b)| a == b).collect())
        .collect();
    let mut stats = Vec::new();
    for r in 0..rows {
        let refs: Vec<&[bool]> = (0..seeds).map(|s| &correct[r * seeds + s][..]).collect();
        stats.push(pooled_correct(&res, &refs, &groups).expect("runs"));
    }
    let mut marks = 0;
    for r in 1..rows {
        let _ = interval(&stats[r].iter().map(|s| s.0).collect::<Vec<_>>());
        let d: Vec<f64> = stats[r]
            .iter()
            .zip(&stats[0])
            .map(|(a, b)| a.0 - b.0)
            .collect();
        marks += (p_value(&d) < 0.05) as usize;
        for s in 0..seeds {
            let (b, c) = discordant(&correct[s], &correct[r * seeds + s]);
            let _ = mcnemar_exact(b, c);
        }
    }
    let t_boot = t.elapsed().as_secs_f64();
    let priors = TestPrior::all();
    for p in &priors {
        let q = p.weights(&train_counts);
        for c in &correct {
            let mut right = vec![0usize; k];
            for (&ok, &y) in c.iter().zip(&labels) {
                right[y as usize] += ok as usize;
            }
            let acc: Vec<f64> = right.iter().map(|&r| r as f64 / 50.0).collect();
            let _ = shifted_accuracy(&q, &acc, &|_| true);
        }
    }
    let t_priors = t.elapsed().as_secs_f64();
    let preds: Vec<RunPredictions> = runs
        .iter()
        .enumerate()
        .map(|(i, p)| RunPredictions {
            method: "m",
            params: format!("row{}", i / seeds),
            seed: (i % seeds) as u64,
            predictions: p,
        })
        .collect();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("predictions.parquet");
    write_parquet(&path, &mut frame("imagenet-lt-scale", &labels, &preds)?)?;
    let t_all = t.elapsed().as_secs_f64();
    println!(
        "ImageNet-LT scale ({} runs x {n} test rows, K = {k}, B = 1000): resamples {t_res:.2} s, + intervals/paired/McNemar {:.2} s ({marks} of {} rows differ), + priors ({}) {:.2} s, + predictions.parquet {:.2} s ({:.1} MB); total {t_all:.2} s; peak memory +{:.0} MB",
        rows * seeds,
        t_boot - t_res,
        rows - 1,
        priors.len(),
        t_priors - t_boot,
        t_all - t_priors,
        std::fs::metadata(&path)?.len() as f64 / 1e6,
        vm_hwm_mb() - before
    );
    Ok(())
}
