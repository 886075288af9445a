//! The cgroups of a child started ahead (`warm_up_with_child`): it is born into its unified group
//! (made ahead for it) and joins its cgroup-v1 groups itself, so that, seen from the host while
//! it runs, it is in every group of its run; and a warm-up no spawn took leaves no group behind
//! (`end_warm_up`). Its own test binary: the child started ahead is the process's, for its next
//! spawn, which another test's spawn would take.

use sandbox::cgroup::Support;

/// The path of the group of `pid` in the hierarchy whose line in /proc/<pid>/cgroup starts with
/// `prefix` ("0::" for the unified one, "N:memory:" style for a v1 controller).
fn group_of(pid: i32, controller: Option<&str>) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match controller {
            None => ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        hit.then(|| path.to_string())
    })
}

/// Our groups left in the unified hierarchy, by name (`modelvet-<our pid>-...`).
fn ours_left(support: &Support) -> Vec<String> {
    let Some(u) = &support.unified else {
        return Vec::new();
    };
    let prefix = format!("modelvet-{}-", std::process::id());
    std::fs::read_dir(u)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

#[test]
fn the_child_started_ahead_is_in_every_group_of_its_run_and_an_untaken_warm_up_leaves_none() {
    let support = Support::detected();
    sandbox::warm_up_with_child();
    let mut cfg = sandbox::Config::new("/bin/sleep");
    cfg.args = vec!["5".into()];
    cfg.echo_output = false;
    let running = sandbox::spawn(cfg).expect("spawn");
    assert_eq!(running.started_ahead(), cfg!(target_arch = "x86_64"));
    let pid = running.pid();
    let me = std::process::id() as i32;
    let mut checked = 0;
    let mut hierarchies: Vec<Option<&str>> = Vec::new();
    if support.unified.is_some() {
        hierarchies.push(None);
    }
    for (name, c) in [("memory", &support.memory), ("pids", &support.pids)] {
        if c.as_ref().is_some_and(|c| !c.v2) {
            hierarchies.push(Some(name));
        }
    }
    for h in hierarchies {
        let (child, parent) = (group_of(pid, h).unwrap(), group_of(me, h).unwrap());
        let (dir, name) = child.rsplit_once('/').unwrap();
        assert!(
            name.starts_with(&format!("modelvet-{me}-")),
            "{h:?}: the child is in {child}, not in a group of this run"
        );
        assert_eq!(
            dir.trim_end_matches('/'),
            parent.trim_end_matches('/'),
            "{h:?}: the run's group sits below ours"
        );
        checked += 1;
    }
    running.kill();
    running.wait();
    if checked == 0 {
        eprintln!("skipped the group checks: this host gives us no cgroups");
    } else {
        eprintln!("checked the child's group in {checked} hierarchies");
    }
    assert_eq!(
        ours_left(&support),
        Vec::<String>::new(),
        "the run's group is gone"
    );

    // A warm-up whose spawn never comes: its child is ended and its group removed.
    sandbox::warm_up_with_child();
    sandbox::end_warm_up();
    assert_eq!(
        ours_left(&support),
        Vec::<String>::new(),
        "the warm-up's group is gone"
    );
}
