//! The pickle reader of `.pth` checkpoints and CIFAR batches on arbitrary bytes: `Ok` or
//! `Err`, never a panic or a runaway allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = extract::source::datasets::pickle::parse(data);
});
