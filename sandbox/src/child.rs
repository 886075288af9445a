//! The child between clone and exec: walks the precomputed `ChildPlan` with raw syscalls only.
//! On x86_64 it shares the parent's memory (CLONE_VM, like posix_spawn) and runs on a stack of its
//! own; elsewhere it is a copy-on-write fork. Either way: no allocation, no locks, no logging, no
//! libc wrappers (their errno is the spawning thread's) and no writes outside its own stack. The
//! parent is multithreaded, so a lock held by another thread at clone time could never be taken
//! here, and every byte the child writes, the parent would see. Signals stay blocked until every
//! handler is reset to the default, so none of the parent's handlers runs here. Failures are
//! reported to the parent as a fixed-size record (step, index, errno) over the setup socket, then
//! the child exits.

use std::ffi::CStr;

use crate::plan::{ChildPlan, Op, RestPlan};
use crate::sys::{self, SysError};

/// Setup steps, reported to the parent on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    Sync = 1,
    Hostname,
    Mounts,
    Pivot,
    Cwd,
    Rlimits,
    Fds,
    NoNewPrivs,
    Landlock,
    Capabilities,
    Seccomp,
    Exec,
    UserNsLimits,
    CgroupNs,
    Cgroups,
}

impl Step {
    pub fn from_u32(v: u32) -> Option<Step> {
        use Step::*;
        [
            Sync,
            Hostname,
            Mounts,
            Pivot,
            Cwd,
            Rlimits,
            Fds,
            NoNewPrivs,
            Landlock,
            Capabilities,
            Seccomp,
            Exec,
            UserNsLimits,
            CgroupNs,
            Cgroups,
        ]
        .into_iter()
        .find(|s| *s as u32 == v)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Step::Sync => "synchronising with the supervisor",
            Step::Hostname => "setting the hostname in the new uts namespace",
            Step::Mounts => "building the read-only root (mount namespace)",
            Step::Pivot => "pivoting into the new root",
            Step::Cwd => "entering the working directory",
            Step::Rlimits => "setting resource limits",
            Step::Fds => "arranging file descriptors",
            Step::NoNewPrivs => "setting no_new_privs",
            Step::Landlock => "applying Landlock",
            Step::Capabilities => "dropping capabilities",
            Step::Seccomp => "installing the seccomp filter",
            Step::Exec => "executing the program",
            Step::UserNsLimits => "setting the user namespace's inotify limits (/proc/sys/user)",
            Step::CgroupNs => "making the cgroup namespace",
            Step::Cgroups => "joining the cgroup-v1 groups (writing to their tasks files)",
        }
    }
}

pub const MSG_READY: u8 = b'R';
pub const MSG_GO: u8 = b'G';
/// Our cgroups are made: the message carries the `tasks` files of the cgroup-v1 ones (none on
/// pure v2 hosts), which we join ourselves; limits hold from then on.
pub const MSG_CGROUPS: u8 = b'C';
pub const MSG_LISTENER: u8 = b'L';
/// The rest of the plan is stored (`ChildPlan::rest`): a child started ahead of its command's
/// plan waits for this once its early mounts are done.
pub const MSG_PLAN: u8 = b'P';
pub const MSG_ERROR: u8 = b'E';

fn fail(sock: i32, step: Step, index: u32, e: SysError) -> ! {
    let mut msg = [0u8; 13];
    msg[0] = MSG_ERROR;
    msg[1..5].copy_from_slice(&(step as u32).to_le_bytes());
    msg[5..9].copy_from_slice(&index.to_le_bytes());
    msg[9..13].copy_from_slice(&e.errno.to_le_bytes());
    let _ = sys::write_all_raw(sock, &msg);
    sys::exit_now(127)
}

/// The sandbox user namespace's own quotas, below the caller's: `/proc/sys/user` names the
/// writer's namespace, whoever's /proc it is.
const USER_NS_LIMITS: [(&CStr, &[u8]); 2] = [
    (c"/proc/sys/user/max_inotify_instances", b"32"),
    (c"/proc/sys/user/max_inotify_watches", b"8192"),
];

