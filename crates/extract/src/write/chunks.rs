//! Extraction in chunks, so that it can be resumed and sharded: every split (after `--limit`)
//! is cut into chunks of `chunk_rows` rows (default 4 096); chunk `c` of a split holds the
//! features of rows `c·R .. (c + 1)·R`, computed in batches that start at the chunk's first
//! row, and is written atomically to `<out>.partial/chunks/<split>-<c>.safetensors` as soon as
//! it is done. Chunk `c` belongs to shard `c mod n`. A chunk's bytes therefore depend on its
//! rows and the run's arguments only — not on whether the run was interrupted, resumed or
//! split — which is what makes resumed and merged banks byte-identical to one-shot ones.
//!
//! `run.json` beside the chunks records the arguments that decide the bytes ([`RunFile`]); a
//! `--resume` or a `merge` with other arguments is refused naming the field.

use crate::error::{ExtractError, Result};
use bank::FeatureDtype;
use bank::write::{RawTensor, save_tensors};
use safetensors::Dtype;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Rows per chunk by default.
pub const CHUNK_ROWS: usize = 4096;

/// `--shard i/n`: this run extracts the chunks `c` with `c mod n = i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole extraction (no `--shard`).
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn owns(&self, chunk: usize) -> bool {
        chunk % self.count == self.index
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Where a shard's part goes for `--out <out>`: `<out>.shard-<i>-of-<n>`.
    pub fn part_dir(&self, out: &Path) -> PathBuf {
        let mut name = out.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".shard-{}-of-{}", self.index, self.count));
        out.with_file_name(name)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not `INDEX/COUNT` (e.g. 0/8)"))?;
        let i: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: index `{i}` is not a non-negative integer"))?;
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: count `{n}` is not a positive integer"))?;
        if n == 0 {
            return Err(format!("`{s}`: the count must be at least 1"));
        }
        if i >= n {
            return Err(format!(
                "`{s}`: the index must be below the count (0..={})",
                n - 1
            ));
        }
        Ok(Shard { index: i, count: n })
    }
}

/// `run.json`: what decides the bytes of the chunks (`run`, compared field by field), which
/// shard wrote them, and the bank's meta.json and head note as they will be written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunFile {
    pub format: u32,
    /// dataset, inputs (rows and fingerprint per split), arch, weights, path, transform,
    /// seed, views, feature dtype, batch size, chunk rows, limit, skip_bad, shards.
    pub run: BTreeMap<String, serde_json::Value>,
    pub shard: usize,
    /// Rows of each split, in order (train, val, test).
    pub splits: Vec<(String, usize)>,
    /// meta.json without what the chunks tell (train counts, skips).
    pub meta: serde_json::Value,
    /// Feature width, and the storage dtype.
    pub dim: usize,
    pub dtype: String,
    pub views: usize,
    pub chunk_rows: usize,
    /// Skip messages of the source itself (bad list lines).
    pub source_skipped: Vec<String>,
}

impl RunFile {
    pub const FORMAT: u32 = 1;

    pub fn shards(&self) -> usize {
        self.run.get("shards").and_then(|v| v.as_u64()).unwrap_or(1) as usize
    }

    pub fn feature_dtype(&self) -> FeatureDtype {
        if self.dtype == "f16" {
            FeatureDtype::F16
        } else {
            FeatureDtype::F32
        }
    }

    pub fn read(path: &Path) -> Result<RunFile> {
        let text = std::fs::read_to_string(path).map_err(|e| ExtractError::io(path, e))?;
        let rf: RunFile = serde_json::from_str(&text)
            .map_err(|e| ExtractError::format(path, &format!("not a run.json: {e}")))?;
        if rf.format != Self::FORMAT {
            return Err(ExtractError::format(
                path,
                &format!(
                    "`format` {} (this extract writes {})",
                    rf.format,
                    Self::FORMAT
                ),
            ));
        }
        Ok(rf)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("run.json serialises") + "\n";
        bank::write::write_atomic(path, |tmp| std::fs::write(tmp, text))?;
        Ok(())
    }

