//! One file per verb: each is a short function from parsed arguments to a report.

mod detonate;
mod host;
pub mod jail;
mod probe;
pub mod scan;

use crate::cli::Command;
use crate::error::Result;

pub fn run(command: Command) -> Result<u8> {
    match command {
        Command::Scan(args) => scan::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Detonate(args) => detonate::run(args),
        Command::Jail(args) => jail::run(args),
        Command::Host(args) => host::run(args),
    }
}