/// Runs in the child, from clone to exec. Never returns.
pub fn run(plan: &ChildPlan) -> ! {
    let sock = plan.sock;
    let or_fail = |step: Step, r: Result<(), SysError>| {
        if let Err(e) = r {
            fail(sock, step, 0, e)
        }
    };

    // Only the parent holds its end of the setup socket now: should it die, every wait for it
    // below reads the end of the socket.
    sys::close(plan.parent_sock);
    // Die with the supervisor. Set now and again after become_ns_root, whose change of effective
    // uid and gid clears it. The signal follows the thread that cloned us, and fires when that
    // thread ends even if the process lives on: a child started ahead of its plan was cloned by
    // a helper thread that ends, so it sets the signal once the rest of its plan is there (the
    // parent sends that only once the helper is gone and we have passed to another thread of
    // its; until then a dead parent shows as the end of the socket).
    let die_with_parent = || {
        or_fail(
            Step::Sync,
            sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64, 0).map(drop),
        )
    };
    if !plan.ahead {
        die_with_parent();
    }
    // Become dumpable so the parent may write our id maps. (Dumpable is a property of the
    // memory: under CLONE_VM it is the parent's too, which an ordinary process already has; the
    // exec gives the program its own.)
    or_fail(
        Step::Sync,
        sys::prctl(libc::PR_SET_DUMPABLE, 1, 0).map(drop),
    );
    or_fail(Step::Sync, sys::write_all_raw(sock, &[MSG_READY]));
    let mut go = [0u8; 1];
    match sys::read_raw(sock, &mut go) {
        Ok(1) if go[0] == MSG_GO => {}
        _ => sys::exit_now(127), // the parent gave up (or died): nothing to report to
    }

    or_fail(Step::Sync, sys::become_ns_root());
    // Again (see above). Had the parent died in between, the next wait on the socket (MSG_PLAN
    // or MSG_CGROUPS) reads its end and exits.
    if !plan.ahead {
        die_with_parent();
    }
    or_fail(Step::Sync, sys::setsid());
    or_fail(Step::Hostname, sys::sethostname(plan.hostname));
    // Limits of the sandbox's own user namespace. The kernel also charges what the program holds
    // to the caller's uid in the parent namespace, where a program could otherwise take every
    // inotify instance the caller has (a red team did, as root). Absent on kernels without them.
    for (i, (path, value)) in USER_NS_LIMITS.iter().enumerate() {
        match sys::overwrite_file(path, value) {
            Err(e) if e.errno != libc::ENOENT => fail(sock, Step::UserNsLimits, i as u32, e),
            _ => {}
        }
    }
    mounts_begin(plan);
    if plan.ahead {
        // Started ahead of the plan: the parent stores the rest, then says so.
        match sys::read_raw(sock, &mut go) {
            Ok(1) if go[0] == MSG_PLAN => {}
            _ => sys::exit_now(127),
        }
        // See above. Had the parent died before this, the MSG_CGROUPS wait reads the end of the
        // socket and exits, or, had it died after sending that too, the listener's message fails
        // to go and nothing runs.
        die_with_parent();
    }
    let Some(rest) = plan.rest() else {
        sys::exit_now(127)
    };
    mounts_end(plan, rest);
    or_fail(Step::Cwd, sys::chdir(&rest.cwd));

    for &(res, value) in &rest.rlimits {
        or_fail(Step::Rlimits, sys::setrlimit(res, value));
    }
    for &(src, dst) in &rest.fds {
        or_fail(Step::Fds, sys::dup2(src, dst));
    }
    or_fail(
        Step::Fds,
        sys::close_range_cloexec(rest.first_free_fd as u32),
    );
    sys::reset_signals();

    or_fail(
        Step::NoNewPrivs,
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map(drop),
    );
    landlock(sock, rest);
    // Nothing untrusted runs before the cgroup limits apply. We join the v1 groups ourselves:
    // a lone thread writing 0 to a v1 `tasks` file moves without the kernel's global cgroup
    // lock, whose write side waits for an RCU grace period (see `cgroup::Group::v1_tasks`).
    let mut tasks = [-1; sys::MAX_PASSED_FDS];
    match sys::recv_with_fds(sock, &mut go, &mut tasks) {
        Ok((1, n)) if go[0] == MSG_CGROUPS => {
            for (i, &fd) in tasks[..n].iter().enumerate() {
                if let Err(e) = sys::write_all_raw(fd, b"0") {
                    fail(sock, Step::Cgroups, i as u32, e)
                }
                sys::close(fd);
            }
        }
        _ => sys::exit_now(127),
    }
    // A cgroup namespace rooted at the groups just joined, all of them (v2 and v1): the program
    // sees its groups as "/" and nothing of the host's above them, their names included. Still
    // privileged in our user namespace here: before the capabilities go.
    or_fail(Step::CgroupNs, sys::unshare(libc::CLONE_NEWCGROUP));
    or_fail(Step::Capabilities, sys::drop_all_capabilities());

    // From here on every syscall goes through the filter; write(2) is in the allow tier.
    let listener = match sys::seccomp_install_listener(&rest.filter) {
        Ok(fd) => fd,
        Err(e) => fail(sock, Step::Seccomp, 0, e),
    };
    let mut msg = [0u8; 5];
    msg[0] = MSG_LISTENER;
    msg[1..5].copy_from_slice(&listener.to_le_bytes());
    or_fail(Step::Seccomp, sys::write_all_raw(sock, &msg));
    // The supervisor duplicates the listener with pidfd_getfd and answers this execve; the
    // listener and the socket are close-on-exec, so the program never holds them.
    let e = sys::execve(&rest.program, &rest.argv_ptrs, &rest.env_ptrs);
    fail(sock, Step::Exec, 0, e)
}

