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
