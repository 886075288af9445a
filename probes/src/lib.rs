//! Pure computation for modelvet: model file formats, probe generation, backdoor statistics.
//! Nothing here spawns processes or touches the sandbox, so every part can be fuzzed and
//! unit-tested in-process.

pub mod finding;
pub mod formats;
pub mod classifier;
pub mod probegen;
pub mod stats;
pub mod strip;
pub mod trigger;
pub mod pickle;
pub mod scan;