/// The first pivot into the stage, then the operations known at the clone.
fn mounts_begin(plan: &ChildPlan) {
    let sock = plan.sock;
    let step = |step: Step, i: usize, r: Result<(), SysError>| {
        if let Err(e) = r {
            fail(sock, step, i as u32, e)
        }
    };
    use sys::{chdir, mkdir, mount, pivot_root};
    let flags = libc::MS_NOSUID | libc::MS_NODEV;
    // Nothing we mount may propagate back to the host.
    step(
        Step::Mounts,
        0,
        mount(
            None,
            &plan.root,
            None,
            libc::MS_REC | libc::MS_PRIVATE,
            None,
        ),
    );
    // Stage: a tmpfs on the host's /tmp (in our mount namespace only), holding the new root; the
    // host root moves to /oldroot so that sources anywhere, /tmp included, stay reachable.
    step(
        Step::Mounts,
        0,
        mount(
            Some(c"tmpfs"),
            &plan.stage,
            Some(c"tmpfs"),
            flags,
            Some(c"mode=0755,size=64k"),
        ),
    );
    step(Step::Mounts, 0, chdir(&plan.stage));
    step(Step::Mounts, 0, mkdir(&plan.newroot, 0o755));
    step(Step::Mounts, 0, mkdir(&plan.oldroot, 0o755));
    step(
        Step::Mounts,
        0,
        mount(
            Some(c"tmpfs"),
            &plan.newroot,
            Some(c"tmpfs"),
            flags,
            Some(c"mode=0755,size=1m"),
        ),
    );
    step(Step::Pivot, 0, pivot_root(&plan.dot, &plan.oldroot));
    step(Step::Pivot, 0, chdir(&plan.root));
    run_ops(sock, &plan.early_ops, 0);
}

/// The rest of the operations, then the new root made the root.
fn mounts_end(plan: &ChildPlan, rest: &RestPlan) {
    let sock = plan.sock;
    let step = |step: Step, r: Result<(), SysError>| {
        if let Err(e) = r {
            fail(sock, step, 0, e)
        }
    };
    use sys::{chdir, mount, pivot_root, umount2};
    let flags = libc::MS_NOSUID | libc::MS_NODEV;
    run_ops(sock, &rest.ops, plan.early_ops.len());
    // Make the new root the root; one lazy unmount then drops the stage and, mounted inside it,
    // the host root (an unmount waits for an RCU grace period: one, not one per tree).
    step(Step::Pivot, chdir(&plan.newroot_abs));
    step(Step::Pivot, pivot_root(&plan.dot, &plan.dot));
    step(Step::Pivot, umount2(&plan.dot, libc::MNT_DETACH));
    step(Step::Pivot, chdir(&plan.root));
    step(
        Step::Pivot,
        mount(
            None,
            &plan.root,
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | flags,
            None,
        ),
    );
}

/// Runs mount operations; a failure is reported with the operation's index in the early
/// operations followed by the rest (`first` is the index of `ops[0]`; see `ChildPlan::op`).
fn run_ops(sock: i32, ops: &[Op], first: usize) {
    use sys::{mkdir, mount};
    let flags = libc::MS_NOSUID | libc::MS_NODEV;
    for (i, op) in ops.iter().enumerate() {
        let r = match op {
            Op::Mkdir(p) => mkdir(p, 0o755),
            Op::Touch(p) => sys::make_empty_file(p, 0o644),
            Op::Symlink { target, link } => sys::symlink(target, link),
            Op::File { path, contents } => sys::write_new_file(path, contents, 0o644),
            Op::Bind {
                src,
                dst,
                attrs,
                exact,
            } => if *exact {
                sys::bind_exact(src, dst)
            } else {
                mount(Some(src), dst, None, libc::MS_BIND | libc::MS_REC, None)
            }
            .and_then(|()| sys::mount_setattr_recursive(dst, *attrs)),
            Op::Tmpfs { dst, data } => {
                mount(Some(c"tmpfs"), dst, Some(c"tmpfs"), flags, Some(data))
            }
            Op::Proc { dst } => mount(
                Some(c"proc"),
                dst,
                Some(c"proc"),
                flags | libc::MS_NOEXEC,
                None,
            ),
        };
        if let Err(e) = r {
            fail(sock, Step::Mounts, (first + i) as u32, e)
        }
    }
}

fn landlock(sock: i32, rest: &RestPlan) {
    let ll = &rest.landlock;
    let attr = sys::LandlockRulesetAttr {
        handled_access_fs: ll.handled_fs(),
        handled_access_net: ll.handled_net(),
        scoped: ll.scoped(),
    };
    let ruleset = match sys::landlock_create_ruleset(&attr, ll.attr_size()) {
        Ok(fd) => fd,
        Err(e) => fail(sock, Step::Landlock, 0, e),
    };
    for (i, (path, access)) in ll.rules.iter().enumerate() {
        let fd = match sys::open_path(path) {
            Ok(fd) => fd,
            Err(e) => fail(sock, Step::Landlock, i as u32 + 1, e),
        };
        if let Err(e) = sys::landlock_add_path_rule(ruleset, fd, *access & ll.handled_fs()) {
            fail(sock, Step::Landlock, i as u32 + 1, e)
        }
        sys::close(fd);
    }
    if let Err(e) = sys::landlock_restrict_self(ruleset) {
        fail(sock, Step::Landlock, 0, e)
    }
    sys::close(ruleset);
}
