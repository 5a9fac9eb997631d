//! List-file datasets (classifier-balancing `data/`: ImageNet-LT, iNaturalist 2018,
//! Places-LT): one `<relative/path> <int label>` per line, whitespace-separated, the path
//! joined to the image root. Blank lines and `#` comments are ignored.

use super::{FileImages, Images, Labeled};
use crate::error::{ExtractError, Result};
use std::path::Path;

/// A parsed list, and how many bad lines were skipped (`skip_bad`).
#[derive(Debug, Clone)]
pub struct ListSplit {
    pub data: Labeled,
    pub skipped: Vec<String>,
}

/// Parse `list` against `root`. A bad line (no label, a label that is not a non-negative
/// integer, extra fields) is an error naming file and line, or skipped and counted when
/// `skip_bad` is set. Missing or undecodable images are found when decoding.
pub fn load(list: &Path, root: &Path, skip_bad: bool) -> Result<ListSplit> {
    let text = std::fs::read_to_string(list).map_err(|e| ExtractError::io(list, e))?;
    let mut paths = Vec::new();
    let mut lines = Vec::new();
    let mut labels = Vec::new();
    let mut skipped = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let parsed = match fields[..] {
            [p, l] => l
                .parse::<u32>()
                .map(|l| (p, l))
                .map_err(|_| format!("label `{l}` is not a non-negative integer")),
            [_] => Err("missing label (expected `<path> <label>`)".to_string()),
            _ => Err(format!(
                "{} fields, expected `<path> <label>`",
                fields.len()
            )),
        };
        match parsed {
            Ok((p, l)) => {
                paths.push(root.join(p));
                lines.push(i + 1);
                labels.push(l);
            }
            Err(msg) if skip_bad => skipped.push(format!("{}:{}: {msg}", list.display(), i + 1)),
            Err(msg) => {
                return Err(ExtractError::BadLine {
                    path: list.into(),
                    line: i + 1,
                    msg,
                });
            }
        }
    }
    if labels.is_empty() {
        return Err(ExtractError::format(list, "no image lines"));
    }
    Ok(ListSplit {
        data: Labeled {
            images: Images::Files(FileImages {
                list: list.into(),
                paths,
                lines,
            }),
            labels,
        },
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_labels_and_names_a_bad_line() {
        let d = tempfile::tempdir().unwrap();
        let list = d.path().join("train.txt");
        std::fs::write(
            &list,
            "train/a/1.jpg 0\n\n# comment\ntrain/b/2.png 7\ntrain/c/3.jpg seven\n",
        )
        .unwrap();
        let err = load(&list, Path::new("/data"), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train.txt:5") && err.contains("`seven`"),
            "{err}"
        );
        let ok = load(&list, Path::new("/data"), true).unwrap();
        assert_eq!(ok.data.labels, vec![0, 7]);
        assert_eq!(ok.skipped.len(), 1);
        let Images::Files(f) = &ok.data.images else {
            panic!()
        };
        assert_eq!(f.paths[1], Path::new("/data/train/b/2.png"));
        assert_eq!(f.lines, vec![1, 4]);
    }

    #[test]
    fn a_missing_label_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let list = d.path().join("l.txt");
        std::fs::write(&list, "x.jpg\n").unwrap();
        let err = load(&list, d.path(), false).unwrap_err().to_string();
        assert!(err.contains("l.txt:1: missing label"), "{err}");
    }
}
