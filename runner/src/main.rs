//! The `modelvet` binary.
fn main() {}
