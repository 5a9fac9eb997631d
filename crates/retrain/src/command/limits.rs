//! What a typed count may be: a stated maximum for each count a user can type, and the
//! memory a count asks for against what the machine has (`MemAvailable`), checked before any
//! work so that an absurd value is one line and exit 2, not a failed allocation.

use anyhow::bail;

/// `--seeds` (jobs are seeds × rows).
pub const MAX_SEEDS: usize = 10_000;
/// `--jobs` (threads).
pub const MAX_JOBS: usize = 4096;
/// `--bootstrap` (resamples of the test rows).
pub const MAX_BOOTSTRAP: usize = 1_000_000;

/// The memory the system can give this process now (`MemAvailable` of /proc/meminfo), in
/// bytes; `None` where it cannot be read.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// `value` of `flag` at most `max`.
pub fn at_most(flag: &str, value: usize, max: usize) -> anyhow::Result<()> {
    if value > max {
        bail!("{flag} {value}: at most {max}");
    }
    Ok(())
}

/// `bytes` (what `flag` = `value` needs) fits in the available memory.
pub fn fits(flag: &str, value: usize, bytes: u128) -> anyhow::Result<()> {
    if let Some(avail) = available_memory() {
        if bytes > avail as u128 {
            bail!(
                "{flag} {value}: needs {:.1} GiB of memory, {:.1} GiB are available",
                bytes as f64 / (1u64 << 30) as f64,
                avail as f64 / (1u64 << 30) as f64
            );
        }
    }
    Ok(())
}

/// The bootstrap's memory: one byte per test row and a count per class, per resample.
pub fn check_bootstrap(flag: &str, b: usize, test_rows: usize, k: usize) -> anyhow::Result<()> {
    at_most(flag, b, MAX_BOOTSTRAP)?;
    fits(
        flag,
        b,
        b as u128 * (test_rows as u128 + 4 * k as u128 + 64),
    )
}
