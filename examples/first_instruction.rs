//! Prints, as the first thing its `main` does, the `CLOCK_MONOTONIC` time in nanoseconds on
//! stderr (`first_instruction_ns N`). Launched through a sandbox, it tells when the sandboxed
//! program began: `bench/jail_bench.sh` takes the clock just before launching `modelvet jail` or
//! bwrap with it and reports the difference, SPEC's "spawn to first instruction", measured the
//! same way for both (the program's own start-up, its loader and runtime, is in both figures).
//! Run: `cargo run --release -p sandbox --example first_instruction`

fn main() {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        eprintln!(
            "first_instruction: clock_gettime: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
    let ns = i128::from(now.tv_sec) * 1_000_000_000 + i128::from(now.tv_nsec);
    eprintln!("first_instruction_ns {ns}");
}