    /// The first field of `run` in which `other` differs, with both values.
    pub fn first_difference(&self, other: &RunFile) -> Option<(String, String, String)> {
        let keys: std::collections::BTreeSet<&String> =
            self.run.keys().chain(other.run.keys()).collect();
        let show = |v: Option<&serde_json::Value>| match v {
            Some(v) => {
                let s = v.to_string();
                if s.len() > 80 {
                    format!("{}…", s.chars().take(80).collect::<String>())
                } else {
                    s
                }
            }
            None => "absent".to_string(),
        };
        keys.into_iter()
            .find(|k| self.run.get(*k) != other.run.get(*k))
            .map(|k| (k.clone(), show(self.run.get(k)), show(other.run.get(k))))
    }
}

/// The chunks of a split of `rows` rows.
pub fn chunk_count(rows: usize, chunk_rows: usize) -> usize {
    rows.div_ceil(chunk_rows)
}

/// `<dir>/chunks/<split>-<c>.safetensors`.
pub fn chunk_path(dir: &Path, split: &str, chunk: usize) -> PathBuf {
    dir.join("chunks")
        .join(format!("{split}-{chunk:06}.safetensors"))
}

/// The features of some rows of a split: the test view, its flip (val / test), the random
/// train views, the labels of the rows kept and the skip messages of the others.
#[derive(Debug, Default)]
pub struct Features {
    pub features: Vec<f32>,
    pub flip: Option<Vec<f32>>,
    pub views: Vec<Vec<f32>>,
    pub labels: Vec<u32>,
    pub skipped: Vec<String>,
}

fn floats(x: &[f32], rows: usize, dim: usize, dtype: FeatureDtype) -> RawTensor {
    match dtype {
        FeatureDtype::F32 => RawTensor {
            dtype: Dtype::F32,
            shape: vec![rows, dim],
            bytes: x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        },
        FeatureDtype::F16 => RawTensor {
            dtype: Dtype::F16,
            shape: vec![rows, dim],
            bytes: x
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        },
    }
}

/// Write one chunk (atomically): `features`, `features_flip`, `view<v>` in the bank's dtype,
/// `labels` (i64) and `skipped` (the skip messages as JSON bytes).
pub fn write_chunk(path: &Path, dim: usize, f: &Features, dtype: FeatureDtype) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ExtractError::io(dir, e))?;
    }
    let rows = f.labels.len();
    let mut t = vec![
        (
            "features".to_string(),
            floats(&f.features, rows, dim, dtype),
        ),
        (
            "labels".to_string(),
            RawTensor {
                dtype: Dtype::I64,
                shape: vec![rows],
                bytes: f
                    .labels
                    .iter()
                    .flat_map(|&l| (l as i64).to_le_bytes())
                    .collect(),
            },
        ),
    ];
    if let Some(fl) = &f.flip {
        t.push(("features_flip".to_string(), floats(fl, rows, dim, dtype)));
    }
    for (v, x) in f.views.iter().enumerate() {
        t.push((format!("view{v}"), floats(x, rows, dim, dtype)));
    }
    let skipped = serde_json::to_vec(&f.skipped).expect("strings serialise");
    t.push((
        "skipped".to_string(),
        RawTensor {
            dtype: Dtype::U8,
            shape: vec![skipped.len()],
            bytes: skipped,
        },
    ));
    save_tensors(
        path,
        t.iter().map(|(n, r)| (n.as_str(), r.clone())).collect(),
    )?;
    Ok(())
}

/// A written chunk: its safetensors header read at open, each tensor read (by seeking) when
/// asked — the assembler reads every byte of a chunk once, and the labels of a chunk without
/// its features.
pub struct Chunk {
    path: PathBuf,
    /// Tensor name → absolute byte range in the file.
    ranges: std::collections::HashMap<String, (u64, u64)>,
}

