//! One error type for the crate. Every variant names the file (and the line, field or tensor)
//! it is about, so the binary prints one actionable line.

use std::borrow::Cow;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {}", path.display(), one_line(msg))]
    Format { path: PathBuf, msg: String },
    #[error("{}:{line}: {}", path.display(), one_line(msg))]
    BadLine {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{}: cannot decode image: {}", path.display(), one_line(msg))]
    Image { path: PathBuf, msg: String },
    #[error("{}: checkpoint does not fit arch `{arch}`: {}", path.display(), one_line(msg))]
    Checkpoint {
        path: PathBuf,
        arch: String,
        msg: String,
    },
    /// A checkpoint of another architecture than `--arch`: the `--arch` it fits comes first,
    /// then the key report (missing, unexpected, wrongly shaped keys).
    #[error("pass --arch {fits}: {} has the keys of {fits}, not of `{arch}`: {}", path.display(), one_line(msg))]
    WrongArch {
        path: PathBuf,
        arch: String,
        fits: String,
        msg: String,
    },
    /// A count the run would not fit: checked before any work.
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
    #[error("{0}")]
    Usage(String),
    #[error("device: {0}")]
    Device(String),
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    #[error(transparent)]
    Bank(#[from] bank::BankError),
}

impl ExtractError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ExtractError::Io {
            path: path.into(),
            source,
        }
    }
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        ExtractError::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// What a run would need of the machine's memory or of the output's disk, more than there is:
/// the flag to lower (the one whose lowering saves the most), the estimate and the largest
/// part of it, and what there is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverBudget {
    /// `--views`, `--workers`, ...
    pub flag: &'static str,
    /// The flag's value as given.
    pub value: String,
    pub resource: Resource,
    /// At least this many bytes ([`crate::write::budget`] says how they are counted).
    pub need: u128,
    /// The largest part of `need`, spelled out.
    pub detail: String,
    /// Bytes there are.
    pub have: u64,
    /// Where `have` was read: `MemTotal`, `the cgroup's memory.max`, or the folder whose file
    /// system has them free.
    pub have_from: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Memory,
    Disk,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, there) = match self.resource {
            Resource::Memory => (
                "memory",
                format!("the machine has {}", bytes(self.have as u128)),
            ),
            Resource::Disk => ("disk", format!("{} free", bytes(self.have as u128))),
        };
        write!(
            f,
            "{} {}: needs at least {} of {what} ({}), {there} ({})",
            self.flag,
            self.value,
            bytes(self.need),
            one_line(&self.detail),
            one_line(&self.have_from)
        )
    }
}

impl std::error::Error for OverBudget {}

/// A byte count in binary units with one decimal: `512 B`, `23.5 GiB`, `448.4 PiB`.
pub fn bytes(n: u128) -> String {
    const UNITS: [&str; 8] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// `msg` with every control character escaped (`\n`, `\u{1b}`): an error about a file's
/// content stays one line whatever the file holds (a key, storage or class name read from it
/// may carry a newline).
fn one_line(msg: &str) -> Cow<'_, str> {
    if !msg.chars().any(char::is_control) {
        return Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len() + 8);
    for c in msg.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

pub type Result<T, E = ExtractError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_error_stays_one_line() {
        let e = ExtractError::format("a.pth", "storage `\n\u{1b}85` is not among 17");
        assert_eq!(
            e.to_string(),
            "a.pth: storage `\\n\\u{1b}85` is not among 17"
        );
        let e = ExtractError::format("a.pth", "plain `é` text");
        assert_eq!(e.to_string(), "a.pth: plain `é` text");
        let e = ExtractError::Checkpoint {
            path: "a.pth".into(),
            arch: "resnet32".into(),
            msg: "unexpected key `fc\r\n.weight`".into(),
        };
        assert_eq!(
            e.to_string(),
            "a.pth: checkpoint does not fit arch `resnet32`: unexpected key `fc\\r\\n.weight`"
        );
    }
}
