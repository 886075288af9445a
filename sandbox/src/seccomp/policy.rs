//! The seccomp policy as data: three tiers, each syscall with a short reason.
//!
//! - deny: notified, recorded as `denied`, answered EPERM (escape and kernel-attack surface);
//! - record: notified, decoded (addresses, paths, argv, clone flags), recorded, then answered;
//! - allow: never leaves the kernel (the benign hot path).
//!
//! Anything in no tier is notified, recorded as an unknown `syscall` event and let through: the
//! namespaces, read-only mounts, Landlock and the empty capability set are what enforce.

use libc as c;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Network,
    Exec,
    Process,
    File,
    /// prctl: passed, except the program's own attempt to drop its parent-death signal.
    Attributes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Allow,
    Record(Record),
    Deny,
    Unknown,
}

/// Syscalls denied with EPERM and recorded as critical findings.
pub const DENY: &[(i64, &str)] = &[
    (c::SYS_ptrace, "inspects and controls other processes"),
    (c::SYS_process_vm_writev, "writes another process's memory"),
    (c::SYS_process_vm_readv, "reads another process's memory"),
    (c::SYS_mount, "changes the mount table"),
    (c::SYS_umount2, "changes the mount table"),
    (c::SYS_pivot_root, "changes the root"),
    (c::SYS_chroot, "changes the root"),
    (c::SYS_fsopen, "new mount API"),
    (c::SYS_fsconfig, "new mount API"),
    (c::SYS_fsmount, "new mount API"),
    (c::SYS_fspick, "new mount API"),
    (c::SYS_move_mount, "new mount API"),
    (c::SYS_open_tree, "new mount API"),
    (c::SYS_mount_setattr, "new mount API"),
    (467, "open_tree_attr: new mount API"),
    (
        c::SYS_unshare,
        "creates namespaces (nested user namespaces widen kernel attack surface)",
    ),
    (c::SYS_setns, "joins namespaces"),
    (c::SYS_bpf, "loads eBPF programs"),
    (
        c::SYS_perf_event_open,
        "kernel attack surface, side channels",
    ),
    (
        c::SYS_userfaultfd,
        "exploitation primitive for kernel races",
    ),
    (c::SYS_keyctl, "kernel keyring, not namespaced"),
    (c::SYS_add_key, "kernel keyring, not namespaced"),
    (c::SYS_request_key, "kernel keyring, not namespaced"),
    (
        c::SYS_io_uring_setup,
        "io_uring bypasses seccomp for the operations it submits",
    ),
    (c::SYS_io_uring_enter, "io_uring bypasses seccomp"),
    (c::SYS_io_uring_register, "io_uring bypasses seccomp"),
    (c::SYS_init_module, "loads kernel modules"),
    (c::SYS_finit_module, "loads kernel modules"),
    (c::SYS_delete_module, "unloads kernel modules"),
    (c::SYS_kexec_load, "replaces the kernel"),
    (c::SYS_kexec_file_load, "replaces the kernel"),
    (c::SYS_reboot, "reboots"),
    (c::SYS_swapon, "host swap"),
    (c::SYS_swapoff, "host swap"),
    (c::SYS_acct, "process accounting"),
    (c::SYS_quotactl, "disk quotas"),
    (c::SYS_quotactl_fd, "disk quotas"),
    (
        c::SYS_open_by_handle_at,
        "opens files by handle, bypassing the mount tree (container escape)",
    ),
    (c::SYS_name_to_handle_at, "file handles"),
    (c::SYS_personality, "disables ASLR and changes the ABI"),
    (c::SYS_syslog, "kernel log"),
    (c::SYS_settimeofday, "host clock"),
    (c::SYS_clock_settime, "host clock"),
    (c::SYS_adjtimex, "host clock"),
    (c::SYS_clock_adjtime, "host clock"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_iopl, "raw I/O ports"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_ioperm, "raw I/O ports"),
    (c::SYS_vhangup, "terminal hangup"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_uselib, "legacy loader"),
    (c::SYS_lookup_dcookie, "kernel profiling"),
    (c::SYS_kcmp, "compares kernel objects of other processes"),
    (
        c::SYS_pidfd_getfd,
        "steals file descriptors of other processes",
    ),
    (c::SYS_process_madvise, "acts on other processes' memory"),
    (c::SYS_sethostname, "host identity"),
    (c::SYS_setdomainname, "host identity"),
    (c::SYS_fanotify_init, "filesystem-wide monitoring"),
    (460, "lsm_set_self_attr: security labels"),
    (
        c::SYS_memfd_secret,
        "memory no other process can read: arguments placed there would go unrecorded",
    ),
];

