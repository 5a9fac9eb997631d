//! The list-file parser (ImageNet-LT / iNaturalist `<path> <label>` lines) on arbitrary
//! bytes, with and without `--skip-bad`: `Ok` or `Err`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        if std::path::Path::new("/dev/shm").is_dir() {
            tempfile::tempdir_in("/dev/shm")
        } else {
            tempfile::tempdir()
        }
        .unwrap()
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    let list = dir().join("list.txt");
    std::fs::write(&list, data).unwrap();
    let _ = extract::datasets::listfile::load(&list, dir(), false);
    let _ = extract::datasets::listfile::load(&list, dir(), true);
});
