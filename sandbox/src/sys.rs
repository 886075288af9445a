//! Raw syscalls, each behind a typed wrapper returning `SysError`. Everything else in the crate
//! calls these wrappers; this is the only module that talks to the kernel directly. The wrappers
//! used between fork and exec neither allocate nor lock.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A failed syscall: which call and the errno it returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{call} failed: {}", std::io::Error::from_raw_os_error(*.errno))]
pub struct SysError {
    pub call: &'static str,
    pub errno: i32,
}

pub type SysResult<T> = Result<T, SysError>;

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(call: &'static str, ret: libc::c_long) -> SysResult<libc::c_long> {
    if ret < 0 {
        Err(SysError {
            call,
            errno: errno(),
        })
    } else {
        Ok(ret)
    }
}

fn check_int(call: &'static str, ret: libc::c_int) -> SysResult<libc::c_int> {
    if ret < 0 {
        Err(SysError {
            call,
            errno: errno(),
        })
    } else {
        Ok(ret)
    }
}

// ---------------------------------------------------------------------------------------------
// Process creation

/// `struct clone_args` of clone3(2).
#[repr(C)]
#[derive(Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Outcome of `clone3` as seen by the caller.
pub enum Forked {
    Parent { pid: libc::pid_t },
    Child,
}

/// clone3(2) without a new stack: fork semantics (copy-on-write address space).
///
/// # Safety
/// The caller must be prepared for the child to run with a copy of a possibly multithreaded
/// address space: between this call and exec the child may only make raw syscalls (no allocation,
/// no locks).
pub unsafe fn clone3(args: &mut CloneArgs) -> SysResult<Forked> {
    // SAFETY: args points to a properly sized, initialised clone_args; no stack is given, so the
    // kernel duplicates the caller's stack as fork does.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match check("clone3", ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as libc::pid_t,
        }),
    }
}

pub fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> SysResult<()> {
    // SAFETY: plain syscall on integers; a stale fd gives EBADF, not UB.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, sig, 0usize, 0u32) };
    check("pidfd_send_signal", ret).map(drop)
}

/// Duplicates file descriptor `target_fd` of the process behind `pidfd` into this process.
pub fn pidfd_getfd(pidfd: RawFd, target_fd: RawFd) -> SysResult<OwnedFd> {
    // SAFETY: plain syscall on integers.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target_fd, 0u32) };
    let fd = check("pidfd_getfd", ret)? as RawFd;
    // SAFETY: the kernel just returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// wait4(2) on one pid, returning the raw wait status and the rusage of it and its reaped children.
pub fn wait4(pid: libc::pid_t, flags: i32) -> SysResult<Option<(i32, libc::rusage)>> {
    let mut status = 0;
    // SAFETY: rusage is plain old data; zeroed is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: status and ru are valid for writes.
        let ret = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
        if ret < 0 && errno() == libc::EINTR {
            continue;
        }
        let ret = check_int("wait4", ret)?;
        return Ok(if ret == 0 { None } else { Some((status, ru)) });
    }
}

/// A new, empty network namespace owned by the initial user namespace, returned as a descriptor.
/// Made on the calling thread (which stays in it: call it on a thread that ends afterwards).
/// Needs CAP_SYS_ADMIN in the initial user namespace; callers without it get EPERM and let
/// clone3's CLONE_NEWNET make one instead.
pub fn fresh_netns() -> SysResult<OwnedFd> {
    // SAFETY: unshare with a flag constant only changes this thread's namespaces.
    check_int("unshare(CLONE_NEWNET)", unsafe {
        libc::unshare(libc::CLONE_NEWNET)
    })?;
    open_ns_net()
}

