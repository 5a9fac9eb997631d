//! One writer per results folder, and clean interrupts, on the real binary with real signals:
//!
//! - a second process on a locked `--out` stops at once (exit 2, one line naming the folder
//!   and the holder's pid) and leaves the folder untouched;
//! - a holder killed with SIGKILL does not block the next run;
//! - shards lock their own files and run side by side;
//! - SIGINT or SIGTERM mid-table: exit 130, no temporary file left, one line saying how many
//!   runs are kept and how to resume; the rerun runs only the missing jobs and its tables are
//!   byte-identical to an uninterrupted run's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

fn retrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_retrain"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// The bank of the durable-run tests in `cli.rs` (K = 20, D = 32, IR = 20).
fn bank(dir: &Path) {
    crate::cli::small_synth(dir);
}

/// A sweep that takes about a second on one thread (24 runs).
fn sweep<'a>(bank: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--bank",
        s(bank),
        "--out",
        s(out),
        "--method",
        "los,vanilla-fc,balanced-softmax,focal",
        "--seeds",
        "6",
        "--epochs",
        "40",
        "--jobs",
        "1",
        "-q",
        "--no-plots",
    ];
    a.extend_from_slice(extra);
    a
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Wait until `records` holds `n` lines (or 120 s).
fn wait_for_records(child: &mut Child, records: &Path, n: usize) {
    let t0 = Instant::now();
    while lines(records) < n && t0.elapsed() < Duration::from_secs(120) {
        assert!(child.try_wait().unwrap().is_none(), "finished too early");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn a_second_writer_is_refused_and_leaves_the_folder_untouched() {
    let t = tempfile::tempdir().unwrap();
    let b = t.path().join("bank");
    bank(&b);
    let out = t.path().join("out");
    ok(retrain()
        .args([
            "--bank",
            s(&b),
            "--out",
            s(&out),
            "--method",
            "vanilla-fc",
            "--seeds",
            "1",
            "--epochs",
            "1",
            "-q",
            "--no-plots",
        ])
        .output()
        .unwrap());
    // this test process holds the folder's lock, as a running retrain would
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(out.join(".lock"))
        .unwrap();
    lock.try_lock().unwrap();
    std::fs::write(out.join(".lock"), "4242").unwrap();
    let before = snapshot(&out);
    let o = retrain().args(sweep(&b, &out, &[])).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "--out {}: in use by another process (pid 4242)",
            out.display()
        )),
        "{err}"
    );
    assert_eq!(
        snapshot(&out),
        before,
        "the refused run wrote into the folder"
    );
    drop(lock);
}

#[test]
fn a_holder_killed_with_sigkill_does_not_block_the_next_run_and_shards_run_side_by_side() {
    let t = tempfile::tempdir().unwrap();
    let b = t.path().join("bank");
    bank(&b);
    let out = t.path().join("out");
    let mut child = retrain().args(sweep(&b, &out, &[])).spawn().unwrap();
    wait_for_records(&mut child, &out.join("records.jsonl"), 2);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let o = ok(retrain().args(sweep(&b, &out, &[])).output().unwrap());
    assert!(String::from_utf8_lossy(&o.stderr).contains("resuming:"));

    let sharded = t.path().join("sharded");
    let kids: Vec<Child> = ["0/2", "1/2"]
        .iter()
        .map(|sh| {
            retrain()
                .args(sweep(&b, &sharded, &["--shard", sh]))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        ok(k.wait_with_output().unwrap());
    }
    let o = ok(retrain().args(sweep(&b, &sharded, &[])).output().unwrap());
    assert!(String::from_utf8_lossy(&o.stdout).contains("(0 new)"));
    assert_eq!(
        std::fs::read(out.join("table1.csv")).unwrap(),
        std::fs::read(sharded.join("table1.csv")).unwrap()
    );
}

fn interrupted_then_resumed(signal: &str, said: &str) {
    let t = tempfile::tempdir().unwrap();
    let b = t.path().join("bank");
    bank(&b);
    let whole = t.path().join("whole");
    ok(retrain().args(sweep(&b, &whole, &[])).output().unwrap());

    let out = t.path().join("out");
    let mut child = retrain()
        .args(sweep(&b, &out, &[]))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_records(&mut child, &out.join("records.jsonl"), 3);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(said), "{err}");
    assert!(
        err.contains("run the same command again to resume"),
        "{err}"
    );
    let kept = lines(&out.join("records.jsonl"));
    assert!((3..24).contains(&kept), "{kept} runs kept");
    let text = std::fs::read_to_string(out.join("records.jsonl")).unwrap();
    assert!(text.ends_with('\n'), "a half-written record");
    for e in std::fs::read_dir(&out).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !n.ends_with(".tmp") && !n.contains(".partial"),
            "left behind: {n}"
        );
    }
    assert!(!out.join("table1.csv").exists());

    let o = ok(retrain().args(sweep(&b, &out, &[])).output().unwrap());
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        log.contains(&format!("resuming: {kept} of 24 runs")),
        "{log}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("({} new)", 24 - kept)));
    for f in ["table1.csv", "per-class.csv", "loma.csv"] {
        assert_eq!(
            std::fs::read(whole.join(f)).unwrap(),
            std::fs::read(out.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn sigint_mid_table_exits_130_and_the_rerun_gives_the_same_tables() {
    interrupted_then_resumed("-INT", "interrupted (SIGINT)");
}

#[test]
fn sigterm_mid_table_exits_130_and_the_rerun_gives_the_same_tables() {
    interrupted_then_resumed("-TERM", "terminated (SIGTERM)");
}

#[test]
fn a_full_disk_names_the_file_and_the_folder_stays_resumable() {
    // `ulimit -f` stands in for a full disk: the write that crosses it fails (EFBIG)
    let t = tempfile::tempdir().unwrap();
    let b = t.path().join("bank");
    bank(&b);
    let whole = t.path().join("whole");
    ok(retrain().args(sweep(&b, &whole, &[])).output().unwrap());
    let out = t.path().join("out");
    let args = sweep(&b, &out, &[]);
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -f 16; exec {} \"$@\"",
            env!("CARGO_BIN_EXE_retrain")
        ))
        .arg("retrain")
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.trim().lines().last().unwrap();
    assert!(
        last.contains("out/records.jsonl: cannot append: File too large"),
        "{err}"
    );
    assert!(!out.join("table1.csv").exists());
    // without the limit the same command resumes and gives the uninterrupted tables
    let o = ok(retrain().args(&args).output().unwrap());
    assert!(String::from_utf8_lossy(&o.stderr).contains("resuming:"));
    assert_eq!(
        std::fs::read(whole.join("table1.csv")).unwrap(),
        std::fs::read(out.join("table1.csv")).unwrap()
    );
}
