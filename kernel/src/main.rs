//! Mica kernel binary.
fn main() {}
