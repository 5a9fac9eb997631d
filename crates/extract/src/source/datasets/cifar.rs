//! CIFAR-100, fine labels, from either layout (the first found under `root`, which may be the
//! layout folder itself or its parent):
//! - `cifar-100-python/{train,test,meta}`: Python pickles of dicts with `data` (uint8 NumPy
//!   array N×3072, channel-major 3×32×32), `fine_labels` (list), `meta` → `fine_label_names`.
//! - `cifar-100-binary/{train,test}.bin`: records of 1 coarse + 1 fine label byte + 3072 pixel
//!   bytes; `fine_label_names.txt`, one name a line.

use super::pickle::{self, Py};
use super::{Images, Labeled, RawImages};
use crate::error::{ExtractError, Result};
use std::path::{Path, PathBuf};

pub const NUM_CLASSES: usize = 100;
const PIXELS: usize = 3 * 32 * 32;

/// The CIFAR-100 train and test splits and the fine class names (when the layout has them).
#[derive(Debug, Clone)]
pub struct Cifar100 {
    pub train: Labeled,
    pub test: Labeled,
    pub class_names: Option<Vec<String>>,
    /// The folder the data was read from.
    pub dir: PathBuf,
}

pub fn load(root: &Path) -> Result<Cifar100> {
    let cands = |name: &str| [root.join(name), root.to_path_buf()];
    for dir in cands("cifar-100-python") {
        if dir.join("train").is_file() && dir.join("test").is_file() {
            return load_python(&dir);
        }
    }
    for dir in cands("cifar-100-binary") {
        if dir.join("train.bin").is_file() {
            return load_binary(&dir);
        }
    }
    Err(ExtractError::format(
        root,
        "no CIFAR-100 found: expected cifar-100-python/{train,test} or cifar-100-binary/{train,test}.bin here",
    ))
}

fn load_python(dir: &Path) -> Result<Cifar100> {
    let split = |name: &str| -> Result<Labeled> {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| ExtractError::io(&path, e))?;
        let obj = pickle::parse(&bytes)
            .map_err(|e| ExtractError::format(&path, format!("not a readable pickle: {e}")))?;
        let field = |k: &str| {
            obj.get(k)
                .ok_or_else(|| ExtractError::format(&path, format!("missing key `{k}`")))
        };
        let (shape, data) = field("data")?
            .ndarray_u8()
            .map_err(|e| ExtractError::format(&path, format!("`data`: {e}")))?;
        if shape.len() != 2 || shape[1] != PIXELS {
            return Err(ExtractError::format(
                &path,
                format!("`data` has shape {shape:?}, expected [N, {PIXELS}]"),
            ));
        }
        let labels = field("fine_labels")?
            .ints()
            .ok_or_else(|| ExtractError::format(&path, "`fine_labels` is not a list of ints"))?;
        labeled(&path, "fine_labels", data.to_vec(), labels)
    };
    let meta = dir.join("meta");
    let class_names = std::fs::read(&meta)
        .ok()
        .and_then(|b| pickle::parse(&b).ok())
        .and_then(|m: Py| m.get("fine_label_names").and_then(Py::strings));
    Ok(Cifar100 {
        train: split("train")?,
        test: split("test")?,
        class_names,
        dir: dir.into(),
    })
}

fn load_binary(dir: &Path) -> Result<Cifar100> {
    let split = |name: &str| -> Result<Labeled> {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| ExtractError::io(&path, e))?;
        let rec = PIXELS + 2;
        if bytes.is_empty() || bytes.len() % rec != 0 {
            return Err(ExtractError::format(
                &path,
                format!(
                    "size {} is not a multiple of the {rec}-byte record",
                    bytes.len()
                ),
            ));
        }
        let mut data = Vec::with_capacity(bytes.len() / rec * PIXELS);
        let mut labels = Vec::new();
        for r in bytes.chunks_exact(rec) {
            labels.push(r[1] as i64);
            data.extend_from_slice(&r[2..]);
        }
        labeled(&path, "fine label", data, labels)
    };
    let class_names = std::fs::read_to_string(dir.join("fine_label_names.txt"))
        .ok()
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|v| v.len() == NUM_CLASSES);
    Ok(Cifar100 {
        train: split("train.bin")?,
        test: split("test.bin")?,
        class_names,
        dir: dir.into(),
    })
}

