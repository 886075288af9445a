//! The `modelvet` binary: parses the command line, runs one command, maps the outcome to SPEC's
//! exit codes (0 clean, 1 findings at or above --fail-on, 2 usage or unreadable input, 3 the
//! sandbox could not be set up).

use std::process::ExitCode;

mod cli;
mod commands;
mod error;
mod host;
mod memcpy;
mod probe;
mod report;
mod start;

/// The musl build's allocator (see `sandbox::alloc`); glibc builds keep glibc's.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: sandbox::alloc::Pool = sandbox::alloc::Pool;

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "musl"))]
    start::protect_relro();
    // Before anything of ours is open (see there).
    report::capture_output_fd();
    let command = std::env::args_os().nth(1);
    let command = command.as_deref().and_then(|a| a.to_str());
    if command == Some("jail") {
        // A jail's few threads share one malloc arena: each arena glibc would make for a new
        // thread costs a 128 MB reservation, its trimming, first-touch faults and pages the exit
        // frees again (with one cpu.stat read less, 5.35 -> 5.17 ms per `jail -- /bin/true`,
        // interleaved medians of 200). Not for probe: its STRIP allocates on two threads at once.
        sandbox::sys::single_malloc_arena();
    }
    // The sandboxing commands start the slowest part of the sandbox's set-up at once, and stop
    // their sandboxes cleanly on Ctrl-C or SIGTERM (a cleanup nicety: should it fail, the signals
    // keep their default action and the program still dies with us by its parent-death signal).
    if matches!(command, Some("jail" | "probe" | "detonate")) {
        // The entry started this sandbox's network namespace already (see start.rs).
        sandbox::netns_made_by(start::early_netns, start::reap_early_netns);
        if command == Some("jail") {
            sandbox::warm_up_with_child();
        } else {
            sandbox::warm_up();
        }
        let _ = sandbox::interrupt::catch();
    }
    let cli = match cli::Cli::parse_args() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            sandbox::end_warm_up();
            return ExitCode::from(code);
        }
    };
    let result = commands::run(cli.command);
    // What the warm-up started for a sandbox that never came (the command failed first).
    sandbox::end_warm_up();
    if let Some(sig) = sandbox::interrupt::received() {
        // Whatever the command made of its stopped sandbox (a report, or an error that follows
        // from the stop), the run is not complete: end by the signal itself, as if uncaught.
        drop(result);
        eprintln!(
            "modelvet: interrupted by {}: the sandbox was stopped and removed",
            sandbox::interrupt::name(sig)
        );
        sandbox::interrupt::die_by(sig);
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if e.is_broken_pipe() {
                return ExitCode::SUCCESS;
            }
            // Errors quote paths and names a model or file chose: no control sequence of theirs
            // reaches the terminal (the message's own line breaks stay).
            eprintln!("modelvet: {}", report::text::terminal_safe(e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}
