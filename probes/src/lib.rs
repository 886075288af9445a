//! Pure computation for modelvet: model file formats, probe generation, backdoor statistics.
//! Nothing here spawns processes or touches the sandbox, so every part can be fuzzed and
//! unit-tested in-process.

pub mod classifier;
pub mod finding;
pub mod formats;
pub mod pickle;
pub mod probegen;
pub mod scan;
pub mod stats;
pub mod strip;
pub mod trigger;
