//! Raw syscalls, each behind a typed wrapper returning `SysError`. Everything else in the crate
//! calls these wrappers; this is the only module that talks to the kernel directly. The wrappers
//! used between clone and exec neither allocate nor lock, and make their syscall without libc
//! (see `raw_syscall`).

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

pub(crate) fn errno() -> i32 {
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
#[derive(Default, Clone, Copy)]
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

pub const CLONE_VM: u64 = libc::CLONE_VM as u64;

/// clone3(2) with CLONE_VM and a stack of its own, as posix_spawn does: the child shares our
/// memory (no page tables to copy, none to tear down at its exec, no copy-on-write faults after),
/// runs `entry(arg)` on the stack given in `args` and never comes back here. Returns the child's
/// pid.
///
/// # Safety
/// `args` must carry CLONE_VM (and no CLONE_VFORK, CLONE_THREAD or CLONE_SIGHAND) and a stack
/// that stays mapped while the child runs on it; `arg` and everything it points to must stay
/// valid and unchanged until the child has exec'd or exited. `entry` must never return and may
/// only make raw syscalls (no allocation, no locks, no errno, no signal handlers: block signals
/// around the call).
#[cfg(target_arch = "x86_64")]
pub unsafe fn clone3_vm(
    args: &mut CloneArgs,
    entry: extern "C" fn(*const u8) -> !,
    arg: *const u8,
) -> SysResult<libc::pid_t> {
    let ret: isize;
    // SAFETY: the caller vouches for `args`. In the parent the syscall returns the pid (or an
    // error) and only rax, rcx and r11 change. In the child (rax 0) the kernel has pointed rsp at
    // the top of the new stack, 16-byte aligned, so `call` enters `entry` with the ABI's
    // alignment; `entry` never returns (ud2 traps if it ever did).
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") entry as usize,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    check_raw("clone3", ret).map(|pid| pid as libc::pid_t)
}

/// The stack of a CLONE_VM child: anonymous memory with an inaccessible guard page below it, so
/// an overflow faults instead of writing into whatever lies beneath.
#[derive(Debug)]
pub struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; the pointer is never shared as a reference.
unsafe impl Send for ChildStack {}

const PAGE: usize = 4096;

impl ChildStack {
    pub fn new(size: usize) -> SysResult<ChildStack> {
        let len = size.div_ceil(PAGE) * PAGE + PAGE;
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(SysError {
                call: "mmap",
                errno: errno(),
            });
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping made above.
        check_int("mprotect", unsafe {
            libc::mprotect(base, PAGE, libc::PROT_NONE)
        })?;
        Ok(stack)
    }

    /// The usable range (above the guard page) as clone_args wants it: lowest address, size.
    pub fn range(&self) -> (u64, u64) {
        (self.base as u64 + PAGE as u64, (self.len - PAGE) as u64)
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Blocks every signal on the calling thread, returning the mask to restore.
pub fn block_all_signals() -> SysResult<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; all-zero is a valid value that sigfillset overwrites.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `all` is a valid, writable sigset.
    unsafe { libc::sigfillset(&mut all) };
    // SAFETY: both sets are valid; pthread_sigmask returns the error number itself.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old) };
    if ret != 0 {
        return Err(SysError {
            call: "pthread_sigmask",
            errno: ret,
        });
    }
    Ok(old)
}

/// Restores a mask returned by `block_all_signals`.
pub fn restore_signal_mask(old: &libc::sigset_t) {
    // SAFETY: `old` is a valid sigset; the previous mask is not wanted (null).
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
}

/// This thread's id.
pub fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no failure modes.
    unsafe { libc::gettid() }
}

/// Whether thread `tid` of this process is gone (a signal 0 to it finds no such thread).
pub fn thread_gone(tid: libc::pid_t) -> bool {
    let pid = std::process::id() as libc::pid_t;
    // SAFETY: tgkill with signal 0 only checks that the thread exists; it sends nothing.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, 0) };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
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
// Wrappers used in the child between clone and exec: no allocation, no locks, no errno.
//
// The child shares our memory (CLONE_VM), thread-local storage included: glibc's wrappers would
// store their errno in the thread that spawned it, under that thread's feet. These wrappers make
// the syscall directly and take the error from the return value.

/// One syscall, without libc: the kernel's return value, a negated errno on failure.
///
/// # Safety
/// The arguments must be what syscall `nr` expects (valid pointers for as long as it runs).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn raw_syscall(nr: libc::c_long, a: [u64; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments; `syscall` clobbers only rax, rcx and r11,
    // and does not touch the stack.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Elsewhere the child is a copy-on-write fork (see `ChildMemory::clone_child`), so libc's errno is its own.
///
/// # Safety
/// As on x86_64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn raw_syscall(nr: libc::c_long, a: [u64; 6]) -> isize {
    // SAFETY: the caller vouches for the arguments.
    let ret = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if ret < 0 {
        -(errno() as isize)
    } else {
        ret as isize
    }
}

/// `raw_syscall` with up to six arguments, mapped to a `SysResult`.
macro_rules! sys_raw {
    ($call:expr, $nr:expr $(, $arg:expr)* $(,)?) => {{
        let mut a = [0u64; 6];
        let args: &[u64] = &[$($arg as u64),*];
        a[..args.len()].copy_from_slice(args);
        // SAFETY: each call site passes the arguments its syscall expects (see there).
        let ret = unsafe { raw_syscall($nr, a) };
        check_raw($call, ret)
    }};
}

fn check_raw(call: &'static str, ret: isize) -> SysResult<usize> {
    if (-4095..0).contains(&ret) {
        Err(SysError {
            call,
            errno: -ret as i32,
        })
    } else {
        Ok(ret as usize)
    }
}

pub fn prctl(option: i32, arg2: u64, arg3: u64) -> SysResult<i32> {
    sys_raw!("prctl", libc::SYS_prctl, option, arg2, arg3, 0, 0).map(|r| r as i32)
}

pub fn mount(
    src: Option<&CStr>,
    dst: &CStr,
    fstype: Option<&CStr>,
    flags: u64,
    data: Option<&CStr>,
) -> SysResult<()> {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // Every pointer is null or a NUL-terminated string that outlives the call.
    sys_raw!(
        "mount",
        libc::SYS_mount,
        p(src),
        dst.as_ptr(),
        p(fstype),
        flags,
        p(data)
    )
    .map(drop)
}

pub fn umount2(target: &CStr, flags: i32) -> SysResult<()> {
    sys_raw!("umount2", libc::SYS_umount2, target.as_ptr(), flags).map(drop)
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

const AT_EMPTY_PATH: u32 = 0x1000;
const OPEN_TREE_CLONE: u32 = 1;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// A recursive bind of exactly what `src` names now, with no symlink on the way: resolved once by
/// openat2(RESOLVE_NO_SYMLINKS), cloned from that descriptor by open_tree and attached by
/// move_mount, so no component can be swapped for a link between the resolution and the bind.
pub fn bind_exact(src: &CStr, dst: &CStr) -> SysResult<()> {
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS,
    };
    // The path is NUL-terminated and `how` a valid open_how of the size passed.
    let fd = sys_raw!(
        "openat2",
        libc::SYS_openat2,
        libc::AT_FDCWD,
        src.as_ptr(),
        &how as *const OpenHow,
        std::mem::size_of::<OpenHow>()
    )? as RawFd;
    // An empty path with AT_EMPTY_PATH: the tree at `fd` itself.
    let tree = sys_raw!(
        "open_tree",
        libc::SYS_open_tree,
        fd,
        c"".as_ptr(),
        OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | AT_EMPTY_PATH | AT_RECURSIVE
    );
    close(fd);
    let tree = tree? as RawFd;
    // The detached clone at `tree` goes onto `dst` (NUL-terminated).
    let moved = sys_raw!(
        "move_mount",
        libc::SYS_move_mount,
        tree,
        c"".as_ptr(),
        libc::AT_FDCWD,
        dst.as_ptr(),
        MOVE_MOUNT_F_EMPTY_PATH
    )
    .map(drop);
    close(tree);
    moved
}

/// mount_setattr(2) with AT_RECURSIVE: sets `attrs` on the mount at `path` and every mount below.
pub fn mount_setattr_recursive(path: &CStr, attrs: u64) -> SysResult<()> {
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // The path is NUL-terminated and attr a valid mount_attr of the size passed.
    sys_raw!(
        "mount_setattr",
        libc::SYS_mount_setattr,
        libc::AT_FDCWD,
        path.as_ptr(),
        AT_RECURSIVE,
        &attr as *const MountAttr,
        std::mem::size_of::<MountAttr>()
    )
    .map(drop)
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> SysResult<()> {
    sys_raw!(
        "pivot_root",
        libc::SYS_pivot_root,
        new_root.as_ptr(),
        put_old.as_ptr()
    )
    .map(drop)
}

pub fn chdir(path: &CStr) -> SysResult<()> {
    sys_raw!("chdir", libc::SYS_chdir, path.as_ptr()).map(drop)
}

pub fn mkdir(path: &CStr, mode: u32) -> SysResult<()> {
    match sys_raw!(
        "mkdir",
        libc::SYS_mkdirat,
        libc::AT_FDCWD,
        path.as_ptr(),
        mode
    ) {
        Err(e) if e.errno == libc::EEXIST => Ok(()),
        r => r.map(drop),
    }
}

pub fn symlink(target: &CStr, linkpath: &CStr) -> SysResult<()> {
    sys_raw!(
        "symlink",
        libc::SYS_symlinkat,
        target.as_ptr(),
        libc::AT_FDCWD,
        linkpath.as_ptr()
    )
    .map(drop)
}

fn open_raw(path: &CStr, flags: i32, mode: u32) -> SysResult<RawFd> {
    sys_raw!(
        "open",
        libc::SYS_openat,
        libc::AT_FDCWD,
        path.as_ptr(),
        flags,
        mode
    )
    .map(|fd| fd as RawFd)
}

/// Creates (or opens) a regular file and writes `contents` into it.
/// An empty regular file at `path` (a mount point for a file bind), made with one call
/// (mknodat) instead of an open and a close; one already there is fine.
pub fn make_empty_file(path: &CStr, mode: u32) -> SysResult<()> {
    match sys_raw!(
        "mknodat",
        libc::SYS_mknodat,
        libc::AT_FDCWD,
        path.as_ptr(),
        libc::S_IFREG | mode,
        0
    ) {
        Err(e) if e.errno == libc::EEXIST => Ok(()),
        r => r.map(drop),
    }
}

pub fn write_new_file(path: &CStr, contents: &[u8], mode: u32) -> SysResult<()> {
    write_file(path, contents, libc::O_CREAT, mode)
}

/// Writes `contents` into an existing file (a sysctl), never creating one.
pub fn overwrite_file(path: &CStr, contents: &[u8]) -> SysResult<()> {
    write_file(path, contents, 0, 0)
}

fn write_file(path: &CStr, contents: &[u8], create: i32, mode: u32) -> SysResult<()> {
    let fd = open_raw(
        path,
        libc::O_WRONLY | create | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        mode,
    )?;
    let mut rest = contents;
    let mut result = Ok(());
    while !rest.is_empty() {
        match sys_raw!("write", libc::SYS_write, fd, rest.as_ptr(), rest.len()) {
            Ok(0) => {
                result = Err(SysError {
                    call: "write",
                    errno: libc::EIO,
                });
                break;
            }
            Ok(n) => rest = &rest[n.min(rest.len())..],
            Err(e) if e.errno == libc::EINTR => {}
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    close(fd);
    result
}

pub fn open_path(path: &CStr) -> SysResult<RawFd> {
    open_raw(path, libc::O_PATH | libc::O_CLOEXEC, 0)
}

pub fn close(fd: RawFd) {
    // Errors are irrelevant here: the descriptor is gone either way.
    let _ = sys_raw!("close", libc::SYS_close, fd);
}

pub fn dup2(old: RawFd, new: RawFd) -> SysResult<()> {
    if old == new {
        // dup3 refuses equal descriptors; dup2 would leave the fd as it is, close-on-exec
        // included, which is never what the child wants: clear the flag.
        return sys_raw!("fcntl", libc::SYS_fcntl, old, libc::F_SETFD, 0).map(drop);
    }
    sys_raw!("dup2", libc::SYS_dup3, old, new, 0).map(drop)
}

pub const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

pub fn close_range_cloexec(first: u32) -> SysResult<()> {
    sys_raw!(
        "close_range",
        libc::SYS_close_range,
        first,
        u32::MAX,
        CLOSE_RANGE_CLOEXEC
    )
    .map(drop)
}

pub fn sethostname(name: &[u8]) -> SysResult<()> {
    sys_raw!(
        "sethostname",
        libc::SYS_sethostname,
        name.as_ptr(),
        name.len()
    )
    .map(drop)
}

/// Switches to uid and gid 0 of the (new) user namespace: credentials keep the host ids until
/// set again after the id maps are written.
pub fn become_ns_root() -> SysResult<()> {
    // Raw syscalls, not glibc's setresuid/setresgid: those broadcast the change to every thread
    // glibc knows of and wait for each to answer, threads that are the parent's, not ours.
    sys_raw!("setresgid", libc::SYS_setresgid, 0, 0, 0)?;
    sys_raw!("setresuid", libc::SYS_setresuid, 0, 0, 0).map(drop)
}

pub fn setsid() -> SysResult<()> {
    sys_raw!("setsid", libc::SYS_setsid).map(drop)
}

/// unshare(2), raw (for the child between clone and exec).
pub fn unshare(flags: i32) -> SysResult<()> {
    sys_raw!("unshare", libc::SYS_unshare, flags).map(drop)
}

/// An rlimit resource, typed as the C library's constants are (`__rlimit_resource_t`, unsigned,
/// in glibc; `int` in musl).
#[cfg(target_env = "gnu")]
pub type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub type Resource = libc::c_int;

/// This process's hard limit of `resource` (unlimited when it cannot be read).
pub fn hard_limit(resource: Resource) -> u64 {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: libc::RLIM_INFINITY,
    };
    // prlimit64 on ourselves (pid 0), no new limit, the old one into `old` (left as set above
    // on failure).
    let _ = sys_raw!(
        "prlimit64",
        libc::SYS_prlimit64,
        0,
        resource,
        0,
        &mut old as *mut libc::rlimit
    );
    old.rlim_max
}

pub fn setrlimit(resource: Resource, value: u64) -> SysResult<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // prlimit64 on ourselves (pid 0) with a valid new limit and no old one wanted.
    sys_raw!(
        "setrlimit",
        libc::SYS_prlimit64,
        0,
        resource,
        &lim as *const libc::rlimit,
        0
    )
    .map(drop)
}

/// The kernel's `struct sigaction` for rt_sigaction(2) (not libc's, which is larger).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Resets every catchable signal to its default action and unblocks all signals, so the target
/// does not inherit the supervisor's SIGPIPE=ignore, its handlers or its masks.
pub fn reset_signals() {
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // A valid kernel sigaction of the 8-byte mask size; numbers the kernel lacks give EINVAL.
        let _ = sys_raw!(
            "rt_sigaction",
            libc::SYS_rt_sigaction,
            sig,
            &dfl as *const KernelSigaction,
            0,
            8
        );
    }
    let empty: u64 = 0;
    let _ = sys_raw!(
        "rt_sigprocmask",
        libc::SYS_rt_sigprocmask,
        libc::SIG_SETMASK,
        &empty as *const u64,
        0,
        8
    );
}

pub fn write_all_raw(fd: RawFd, buf: &[u8]) -> SysResult<()> {
    loop {
        match sys_raw!("write", libc::SYS_write, fd, buf.as_ptr(), buf.len()) {
            Ok(n) if n == buf.len() => return Ok(()),
            Ok(_) => {
                return Err(SysError {
                    call: "write",
                    errno: libc::EIO,
                });
            }
            Err(e) if e.errno == libc::EINTR => {}
            Err(e) => return Err(e),
        }
    }
}

pub fn read_raw(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    loop {
        match sys_raw!("read", libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) {
            Err(e) if e.errno == libc::EINTR => {}
            r => return r,
        }
    }
}

pub fn execve(path: &CStr, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> SysError {
    // argv and envp are NULL-terminated arrays of NUL-terminated strings built before the clone.
    match sys_raw!(
        "execve",
        libc::SYS_execve,
        path.as_ptr(),
        argv.as_ptr(),
        envp.as_ptr()
    ) {
        Err(e) => e,
        Ok(_) => SysError {
            call: "execve",
            errno: libc::EIO,
        },
    }
}

pub fn exit_now(code: i32) -> ! {
    // exit_group ends this process only (the child is its own thread group) and runs no atexit
    // handlers: none may run in the child.
    loop {
        let _ = sys_raw!("exit_group", libc::SYS_exit_group, code);
    }
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
    // A header and two data words, as capset(2) expects for version 3.
    sys_raw!(
        "capset",
        libc::SYS_capset,
        &mut hdr as *mut CapHeader,
        data.as_ptr()
    )
    .map(drop)
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
    // attr is valid for `size` bytes (size <= size_of::<LandlockRulesetAttr>()).
    sys_raw!(
        "landlock_create_ruleset",
        libc::SYS_landlock_create_ruleset,
        attr as *const LandlockRulesetAttr,
        size.min(std::mem::size_of::<LandlockRulesetAttr>()),
        0
    )
    .map(|fd| fd as RawFd)
}

pub fn landlock_add_path_rule(ruleset: RawFd, parent_fd: RawFd, access: u64) -> SysResult<()> {
    let attr = LandlockPathBeneathAttr {
        allowed_access: access,
        parent_fd,
    };
    // attr is a valid packed path_beneath attribute.
    sys_raw!(
        "landlock_add_rule",
        libc::SYS_landlock_add_rule,
        ruleset,
        LANDLOCK_RULE_PATH_BENEATH,
        &attr as *const LandlockPathBeneathAttr,
        0
    )
    .map(drop)
}

pub fn landlock_restrict_self(ruleset: RawFd) -> SysResult<()> {
    sys_raw!(
        "landlock_restrict_self",
        libc::SYS_landlock_restrict_self,
        ruleset,
        0
    )
    .map(drop)
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

// Typed as the C library's `ioctl` takes its request (`unsigned long` in glibc, `int` in musl;
// the kernel reads 32 bits either way).
const SECCOMP_IOCTL_NOTIF_RECV: libc::Ioctl = 0xc050_2100_u32 as libc::Ioctl;
const SECCOMP_IOCTL_NOTIF_SEND: libc::Ioctl = 0xc018_2101_u32 as libc::Ioctl;
const SECCOMP_IOCTL_NOTIF_ID_VALID: libc::Ioctl = 0x4008_2102_u32 as libc::Ioctl;
const SECCOMP_IOCTL_NOTIF_SET_FLAGS: libc::Ioctl = 0x4008_2104_u32 as libc::Ioctl;

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
    // prog points at a valid filter array that outlives the call.
    sys_raw!(
        "seccomp",
        libc::SYS_seccomp,
        SECCOMP_SET_MODE_FILTER,
        SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        &prog as *const libc::sock_fprog
    )
    .map(|fd| fd as RawFd)
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

/// The effective uid (geteuid cannot fail).
pub fn geteuid() -> u32 {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    unsafe { libc::geteuid() }
}

/// How many CPUs the calling thread may run on (its affinity mask, up to 8,192 CPUs).
pub fn affinity_cpus() -> SysResult<u64> {
    Ok(CpuMask::current()?.count())
}

/// A CPU affinity mask in the kernel's layout, as `cpu_set_t` is (up to 8,192 CPUs).
#[derive(Clone, Copy)]
pub struct CpuMask([u64; 128]);

impl CpuMask {
    /// The calling thread's mask.
    pub fn current() -> SysResult<CpuMask> {
        let mut mask = [0u64; 128];
        // SAFETY: the kernel writes at most `size_of_val(&mask)` bytes into our array; pid 0 is
        // the calling thread. The raw call returns the bytes written.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_sched_getaffinity,
                0,
                std::mem::size_of_val(&mask),
                mask.as_mut_ptr(),
            )
        };
        check("sched_getaffinity", ret)?;
        Ok(CpuMask(mask))
    }

    pub fn count(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// This mask without the CPU the calling thread runs on now; `None` if no CPU is left.
    pub fn without_this_cpu(&self) -> SysResult<Option<CpuMask>> {
        // SAFETY: sched_getcpu(3) reads the CPU number (vDSO or getcpu(2)); it touches no
        // memory of ours.
        let cpu = check_int("sched_getcpu", unsafe { libc::sched_getcpu() })? as usize;
        let mut mask = *self;
        if let Some(word) = mask.0.get_mut(cpu / 64) {
            *word &= !(1u64 << (cpu % 64));
        }
        Ok((mask.count() > 0).then_some(mask))
    }

    /// Applies the mask to `thread`, a live thread of this process (the caller holds its join
    /// handle); a thread queued elsewhere is moved at once.
    pub fn apply_to<T>(&self, thread: &std::thread::JoinHandle<T>) -> SysResult<()> {
        // std hands the thread's id out as an integer; musl's `pthread_t` is a pointer.
        #[allow(clippy::unnecessary_cast)]
        let thread = std::os::unix::thread::JoinHandleExt::as_pthread_t(thread) as libc::pthread_t;
        // SAFETY: pthread_setaffinity_np(3) reads `size_of_val(&self.0)` bytes of our array.
        // It returns the error number instead of setting errno.
        let err = unsafe {
            libc::pthread_setaffinity_np(
                thread,
                std::mem::size_of_val(&self.0),
                self.0.as_ptr().cast(),
            )
        };
        if err != 0 {
            return Err(SysError {
                call: "pthread_setaffinity_np",
                errno: err,
            });
        }
        Ok(())
    }

    /// Applies the mask to the calling thread.
    pub fn apply_here(&self) -> SysResult<()> {
        // SAFETY: sched_setaffinity(2) reads `size_of_val(&self.0)` bytes of our array; pid 0 is
        // the calling thread.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_sched_setaffinity,
                0,
                std::mem::size_of_val(&self.0),
                self.0.as_ptr(),
            )
        };
        check("sched_setaffinity", ret).map(drop)
    }
}

