//! SIGINT, SIGTERM and SIGHUP while sandboxes run: a Ctrl-C, a CI job's cancellation, a closed
//! terminal. Left to their default action they would end this process at once, leaving the
//! program's cgroups behind and the program itself to its parent-death signal. Caught, they stop
//! every running sandbox the way a timeout does: the supervisor kills the tree, removes the
//! cgroups and returns an outcome with status `killed`, so the caller can still write its report.
//!
//! When no sandbox is running, or when the signal comes a second time, the handler restores the
//! default action and raises the signal again: the process ends at once, as it would have
//! without us.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use crate::sys::{SysError, SysResult};

/// The first interrupting signal received while a sandbox ran, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Sandboxes between the start of their set-up and the removal of their cgroups.
static LIVE: AtomicUsize = AtomicUsize::new(0);

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: atomics, sigaction and raise.
    if LIVE.load(Ordering::SeqCst) > 0
        && RECEIVED
            .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        return;
    }
    // The signal is blocked while this handler runs, so the raised one is delivered (with its
    // default action) as the handler returns.
    restore_default(sig);
    // SAFETY: raise is async-signal-safe.
    unsafe { libc::raise(sig) };
}

/// Gives `sig` its default action again (async-signal-safe: sigaction only).
fn restore_default(sig: libc::c_int) {
    // SAFETY: all-zero is a valid sigaction (plain data), SIG_DFL filled in below.
    let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
    dfl.sa_sigaction = libc::SIG_DFL;
    // SAFETY: a valid action for a catchable signal.
    unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) };
}

/// Catches SIGINT, SIGTERM and SIGHUP for the rest of the process's life (see the module). A
/// signal the process was started with ignored (`nohup`, a shell's background job) stays ignored.
pub fn catch() -> SysResult<()> {
    for sig in SIGNALS {
        // SAFETY: all-zero is a valid sigaction; `old` receives the current disposition.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a query (null new action) into a valid out-pointer.
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
            return Err(SysError {
                call: "sigaction",
                errno: crate::sys::errno(),
            });
        }
        if old.sa_sigaction == libc::SIG_IGN {
            continue;
        }
        // SAFETY: all-zero is a valid sigaction (plain data), filled in below with a handler that
        // only touches atomics and makes async-signal-safe calls.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        act.sa_flags = libc::SA_RESTART;
        // SAFETY: a valid action for a catchable signal.
        if unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) } != 0 {
            return Err(SysError {
                call: "sigaction",
                errno: crate::sys::errno(),
            });
        }
    }
    Ok(())
}

/// Ends the process by `sig` with its default action, as if it had never been caught: a shell
/// running modelvet in a loop sees a death by SIGINT and stops the loop, which an exit code of
/// 130 would not make it do. For after the clean-up.
pub fn die_by(sig: i32) -> ! {
    restore_default(sig);
    // SAFETY: sigset_t is plain data that sigemptyset initialises.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: `set` is a valid sigset; `sig` a valid signal number.
    unsafe { libc::sigaddset(&mut set, sig) };
    // SAFETY: unblocks one signal of the calling thread; the old mask is not wanted.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    // SAFETY: raise(3) with the default action set ends the process here.
    unsafe { libc::raise(sig) };
    std::process::exit(128 + sig)
}

/// The interrupting signal received while a sandbox ran, if any (it stays set).
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The signal's name, for messages.
pub fn name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        s => format!("signal {s}"),
    }
}

/// Counts a sandbox as live (an interrupt is then caught, not fatal) until dropped.
#[derive(Debug)]
pub(crate) struct Live(());

impl Live {
    pub(crate) fn new() -> Live {
        LIVE.fetch_add(1, Ordering::SeqCst);
        Live(())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}
