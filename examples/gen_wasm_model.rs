//! Placeholder while the host lands.
fn main() {}