/// Whether this process is dumpable (PR_GET_DUMPABLE is 1): then a child it spawns is too, and
/// its id maps may be written at once.
pub fn dumpable() -> bool {
    // SAFETY: PR_GET_DUMPABLE reads a flag of this process; no memory is passed.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) == 1 }
}

/// Gives the calling thread the lowest nice (19; per thread on Linux): it still gets a small
/// share of a busy CPU, so whatever it holds is released in bounded time. Lowering needs no
/// privilege.
pub fn lowest_priority() -> SysResult<()> {
    // SAFETY: setpriority(2) on the calling thread (who 0); no memory is passed.
    check_int("setpriority", unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19)
    })
    .map(drop)
}

/// Lets every thread of this process share one malloc arena (glibc makes one per thread
/// otherwise). Call before any thread starts.
pub fn single_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt(3) changes an allocator parameter; no memory is touched.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Sockets and pipes

/// One recv(2) that never blocks: `Ok(0)` at the end of the stream, EAGAIN when nothing waits.
pub fn recv_nowait(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    after_reset(|| {
        // SAFETY: recv into our own buffer of `buf.len()` bytes.
        let ret = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        check("recv", ret as libc::c_long).map(|n| n as usize)
    })
}

/// A read of the setup socket (parent side). A child that ends with messages of ours unread
/// (it failed a step before it read them) leaves ECONNRESET on our end, which the kernel reports
/// once, ahead of what the child sent before it went (its failure record, still queued): read
/// on past it.
pub fn read_setup(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    after_reset(|| read_raw(fd, buf))
}

