//! Probing support: the sandboxed model-host session and the .npy inputs.

pub mod npy;
pub mod session;
