//! What a run's counts ask of the machine, checked before any work: an absurd `--views`,
//! `--batch-size`, `--chunk-rows`, `--workers`, `--train-batch-size` or `--shard` count is one
//! [`OverBudget`] error (exit 2, nothing written), not a process the kernel kills at 24 GB.
//!
//! Both estimates are lower bounds — what the run must hold at least, from the counts alone —
//! so a run that fits is never refused; the bytes they leave out are small or not knowable
//! before the run (headers, meta.json, candle's temporaries, im2col buffers, the data set
//! itself, which is already in memory when the check runs). `--limit` and `--img-max` only
//! ever cut the data, so they enter as the rows they keep.
//!
//! **Memory** (against `MemTotal` of /proc/meminfo, or the cgroup's `memory.max` where lower:
//! the total, not what is free now, so the check does not depend on what else runs). The larger
//! of stage 1 and the extraction. For the extraction, over the splits and the two moments of a
//! chunk, with R = min(`--chunk-rows`, rows), B = min(`--batch-size`, R), V the split's views
//! (the train split's `--views`, else 0) and F its flip view (val and test): while the chunk's
//! last batch runs, the inputs of the batches in flight `B × (1 + V) × C·H·W × 4` (one batch,
//! two with `--workers` > 0: the one the backbone runs and the one being loaded; up to two more
//! wait in the queue), the backbone's widest activation `B × A × 4`
//! ([`crate::model::backbones::Arch::widest_activation`]; host memory on the CPU only) and the
//! features of the chunk's other rows `(R − B) × (1 + F + V) × D × 4`; when the chunk is
//! written, its features as f32 and as written, `R × (1 + F + V) × D × (4 + dtype bytes)`. Both
//! plus `--workers × 2 MiB`, the stack every loader thread reserves. Stage 1: one batch
//! `min(--train-batch-size, train rows) × (C·H·W + A) × 4` (its backward keeps more).
//! Measured: `--limit 1024 --chunk-rows 1024 --views 100 --dtype f16` on Fashion-MNIST
//! (small CNN) is estimated 78.9 MiB; its resident memory grew by 88 MiB after loading.
//!
//! **Disk** (against the free space of the output's file system, `statvfs` of its nearest
//! existing folder, as an unprivileged user sees it). Each split's rows × (D × dtype bytes ×
//! (1 + F + V) + 8 for the i64 label), twice for a whole run (the chunks stay until the bank
//! assembled from them is complete), once for a `--shard` part (its own chunks only, less the
//! chunks a `--resume` finds written), plus three file-system blocks (two folders and run.json)
//! for each of the `--shard` count's parts, which `extract merge` reads side by side.

use crate::error::{OverBudget, Resource, Result};
use crate::source::batch::input_shape;
use crate::write::chunks::Shard;
use crate::write::plan::Plan;
use bank::FeatureDtype;
use std::path::{Path, PathBuf};

/// The stack a loader thread reserves (std's default, which rayon keeps).
const THREAD_STACK: u128 = 2 << 20;

/// The counts of a run that decide its memory and disk, with the data known.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    /// Each split's rows after `--limit`, train first.
    pub rows: Vec<(&'static str, usize)>,
    /// `--limit`, when given.
    pub limit: Option<usize>,
    /// C, H, W of one network input.
    pub input: (usize, usize, usize),
    /// Elements of the backbone's widest activation for one input (0 when it runs on a GPU).
    pub widest: usize,
    pub dim: usize,
    pub dtype_bytes: usize,
    pub views: usize,
    pub batch_size: usize,
    pub chunk_rows: usize,
    pub workers: usize,
    pub shard: Shard,
    /// `--train-batch-size` with `--stage1`.
    pub stage1_batch: Option<usize>,
}

/// An estimate: its bytes and its largest part, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    pub bytes: u128,
    pub largest: String,
}

impl Counts {
    pub fn of(plan: &Plan) -> Counts {
        let src = &plan.source;
        let cut = |n: usize| plan.limit.map_or(n, |l| l.min(n));
        let mut rows = vec![("train", cut(src.train.len()))];
        rows.extend(src.val.as_ref().map(|v| ("val", cut(v.len()))));
        rows.push(("test", cut(src.test.len())));
        let input = input_shape(&src.train);
        let widest = match plan.device {
            candle_core::Device::Cpu => plan.arch.widest_activation(input.1, input.2),
            _ => 0,
        };
        Counts {
            rows,
            limit: plan.limit,
            input,
            widest,
            dim: plan.arch.feature_dim(),
            dtype_bytes: match plan.dtype {
                FeatureDtype::F32 => 4,
                FeatureDtype::F16 => 2,
            },
            views: plan.views,
            batch_size: plan.batch_size,
            chunk_rows: plan.chunk_rows,
            workers: plan.workers,
            shard: plan.shard,
            stage1_batch: plan.stage1.as_ref().map(|s| s.recipe.batch_size),
        }
    }

    /// Views and flip views of split `name`.
    fn extra(&self, name: &str) -> (u128, u128) {
        match name {
            "train" => (self.views as u128, 0),
            _ => (0, 1),
        }
    }
}

