//! Fashion-MNIST: `{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz` (Debian package
//! `dataset-fashion-mnist`: /usr/share/datasets/fashion-mnist). IDX format: big-endian magic
//! 0x00000803 (u8 images, dims N, H, W) or 0x00000801 (u8 labels, dim N), then the bytes.

use super::{Images, Labeled, RawImages};
use crate::error::{ExtractError, Result};
use std::io::Read;
use std::path::Path;

pub const DEFAULT_ROOT: &str = "/usr/share/datasets/fashion-mnist";
pub const NUM_CLASSES: usize = 10;
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Read split `prefix` (`train` or `t10k`) from `root`.
pub fn load(root: &Path, prefix: &str) -> Result<Labeled> {
    let ip = root.join(format!("{prefix}-images-idx3-ubyte.gz"));
    let lp = root.join(format!("{prefix}-labels-idx1-ubyte.gz"));
    let (dims, data) = read_idx(&ip, 0x0803)?;
    let (ldims, labels) = read_idx(&lp, 0x0801)?;
    if dims[0] != ldims[0] {
        return Err(ExtractError::format(
            &lp,
            format!(
                "has {} labels but {} has {} images",
                ldims[0],
                ip.display(),
                dims[0]
            ),
        ));
    }
    if let Some(i) = labels.iter().position(|&l| l as usize >= NUM_CLASSES) {
        return Err(ExtractError::format(
            &lp,
            format!("label[{i}] = {} is not in 0..{NUM_CLASSES}", labels[i]),
        ));
    }
    Ok(Labeled {
        images: Images::Raw(RawImages {
            channels: 1,
            height: dims[1],
            width: dims[2],
            data,
            present: None,
        }),
        labels: labels.into_iter().map(u32::from).collect(),
    })
}

/// Dims and payload of a gzipped (or plain) IDX file with the given magic.
fn read_idx(path: &Path, magic: u32) -> Result<(Vec<usize>, Vec<u8>)> {
    let raw = std::fs::read(path).map_err(|e| ExtractError::io(path, e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| ExtractError::format(path, format!("corrupt gzip stream: {e}")))?;
        out
    } else {
        raw
    };
    let rank = if magic == 0x0803 { 3 } else { 1 };
    let head = 4 + 4 * rank;
    let word = |i: usize| {
        u32::from_be_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    };
    if bytes.len() < 4 || word(0) != magic {
        let got = if bytes.len() < 4 {
            "missing".to_string()
        } else {
            format!("{:#010x}", word(0))
        };
        return Err(ExtractError::format(
            path,
            format!("IDX magic is {got}, expected {magic:#010x}"),
        ));
    }
    if bytes.len() < head {
        return Err(ExtractError::format(
            path,
            format!(
                "IDX header: file has {} bytes, header needs {head}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (1..=rank).map(|i| word(i) as usize).collect();
    let n: usize = dims.iter().product();
    if bytes.len() != head + n {
        return Err(ExtractError::format(
            path,
            format!(
                "IDX payload: dims {dims:?} need {n} bytes, file has {}",
                bytes.len() - head
            ),
        ));
    }
    Ok((dims, bytes[head..].to_vec()))
}

/// Write a gzipped IDX file (test fixtures, tools).
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let magic: u32 = if dims.len() == 3 { 0x0803 } else { 0x0801 };
    let mut w =
        flate2::write::GzEncoder::new(std::fs::File::create(path)?, flate2::Compression::fast());
    w.write_all(&magic.to_be_bytes())?;
    for &d in dims {
        w.write_all(&(d as u32).to_be_bytes())?;
    }
    w.write_all(data)?;
    w.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(dir: &Path, n: usize) {
        let images: Vec<u8> = (0..n * 28 * 28).map(|i| (i % 251) as u8).collect();
        write_idx(
            &dir.join("train-images-idx3-ubyte.gz"),
            &[n, 28, 28],
            &images,
        )
        .unwrap();
        write_idx(
            &dir.join("train-labels-idx1-ubyte.gz"),
            &[n],
            &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>(),
        )
        .unwrap();
    }

    #[test]
    fn reads_generated_idx_files() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path(), 12);
        let d = load(dir.path(), "train").unwrap();
        assert_eq!(d.labels, (0..12).map(|i| i % 10).collect::<Vec<u32>>());
        let Images::Raw(r) = &d.images else { panic!() };
        assert_eq!((r.len(), r.channels, r.height, r.width), (12, 1, 28, 28));
        assert_eq!(r.image(1)[0], (784 % 251) as u8);
    }

    #[test]
    fn count_mismatch_names_the_label_file() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path(), 12);
        write_idx(
            &dir.path().join("train-labels-idx1-ubyte.gz"),
            &[11],
            &[0; 11],
        )
        .unwrap();
        let err = load(dir.path(), "train").unwrap_err().to_string();
        assert!(
            err.contains("train-labels-idx1-ubyte.gz") && err.contains("11 labels"),
            "{err}"
        );
    }

    #[test]
    fn truncated_payload_and_wrong_magic_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path(), 3);
        write_idx(
            &dir.path().join("train-images-idx3-ubyte.gz"),
            &[4, 28, 28],
            &[0; 3 * 784],
        )
        .unwrap();
        let err = load(dir.path(), "train").unwrap_err().to_string();
        assert!(
            err.contains("train-images-idx3-ubyte.gz") && err.contains("payload"),
            "{err}"
        );
        write_idx(
            &dir.path().join("train-images-idx3-ubyte.gz"),
            &[3],
            &[0; 3],
        )
        .unwrap();
        let err = load(dir.path(), "train").unwrap_err().to_string();
        assert!(err.contains("magic"), "{err}");
    }

    #[test]
    fn missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path(), "t10k").unwrap_err().to_string();
        assert!(err.contains("t10k-images-idx3-ubyte.gz"), "{err}");
    }
}
