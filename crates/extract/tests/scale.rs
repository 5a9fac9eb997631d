//! Extraction at scale, end to end with the real binary: an extraction killed with SIGKILL and
//! resumed (reusing its chunk files, unchanged), one stopped by SIGINT or SIGTERM (exit 130,
//! whole chunks only) and resumed, a sharded one merged, and any number of loading workers all
//! give banks byte-identical to a one-shot run; bad `--shard` / `--resume` / `merge` inputs are
//! refused before anything is written.

use extract::source::datasets::fmnist;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_extract"))
}

fn run(args: &[&str], cwd: &Path) -> (i32, String) {
    let out = bin()
        .args(args)
        .arg("--quiet")
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A Fashion-MNIST layout of `n` train and `n / 4` test images (labels i % 10) in `dir`.
fn fmnist_fixture(dir: &Path, n: usize) {
    for (p, rows) in [("train", n), ("t10k", n / 4)] {
        let imgs: Vec<u8> = (0..rows * 784)
            .map(|i| ((i * 31 + i / 784 * 7) % 256) as u8)
            .collect();
        let labels: Vec<u8> = (0..rows).map(|i| (i % 10) as u8).collect();
        fmnist::write_idx(
            &dir.join(format!("{p}-images-idx3-ubyte.gz")),
            &[rows, 28, 28],
            &imgs,
        )
        .unwrap();
        fmnist::write_idx(
            &dir.join(format!("{p}-labels-idx1-ubyte.gz")),
            &[rows],
            &labels,
        )
        .unwrap();
    }
}

/// The extraction every test runs: all `n` rows of the fixture (img-max = rows per class,
/// IR 1), one augmented view, f16, small chunks and batches.
fn args(n: usize, extra: &[&'static str]) -> Vec<&'static str> {
    let img_max: &'static str = Box::leak((n / 10).to_string().into_boxed_str());
    let mut a = vec![
        "--dataset",
        "fmnist-lt",
        "--root",
        ".",
        "--img-max",
        img_max,
        "--ir",
        "1",
        "--views",
        "1",
        "--dtype",
        "f16",
        "--batch-size",
        "16",
        "--chunk-rows",
        "64",
        "--out",
        "bank",
    ];
    a.extend_from_slice(extra);
    a
}

/// Every file of bank folder `a` equals the one of the same name in `b`, and they hold the
/// same names.
fn assert_same_bank(a: &Path, b: &Path) {
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(a), names(b));
    assert!(names(a).contains(&"train_views.safetensors".to_string()));
    for n in names(a) {
        assert!(
            std::fs::read(a.join(&n)).unwrap() == std::fs::read(b.join(&n)).unwrap(),
            "{n} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// A one-shot extraction of the fixture in a fresh folder: (folder guard, bank path).
fn one_shot(n: usize) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    fmnist_fixture(d.path(), n);
    let (code, err) = run(&args(n, &[]), d.path());
    assert_eq!(code, 0, "{err}");
    let b = d.path().join("bank");
    (d, b)
}

/// The complete chunk files in `chunks` (not the temporary files of a write under way).
fn chunk_files(chunks: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(chunks)
        .map(|r| {
            r.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Start `extract` with `extra` arguments on the fixture of `n` rows in `dir` (stderr piped)
/// and wait until at least `chunks` chunk files are written, the extraction still running.
fn start_and_wait_for_chunks(dir: &Path, n: usize, extra: &[&'static str], chunks: usize) -> Child {
    let mut child = bin()
        .args(args(n, extra))
        .arg("--quiet")
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while chunk_files(&dir.join("bank.partial/chunks")).len() < chunks {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the extraction finished before {chunks} chunks could be seen"
        );
        assert!(t0.elapsed() < Duration::from_secs(120), "no chunk written");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the extraction finished before it could be stopped"
    );
    child
}

/// (inode, mtime) of each file: a rewritten chunk is a new file renamed into place.
fn identities(files: &[PathBuf]) -> Vec<(u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).unwrap();
            (m.ino(), m.modified().unwrap())
        })
        .collect()
}

/// The `K` of the `resumed K of N chunks` line, after checking its `N`.
fn resumed(err: &str, total: usize) -> usize {
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("resumed ")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    let k = lines[0]
        .split("resumed ")
        .nth(1)
        .and_then(|r| r.strip_suffix(&format!(" of {total} chunks (bank.partial/chunks)")))
        .unwrap_or_else(|| panic!("not `resumed K of {total} chunks`: {err}"));
    k.parse().unwrap()
}

/// The chunks of the fixture of `n` rows: train n, test n / 4, 64 rows a chunk.
fn total_chunks(n: usize) -> usize {
    n.div_ceil(64) + (n / 4).div_ceil(64)
}

/// Killed with SIGKILL after 3 chunks, resumed (and killed again once it has written new
/// chunks), resumed to the end: each resume says how many chunks it reuses, the reused chunk
/// files are not rewritten (same inode and mtime), and the bank is the one-shot run's.
#[test]
fn killed_and_resumed_gives_the_same_bytes() {
    let n = 3000;
    let total = total_chunks(n);
    let d = tempfile::tempdir().unwrap();
    fmnist_fixture(d.path(), n);
    let chunks = d.path().join("bank.partial/chunks");
    // kill -9 once three chunks are written: mid-way through the train split
    let mut child = start_and_wait_for_chunks(d.path(), n, &[], 3);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let first = chunk_files(&chunks);
    let kept = first.len();
    assert!(kept >= 3 && !d.path().join("bank").exists());
    let before = identities(&first);
    // resumed with other arguments: refused naming the field, the chunks kept
    let (code, err) = run(&args(n, &["--resume", "--seed", "3"]), d.path());
    assert_eq!(code, 2);
    assert!(
        err.contains("bank.partial/run.json") && err.contains("`seed` was 0, now 3"),
        "{err}"
    );
    assert_eq!(chunk_files(&chunks), first);
    // resumed, and killed again once two chunks more are written: chunks are extracted in
    // order, so a resume that re-extracted the old ones would have rewritten them by then
    let child = start_and_wait_for_chunks(d.path(), n, &["--resume"], kept + 2);
    let pid = child.id();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let o = child.wait_with_output().unwrap();
    assert_eq!(resumed(&String::from_utf8_lossy(&o.stderr), total), kept);
    assert_eq!(identities(&first), before, "a reused chunk was rewritten");
    let second = chunk_files(&chunks).len();
    assert!(second >= kept + 2);
    // resumed to the end (with another worker count, which changes no byte)
    let (code, err) = run(&args(n, &["--resume", "--workers", "2"]), d.path());
    assert_eq!(code, 0, "{err}");
    let k = resumed(&err, total);
    assert!(
        k == second && k < total,
        "resumed {k} of {total}, {second} chunks were written"
    );
    assert!(!d.path().join("bank.partial").exists());
    let (_o, want) = one_shot(n);
    assert_same_bank(&d.path().join("bank"), &want);
}

/// SIGINT or SIGTERM mid-extraction: exit 130 and one line saying how many chunks are kept
/// and to resume; no temporary file, every kept chunk whole (it reads back with all its
/// rows); `--resume` reuses exactly those chunks and makes the bank of an uninterrupted run.
fn interrupted_then_resumed(signal: &str, said: &str) {
    let n = 3000;
    let total = total_chunks(n);
    let d = tempfile::tempdir().unwrap();
    fmnist_fixture(d.path(), n);
    let child = start_and_wait_for_chunks(d.path(), n, &[], 3);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let partial = d.path().join("bank.partial");
    let kept = chunk_files(&partial.join("chunks"));
    let line = format!(
        "extract: {said}: stopped; {} of {total} chunks are kept in bank.partial/chunks (the chunk being extracted is dropped); run the same command with --resume to continue from them",
        kept.len()
    );
    assert_eq!(err.trim_end(), line);
    assert!(kept.len() >= 3 && !d.path().join("bank").exists());
    for dir in [partial.clone(), partial.join("chunks")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "left behind: {name}");
        }
    }
    for c in &kept {
        // `<split>-<index>.safetensors`: 64 rows, the last chunk of a split the rest
        let stem = c.file_stem().unwrap().to_string_lossy().into_owned();
        let (split, index) = stem.split_once('-').unwrap();
        let split_rows = if split == "train" { n } else { n / 4 };
        let want = 64.min(split_rows - index.parse::<usize>().unwrap() * 64);
        let chunk = extract::write::chunks::Chunk::read(c).unwrap();
        let rows = chunk.rows().unwrap();
        assert_eq!(rows, want, "{}", c.display());
        assert_eq!(chunk.raw("features").unwrap().len(), rows * 128 * 2);
        if split == "train" {
            assert_eq!(chunk.raw("view0").unwrap().len(), rows * 128 * 2);
        } else {
            assert_eq!(chunk.raw("features_flip").unwrap().len(), rows * 128 * 2);
        }
    }
    let (code, err) = run(&args(n, &["--resume"]), d.path());
    assert_eq!(code, 0, "{err}");
    assert_eq!(resumed(&err, total), kept.len());
    let (_o, want) = one_shot(n);
    assert_same_bank(&d.path().join("bank"), &want);
}

#[test]
fn sigint_mid_extraction_exits_130_and_resume_gives_the_same_bytes() {
    interrupted_then_resumed("-INT", "interrupted (SIGINT)");
}

#[test]
fn sigterm_mid_extraction_exits_130_and_resume_gives_the_same_bytes() {
    interrupted_then_resumed("-TERM", "terminated (SIGTERM)");
}

#[test]
fn shards_merged_give_the_same_bytes_and_bad_merges_are_refused() {
    let n = 400;
    let d = tempfile::tempdir().unwrap();
    fmnist_fixture(d.path(), n);
    for s in ["2/3", "0/3", "1/3"] {
        let mut a = args(n, &["--shard"]);
        a.push(s);
        let (code, err) = run(&a, d.path());
        assert_eq!(code, 0, "--shard {s}: {err}");
    }
    let part = |i: usize| format!("bank.shard-{i}-of-3");
    assert!(d.path().join(part(1)).join("run.json").is_file());
    let merge = |parts: &[String], out: &str| {
        let o = bin()
            .arg("merge")
            .args(parts)
            .args(["--out", out])
            .current_dir(d.path())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // a missing part, a part twice, a part of another run: one line, nothing written
    let (code, err) = merge(&[part(0), part(2)], "m");
    assert!(code == 2 && err.contains("part 1 of 3 is missing"), "{err}");
    let (code, err) = merge(&[part(0), part(1), part(1)], "m");
    assert!(code == 2 && err.contains("are both part 1 of 3"), "{err}");
    // part 1 of a run with another seed, into `other.shard-1-of-3`
    let mut other = args(n, &["--shard", "1/3", "--seed", "5"]);
    let out = other.iter().position(|a| *a == "bank").unwrap();
    other[out] = "other";
    let (code, err) = run(&other, d.path());
    assert_eq!(code, 0, "{err}");
    let (code, err) = merge(&[part(0), "other.shard-1-of-3".into(), part(2)], "m");
    assert!(
        code == 2 && err.contains("other.shard-1-of-3") && err.contains("`seed` is 5 there but 0"),
        "{err}"
    );
    assert!(!d.path().join("m").exists() && !d.path().join("m.partial").exists());
    // the parts in any order make the one-shot bank
    let (code, err) = merge(&[part(2), part(0), part(1)], "bank");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("merged 3 parts"), "{err}");
    let (_o, want) = one_shot(n);
    assert_same_bank(&d.path().join("bank"), &want);
}

#[test]
fn any_number_of_workers_gives_the_same_bytes() {
    let n = 200;
    let (_o, want) = one_shot(n);
    for w in ["1", "3"] {
        let d = tempfile::tempdir().unwrap();
        fmnist_fixture(d.path(), n);
        let (code, err) = run(&args(n, &["--workers", w]), d.path());
        assert_eq!(code, 0, "{err}");
        assert_same_bank(&d.path().join("bank"), &want);
    }
}

#[test]
fn a_shard_out_of_range_is_one_line_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    fmnist_fixture(d.path(), 40);
    let (code, err) = run(&args(40, &["--shard", "3/3"]), d.path());
    assert_eq!(code, 2);
    assert!(
        err.contains("--shard") && err.contains("below the count"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 4);
}