/// The memory the run holds at least (the module doc says what is counted).
pub fn memory(c: &Counts) -> Estimate {
    let (ch, h, w) = c.input;
    let input = (ch * h * w) as u128;
    let widest = c.widest as u128;
    let in_flight: u128 = if c.workers > 0 { 2 } else { 1 };
    let stacks = c.workers as u128 * THREAD_STACK;
    let mut best = Estimate {
        bytes: 0,
        largest: String::new(),
    };
    for &(name, n) in &c.rows {
        let (v, f) = c.extra(name);
        let r = c.chunk_rows.min(n) as u128;
        let b = (c.batch_size as u128).min(r);
        let row = (1 + f + v) * c.dim as u128;
        // the last batch of a chunk runs beside the features of the chunk's other rows
        let running = [
            (
                b * (1 + v) * input * 4 * in_flight,
                format!(
                    "the {name} inputs of {}: {b} rows × {} images of {ch}×{h}×{w} f32",
                    if in_flight == 1 {
                        "a batch"
                    } else {
                        "2 batches"
                    },
                    1 + v
                ),
            ),
            (
                b * widest * 4,
                format!("the backbone's widest activation: {b} rows × {widest} f32"),
            ),
            (
                (r - b) * row * 4,
                format!(
                    "the features of a {name} chunk's other rows: {} × {} × {} f32",
                    r - b,
                    1 + f + v,
                    c.dim
                ),
            ),
            (
                stacks,
                format!("{} loader threads × 2 MiB of stack", c.workers),
            ),
        ];
        // then the chunk is converted for writing, the batch's tensors freed
        let writing = [
            (
                r * row * (4 + c.dtype_bytes as u128),
                format!(
                    "a {name} chunk's features: {r} rows × {} × {} as f32 and as written",
                    1 + f + v,
                    c.dim
                ),
            ),
            running[3].clone(),
        ];
        for parts in [&running[..], &writing[..]] {
            let bytes = parts.iter().map(|p| p.0).fold(0u128, u128::saturating_add);
            if bytes > best.bytes {
                let largest = parts.iter().max_by_key(|p| p.0).expect("parts");
                best = Estimate {
                    bytes,
                    largest: largest.1.clone(),
                };
            }
        }
    }
    if let Some(b1) = c.stage1_batch {
        let b = (b1 as u128).min(c.rows[0].1 as u128);
        let bytes = b * (input + widest) * 4;
        if bytes > best.bytes {
            best = Estimate {
                bytes,
                largest: format!(
                    "a stage-1 batch: {b} rows × ({ch}×{h}×{w} inputs + {widest} activations) f32"
                ),
            };
        }
    }
    best
}

/// The disk the run writes at least (the module doc says what is counted); `block`: the file
/// system's block size.
pub fn disk(c: &Counts, block: u64) -> Estimate {
    let whole = c.shard.is_whole();
    let copies: u128 = if whole { 2 } else { 1 };
    let mut parts = Vec::new();
    for &(name, n) in &c.rows {
        let (v, f) = c.extra(name);
        let rows = owned_rows(n, c.chunk_rows, c.shard);
        let dtype = if c.dtype_bytes == 2 { "f16" } else { "f32" };
        let per_row = c.dim as u128 * c.dtype_bytes as u128;
        parts.push((
            copies * rows * (per_row * (1 + f) + 8),
            format!("{name}: {rows} rows × {}{} × {dtype}", 1 + f, c.dim),
        ));
        if v > 0 {
            parts.push((
                copies * rows * v * per_row,
                format!("the {name} views: {v} × {rows} rows × {} × {dtype}", c.dim),
            ));
        }
    }
    if !whole {
        parts.push((
            c.shard.count as u128 * 3 * block as u128,
            format!(
                "{} parts × 3 blocks of {block} B (two folders and run.json)",
                c.shard.count
            ),
        ));
    }
    let bytes = parts.iter().map(|p| p.0).fold(0u128, u128::saturating_add);
    let largest = parts.into_iter().max_by_key(|p| p.0).map(|p| p.1);
    let twice = if whole {
        ", as chunks and then in the bank"
    } else {
        ""
    };
    Estimate {
        bytes,
        largest: format!("{}{twice}", largest.unwrap_or_default()),
    }
}

/// Rows of the chunks of a split of `n` rows that `shard` owns (chunk c: `c mod count = index`).
fn owned_rows(n: usize, chunk_rows: usize, shard: Shard) -> u128 {
    let (n, r) = (n as u128, chunk_rows.max(1) as u128);
    let (count, index) = (shard.count as u128, shard.index as u128);
    let chunks = n.div_ceil(r);
    let owned = chunks / count + u128::from(index < chunks % count);
    let last_owned = chunks > 0 && (chunks - 1) % count == index;
    owned * r - if last_owned { chunks * r - n } else { 0 }
}