/// The calling thread's network namespace, as a descriptor.
pub fn open_ns_net() -> SysResult<OwnedFd> {
    // SAFETY: NUL-terminated constant path.
    let fd = check_int("open(/proc/thread-self/ns/net)", unsafe {
        libc::open(
            c"/proc/thread-self/ns/net".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: the kernel just returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Moves the calling thread into the network namespace behind `ns`.
pub fn setns_net(ns: &OwnedFd) -> SysResult<()> {
    // SAFETY: setns on a descriptor we own, with the matching namespace type.
    check_int("setns(CLONE_NEWNET)", unsafe {
        libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET)
    })
    .map(drop)
}

// ---------------------------------------------------------------------------------------------
// Wrappers used in the child between fork and exec: no allocation, no locks.

pub fn prctl(option: i32, arg2: u64, arg3: u64) -> SysResult<i32> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(option, arg2, arg3, 0u64, 0u64) };
    check_int("prctl", ret)
}

pub fn mount(
    src: Option<&CStr>,
    dst: &CStr,
    fstype: Option<&CStr>,
    flags: u64,
    data: Option<&CStr>,
) -> SysResult<()> {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call.
    let ret = unsafe { libc::mount(p(src), dst.as_ptr(), p(fstype), flags, p(data).cast()) };
    check_int("mount", ret).map(drop)
}

pub fn umount2(target: &CStr, flags: i32) -> SysResult<()> {
    // SAFETY: target is NUL-terminated.
    let ret = unsafe { libc::umount2(target.as_ptr(), flags) };
    check_int("umount2", ret).map(drop)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
const AT_RECURSIVE: u32 = 0x8000;

/// mount_setattr(2) with AT_RECURSIVE: sets `attrs` on the mount at `path` and every mount below.
pub fn mount_setattr_recursive(path: &CStr, attrs: u64) -> SysResult<()> {
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: path is NUL-terminated and attr is a valid mount_attr of the size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check("mount_setattr", ret).map(drop)
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> SysResult<()> {
    // SAFETY: both are NUL-terminated strings.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    check("pivot_root", ret).map(drop)
}

pub fn chdir(path: &CStr) -> SysResult<()> {
    // SAFETY: NUL-terminated path.
    check_int("chdir", unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

pub fn mkdir(path: &CStr, mode: u32) -> SysResult<()> {
    // SAFETY: NUL-terminated path.
    let ret = unsafe { libc::mkdir(path.as_ptr(), mode) };
    match check_int("mkdir", ret) {
        Err(e) if e.errno == libc::EEXIST => Ok(()),
        r => r.map(drop),
    }
}

pub fn symlink(target: &CStr, linkpath: &CStr) -> SysResult<()> {
    // SAFETY: NUL-terminated paths.
    check_int("symlink", unsafe {
        libc::symlink(target.as_ptr(), linkpath.as_ptr())
    })
    .map(drop)
}

/// Creates (or opens) a regular file and writes `contents` into it.
pub fn write_new_file(path: &CStr, contents: &[u8], mode: u32) -> SysResult<()> {
    // SAFETY: NUL-terminated path; flags and mode are integers.
    let fd = check_int("open", unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode,
        )
    })?;
    let mut rest = contents;
    let mut result = Ok(());
    while !rest.is_empty() {
        // SAFETY: rest is a valid readable slice.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            result = Err(SysError {
                call: "write",
                errno: errno(),
            });
            break;
        }
        rest = &rest[n as usize..];
    }
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    result
}

pub fn open_path(path: &CStr) -> SysResult<RawFd> {
    // SAFETY: NUL-terminated path.
    check_int("open", unsafe {
        libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC)
    })
}

pub fn close(fd: RawFd) {
    // SAFETY: closing an integer fd; errors are irrelevant on this path.
    unsafe { libc::close(fd) };
}

pub fn dup2(old: RawFd, new: RawFd) -> SysResult<()> {
    // SAFETY: integer fds only.
    check_int("dup2", unsafe { libc::dup2(old, new) }).map(drop)
}

pub const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

pub fn close_range_cloexec(first: u32) -> SysResult<()> {
    // SAFETY: integers only; marks fds >= first close-on-exec.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    check("close_range", ret).map(drop)
}

pub fn sethostname(name: &[u8]) -> SysResult<()> {
    // SAFETY: name is a valid slice of the given length.
    check_int("sethostname", unsafe {
        libc::sethostname(name.as_ptr().cast(), name.len())
    })
    .map(drop)
}

/// Switches to uid and gid 0 of the (new) user namespace: credentials keep the host ids until
/// set again after the id maps are written.
pub fn become_ns_root() -> SysResult<()> {
    // Raw syscalls, not glibc's setresuid/setresgid: those broadcast the change to every thread
    // glibc knows of and wait for each to answer. After our raw clone3, glibc in the child still
    // lists the parent's threads, which do not exist here, so the wrapper would wait forever.
    // SAFETY: integer arguments only; affects the calling (only) thread.
    check("setresgid", unsafe {
        libc::syscall(libc::SYS_setresgid, 0, 0, 0)
    })?;
    // SAFETY: as above.
    check("setresuid", unsafe {
        libc::syscall(libc::SYS_setresuid, 0, 0, 0)
    })
    .map(drop)
}

pub fn setsid() -> SysResult<()> {
    // SAFETY: no arguments.
    check_int("setsid", unsafe { libc::setsid() }).map(drop)
}

pub fn setrlimit(resource: u32, value: u64) -> SysResult<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: lim is a valid rlimit.
    check_int("setrlimit", unsafe { libc::setrlimit(resource, &lim) }).map(drop)
}

