//! A safetensors file written tensor by tensor, piece by piece: the header first (shapes and
//! dtypes are known up front), then each tensor's bytes from a callback that may produce them
//! in any number of writes — so a split of iNaturalist's 437 513 rows is assembled from its
//! chunks without holding more than one chunk. The bytes are exactly those of
//! `safetensors::serialize` for the same tensors (same order: dtype descending, then name;
//! same compact JSON header padded with spaces to 8 bytes; test below), and the file is
//! written atomically like every bank file.

use crate::error::Result;
use crate::write::write_atomic;
use safetensors::Dtype;
use safetensors::tensor::TensorInfo;
use std::io::Write;
use std::path::Path;

/// One tensor of a streamed file: its name, dtype and shape.
#[derive(Debug, Clone)]
pub struct StreamTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

impl StreamTensor {
    pub fn new(name: &str, dtype: Dtype, shape: Vec<usize>) -> StreamTensor {
        StreamTensor {
            name: name.to_owned(),
            dtype,
            shape,
        }
    }

    fn bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.bitsize() / 8
    }
}

/// Counts what goes through, to check each tensor got exactly its bytes.
struct Counting<'a, W: Write> {
    inner: &'a mut W,
    n: usize,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The header safetensors writes for `tensors` (in its order), and that order.
fn header(tensors: &[StreamTensor]) -> (Vec<u8>, Vec<usize>) {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&l, &r| {
        let (l, r) = (&tensors[l], &tensors[r]);
        r.dtype.cmp(&l.dtype).then(l.name.cmp(&r.name))
    });
    let mut json = String::from("{");
    let mut offset = 0;
    for (i, &t) in order.iter().enumerate() {
        let t = &tensors[t];
        let info = TensorInfo {
            dtype: t.dtype,
            shape: t.shape.clone(),
            data_offsets: (offset, offset + t.bytes()),
        };
        offset += t.bytes();
        if i > 0 {
            json.push(',');
        }
        json.push_str(&serde_json::to_string(&t.name).expect("a string"));
        json.push(':');
        json.push_str(&serde_json::to_string(&info).expect("plain fields"));
    }
    json.push('}');
    let mut bytes = json.into_bytes();
    bytes.resize(bytes.len().next_multiple_of(8), b' ');
    (bytes, order)
}

/// Write `tensors` to `path`: `fill(i, out)` writes the little-endian bytes of `tensors[i]`
/// (called once per tensor, in the file's order). A callback that writes more or fewer bytes
/// than the tensor's shape and dtype say is an error, and nothing is left at `path`.
pub fn write_streamed(
    path: &Path,
    tensors: &[StreamTensor],
    mut fill: impl FnMut(usize, &mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let (head, order) = header(tensors);
    write_atomic(path, |tmp| {
        let file = std::fs::File::create(tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        w.write_all(&(head.len() as u64).to_le_bytes())?;
        w.write_all(&head)?;
        for &t in &order {
            let mut c = Counting {
                inner: &mut w,
                n: 0,
            };
            fill(t, &mut c)?;
            if c.n != tensors[t].bytes() {
                return Err(std::io::Error::other(format!(
                    "tensor `{}`: {} bytes written, {} expected",
                    tensors[t].name,
                    c.n,
                    tensors[t].bytes()
                )));
            }
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{RawTensor, save_tensors};

    /// The streamed file is byte for byte what safetensors itself writes, with the bytes of
    /// each tensor given in several pieces.
    #[test]
    fn streamed_bytes_equal_safetensors_serialize() {
        let d = tempfile::tempdir().unwrap();
        let raws = [
            ("features", Dtype::F16, vec![5usize, 3]),
            ("labels", Dtype::I64, vec![5]),
            ("features_flip", Dtype::F16, vec![5, 3]),
            ("view0", Dtype::F32, vec![5, 3]),
            ("empty", Dtype::U8, vec![0]),
        ];
        let data: Vec<Vec<u8>> = raws
            .iter()
            .enumerate()
            .map(|(i, (_, dt, sh))| {
                let n = sh.iter().product::<usize>() * dt.bitsize() / 8;
                (0..n).map(|b| (b * 7 + i * 31) as u8).collect()
            })
            .collect();
        let want = d.path().join("want.safetensors");
        save_tensors(
            &want,
            raws.iter()
                .zip(&data)
                .map(|((n, dt, sh), b)| {
                    (
                        *n,
                        RawTensor {
                            dtype: *dt,
                            shape: sh.clone(),
                            bytes: b.clone(),
                        },
                    )
                })
                .collect(),
        )
        .unwrap();
        let got = d.path().join("got.safetensors");
        let ts: Vec<StreamTensor> = raws
            .iter()
            .map(|(n, dt, sh)| StreamTensor::new(n, *dt, sh.clone()))
            .collect();
        write_streamed(&got, &ts, |i, w| {
            for piece in data[i].chunks(4) {
                w.write_all(piece)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&want).unwrap());
    }

    #[test]
    fn a_short_tensor_is_an_error_and_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.safetensors");
        let ts = [StreamTensor::new("labels", Dtype::I64, vec![2])];
        let err = write_streamed(&p, &ts, |_, w| w.write_all(&[0u8; 8])).unwrap_err();
        assert!(
            err.to_string().contains("8 bytes written, 16 expected"),
            "{err}"
        );
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