/// Syscalls notified, decoded and recorded.
pub const RECORD: &[(i64, Record, &str)] = &[
    (
        c::SYS_socket,
        Record::Network,
        "network: which family and type",
    ),
    (
        c::SYS_connect,
        Record::Network,
        "network: destination address",
    ),
    (c::SYS_bind, Record::Network, "network: local address"),
    (
        c::SYS_sendto,
        Record::Network,
        "network: destination address",
    ),
    (
        c::SYS_sendmsg,
        Record::Network,
        "network: destination address",
    ),
    (
        c::SYS_sendmmsg,
        Record::Network,
        "network: destination address",
    ),
    (c::SYS_execve, Record::Exec, "runs a program"),
    (c::SYS_execveat, Record::Exec, "runs a program"),
    (c::SYS_clone, Record::Process, "new process or thread"),
    (
        c::SYS_clone3,
        Record::Process,
        "new process or thread (answered ENOSYS: flags live in memory)",
    ),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_fork, Record::Process, "new process"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_vfork, Record::Process, "new process"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_open, Record::File, "file access"),
    (c::SYS_openat, Record::File, "file access"),
    (
        c::SYS_prctl,
        Record::Attributes,
        "process attributes: the program may not drop the parent-death signal that ends it \
         with modelvet; the rest passes (privileges are already dropped)",
    ),
    (c::SYS_openat2, Record::File, "file access"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_creat, Record::File, "file creation"),
    #[cfg(target_arch = "x86_64")]
    (
        c::SYS_mknod,
        Record::File,
        "file creation: a FIFO, socket or file is recorded as a write; a device node is denied",
    ),
    (
        c::SYS_mknodat,
        Record::File,
        "file creation: a FIFO, socket or file is recorded as a write; a device node is denied",
    ),
];

/// Sockets a network namespace does not confine, refused at `socket()` and recorded: (family,
/// protocol or any, errno, reason). The family and protocol are registers: nothing to race.
pub const UNCONFINED_SOCKETS: &[(i32, Option<i32>, i32, &str)] = &[
    (
        c::AF_VSOCK,
        None,
        c::EAFNOSUPPORT,
        "vsock is not confined by a network namespace: it reaches the hypervisor and shares its \
         port space with the whole machine",
    ),
    (
        c::AF_NETLINK,
        Some(c::NETLINK_KOBJECT_UEVENT),
        c::EPROTONOSUPPORT,
        "the host's device events (NETLINK_KOBJECT_UEVENT), which the kernel sends to a network \
         namespace the host's user namespace made",
    ),
];

