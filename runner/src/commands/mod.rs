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
        Command::UnwindCheck => unwind_check(),
    }
}

/// A panic, caught: returns only if it unwound (a binary whose unwind tables cannot be found
/// aborts here instead, exit 134). Quietly: the panic message is not printed.
fn unwind_check() -> Result<u8> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let caught = std::panic::catch_unwind(|| {
        let empty: Vec<u8> = Vec::new();
        empty[std::hint::black_box(1)]
    })
    .is_err();
    std::panic::set_hook(hook);
    println!("unwinding: {}", if caught { "ok" } else { "not caught" });
    Ok(if caught { 0 } else { 1 })
}
