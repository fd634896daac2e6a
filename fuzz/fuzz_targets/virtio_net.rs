//! cargo-fuzz entry of the `virtio_net` target (its body lives in
//! `mica-fuzz-targets`, where `cargo test` replays it on stable).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mica_fuzz_targets::models::virtio_net(data));
