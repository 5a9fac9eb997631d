use super::*;
use crate::model::backbones::Arch;

/// Fashion-MNIST-LT through EfficientNet-Lite0 (3×224×224 inputs, D = 1280), 8 rows a split.
fn effnet_limit_8(views: usize) -> Counts {
    Counts {
        rows: vec![("train", 8), ("test", 8)],
        limit: Some(8),
        input: (3, 224, 224),
        widest: Arch::EfficientnetLite0.widest_activation(224, 224),
        dim: 1280,
        dtype_bytes: 4,
        views,
        batch_size: 64,
        chunk_rows: 4096,
        workers: 0,
        shard: Shard::WHOLE,
        stage1_batch: None,
    }
}

/// The issue's `--arch efficientnet-lite0 --views 100000000 --limit 8`: the inputs of one batch
/// alone are 8 rows × (1 + 10⁸) images of 3×224×224 f32.
#[test]
fn the_views_of_one_batch_are_counted_in_memory() {
    let c = effnet_limit_8(100_000_000);
    let m = memory(&c);
    let inputs = 8 * 100_000_001u128 * 3 * 224 * 224 * 4;
    let widest = 8 * 96 * 112 * 112 * 4;
    // one batch is the whole chunk: no other rows' features beside it
    assert_eq!(m.bytes, inputs + widest);
    assert!(
        m.largest
            .starts_with("the train inputs of a batch: 8 rows × 100000001 images of 3×224×224 f32"),
        "{}",
        m.largest
    );
    // without views: one batch of test images and their flips
    let m0 = memory(&effnet_limit_8(0));
    assert_eq!(m0.bytes, 8 * 3 * 224 * 224 * 4 + widest);
}

/// A chunk is held twice when it is written (f32 and the written dtype), after the batches'
/// tensors are freed; while its last batch runs, its other rows' features are held.
#[test]
fn a_chunk_is_counted_when_it_runs_and_when_it_is_written() {
    let mut c = effnet_limit_8(100);
    (c.input, c.widest, c.dim, c.dtype_bytes) = ((1, 28, 28), 64 * 28 * 28, 128, 2);
    (c.rows, c.chunk_rows) = (vec![("train", 1024), ("test", 1024)], 1024);
    let running = 64 * 101 * 784 * 4 + 64 * 64 * 784 * 4 + 960 * 101 * 128 * 4;
    let writing = 1024 * 101 * 128 * (4 + 2);
    assert!(running > writing);
    assert_eq!(memory(&c).bytes, running);
    c.batch_size = 1;
    let m = memory(&c);
    assert_eq!(m.bytes, writing);
    assert_eq!(
        m.largest,
        "a train chunk's features: 1024 rows × 101 × 128 as f32 and as written"
    );
}

/// The disk of a whole run is the bank's features and labels twice (chunks, then the bank).
#[test]
fn the_disk_of_a_whole_run_is_its_bank_twice() {
    let mut c = effnet_limit_8(3);
    c.dtype_bytes = 2;
    let bank = 8 * (1280 * 2 + 8) + 3 * 8 * 1280 * 2 + 8 * (2 * 1280 * 2 + 8);
    let d = disk(&c, 4096);
    assert_eq!(d.bytes, 2 * bank as u128);
    assert_eq!(
        d.largest,
        "the train views: 3 × 8 rows × 1280 × f16, as chunks and then in the bank"
    );
}

/// The estimate of the committed default bank (14 886 train rows, 10 000 test rows with their
/// flips, D = 128, f16) is a lower bound of its files, short only by their headers.
#[test]
fn the_disk_estimate_of_the_default_bank_is_a_tight_lower_bound() {
    let bank = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../features/fmnist-lt-ir100");
    let mut c = effnet_limit_8(0);
    c.rows = vec![("train", 14_886), ("test", 10_000)];
    (c.dim, c.dtype_bytes, c.limit) = (128, 2, None);
    let files: u128 = ["train.safetensors", "test.safetensors"]
        .iter()
        .map(|f| std::fs::metadata(bank.join(f)).unwrap().len() as u128)
        .sum();
    let half = disk(&c, 4096).bytes / 2;
    assert!(half <= files && files - half < 1024, "{half} vs {files}");
}

