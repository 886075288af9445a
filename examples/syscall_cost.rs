//! Measures the per-call cost of an allowed syscall (getppid) and of a recorded one (openat of
//! /dev/null, plus its close), for the jail benchmark: run it bare and under `modelvet jail` and
//! compare. Run: `cargo run --release --example syscall_cost -- 200000 20000`.

use std::time::Instant;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let allowed_n = args.first().copied().unwrap_or(200_000);
    let recorded_n = args.get(1).copied().unwrap_or(20_000);

    let t = Instant::now();
    for _ in 0..allowed_n {
        // SAFETY: getppid has no arguments and cannot fail.
        std::hint::black_box(unsafe { libc::syscall(libc::SYS_getppid) });
    }
    let allowed_ns = t.elapsed().as_nanos() as f64 / allowed_n as f64;

    let t = Instant::now();
    for _ in 0..recorded_n {
        // SAFETY: a NUL-terminated path.
        let fd = unsafe {
            libc::openat(
                libc::AT_FDCWD,
                c"/dev/null".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: the fd was just opened and is closed once.
            unsafe { libc::close(fd) };
        }
    }
    let recorded_ns = t.elapsed().as_nanos() as f64 / recorded_n as f64;
    println!("{{\"allowed_ns\": {allowed_ns:.1}, \"recorded_ns\": {recorded_ns:.1}}}");
}
