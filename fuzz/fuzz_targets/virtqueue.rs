//! cargo-fuzz entry of the `virtqueue` target (its body lives in
//! `mica-fuzz-targets`, where `cargo test` replays it on stable).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mica_fuzz_targets::virtqueue::virtqueue(data));