/// Resets every catchable signal to its default action and unblocks all signals, so the target
/// does not inherit the supervisor's SIGPIPE=ignore or its masks.
pub fn reset_signals() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; invalid numbers just return EINVAL.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: sigset_t is plain data; all-zero is a valid (empty) value.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: `set` is an initialised sigset; the old mask is not wanted (null).
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
}

pub fn write_all_raw(fd: RawFd, buf: &[u8]) -> SysResult<()> {
    // SAFETY: buf is a valid readable slice.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n == buf.len() as isize {
        Ok(())
    } else {
        Err(SysError {
            call: "write",
            errno: errno(),
        })
    }
}

pub fn read_raw(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    loop {
        // SAFETY: buf is a valid writable slice.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        return check("read", n as libc::c_long).map(|n| n as usize);
    }
}

pub fn execve(path: &CStr, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> SysError {
    // SAFETY: argv and envp are NULL-terminated arrays of NUL-terminated strings built before fork.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    SysError {
        call: "execve",
        errno: errno(),
    }
}

pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and runs no atexit handlers (none must run in a forked child).
    unsafe { libc::_exit(code) }
}

// ---------------------------------------------------------------------------------------------
// Capabilities

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const SECBIT_NOROOT: u64 = 1 << 0;
const SECBIT_NOROOT_LOCKED: u64 = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: u64 = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: u64 = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: u64 = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: u64 = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: u64 = 1 << 7;

/// Drops every capability for good: locks securebits so exec as uid 0 grants nothing, empties the
/// bounding and ambient sets, then clears effective, permitted and inheritable sets.
pub fn drop_all_capabilities() -> SysResult<()> {
    prctl(
        libc::PR_SET_SECUREBITS,
        SECBIT_NOROOT
            | SECBIT_NOROOT_LOCKED
            | SECBIT_NO_SETUID_FIXUP
            | SECBIT_NO_SETUID_FIXUP_LOCKED
            | SECBIT_KEEP_CAPS_LOCKED
            | SECBIT_NO_CAP_AMBIENT_RAISE
            | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED,
        0,
    )?;
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as u64,
        0,
    )?;
    for cap in 0..64u64 {
        match prctl(libc::PR_CAPBSET_DROP, cap, 0) {
            Ok(_) => {}
            Err(e) if e.errno == libc::EINVAL => break, // past the last capability the kernel knows
            Err(e) => return Err(e),
        }
    }
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and two data words as capset(2) expects for version 3.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    check("capset", ret).map(drop)
}

// ---------------------------------------------------------------------------------------------
// Landlock

#[repr(C)]
pub struct LandlockRulesetAttr {
    pub handled_access_fs: u64,
    pub handled_access_net: u64,
    pub scoped: u64,
}

#[repr(C, packed)]
struct LandlockPathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
const LANDLOCK_RULE_PATH_BENEATH: u32 = 1;

/// The Landlock ABI version, or None when the kernel lacks Landlock or it is disabled.
pub fn landlock_abi() -> Option<u32> {
    // SAFETY: the documented version query: null attr, size 0, flag VERSION.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (ret > 0).then_some(ret as u32)
}

/// Creates a ruleset; `size` selects how much of the attribute struct the running ABI knows.
pub fn landlock_create_ruleset(attr: &LandlockRulesetAttr, size: usize) -> SysResult<RawFd> {
    // SAFETY: attr is valid for `size` bytes (size <= size_of::<LandlockRulesetAttr>()).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            attr as *const LandlockRulesetAttr,
            size,
            0u32,
        )
    };
    check("landlock_create_ruleset", ret).map(|fd| fd as RawFd)
}

pub fn landlock_add_path_rule(ruleset: RawFd, parent_fd: RawFd, access: u64) -> SysResult<()> {
    let attr = LandlockPathBeneathAttr {
        allowed_access: access,
        parent_fd,
    };
    // SAFETY: attr is a valid packed path_beneath attribute.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const LandlockPathBeneathAttr,
            0u32,
        )
    };
    check("landlock_add_rule", ret).map(drop)
}

pub fn landlock_restrict_self(ruleset: RawFd) -> SysResult<()> {
    // SAFETY: integers only.
    let ret = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) };
    check("landlock_restrict_self", ret).map(drop)
}

// ---------------------------------------------------------------------------------------------
// Seccomp and user notification

pub const SECCOMP_SET_MODE_FILTER: u32 = 1;
pub const SECCOMP_GET_NOTIF_SIZES: u32 = 3;
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;
/// Do not turn on the Speculative Store Bypass mitigation for the filtered process: it slows
/// every instruction of the model and protects the process only from itself (the untrusted code
/// already runs in its own process, with nothing of ours in its address space).
pub const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 1 << 2;
pub const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
pub const SECCOMP_RET_ACTION_FULL: u32 = 0xffff_0000;
pub const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;
pub const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

