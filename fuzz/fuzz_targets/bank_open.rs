//! `Bank::open` on arbitrary bytes as `train.safetensors`, next to a valid `test.safetensors`:
//! `Ok` or `Err`, never a panic, an abort or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// A folder in memory-backed /dev/shm when there is one, holding a valid test split.
fn dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            tempfile::tempdir_in("/dev/shm")
        } else {
            tempfile::tempdir()
        }
        .unwrap();
        let f32s = |shape: &[usize], v: &[f32]| bank::write::RawTensor {
            dtype: safetensors::Dtype::F32,
            shape: shape.to_vec(),
            bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        let labels = bank::write::RawTensor {
            dtype: safetensors::Dtype::I64,
            shape: vec![3],
            bytes: [0i64, 1, 2].iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        bank::write::save_tensors(
            &base.path().join("test.safetensors"),
            vec![("features", f32s(&[3, 2], &[0.0; 6])), ("labels", labels)],
        )
        .unwrap();
        base
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    std::fs::write(d.join("train.safetensors"), data).unwrap();
    let _ = bank::Bank::open(d);
});
