//! The checkpoint reader (`torch.save` zip and legacy files, safetensors; the format told by
//! content) on arbitrary bytes: `Ok` or one error line, never a panic or a runaway allocation.
//! Seeds: `crates/extract/tests/fixtures/checkpoints/tiny.{legacy,zip}.pth`. The bounded
//! version that CI runs: `crates/extract/tests/fuzz_checkpoint.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = extract::model::checkpoint::tensors_from_bytes(std::path::Path::new("fuzz.pth"), data);
});