/// The run's memory and disk against the machine's: the first that does not fit (memory
/// first) is an [`OverBudget`] naming the flag whose lowering saves the most. Where the
/// machine's figure cannot be read, that check is skipped.
pub fn check(plan: &Plan) -> Result<()> {
    let c = Counts::of(plan);
    if let Some((have, from)) = memory_limit() {
        let need = memory(&c);
        if need.bytes > have as u128 {
            let (flag, value) = blame(&c, |c| memory(c).bytes, None);
            return Err(over(flag, value, Resource::Memory, need, have, from).into());
        }
    }
    let target = plan.target();
    if let Some((free, block, at)) = free_space(&target) {
        let mut need = disk(&c, block);
        if plan.resume {
            need.bytes = need.bytes.saturating_sub(dir_bytes(
                &bank::write::partial_path(&target).join("chunks"),
            ));
        }
        if need.bytes > free as u128 {
            let (flag, value) = blame(&c, |c| disk(c, block).bytes, Some(&target));
            let from = format!("on the file system of {}", at.display());
            return Err(over(flag, value, Resource::Disk, need, free, from).into());
        }
    }
    Ok(())
}

fn over(
    flag: &'static str,
    value: String,
    resource: Resource,
    need: Estimate,
    have: u64,
    have_from: String,
) -> OverBudget {
    OverBudget {
        flag,
        value,
        resource,
        need: need.bytes,
        detail: need.largest,
        have,
        have_from,
    }
}

/// The flag (and its value as given) whose lowering to its least saves the most of `cost`,
/// the memory, or with `out` the disk of a run into `out`; `--batch-size` or `--out` when
/// none saves anything.
fn blame(c: &Counts, cost: impl Fn(&Counts) -> u128, out: Option<&Path>) -> (&'static str, String) {
    let mut tries: Vec<(&'static str, String, Counts)> = Vec::new();
    let mut with = |flag, value: String, edit: &dyn Fn(&mut Counts)| {
        let mut k = c.clone();
        edit(&mut k);
        tries.push((flag, value, k));
    };
    with("--views", c.views.to_string(), &|k| k.views = 0);
    if out.is_some() {
        if c.shard.count > 1 {
            let shard = format!("{}/{}", c.shard.index, c.shard.count);
            with("--shard", shard, &|k| k.shard = Shard::WHOLE);
        }
        if c.dtype_bytes > 2 {
            with("--dtype", "f32".into(), &|k| k.dtype_bytes = 2);
        }
        if let Some(l) = c.limit {
            with("--limit", l.to_string(), &|k| {
                k.rows.iter_mut().for_each(|r| r.1 = r.1.min(1))
            });
        }
    } else {
        with("--batch-size", c.batch_size.to_string(), &|k| {
            k.batch_size = 1
        });
        with("--chunk-rows", c.chunk_rows.to_string(), &|k| {
            k.chunk_rows = 1
        });
        with("--workers", c.workers.to_string(), &|k| k.workers = 0);
        if let Some(b) = c.stage1_batch {
            with("--train-batch-size", b.to_string(), &|k| {
                k.stage1_batch = Some(2)
            });
        }
    }
    let now = cost(c);
    let best = tries
        .into_iter()
        .map(|(f, v, k)| (f, v, cost(&k)))
        .min_by_key(|t| t.2)
        .filter(|t| t.2 < now);
    match (best, out) {
        (Some((f, v, _)), _) => (f, v),
        (None, Some(o)) => ("--out", o.display().to_string()),
        (None, None) => ("--batch-size", c.batch_size.to_string()),
    }
}

/// The memory this process may use: `MemTotal` of /proc/meminfo, or the cgroup's limit where
/// that is lower; and which of the two it is.
pub fn memory_limit() -> Option<(u64, String)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    let total = (
        kb.saturating_mul(1024),
        "MemTotal of /proc/meminfo".to_string(),
    );
    // cgroup v2, then v1; "max" (or v1's near-2^63 "unlimited") is no limit
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .into_iter()
    .find_map(|p| {
        let v: u64 = std::fs::read_to_string(p).ok()?.trim().parse().ok()?;
        Some((v, format!("the cgroup's limit, {p}")))
    });
    match cgroup {
        Some(c) if c.0 < total.0 => Some(c),
        _ => Some(total),
    }
}

/// Bytes free to an unprivileged user on the file system of `path` (its nearest existing
/// folder), its block size, and that folder.
pub fn free_space(path: &Path) -> Option<(u64, u64, PathBuf)> {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(path).ok()?;
    let at = abs.ancestors().find(|a| a.is_dir())?.to_path_buf();
    let c = std::ffi::CString::new(at.as_os_str().as_bytes()).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path; statvfs fills `s` when it returns 0.
    if unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so `s` is initialised.
    let s = unsafe { s.assume_init() };
    let block = s.f_frsize as u64;
    Some(((s.f_bavail as u64).saturating_mul(block), block, at))
}

/// The bytes of the files in `dir` (0 when there is none).
fn dir_bytes(dir: &Path) -> u128 {
    std::fs::read_dir(dir).map_or(0, |r| {
        r.filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len() as u128)
            .sum()
    })
}

#[cfg(test)]
mod tests;
