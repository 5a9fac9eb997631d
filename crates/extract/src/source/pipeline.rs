//! Pipelined loading: the network inputs of the next batches (decode + resize + crop +
//! normalise, and the random train views) are made on a pool of `--workers` threads while the
//! backbone runs the current one, through a bounded queue (two batches ahead). With 0 workers
//! each batch is loaded when it is needed, on the global pool, as before. Either way the
//! batches come in order and every input is the same function of its row (the train views'
//! seeds are per row), so the features do not depend on the number of workers (test).
//!
//! May import: [`crate::source::batch`], [`crate::source::datasets`], [`crate::error`].

use crate::error::{ExtractError, Result};
use crate::source::batch::batch_input;
use crate::source::datasets::{Labeled, Normalize};
use std::sync::mpsc::sync_channel;

/// What to load, for every batch.
pub struct LoadSpec<'a> {
    pub data: &'a Labeled,
    pub norm: &'a Normalize,
    /// Zero padding of the random-crop train views (small images).
    pub pad: usize,
    /// Random train views per row, and their seed.
    pub views: usize,
    pub seed: u64,
    /// A bad image is skipped with a message instead of stopping the run.
    pub skip_bad: bool,
}

/// One batch's inputs: the rows kept, their test views `[kept, c, h, w]` flattened, each
/// train view likewise, and the skip messages of the rows that were not kept.
#[derive(Debug)]
pub struct Loaded {
    pub kept: Vec<usize>,
    pub test: Vec<f32>,
    pub views: Vec<Vec<f32>>,
    pub skipped: Vec<String>,
}

/// The inputs of `rows`.
pub fn load(spec: &LoadSpec, rows: &[usize]) -> Result<Loaded> {
    let mut out = Loaded {
        kept: Vec::with_capacity(rows.len()),
        test: Vec::new(),
        views: Vec::new(),
        skipped: Vec::new(),
    };
    for (i, res) in batch_input(spec.data, rows, spec.norm, spec.pad, None) {
        match res {
            Ok(v) => {
                out.test.extend(v);
                out.kept.push(i);
            }
            Err(e) if spec.skip_bad => out.skipped.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    for v in 0..spec.views {
        let mut vb = Vec::with_capacity(out.test.len());
        for (_, res) in batch_input(
            spec.data,
            &out.kept,
            spec.norm,
            spec.pad,
            Some((v, spec.seed)),
        ) {
            vb.extend(res?);
        }
        out.views.push(vb);
    }
    Ok(out)
}

/// Load every batch of `batches` (row lists, in order) and hand it to `consume`, in order:
/// inline with `workers = 0`, else on a pool of `workers` threads up to two batches ahead of
/// `consume`. The first error (of loading or of `consume`) stops both and is returned.
pub fn for_each_batch(
    spec: &LoadSpec,
    batches: &[Vec<usize>],
    workers: usize,
    mut consume: impl FnMut(Loaded) -> Result<()>,
) -> Result<()> {
    if workers == 0 {
        for rows in batches {
            consume(load(spec, rows)?)?;
        }
        return Ok(());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("extract-load-{i}"))
        .build()
        .map_err(|e| ExtractError::Usage(format!("--workers {workers}: {e}")))?;
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Result<Loaded>>(2);
        s.spawn(move || {
            for rows in batches {
                let r = pool.install(|| load(spec, rows));
                let failed = r.is_err();
                // a closed queue: the consumer stopped
                if tx.send(r).is_err() || failed {
                    break;
                }
            }
        });
        for r in rx {
            consume(r?)?;
        }
        Ok(())
    })
}

/// The batches of `rows` rows starting at `first`: `first..first + rows` in pieces of
/// `batch_size`.
pub fn batches(first: usize, rows: usize, batch_size: usize) -> Vec<Vec<usize>> {
    (first..first + rows)
        .collect::<Vec<_>>()
        .chunks(batch_size)
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::datasets::{Images, RawImages};

    fn toy(n: usize) -> Labeled {
        Labeled {
            images: Images::Raw(RawImages {
                channels: 1,
                height: 6,
                width: 6,
                data: (0..n * 36).map(|i| (i * 37 % 251) as u8).collect(),
                present: None,
            }),
            labels: (0..n as u32).map(|i| i % 3).collect(),
        }
    }

    /// 0, 1 and 3 workers hand over the same batches, in the same order, train views too.
    #[test]
    fn the_same_batches_with_any_number_of_workers() {
        let data = toy(23);
        let norm = Normalize {
            mean: vec![0.5],
            std: vec![0.25],
        };
        let spec = LoadSpec {
            data: &data,
            norm: &norm,
            pad: 2,
            views: 2,
            seed: 7,
            skip_bad: false,
        };
        let b = batches(3, 20, 6);
        assert_eq!(b.len(), 4);
        assert_eq!(b[3], vec![21, 22]);
        let run = |workers| {
            let mut got = Vec::new();
            for_each_batch(&spec, &b, workers, |l| {
                got.push((l.kept, l.test, l.views));
                Ok(())
            })
            .unwrap();
            got
        };
        let inline = run(0);
        assert_eq!(inline.len(), 4);
        assert_eq!(inline, run(1));
        assert_eq!(inline, run(3));
    }

    /// An error of the consumer stops the producer and comes back.
    #[test]
    fn a_consumer_error_stops_the_pipeline() {
        let data = toy(40);
        let norm = Normalize {
            mean: vec![0.0],
            std: vec![1.0],
        };
        let spec = LoadSpec {
            data: &data,
            norm: &norm,
            pad: 0,
            views: 0,
            seed: 0,
            skip_bad: false,
        };
        let mut seen = 0;
        let err = for_each_batch(&spec, &batches(0, 40, 4), 2, |_| {
            seen += 1;
            if seen == 2 {
                return Err(ExtractError::Usage("stop".into()));
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "stop");
        assert_eq!(seen, 2);
    }
}
