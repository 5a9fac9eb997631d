//! One error type for the crate. Every variant names the file (and the line, field or tensor)
//! it is about, so the binary prints one actionable line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    #[error("{}:{line}: {msg}", path.display())]
    BadLine {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{}: cannot decode image: {msg}", path.display())]
    Image { path: PathBuf, msg: String },
    #[error("{}: checkpoint does not fit arch `{arch}`: {msg}", path.display())]
    Checkpoint {
        path: PathBuf,
        arch: String,
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
    /// A file's content is bad. The message stays one line whatever the file holds: a control
    /// character (a key or storage name read from the file may carry a newline) is shown
    /// escaped, as `\n`.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        ExtractError::Format {
            path: path.into(),
            msg: one_line(msg.into()),
        }
    }
}

/// `msg` with every control character escaped (`\n`, `\u{1b}`), so an error stays one line.
fn one_line(msg: String) -> String {
    if !msg.chars().any(char::is_control) {
        return msg;
    }
    msg.chars()
        .flat_map(|c| {
            let escaped = c.is_control().then(|| c.escape_default());
            escaped
                .into_iter()
                .flatten()
                .chain((!c.is_control()).then_some(c))
        })
        .collect()
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
    }
}