/// The benign hot path: memory, I/O on open descriptors, time, signals, synchronisation,
/// metadata reads. Writes that these allow are still bounded by read-only mounts and Landlock.
pub const ALLOW: &[(i64, &str)] = &[
    (c::SYS_read, "I/O on open descriptors"),
    (c::SYS_write, "I/O on open descriptors"),
    (c::SYS_readv, "I/O on open descriptors"),
    (c::SYS_writev, "I/O on open descriptors"),
    (c::SYS_pread64, "I/O on open descriptors"),
    (c::SYS_pwrite64, "I/O on open descriptors"),
    (c::SYS_preadv, "I/O on open descriptors"),
    (c::SYS_pwritev, "I/O on open descriptors"),
    (c::SYS_preadv2, "I/O on open descriptors"),
    (c::SYS_pwritev2, "I/O on open descriptors"),
    (c::SYS_lseek, "I/O on open descriptors"),
    (c::SYS_sendfile, "I/O on open descriptors"),
    (c::SYS_copy_file_range, "I/O on open descriptors"),
    (c::SYS_splice, "I/O on open descriptors"),
    (c::SYS_tee, "I/O on open descriptors"),
    (c::SYS_close, "descriptor bookkeeping"),
    (c::SYS_close_range, "descriptor bookkeeping"),
    (c::SYS_dup, "descriptor bookkeeping"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_dup2, "descriptor bookkeeping"),
    (c::SYS_dup3, "descriptor bookkeeping"),
    (c::SYS_fcntl, "descriptor bookkeeping"),
    (
        c::SYS_ioctl,
        "terminal and device control on open descriptors",
    ),
    (c::SYS_flock, "advisory locks"),
    (c::SYS_fsync, "durability"),
    (c::SYS_fdatasync, "durability"),
    (c::SYS_sync, "durability"),
    (c::SYS_syncfs, "durability"),
    (c::SYS_fadvise64, "caching hints"),
    (c::SYS_readahead, "caching hints"),
    (
        c::SYS_ftruncate,
        "resizes an open file (writable only in scratch)",
    ),
    (
        c::SYS_fallocate,
        "resizes an open file (writable only in scratch)",
    ),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_pipe, "anonymous pipes"),
    (c::SYS_pipe2, "anonymous pipes"),
    (c::SYS_socketpair, "anonymous local sockets, no address"),
    (c::SYS_recvfrom, "receives on an existing socket"),
    (c::SYS_recvmsg, "receives on an existing socket"),
    (c::SYS_recvmmsg, "receives on an existing socket"),
    (c::SYS_shutdown, "socket teardown"),
    (c::SYS_getsockname, "socket metadata"),
    (c::SYS_getpeername, "socket metadata"),
    (c::SYS_getsockopt, "socket metadata"),
    (c::SYS_setsockopt, "socket options"),
    (c::SYS_listen, "follows a recorded bind"),
    (c::SYS_accept, "follows a recorded bind"),
    (c::SYS_accept4, "follows a recorded bind"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_select, "waiting"),
    (c::SYS_pselect6, "waiting"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_poll, "waiting"),
    (c::SYS_ppoll, "waiting"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_epoll_create, "waiting"),
    (c::SYS_epoll_create1, "waiting"),
    (c::SYS_epoll_ctl, "waiting"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_epoll_wait, "waiting"),
    (c::SYS_epoll_pwait, "waiting"),
    (c::SYS_epoll_pwait2, "waiting"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_eventfd, "waiting"),
    (c::SYS_eventfd2, "waiting"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_signalfd, "waiting"),
    (c::SYS_signalfd4, "waiting"),
    (c::SYS_timerfd_create, "timers"),
    (c::SYS_timerfd_settime, "timers"),
    (c::SYS_timerfd_gettime, "timers"),
    (c::SYS_timer_create, "timers"),
    (c::SYS_timer_settime, "timers"),
    (c::SYS_timer_gettime, "timers"),
    (c::SYS_timer_getoverrun, "timers"),
    (c::SYS_timer_delete, "timers"),
    (c::SYS_getitimer, "timers"),
    (c::SYS_setitimer, "timers"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_alarm, "timers"),
    (c::SYS_nanosleep, "time"),
    (c::SYS_clock_nanosleep, "time"),
    (c::SYS_clock_gettime, "time"),
    (c::SYS_clock_getres, "time"),
    (c::SYS_gettimeofday, "time"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_time, "time"),
    (c::SYS_times, "time"),
    (c::SYS_mmap, "memory"),
    (c::SYS_munmap, "memory"),
    (c::SYS_mprotect, "memory"),
    (c::SYS_mremap, "memory"),
    (c::SYS_madvise, "memory"),
    (c::SYS_msync, "memory"),
    (c::SYS_mincore, "memory"),
    (c::SYS_mlock, "memory (bounded by RLIMIT_MEMLOCK)"),
    (c::SYS_mlock2, "memory (bounded by RLIMIT_MEMLOCK)"),
    (c::SYS_munlock, "memory"),
    (c::SYS_mlockall, "memory (bounded by RLIMIT_MEMLOCK)"),
    (c::SYS_munlockall, "memory"),
    (c::SYS_brk, "memory"),
    (c::SYS_membarrier, "memory ordering"),
    (
        c::SYS_memfd_create,
        "anonymous memory files (JIT code, shared buffers)",
    ),
    (c::SYS_pkey_alloc, "memory protection keys"),
    (c::SYS_pkey_free, "memory protection keys"),
    (c::SYS_pkey_mprotect, "memory protection keys"),
    (c::SYS_get_mempolicy, "NUMA"),
    (c::SYS_set_mempolicy, "NUMA"),
    (c::SYS_mbind, "NUMA"),
    (c::SYS_rt_sigaction, "signals"),
    (c::SYS_rt_sigprocmask, "signals"),
    (c::SYS_rt_sigreturn, "signals"),
    (c::SYS_rt_sigsuspend, "signals"),
    (c::SYS_rt_sigpending, "signals"),
    (c::SYS_rt_sigtimedwait, "signals"),
    (
        c::SYS_rt_sigqueueinfo,
        "signals (only reaches the sandbox's pid namespace)",
    ),
    (
        c::SYS_rt_tgsigqueueinfo,
        "signals (only reaches the sandbox's pid namespace)",
    ),
    (c::SYS_sigaltstack, "signals"),
    (
        c::SYS_kill,
        "signals (only reaches the sandbox's pid namespace)",
    ),
    (
        c::SYS_tkill,
        "signals (only reaches the sandbox's pid namespace)",
    ),
    (
        c::SYS_tgkill,
        "signals (only reaches the sandbox's pid namespace)",
    ),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_pause, "signals"),
    (c::SYS_restart_syscall, "signals"),
    (
        c::SYS_pidfd_open,
        "process handles inside the pid namespace",
    ),
    (
        c::SYS_pidfd_send_signal,
        "signals (only reaches the sandbox's pid namespace)",
    ),
    (c::SYS_futex, "synchronisation"),
    (c::SYS_futex_waitv, "synchronisation"),
    (454, "futex_wake: synchronisation"),
    (455, "futex_wait: synchronisation"),
    (456, "futex_requeue: synchronisation"),
    (c::SYS_set_robust_list, "thread bookkeeping"),
    (c::SYS_get_robust_list, "thread bookkeeping"),
    (c::SYS_set_tid_address, "thread bookkeeping"),
    (c::SYS_rseq, "thread bookkeeping"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_arch_prctl, "thread bookkeeping"),
    (c::SYS_sched_yield, "scheduling"),
    (c::SYS_sched_getaffinity, "scheduling"),
    (c::SYS_sched_setaffinity, "scheduling"),
    (c::SYS_sched_getparam, "scheduling"),
    (c::SYS_sched_setparam, "scheduling"),
    (c::SYS_sched_getscheduler, "scheduling"),
    (c::SYS_sched_setscheduler, "scheduling"),
    (c::SYS_sched_get_priority_max, "scheduling"),
    (c::SYS_sched_get_priority_min, "scheduling"),
    (c::SYS_sched_rr_get_interval, "scheduling"),
    (c::SYS_sched_getattr, "scheduling"),
    (c::SYS_sched_setattr, "scheduling"),
    (c::SYS_getpriority, "scheduling"),
    (c::SYS_setpriority, "scheduling"),
    (c::SYS_ioprio_get, "scheduling"),
    (c::SYS_ioprio_set, "scheduling"),
    (c::SYS_getcpu, "scheduling"),
    (c::SYS_exit, "exit"),
    (c::SYS_exit_group, "exit"),
    (c::SYS_wait4, "reaping children"),
    (c::SYS_waitid, "reaping children"),
    (c::SYS_getpid, "identity"),
    (c::SYS_getppid, "identity"),
    (c::SYS_gettid, "identity"),
    (c::SYS_getuid, "identity"),
    (c::SYS_geteuid, "identity"),
    (c::SYS_getgid, "identity"),
    (c::SYS_getegid, "identity"),
    (c::SYS_getresuid, "identity"),
    (c::SYS_getresgid, "identity"),
    (c::SYS_getgroups, "identity"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_getpgrp, "identity"),
    (c::SYS_getpgid, "identity"),
    (c::SYS_setpgid, "process groups inside the namespace"),
    (c::SYS_getsid, "identity"),
    (c::SYS_setsid, "sessions inside the namespace"),
    (c::SYS_capget, "identity"),
    (c::SYS_uname, "identity"),
    (c::SYS_sysinfo, "system figures"),
    (c::SYS_getrusage, "resource figures"),
    (c::SYS_getrlimit, "resource figures"),
    (
        c::SYS_setrlimit,
        "can only lower limits (hard limits are fixed, CAP_SYS_RESOURCE dropped)",
    ),
    (
        c::SYS_prlimit64,
        "can only lower limits (hard limits are fixed, CAP_SYS_RESOURCE dropped)",
    ),
    (c::SYS_umask, "file creation mask"),
    (c::SYS_getrandom, "randomness"),
    (c::SYS_fstat, "metadata"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_stat, "metadata"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_lstat, "metadata"),
    (c::SYS_newfstatat, "metadata"),
    (c::SYS_statx, "metadata"),
    (c::SYS_statfs, "metadata"),
    (c::SYS_fstatfs, "metadata"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_access, "metadata"),
    (c::SYS_faccessat, "metadata"),
    (c::SYS_faccessat2, "metadata"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_readlink, "metadata"),
    (c::SYS_readlinkat, "metadata"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_getdents, "directory listing"),
    (c::SYS_getdents64, "directory listing"),
    (c::SYS_getcwd, "working directory"),
    (c::SYS_chdir, "working directory"),
    (c::SYS_fchdir, "working directory"),
    (c::SYS_getxattr, "metadata"),
    (c::SYS_lgetxattr, "metadata"),
    (c::SYS_fgetxattr, "metadata"),
    (c::SYS_listxattr, "metadata"),
    (c::SYS_llistxattr, "metadata"),
    (c::SYS_flistxattr, "metadata"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_mkdir, "scratch writes (the rest is read-only)"),
    (c::SYS_mkdirat, "scratch writes (the rest is read-only)"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_rmdir, "scratch writes (the rest is read-only)"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_unlink, "scratch writes (the rest is read-only)"),
    (c::SYS_unlinkat, "scratch writes (the rest is read-only)"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_rename, "scratch writes (the rest is read-only)"),
    (c::SYS_renameat, "scratch writes (the rest is read-only)"),
    (c::SYS_renameat2, "scratch writes (the rest is read-only)"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_link, "scratch writes (the rest is read-only)"),
    (c::SYS_linkat, "scratch writes (the rest is read-only)"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_symlink, "scratch writes (the rest is read-only)"),
    (c::SYS_symlinkat, "scratch writes (the rest is read-only)"),
    #[cfg(target_arch = "x86_64")]
    (c::SYS_chmod, "scratch writes (the rest is read-only)"),
    (c::SYS_fchmod, "scratch writes (the rest is read-only)"),
    (c::SYS_fchmodat, "scratch writes (the rest is read-only)"),
    (c::SYS_utimensat, "scratch writes (the rest is read-only)"),
    (c::SYS_truncate, "scratch writes (the rest is read-only)"),
    (c::SYS_inotify_init1, "file watching"),
    (c::SYS_inotify_add_watch, "file watching"),
    (c::SYS_inotify_rm_watch, "file watching"),
    (c::SYS_shmget, "System V IPC in a private ipc namespace"),
    (c::SYS_shmat, "System V IPC in a private ipc namespace"),
    (c::SYS_shmdt, "System V IPC in a private ipc namespace"),
    (c::SYS_shmctl, "System V IPC in a private ipc namespace"),
    (c::SYS_semget, "System V IPC in a private ipc namespace"),
    (c::SYS_semop, "System V IPC in a private ipc namespace"),
    (c::SYS_semctl, "System V IPC in a private ipc namespace"),
    (c::SYS_semtimedop, "System V IPC in a private ipc namespace"),
];

