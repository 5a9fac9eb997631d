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
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        ExtractError::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

pub type Result<T, E = ExtractError> = std::result::Result<T, E>;
