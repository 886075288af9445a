//! `warm_up_with_child` run unprivileged (as nobody, when the tests run as root): the helper
//! cannot make the network namespace ahead (no CAP_SYS_ADMIN), so the child's clone makes it, and
//! the next spawn still takes that child. Its own test binary: it changes this process's user for
//! good, before the sandbox has looked at the host.

#[test]
fn an_unprivileged_caller_also_gets_the_child_started_ahead() {
    // SAFETY: geteuid has no failure modes.
    if unsafe { libc::geteuid() } == 0 {
        // The groups first, while still privileged (glibc applies each to every thread). Where
        // root cannot become nobody (65534 unmapped in a user namespace, say), there is nothing
        // to test here.
        // SAFETY: setgroups with an empty list.
        let dropped = unsafe { libc::setgroups(0, std::ptr::null()) } == 0
            // SAFETY: setgid with a constant id.
            && unsafe { libc::setgid(65534) } == 0
            // SAFETY: setuid with a constant id.
            && unsafe { libc::setuid(65534) } == 0;
        if !dropped {
            eprintln!(
                "skipped: cannot become nobody: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
    }
    // A working folder nobody may enter, as for any program run as nobody.
    std::env::set_current_dir("/").unwrap();
    sandbox::warm_up_with_child();
    let mut cfg = sandbox::Config::new("/bin/true");
    cfg.echo_output = false;
    let running = sandbox::spawn(cfg).expect("spawn");
    assert_eq!(running.started_ahead(), cfg!(target_arch = "x86_64"));
    assert_eq!(running.wait().exit.code, Some(0));
}