fn labeled(path: &Path, field: &str, data: Vec<u8>, labels: Vec<i64>) -> Result<Labeled> {
    let n = data.len() / PIXELS;
    if labels.len() != n {
        return Err(ExtractError::format(
            path,
            format!("{n} images but {} entries in `{field}`", labels.len()),
        ));
    }
    if let Some(i) = labels
        .iter()
        .position(|&l| !(0..NUM_CLASSES as i64).contains(&l))
    {
        return Err(ExtractError::format(
            path,
            format!("`{field}`[{i}] = {} is not in 0..{NUM_CLASSES}", labels[i]),
        ));
    }
    Ok(Labeled {
        images: Images::Raw(RawImages {
            channels: 3,
            height: 32,
            width: 32,
            data,
            present: None,
        }),
        labels: labels.into_iter().map(|l| l as u32).collect(),
    })
}

/// Test fixtures: write a tiny CIFAR-100 in both layouts under `root`.
pub mod fixture {
    use super::super::pickle::write::{W, dict};
    use super::PIXELS;
    use std::path::Path;

    pub fn image(i: usize) -> Vec<u8> {
        (0..PIXELS)
            .map(|p| ((p * 7 + i * 13) % 256) as u8)
            .collect()
    }

    pub fn write_python(
        root: &Path,
        train_labels: &[i64],
        test_labels: &[i64],
    ) -> std::io::Result<()> {
        let dir = root.join("cifar-100-python");
        std::fs::create_dir_all(&dir)?;
        for (name, labels) in [("train", train_labels), ("test", test_labels)] {
            let data: Vec<u8> = (0..labels.len()).flat_map(image).collect();
            let coarse: Vec<i64> = labels.iter().map(|l| l / 5).collect();
            let p = dict(&[
                ("filenames", W::Strs(&["a.png"])),
                ("batch_label", W::Bytes(name.as_bytes())),
                ("fine_labels", W::Ints(labels)),
                ("coarse_labels", W::Ints(&coarse)),
                ("data", W::U8Array(&[labels.len(), PIXELS], &data)),
            ]);
            std::fs::write(dir.join(name), p)?;
        }
        let names: Vec<String> = (0..100).map(|c| format!("class{c}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        std::fs::write(
            dir.join("meta"),
            dict(&[("fine_label_names", W::Strs(&refs))]),
        )
    }

    pub fn write_binary(
        root: &Path,
        train_labels: &[i64],
        test_labels: &[i64],
    ) -> std::io::Result<()> {
        let dir = root.join("cifar-100-binary");
        std::fs::create_dir_all(&dir)?;
        for (name, labels) in [("train.bin", train_labels), ("test.bin", test_labels)] {
            let mut out = Vec::new();
            for (i, &l) in labels.iter().enumerate() {
                out.extend([(l / 5) as u8, l as u8]);
                out.extend(image(i));
            }
            std::fs::write(dir.join(name), out)?;
        }
        let names: String = (0..100).map(|c| format!("class{c}\n")).collect();
        std::fs::write(dir.join("fine_label_names.txt"), names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_and_binary_layouts_read_the_same() {
        let train: Vec<i64> = (0..30).map(|i| (i * 7) % 100).collect();
        let test = [5, 6, 7];
        let a = tempfile::tempdir().unwrap();
        fixture::write_python(a.path(), &train, &test).unwrap();
        let b = tempfile::tempdir().unwrap();
        fixture::write_binary(b.path(), &train, &test).unwrap();
        let (pa, pb) = (load(a.path()).unwrap(), load(b.path()).unwrap());
        assert_eq!(pa.train, pb.train);
        assert_eq!(pa.test, pb.test);
        assert_eq!(pa.train.labels[3], 21);
        let Images::Raw(r) = &pa.train.images else {
            panic!()
        };
        assert_eq!(r.image(4), &fixture::image(4)[..]);
        assert_eq!(pa.class_names.as_ref().unwrap()[99], "class99");
        assert_eq!(pa.class_names, pb.class_names);
    }

    #[test]
    fn a_label_out_of_range_names_file_and_field() {
        let a = tempfile::tempdir().unwrap();
        fixture::write_python(a.path(), &[1, 100], &[0]).unwrap();
        let err = load(a.path()).unwrap_err().to_string();
        assert!(
            err.contains("cifar-100-python/train") && err.contains("`fine_labels`[1] = 100"),
            "{err}"
        );
    }

    #[test]
    fn a_truncated_binary_file_is_reported() {
        let a = tempfile::tempdir().unwrap();
        fixture::write_binary(a.path(), &[1, 2], &[0]).unwrap();
        let p = a.path().join("cifar-100-binary/train.bin");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
        let err = load(a.path()).unwrap_err().to_string();
        assert!(
            err.contains("train.bin") && err.contains("3074-byte record"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_folder_says_what_was_expected() {
        let a = tempfile::tempdir().unwrap();
        let err = load(a.path()).unwrap_err().to_string();
        assert!(err.contains("cifar-100-python"), "{err}");
    }
}
