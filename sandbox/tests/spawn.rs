//! The sandbox library used directly, from a process with other threads alive.

use std::time::{Duration, Instant};

/// Regression (issue 5, found by the detonate engineer): with another thread alive at clone
/// time, glibc's setresuid in the child waited forever for threads that only exist in the
/// parent, and setup hung until its 10 s timeout in about half of the runs.
#[test]
fn spawning_while_other_threads_run_never_hangs() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let busy = std::thread::spawn(move || {
        // Alive (blocked) for the whole test.
        let _ = rx.recv();
    });
    for _ in 0..12 {
        let t = Instant::now();
        let mut cfg = sandbox::Config::new("/bin/true");
        cfg.echo_output = false;
        let out = sandbox::spawn(cfg).expect("spawn").wait();
        assert_eq!(out.exit.code, Some(0), "{:?}", out.exit);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "setup hung: {:?}",
            t.elapsed()
        );
    }
    drop(tx);
    busy.join().unwrap();
}
