//! `<checkpoint>.stage1.json`: how stage 1 trained the checkpoint beside it (architecture,
//! classes, the recipe with its train transform), written with every epoch's checkpoint. It is
//! what `extract --views` reads to augment as the checkpoint's own stage 1 did (the random
//! crop's zero padding); unlike the resume files it is meant to travel with the checkpoint
//! (the committed default checkpoint has one).

use super::Recipe;
use super::resume::resume_paths;
use crate::error::{ExtractError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What `<checkpoint>.stage1.json` holds (a subset of the resume state, which reads as one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage1Record {
    pub arch: String,
    pub num_classes: usize,
    /// The recipe; its `crop_padding` (and the horizontal flip every stage 1 uses) is the train
    /// transform.
    pub recipe: Recipe,
    /// Where the record came from, when it was not written by the training run itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `<checkpoint>.stage1.json`.
pub fn record_path(ckpt: &Path) -> PathBuf {
    PathBuf::from(format!(
        "{}.stage1.json",
        ckpt.as_os_str().to_string_lossy()
    ))
}

/// The stage-1 record of `ckpt` and the file it was read from: `<ckpt>.stage1.json`, or, for a
/// checkpoint trained before that file was written, the recipe in `<ckpt>.resume.json`.
/// `None` when there is neither (a checkpoint from elsewhere); a file that is there but does
/// not read is an error naming it.
pub fn recorded(ckpt: &Path) -> Result<Option<(Stage1Record, PathBuf)>> {
    for path in [record_path(ckpt), resume_paths(ckpt).0] {
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ExtractError::io(&path, e))?;
        let record: Stage1Record = serde_json::from_str(&text).map_err(|e| {
            ExtractError::format(
                &path,
                format!("not a stage-1 record of {}: {e}", ckpt.display()),
            )
        })?;
        return Ok(Some((record, path)));
    }
    Ok(None)
}