#[test]
fn the_chunks_of_all_shards_hold_every_row_once() {
    for n in [0, 1, 7, 64, 65, 1000] {
        for r in [1, 3, 64, 4096] {
            for count in [1, 2, 3, 7] {
                let sum: u128 = (0..count)
                    .map(|index| owned_rows(n, r, Shard { index, count }))
                    .sum();
                assert_eq!(sum, n as u128, "n {n} r {r} count {count}");
            }
        }
    }
    // 10 rows in chunks of 4 (4, 4, 2): shard 0/2 owns chunks 0 and 2
    assert_eq!(owned_rows(10, 4, Shard { index: 0, count: 2 }), 6);
}

/// A shard part's disk: its own chunks, once, and three blocks for each of the parts.
#[test]
fn a_shard_counts_its_chunks_and_every_part() {
    let mut c = effnet_limit_8(0);
    c.rows = vec![("train", 10), ("test", 0)];
    (c.chunk_rows, c.shard) = (4, Shard { index: 0, count: 2 });
    assert_eq!(disk(&c, 4096).bytes, 6 * (1280 * 4 + 8) + 2 * 3 * 4096);
    c.shard = Shard {
        index: 0,
        count: 1 << 40,
    };
    let d = disk(&c, 4096);
    assert_eq!(
        d.largest,
        "1099511627776 parts × 3 blocks of 4096 B (two folders and run.json)"
    );
}

/// Loader threads reserve their stacks; a stage-1 batch counts its inputs and activations.
#[test]
fn threads_and_stage1_batches_are_counted() {
    let mut c = effnet_limit_8(0);
    c.workers = 1000;
    let m = memory(&c);
    assert_eq!(m.largest, "1000 loader threads × 2 MiB of stack");
    // a second batch in flight
    let inputs = 2 * 8 * 3 * 224 * 224 * 4;
    assert_eq!(m.bytes, inputs + 8 * 96 * 112 * 112 * 4 + 1000 * (2 << 20));
    c.workers = 0;
    c.stage1_batch = Some(1 << 30);
    c.rows[0].1 = 100_000;
    let m = memory(&c);
    assert_eq!(m.bytes, 100_000 * (3 * 224 * 224 + 96 * 112 * 112) * 4);
    assert!(
        m.largest.starts_with("a stage-1 batch: 100000 rows"),
        "{}",
        m.largest
    );
}

#[test]
fn the_machine_is_read() {
    let (mem, from) = memory_limit().unwrap();
    assert!(mem > 1 << 20, "{mem} from {from}");
    let (free, block, at) = free_space(Path::new("no/such/folder/here")).unwrap();
    assert!(block > 0 && free > 0);
    assert_eq!(at, std::env::current_dir().unwrap());
}

/// The flag named is the one whose lowering saves the most.
#[test]
fn the_flag_that_saves_the_most_is_named() {
    let mem = |c: &Counts| memory(c).bytes;
    assert_eq!(blame(&effnet_limit_8(100_000_000), mem, None).0, "--views");
    let mut c = effnet_limit_8(0);
    c.workers = 1 << 40;
    assert_eq!(
        blame(&c, mem, None),
        ("--workers", (1usize << 40).to_string())
    );
    let out = Path::new("bank");
    let dsk = |c: &Counts| disk(c, 4096).bytes;
    c.shard = Shard {
        index: 1,
        count: 1 << 40,
    };
    assert_eq!(
        blame(&c, dsk, Some(out)),
        ("--shard", format!("1/{}", 1usize << 40))
    );
    assert_eq!(blame(&effnet_limit_8(1 << 30), dsk, Some(out)).0, "--views");
    // without views, shards or --limit, an f32 bank that does not fit: --dtype f16 halves it
    let mut c = effnet_limit_8(0);
    c.limit = None;
    assert_eq!(blame(&c, dsk, Some(out)).0, "--dtype");
    c.dtype_bytes = 2;
    assert_eq!(blame(&c, dsk, Some(out)), ("--out", "bank".to_string()));
}
