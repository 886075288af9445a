//! One file per verb: each is a short function from parsed arguments to a report.

mod host;
pub mod jail;
mod probe;
pub mod scan;

use crate::cli::Command;
use crate::error::{CliError, Result};

pub fn run(command: Command) -> Result<u8> {
    match command {
        Command::Scan(args) => scan::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Detonate(_) => Err(CliError::Input("detonate: not built yet".into())),
        Command::Jail(args) => jail::run(args),
        Command::Host(args) => host::run(args),
    }
}