impl Chunk {
    pub fn read(path: &Path) -> Result<Chunk> {
        use std::io::Read;
        let bad = |msg: &str| ExtractError::format(path, format!("not a chunk: {msg}"));
        let mut f = std::fs::File::open(path).map_err(|e| ExtractError::io(path, e))?;
        let len = f.metadata().map_err(|e| ExtractError::io(path, e))?.len();
        let mut n = [0u8; 8];
        f.read_exact(&mut n)
            .map_err(|_| bad("shorter than 8 bytes"))?;
        let n = u64::from_le_bytes(n);
        if n > len.saturating_sub(8) || n > 100 << 20 {
            return Err(bad("header length past the end of the file"));
        }
        let mut head = vec![0u8; n as usize];
        f.read_exact(&mut head)
            .map_err(|e| ExtractError::io(path, e))?;
        let head: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&head).map_err(|e| bad(&format!("header: {e}")))?;
        let mut ranges = std::collections::HashMap::new();
        for (name, info) in head {
            if name == "__metadata__" {
                continue;
            }
            let off = info["data_offsets"].as_array().and_then(|o| match o[..] {
                [ref a, ref b] => Some((a.as_u64()?, b.as_u64()?)),
                _ => None,
            });
            let (a, b) = off.ok_or_else(|| bad(&format!("`{name}` has no data_offsets")))?;
            let (a, b) = (8 + n + a, 8 + n + b);
            if a > b || b > len {
                return Err(bad(&format!("`{name}` lies past the end of the file")));
            }
            ranges.insert(name, (a, b));
        }
        Ok(Chunk {
            path: path.into(),
            ranges,
        })
    }

    /// The raw little-endian bytes of tensor `name`.
    pub fn raw(&self, name: &str) -> Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let &(a, b) = self.ranges.get(name).ok_or_else(|| {
            ExtractError::format(&self.path, format!("chunk has no tensor `{name}`"))
        })?;
        let io = |e| ExtractError::io(&self.path, e);
        let mut f = std::fs::File::open(&self.path).map_err(io)?;
        f.seek(SeekFrom::Start(a)).map_err(io)?;
        let mut bytes = vec![0u8; (b - a) as usize];
        f.read_exact(&mut bytes).map_err(io)?;
        Ok(bytes)
    }

    pub fn rows(&self) -> Result<usize> {
        let &(a, b) = self
            .ranges
            .get("labels")
            .ok_or_else(|| ExtractError::format(&self.path, "chunk has no tensor `labels`"))?;
        Ok(((b - a) / 8) as usize)
    }

    pub fn labels(&self) -> Result<Vec<u32>> {
        Ok(self
            .raw("labels")?
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as u32)
            .collect())
    }

    pub fn skipped(&self) -> Result<Vec<String>> {
        serde_json::from_slice(&self.raw("skipped")?)
            .map_err(|e| ExtractError::format(&self.path, format!("`skipped`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_own_their_chunks() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s, Shard { index: 1, count: 3 });
        assert_eq!(
            (0..7).filter(|&c| s.owns(c)).collect::<Vec<_>>(),
            vec![1, 4]
        );
        assert!(
            "3/3"
                .parse::<Shard>()
                .unwrap_err()
                .contains("below the count")
        );
        assert!("0/0".parse::<Shard>().unwrap_err().contains("at least 1"));
        assert!("a/2".parse::<Shard>().unwrap_err().contains("index `a`"));
        assert!("2".parse::<Shard>().unwrap_err().contains("INDEX/COUNT"));
        assert_eq!(
            s.part_dir(Path::new("features/inat")),
            PathBuf::from("features/inat.shard-1-of-3")
        );
    }

    #[test]
    fn a_chunk_reads_back() {
        let d = tempfile::tempdir().unwrap();
        let p = chunk_path(d.path(), "test", 3);
        let f = Features {
            features: vec![1.0, 2.0, 3.0, 4.0],
            flip: Some(vec![5.0, 6.0, 7.0, 8.0]),
            views: vec![],
            labels: vec![7, 9],
            skipped: vec!["x.jpg: bad".into()],
        };
        write_chunk(&p, 2, &f, FeatureDtype::F32).unwrap();
        let c = Chunk::read(&p).unwrap();
        assert_eq!(c.rows().unwrap(), 2);
        assert_eq!(c.labels().unwrap(), vec![7, 9]);
        assert_eq!(c.skipped().unwrap(), vec!["x.jpg: bad".to_string()]);
        assert_eq!(
            &c.raw("features_flip").unwrap()[..],
            &f.flip
                .as_ref()
                .unwrap()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()[..]
        );
        assert_eq!(chunk_count(8193, 4096), 3);
    }
}
