//! `warm_up_with_child` starts the next sandbox's child ahead of its plan, and the next spawn
//! takes it; a plan whose paths cover the part of the root the child built first gets a child of
//! its own. Its own test binary: the child started ahead and the scan behind it are the
//! process's, for its next spawn, which another test's spawn would take (see also
//! `ahead_unprivileged.rs`).

fn run(cfg: sandbox::Config) -> (bool, Option<i32>) {
    let running = sandbox::spawn(cfg).expect("spawn");
    let ahead = running.started_ahead();
    (ahead, running.wait().exit.code)
}

fn config(ro: &[&str]) -> sandbox::Config {
    let mut cfg = sandbox::Config::new("/bin/true");
    cfg.echo_output = false;
    cfg.ro = ro.iter().map(Into::into).collect();
    cfg
}

#[test]
fn the_next_spawn_takes_the_child_started_ahead_unless_its_paths_cover_its_part() {
    let x86 = cfg!(target_arch = "x86_64");
    sandbox::warm_up_with_child();
    assert_eq!(run(config(&[])), (x86, Some(0)));
    // Taken: the spawn after it clones its own.
    assert_eq!(run(config(&[])), (false, Some(0)));
    sandbox::warm_up_with_child();
    assert_eq!(run(config(&["/etc"])), (false, Some(0)));
}
