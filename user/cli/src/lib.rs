//! The part of the host `mica` CLI that `cargo xtask qemu` shares: where
//! the management socket is when nobody names one ([`socket_path`]).
#![forbid(unsafe_code)]

pub mod socket_path;
