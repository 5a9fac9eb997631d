//! One error type for everything that can be wrong with a bank. Every variant names the file
//! and the field (tensor or JSON key), so the CLI prints a single actionable line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BankError {
    // `err` is deliberately not a `source`: the message already carries it, and an error
    // chain printed with `{:#}` would show it twice.
    #[error("{}: cannot read: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{}: cannot write: {err}", path.display())]
    Write { path: PathBuf, err: std::io::Error },
    #[error("{}: not a bank folder (missing {file})", dir.display())]
    MissingSplit { dir: PathBuf, file: &'static str },
    #[error("{}: not a valid safetensors file (truncated or corrupt header): {msg}", path.display())]
    Corrupt { path: PathBuf, msg: String },
    #[error("{}: missing tensor `{name}`", path.display())]
    MissingTensor { path: PathBuf, name: String },
    #[error("{}: tensor `{name}` has rank {got} (shape {shape:?}), expected rank {expected}", path.display())]
    WrongRank {
        path: PathBuf,
        name: String,
        expected: usize,
        got: usize,
        shape: Vec<usize>,
    },
    #[error("{}: tensor `{name}` has dtype {got}, expected one of {allowed}", path.display())]
    WrongDtype {
        path: PathBuf,
        name: String,
        got: String,
        allowed: &'static str,
    },
    #[error("{}: `features` has {features} rows but `labels` has {labels}", path.display())]
    RowMismatch {
        path: PathBuf,
        features: usize,
        labels: usize,
    },
    #[error("{}: `{name}` has dimension {got}, but {reference} has {expected}", path.display())]
    DimMismatch {
        path: PathBuf,
        name: String,
        got: usize,
        expected: usize,
        reference: String,
    },
    #[error("{}: `labels`[{row}] = {label} is out of range 0..{num_classes}", path.display())]
    LabelOutOfRange {
        path: PathBuf,
        row: usize,
        label: i64,
        num_classes: usize,
    },
    #[error("{}: `{name}`[{row}, {col}] is not finite ({value})", path.display())]
    NonFinite {
        path: PathBuf,
        name: String,
        row: usize,
        col: usize,
        value: f32,
    },
    #[error("{}: `labels`: class {class} has no training sample", path.display())]
    EmptyClass { path: PathBuf, class: usize },
    #[error("{}: split is empty (0 rows)", path.display())]
    EmptySplit { path: PathBuf },
    #[error("{}: field `{field}`: {msg}", path.display())]
    Meta {
        path: PathBuf,
        field: String,
        msg: String,
    },
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
}

pub type Result<T, E = BankError> = std::result::Result<T, E>;
