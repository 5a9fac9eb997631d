//! Property tests of the checkpoint reader (`extract::model::checkpoint::tensors_from_bytes`,
//! what the fuzz target `checkpoint` calls) on broken versions of the committed `torch.save`
//! fixtures (`tests/fixtures/checkpoints/tiny.{legacy,zip}.pth`), bounded (256 cases per
//! property by default): cut at any byte, bytes overwritten, bytes inserted or removed in the
//! pickles, the pickle's small ints (offsets, sizes, strides) changed, wide integers written
//! over any 8 bytes and over the storages' element counts.
//!
//! Every case gives `Ok` or one error line naming the file, never a panic, and allocates at
//! most [`MAX_HELD`] bytes at once (counted by this test's global allocator, per thread).
//!
//! Longer runs: `PROPTEST_CASES=100000 cargo test -p extract --test fuzz_checkpoint`.

use extract::model::checkpoint::tensors_from_bytes;
use extract::source::datasets::pickle::parse_at;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

/// Live and peak heap bytes of the current thread.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn count(add: usize, sub: usize) {
    let _ = LIVE.try_with(|l| {
        let v = (l.get() + add).saturating_sub(sub);
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size(), 0);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(0, l.size());
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(new, l.size());
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// The most a case may hold at once. What bounds it by design: the pickle reader's memo budget
/// (64 values a byte plus 1 Mi values, 48 bytes each: about 60 MB for these files) and the
/// tensors a file may expand to (2 values a byte plus 1 Mi); an allocation sized by a corrupted
/// count, length or shape would be far above it. (Seen over 100 000 cases: under 200 KB.)
const MAX_HELD: usize = 256 << 20;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checkpoints")
        .join(name);
    std::fs::read(p).unwrap()
}

/// Load `data`: `Ok`, or one error line naming the file; never more than [`MAX_HELD`] bytes.
fn check(data: &[u8]) -> Result<(), TestCaseError> {
    let before = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(before));
    let r = tensors_from_bytes(Path::new("broken.pth"), data);
    let peak = PEAK.with(Cell::get) - before;
    prop_assert!(peak <= MAX_HELD, "{peak} bytes held at once");
    if let Err(e) = r {
        let msg = e.to_string();
        prop_assert!(
            msg.starts_with("broken.pth: ") && !msg.contains('\n'),
            "{msg}"
        );
    }
    Ok(())
}

/// Values that break counts, offsets and lengths.
fn wide() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(1 << 63),
        Just(1 << 40),
        Just(0x7fff_ffff),
        Just(0x8000_0000),
        Just(0),
        any::<u64>(),
    ]
}

fn file() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(fixture("tiny.legacy.pth")),
        Just(fixture("tiny.zip.pth"))
    ]
}

/// Where the legacy fixture's 8-byte storage counts lie: after its five pickles, each
/// storage's count then count × element-size bytes (the element size found as the one after
/// which the next count is plausible, or the file ends).
fn count_offsets(data: &[u8]) -> Vec<usize> {
    let mut pos = (0..5).fold(0, |at, _| parse_at(data, at).unwrap().end);
    let read = |at: usize| {
        data.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    let mut out = Vec::new();
    while pos < data.len() {
        out.push(pos);
        let c = read(pos).unwrap() as usize;
        pos = [4, 2, 8, 1]
            .iter()
            .map(|e| pos + 8 + c * e)
            .find(|&next| next == data.len() || read(next).is_some_and(|n| n < 1 << 16))
            .unwrap();
    }
    out
}

#[test]
fn the_fixtures_load() {
    for f in ["tiny.legacy.pth", "tiny.zip.pth"] {
        let t = tensors_from_bytes(Path::new(f), &fixture(f)).unwrap();
        assert_eq!(t.len(), 17);
    }
    assert_eq!(count_offsets(&fixture("tiny.legacy.pth")).len(), 17);
}

/// Found by CI: a newline spliced into a storage key once made the error two lines.
#[test]
fn a_newline_in_a_storage_key_stays_escaped() {
    let mut data = fixture("tiny.legacy.pth");
    data.splice(1058..1061, [10, 0, 0]);
    let e = tensors_from_bytes(Path::new("broken.pth"), &data)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("broken.pth: ") && !e.contains('\n') && e.contains("\\n"),
        "{e}"
    );
}

proptest! {
    #![proptest_config(config())]

    /// A file cut at any byte.
    #[test]
    fn truncated(data in file(), cut in any::<prop::sample::Index>()) {
        let n = cut.index(data.len());
        check(&data[..n])?;
    }

    /// A few bytes overwritten anywhere.
    #[test]
    fn bytes_overwritten(
        mut data in file(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        for (at, b) in edits {
            let i = at.index(data.len());
            data[i] = b;
        }
        check(&data)?;
    }

    /// Bytes inserted into or removed from the pickles (the first 2 KB of the legacy file).
    #[test]
    fn pickle_bytes_inserted_or_removed(
        at in 0usize..2074,
        remove in 0usize..4,
        insert in prop::collection::vec(any::<u8>(), 0..4),
    ) {
        let mut data = fixture("tiny.legacy.pth");
        let end = (at + remove).min(data.len());
        data.splice(at..end, insert);
        check(&data)?;
    }

    /// The operands of one-byte ints (`BININT1`) of the legacy object pickle overwritten:
    /// storage offsets, sizes, strides and storage lengths of the tensors.
    #[test]
    fn small_ints_of_the_pickle_overwritten(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut data = fixture("tiny.legacy.pth");
        let start = (0..3).fold(0, |at, _| parse_at(&data, at).unwrap().end);
        let end = parse_at(&data, start).unwrap().end;
        let ks: Vec<usize> = (start..end).filter(|&i| data[i] == b'K').collect();
        for (at, v) in edits {
            data[ks[at.index(ks.len())] + 1] = v;
        }
        check(&data)?;
    }

    /// A storage's element count of the legacy file overwritten.
    #[test]
    fn storage_counts_overwritten(k in 0usize..17, v in wide()) {
        let mut data = fixture("tiny.legacy.pth");
        let at = count_offsets(&data)[k];
        data[at..at + 8].copy_from_slice(&v.to_le_bytes());
        let r = tensors_from_bytes(Path::new("broken.pth"), &data);
        // a count is checked against its persistent id: any change is an error naming it
        prop_assert!(v == u64::from_le_bytes(fixture("tiny.legacy.pth")[at..at + 8].try_into().unwrap()) || r.is_err());
        check(&data)?;
    }

    /// A wide integer written over any 8 bytes: storage counts, lengths, ints in the pickles.
    #[test]
    fn wide_integers_written(data in file(), at in any::<prop::sample::Index>(), v in wide()) {
        let mut data = data;
        let i = at.index(data.len().saturating_sub(8));
        data[i..i + 8].copy_from_slice(&v.to_le_bytes());
        check(&data)?;
    }
}
