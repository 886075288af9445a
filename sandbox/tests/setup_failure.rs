//! A setup step that fails in the child is reported with its step and errno, and nothing runs.
//! Its own test binary: it lowers this process's hard CPU limit, which no other test should see.

/// The child sets RLIMIT_CPU to the timeout plus two seconds, soft and hard. Above the hard limit
/// it inherited that needs CAP_SYS_RESOURCE in the initial user namespace, which the child, root
/// of its own namespace only, lacks: the step fails with EPERM in the child, between clone and
/// exec, and must come back as a setup error naming the step, not run the program or hang.
#[test]
fn a_step_failing_in_the_child_comes_back_with_its_step_and_errno() {
    let hard = 600;
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit with a valid rlimit; lowering a hard limit needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_CPU, &lim) }, 0);

    let marker =
        std::env::temp_dir().join(format!("modelvet-setup-failure-{}", std::process::id()));
    let mut cfg = sandbox::Config::new("/bin/sh");
    cfg.args = vec![
        "-c".into(),
        format!("echo ran > {}", marker.display()).into(),
    ];
    cfg.allow_exec = true;
    cfg.echo_output = false;
    cfg.timeout = std::time::Duration::from_secs(hard + 60);
    match sandbox::spawn(cfg) {
        Err(sandbox::SandboxError::Setup { step, error, .. }) => {
            assert_eq!(step, "setting resource limits");
            assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}");
        }
        Err(other) => panic!("expected a setup error, got {other}"),
        Ok(running) => panic!("the program ran: {:?}", running.wait().exit),
    }
    assert!(!marker.exists(), "nothing may run after a failed setup");

    // The same limit within the hard one: the sandbox works in this process.
    let mut cfg = sandbox::Config::new("/bin/true");
    cfg.echo_output = false;
    cfg.timeout = std::time::Duration::from_secs(10);
    let out = sandbox::spawn(cfg).expect("spawn").wait();
    assert_eq!(out.exit.code, Some(0), "{:?}", out.exit);
}
