//! Extraction at scale, end to end with the real binary: an extraction killed with SIGKILL and
//! resumed, a sharded one merged, and any number of loading workers all give banks
//! byte-identical to a one-shot run; bad `--shard` / `--resume` / `merge` inputs are refused
//! before anything is written.

use extract::datasets::fmnist;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

#[test]
fn killed_and_resumed_gives_the_same_bytes() {
    let n = 3000;
    let d = tempfile::tempdir().unwrap();
    fmnist_fixture(d.path(), n);
    let chunks = d.path().join("bank.partial/chunks");
    let mut child = bin()
        .args(args(n, &[]))
        .arg("--quiet")
        .current_dir(d.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // kill -9 once three chunks are written: mid-way through the train split
    let t0 = Instant::now();
    loop {
        let written = std::fs::read_dir(&chunks).map_or(0, |r| r.count());
        if written >= 3 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the extraction finished before it could be killed"
        );
        assert!(t0.elapsed() < Duration::from_secs(120), "no chunk written");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "finished before the kill"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let kept = std::fs::read_dir(&chunks).unwrap().count();
    assert!(kept >= 3 && !d.path().join("bank").exists());
    // resumed with other arguments: refused naming the field, the chunks kept
    let (code, err) = run(&args(n, &["--resume", "--seed", "3"]), d.path());
    assert_eq!(code, 2);
    assert!(
        err.contains("bank.partial/run.json") && err.contains("`seed` was 0, now 3"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&chunks).unwrap().count(), kept);
    // resumed with the same arguments (and another worker count, which changes no byte)
    let (code, err) = run(&args(n, &["--resume", "--workers", "2"]), d.path());
    assert_eq!(code, 0, "{err}");
    assert!(!d.path().join("bank.partial").exists());
    let (_o, want) = one_shot(n);
    assert_same_bank(&d.path().join("bank"), &want);
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