const SECCOMP_IOCTL_NOTIF_RECV: u64 = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: u64 = 0xc018_2101;
const SECCOMP_IOCTL_NOTIF_ID_VALID: u64 = 0x4008_2102;
const SECCOMP_IOCTL_NOTIF_SET_FLAGS: u64 = 0x4008_2104;

/// `struct seccomp_data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SeccompNotif {
    pub id: u64,
    pub pid: u32,
    pub flags: u32,
    pub data: SeccompData,
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SeccompNotifResp {
    pub id: u64,
    pub val: i64,
    pub error: i32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct SeccompNotifSizes {
    notif: u16,
    resp: u16,
    data: u16,
}

/// True when the kernel supports seccomp user notification with structs no larger than ours
/// (a bigger kernel struct would be written past our buffer).
pub fn seccomp_notif_supported() -> bool {
    let mut sizes = SeccompNotifSizes::default();
    // SAFETY: sizes is a valid out-parameter for SECCOMP_GET_NOTIF_SIZES.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_NOTIF_SIZES,
            0u32,
            &mut sizes as *mut SeccompNotifSizes,
        )
    };
    ret == 0
        && usize::from(sizes.notif) <= std::mem::size_of::<SeccompNotif>()
        && usize::from(sizes.resp) <= std::mem::size_of::<SeccompNotifResp>()
}

/// Installs a BPF program with NEW_LISTENER and returns the listener fd.
pub fn seccomp_install_listener(filter: &[libc::sock_filter]) -> SysResult<RawFd> {
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prog points at a valid filter array that outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            &prog as *const libc::sock_fprog,
        )
    };
    check("seccomp", ret).map(|fd| fd as RawFd)
}

pub fn notif_recv(listener: &impl AsRawFd) -> SysResult<SeccompNotif> {
    let mut notif = SeccompNotif::default();
    // SAFETY: notif is a zeroed seccomp_notif (the kernel requires zeroed input) of the right size.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_RECV,
            &mut notif as *mut SeccompNotif,
        )
    };
    check_int("ioctl(SECCOMP_IOCTL_NOTIF_RECV)", ret).map(|_| notif)
}

pub fn notif_send(listener: &impl AsRawFd, resp: &SeccompNotifResp) -> SysResult<()> {
    // SAFETY: resp is a valid seccomp_notif_resp.
    let ret = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_SEND,
            resp as *const SeccompNotifResp,
        )
    };
    check_int("ioctl(SECCOMP_IOCTL_NOTIF_SEND)", ret).map(drop)
}

/// Whether notification `id` is still pending: memory read on its behalf is only meaningful if so
/// (the task may have died and its pid been reused).
pub fn notif_id_valid(listener: &impl AsRawFd, id: u64) -> bool {
    // SAFETY: id is a valid u64 the ioctl reads.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id as *const u64,
        ) == 0
    }
}

pub fn notif_set_sync_wakeup(listener: &impl AsRawFd) -> SysResult<()> {
    let flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
    // SAFETY: flags is passed by value as the ioctl expects.
    let ret = unsafe { libc::ioctl(listener.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) };
    check_int("ioctl(SECCOMP_IOCTL_NOTIF_SET_FLAGS)", ret).map(drop)
}

/// Reads up to `buf.len()` bytes at `addr` in process `pid`; returns how many were readable.
pub fn process_vm_read(pid: u32, addr: u64, buf: &mut [u8]) -> SysResult<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: local describes our writable buffer; the remote range is validated by the kernel.
    let ret = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    check("process_vm_readv", ret as libc::c_long).map(|n| n as usize)
}

// ---------------------------------------------------------------------------------------------
// Sockets and pipes

pub fn seqpacket_pair() -> SysResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element out array.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    check_int("socketpair", ret)?;
    Ok((owned(fds[0]), owned(fds[1])))
}

pub fn pipe() -> SysResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element out array.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    check_int("pipe2", ret)?;
    Ok((owned(fds[0]), owned(fds[1])))
}

/// Takes ownership of a descriptor the kernel just returned to us.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass only fresh descriptors from a successful syscall, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

pub fn set_nonblocking(fd: RawFd) -> SysResult<()> {
    // SAFETY: fcntl on an integer fd.
    let flags = check_int("fcntl", unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    check_int("fcntl", unsafe {
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK)
    })
    .map(drop)
}

/// poll(2) one fd for input with a timeout in milliseconds; true when readable or hung up.
pub fn poll_in(fd: RawFd, timeout_ms: i32) -> SysResult<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: pfd is a valid single pollfd.
        let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if ret < 0 && errno() == libc::EINTR {
            continue;
        }
        return check_int("poll", ret).map(|n| n > 0);
    }
}