/// The tier of every syscall number below `MAX_NR`.
pub const MAX_NR: usize = 512;

pub fn tiers() -> Vec<Tier> {
    let mut t = vec![Tier::Unknown; MAX_NR];
    for &(nr, _) in ALLOW {
        t[nr as usize] = Tier::Allow;
    }
    for &(nr, kind, _) in RECORD {
        t[nr as usize] = Tier::Record(kind);
    }
    for &(nr, _) in DENY {
        t[nr as usize] = Tier::Deny;
    }
    t
}

pub fn name(nr: i64) -> String {
    match super::names::NAMES.binary_search_by_key(&nr, |&(n, _)| n) {
        Ok(i) => super::names::NAMES[i].1.to_string(),
        Err(_) => format!("syscall_{nr}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tiers_are_disjoint() {
        let allow: HashSet<i64> = ALLOW.iter().map(|e| e.0).collect();
        let deny: HashSet<i64> = DENY.iter().map(|e| e.0).collect();
        let record: HashSet<i64> = RECORD.iter().map(|e| e.0).collect();
        assert_eq!(allow.len(), ALLOW.len(), "duplicate in ALLOW");
        assert!(allow.is_disjoint(&deny));
        assert!(allow.is_disjoint(&record));
        assert!(deny.is_disjoint(&record));
    }

    #[test]
    fn names_are_sorted_and_known() {
        assert!(
            super::super::names::NAMES
                .windows(2)
                .all(|w| w[0].0 < w[1].0)
        );
        assert_eq!(name(libc::SYS_connect), "connect");
        assert_eq!(name(libc::SYS_io_uring_setup), "io_uring_setup");
        assert_eq!(name(9999), "syscall_9999");
    }

    #[test]
    fn dangerous_calls_are_denied() {
        let t = tiers();
        for nr in [
            libc::SYS_ptrace,
            libc::SYS_mount,
            libc::SYS_unshare,
            libc::SYS_bpf,
            libc::SYS_keyctl,
            libc::SYS_io_uring_setup,
        ] {
            assert_eq!(t[nr as usize], Tier::Deny, "{}", name(nr));
        }
        assert_eq!(t[libc::SYS_connect as usize], Tier::Record(Record::Network));
        assert_eq!(t[libc::SYS_read as usize], Tier::Allow);
    }
}