fn after_reset(mut read: impl FnMut() -> SysResult<usize>) -> SysResult<usize> {
    match read() {
        Err(e) if e.errno == libc::ECONNRESET => read(),
        r => r,
    }
}

/// The most descriptors one setup message carries (`send_with_fds`, `recv_with_fds`).
pub const MAX_PASSED_FDS: usize = 4;

/// One SCM_RIGHTS control message with room for `MAX_PASSED_FDS` descriptors: the header, then
/// the descriptors where CMSG_DATA puts them (right after the header, which is a multiple of
/// the alignment on Linux; checked in the tests).
#[repr(C)]
struct FdsCmsg {
    hdr: libc::cmsghdr,
    fds: [RawFd; MAX_PASSED_FDS],
}

impl FdsCmsg {
    fn new() -> FdsCmsg {
        // SAFETY: cmsghdr is plain integers (musl's has padding fields): all-zero is valid.
        let hdr: libc::cmsghdr = unsafe { std::mem::zeroed() };
        FdsCmsg {
            hdr,
            fds: [-1; MAX_PASSED_FDS],
        }
    }
}

/// CMSG_LEN of `n` descriptors.
fn cmsg_len(n: usize) -> usize {
    // SAFETY: CMSG_LEN only computes a size.
    unsafe { libc::CMSG_LEN((n * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// A msghdr for one buffer and, where `control` is set, its control message.
fn msghdr(iov: &mut libc::iovec, control: Option<(&mut FdsCmsg, usize)>) -> libc::msghdr {
    // SAFETY: msghdr is plain integers and pointers (and padding on musl): all-zero is valid.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = iov;
    hdr.msg_iovlen = 1;
    if let Some((c, len)) = control {
        hdr.msg_control = (c as *mut FdsCmsg).cast();
        hdr.msg_controllen = len as _;
    }
    hdr
}

/// Sends `msg` with `fds` (at most `MAX_PASSED_FDS`) attached as SCM_RIGHTS (parent side).
pub fn send_with_fds(fd: RawFd, msg: &[u8], fds: &[RawFd]) -> SysResult<()> {
    assert!(
        fds.len() <= MAX_PASSED_FDS,
        "too many descriptors for one message"
    );
    let mut iov = libc::iovec {
        iov_base: msg.as_ptr() as *mut libc::c_void,
        iov_len: msg.len(),
    };
    let mut cmsg = FdsCmsg::new();
    cmsg.hdr.cmsg_level = libc::SOL_SOCKET;
    cmsg.hdr.cmsg_type = libc::SCM_RIGHTS;
    cmsg.hdr.cmsg_len = cmsg_len(fds.len()) as _;
    cmsg.fds[..fds.len()].copy_from_slice(fds);
    // The control length is CMSG_SPACE: CMSG_LEN rounded up to the header's alignment.
    let align = std::mem::align_of::<libc::cmsghdr>();
    let space = cmsg_len(fds.len()).div_ceil(align) * align;
    let control = (!fds.is_empty()).then_some((&mut cmsg, space));
    let hdr = msghdr(&mut iov, control);
    loop {
        // SAFETY: hdr points at the iovec, `msg` and the control message, alive for the call.
        let ret = unsafe { libc::sendmsg(fd, &hdr, libc::MSG_NOSIGNAL) };
        match check("sendmsg", ret as libc::c_long) {
            Err(e) if e.errno == libc::EINTR => {}
            Err(e) => return Err(e),
            Ok(n) if n as usize == msg.len() => return Ok(()),
            Ok(_) => {
                return Err(SysError {
                    call: "sendmsg",
                    errno: libc::EIO,
                });
            }
        }
    }
}

/// Receives one message into `buf` and the descriptors attached to it into `fds`, close-on-exec
/// (child side: a raw recvmsg on the stack, no allocation). Returns the message's length and the
/// number of descriptors; a message whose descriptors did not all fit is an error (EMSGSIZE),
/// with those that came closed.
pub fn recv_with_fds(
    fd: RawFd,
    buf: &mut [u8],
    fds: &mut [RawFd; MAX_PASSED_FDS],
) -> SysResult<(usize, usize)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg = FdsCmsg::new();
    let room = std::mem::size_of::<FdsCmsg>();
    let mut hdr = msghdr(&mut iov, Some((&mut cmsg, room)));
    let n = loop {
        // The msghdr points at the iovec, `buf` and the control message, alive for the call.
        match sys_raw!(
            "recvmsg",
            libc::SYS_recvmsg,
            fd,
            &mut hdr as *mut libc::msghdr,
            libc::MSG_CMSG_CLOEXEC
        ) {
            Err(e) if e.errno == libc::EINTR => {}
            r => break r?,
        }
    };
    let truncated = hdr.msg_flags & libc::MSG_CTRUNC != 0;
    let got = hdr.msg_controllen as u64 as usize;
    // One SCM_RIGHTS message is all the parent sends; its descriptors follow the header.
    let count = if got >= cmsg_len(0)
        && cmsg.hdr.cmsg_level == libc::SOL_SOCKET
        && cmsg.hdr.cmsg_type == libc::SCM_RIGHTS
    {
        // socklen_t on musl, size_t on glibc.
        let len = cmsg.hdr.cmsg_len as u64 as usize;
        (len.saturating_sub(cmsg_len(0)) / std::mem::size_of::<RawFd>()).min(MAX_PASSED_FDS)
    } else {
        0
    };
    fds[..count].copy_from_slice(&cmsg.fds[..count]);
    if truncated {
        for &f in &fds[..count] {
            close(f);
        }
        return Err(SysError {
            call: "recvmsg",
            errno: libc::EMSGSIZE,
        });
    }
    Ok((n, count))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The setup message with descriptors attached: the byte arrives with every descriptor,
    /// each a working, close-on-exec copy (written through here, read at the other end).
    #[test]
    fn descriptors_pass_with_a_setup_message() {
        // The descriptors sit where CMSG_DATA puts them.
        assert_eq!(std::mem::offset_of!(FdsCmsg, fds), cmsg_len(0));
        let (a, b) = seqpacket_pair().unwrap();
        let pipes: Vec<(OwnedFd, OwnedFd)> = (0..2).map(|_| pipe().unwrap()).collect();
        let ends: Vec<RawFd> = pipes.iter().map(|p| p.1.as_raw_fd()).collect();
        send_with_fds(a.as_raw_fd(), b"C", &ends).unwrap();
        let mut buf = [0u8; 4];
        let mut got = [-1; MAX_PASSED_FDS];
        let (n, count) = recv_with_fds(b.as_raw_fd(), &mut buf, &mut got).unwrap();
        assert_eq!((n, buf[0], count), (1, b'C', 2));
        for (i, (&fd, p)) in got[..count].iter().zip(&pipes).enumerate() {
            assert!(!ends.contains(&fd), "a new descriptor, not ours");
            // SAFETY: F_GETFD on a descriptor we just received.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
            write_all_raw(fd, &[b'0' + i as u8]).unwrap();
            let mut one = [0u8; 1];
            assert_eq!(read_raw(p.0.as_raw_fd(), &mut one).unwrap(), 1);
            assert_eq!(one[0], b'0' + i as u8);
            close(fd);
        }
        // A message without descriptors still arrives, with none.
        send_with_fds(a.as_raw_fd(), b"G", &[]).unwrap();
        let (n, count) = recv_with_fds(b.as_raw_fd(), &mut buf, &mut got).unwrap();
        assert_eq!((n, buf[0], count), (1, b'G', 0));
    }
}
