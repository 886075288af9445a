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

/// The spawning thread blocks every signal around the clone (the child must never run one of our
/// handlers) and must get its own mask back.
#[test]
fn spawning_leaves_the_callers_signal_mask_as_it_was() {
    let mask = || {
        // SAFETY: sigset_t is plain data; pthread_sigmask with a null new set only reads.
        let mut cur: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut cur) };
        (1..=64)
            // SAFETY: `cur` is an initialised sigset.
            .filter(|&s| unsafe { libc::sigismember(&cur, s) } == 1)
            .collect::<Vec<i32>>()
    };
    // SAFETY: sigset_t is plain data; all-zero is a valid value.
    let mut one: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `one` is a valid, writable sigset.
    unsafe { libc::sigemptyset(&mut one) };
    // SAFETY: as above, and SIGUSR2 is a valid signal number.
    unsafe { libc::sigaddset(&mut one, libc::SIGUSR2) };
    // SAFETY: blocks one signal on this test thread only.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &one, std::ptr::null_mut()) };
    let before = mask();
    assert_eq!(before, vec![libc::SIGUSR2]);
    let mut cfg = sandbox::Config::new("/bin/true");
    cfg.echo_output = false;
    let out = sandbox::spawn(cfg).expect("spawn").wait();
    assert_eq!(out.exit.code, Some(0), "{:?}", out.exit);
    assert_eq!(mask(), before);
}

/// Several threads spawning at once: each child runs on its own stack and plan in our shared
/// memory (CLONE_VM), and none may see another's or hang.
#[test]
fn threads_spawning_at_once_each_get_their_own_sandbox() {
    let workers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                for i in 0..10 {
                    let mut cfg = sandbox::Config::new("/bin/sh");
                    cfg.args = vec!["-c".into(), format!("exit {}", (w * 10 + i) % 50).into()];
                    cfg.echo_output = false;
                    let out = sandbox::spawn(cfg).expect("spawn").wait();
                    assert_eq!(out.exit.code, Some((w * 10 + i) % 50), "{:?}", out.exit);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a spawning thread failed");
    }
}

/// Limits it cannot apply safely are refused before anything is made: a memory limit small enough
/// for the child's set-up (which shares our memory until its exec) to be OOM-killed would take
/// this process with it; a timeout past `MAX_TIMEOUT` has no representable deadline.
#[test]
fn limits_it_cannot_apply_are_refused_before_anything_runs() {
    for (memory, timeout, pids) in [
        (sandbox::MIN_MEMORY - 1, Duration::from_secs(5), 64),
        (64 << 10, Duration::from_secs(5), 64),
        (1 << 30, sandbox::MAX_TIMEOUT + Duration::from_secs(1), 64),
        (1 << 30, Duration::ZERO, 64),
        (1 << 30, Duration::from_secs(5), 0),
        (1 << 30, Duration::from_secs(5), sandbox::MAX_PIDS + 1),
    ] {
        let mut cfg = sandbox::Config::new("/bin/true");
        cfg.echo_output = false;
        cfg.memory = memory;
        cfg.timeout = timeout;
        cfg.pids = pids;
        match sandbox::spawn(cfg) {
            Err(sandbox::SandboxError::Limit(_)) => {}
            Err(e) => panic!("{memory} bytes, {timeout:?}, {pids} pids: wrong error {e}"),
            Ok(r) => panic!(
                "{memory} bytes, {timeout:?}, {pids} pids: ran ({:?})",
                r.wait().exit
            ),
        }
    }
    let mut cfg = sandbox::Config::new("/bin/true");
    cfg.echo_output = false;
    cfg.memory = sandbox::MIN_MEMORY;
    let out = sandbox::spawn(cfg).expect("spawn at the minimum").wait();
    assert_eq!(out.exit.code, Some(0), "{:?}", out.exit);
}
