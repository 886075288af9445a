//! The child's setup, computed in the parent as data: every path, string and table the child needs
//! between clone and exec is built here, so the child itself only walks the plan with raw syscalls
//! (no allocation, no locks, no logging).

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::sys;

/// Host directories that make up the child's system: read-only, or replicated as symlinks where
/// the host has a symlink (/bin -> usr/bin on merged-/usr systems).
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin",
];

/// The /etc allow-list: what the dynamic loader, libc and interpreters read at start. Users,
/// groups and host names come from synthetic files instead of the host's.
pub const ETC_ALLOW: &[&str] = &[
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "nsswitch.conf",
    "alternatives",
    "mime.types",
    // OpenSSL's configuration (node, Python's ssl contexts): not /etc/ssl's private keys.
    "ssl/openssl.cnf",
];

/// Device nodes bound from the host's /dev.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

const PASSWD: &[u8] = b"root:x:0:0:sandbox:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &[u8] = b"root:x:0:\nnogroup:x:65534:\n";
const HOSTS: &[u8] = b"127.0.0.1 localhost modelvet\n::1 localhost\n";

/// Paths a program commonly probes that are not findings when it does (the CPU count and cgroup
/// quota lookups of every threading runtime, its own /proc entries, the NUMA nodes `ps` and
/// allocators look up, the huge-page settings a JVM reads at start).
pub const EXPECTED_PROBES: &[&str] = &[
    "/proc",
    "/sys/devices/system/cpu",
    "/sys/devices/system/node",
    "/sys/fs/cgroup",
    "/sys/kernel/mm/transparent_hugepage",
    "/sys/kernel/mm/hugepages",
    "/dev",
];

/// Paths a program commonly writes that are not findings: the null devices and its own
/// descriptors by name.
pub const EXPECTED_WRITES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/fd",
    "/proc/self/fd",
    "/proc/thread-self/fd",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Mkdir(CString),
    Touch(CString),
    Symlink {
        target: CString,
        link: CString,
    },
    /// Recursive bind; `attrs` are MOUNT_ATTR_* set recursively afterwards. `exact` (the paths a
    /// user names, in folders an earlier run may write): bound from a descriptor opened with no
    /// symlink on the way, so a component swapped for a link after the plan was made fails the
    /// bind instead of redirecting it.
    Bind {
        src: CString,
        dst: CString,
        attrs: u64,
        exact: bool,
    },
    Tmpfs {
        dst: CString,
        data: CString,
    },
    Proc {
        dst: CString,
    },
    File {
        path: CString,
        contents: &'static [u8],
    },
}

/// Landlock access rights (see linux/landlock.h).
pub mod access {
    pub const EXECUTE: u64 = 1 << 0;
    pub const WRITE_FILE: u64 = 1 << 1;
    pub const READ_FILE: u64 = 1 << 2;
    pub const READ_DIR: u64 = 1 << 3;
    pub const TRUNCATE: u64 = 1 << 14;
    pub const IOCTL_DEV: u64 = 1 << 15;
    pub const NET_BIND_TCP: u64 = 1 << 0;
    pub const NET_CONNECT_TCP: u64 = 1 << 1;
    pub const SCOPE_ABSTRACT_UNIX: u64 = 1 << 0;
    pub const SCOPE_SIGNAL: u64 = 1 << 1;

    /// Every filesystem right the given ABI knows.
    pub fn fs_all(abi: u32) -> u64 {
        match abi {
            0 => 0,
            1 => (1 << 13) - 1,
            2 => (1 << 14) - 1,
            3 | 4 => (1 << 15) - 1,
            _ => (1 << 16) - 1,
        }
    }
}

#[derive(Debug)]
pub struct Landlock {
    pub abi: u32,
    pub rules: Vec<(CString, u64)>,
}

impl Landlock {
    pub fn handled_fs(&self) -> u64 {
        access::fs_all(self.abi)
    }
    pub fn handled_net(&self) -> u64 {
        if self.abi >= 4 {
            access::NET_BIND_TCP | access::NET_CONNECT_TCP
        } else {
            0
        }
    }
    pub fn scoped(&self) -> u64 {
        if self.abi >= 6 {
            access::SCOPE_ABSTRACT_UNIX | access::SCOPE_SIGNAL
        } else {
            0
        }
    }
    /// Size of the ruleset attribute the ABI understands (older kernels reject unknown fields).
    pub fn attr_size(&self) -> usize {
        match self.abi {
            0..=3 => 8,
            4 | 5 => 16,
            _ => 24,
        }
    }
}

/// Everything the child needs, precomputed: what is known when it is cloned, and the rest
/// (`RestPlan`), which is either there from the start or, for a child started ahead of its
/// command's plan (`warm_up_with_child`), stored later by the parent and announced with `MSG_PLAN`.
pub struct ChildPlan {
    /// Mount operations that depend on nothing of the command (the system folders, /etc, /dev,
    /// /proc), run right after the first pivot; empty where the whole plan was known first.
    pub early_ops: Vec<Op>,
    pub stage: CString,
    pub newroot: CString,
    pub oldroot: CString,
    pub newroot_abs: CString,
    pub dot: CString,
    pub root: CString,
    pub hostname: &'static [u8],
    /// The child's end of the setup socket.
    pub sock: RawFd,
    /// The parent's end of the setup socket, which the child inherits and closes first, so that
    /// the parent's death shows in the child as the end of the socket.
    pub parent_sock: RawFd,
    /// Started ahead of its plan: the rest is stored later and announced with `MSG_PLAN`, which
    /// the child reads before it looks at `rest`.
    pub ahead: bool,
    /// The rest of the plan. Written once, before the clone or before `MSG_PLAN`, and only read
    /// after that (by the child: under CLONE_VM it is the parent's memory), never changed.
    pub rest: std::sync::atomic::AtomicPtr<RestPlan>,
}

/// The part of the child's plan that follows from the command.
pub struct RestPlan {
    /// Mount operations after `early_ops`, ending the root's construction.
    pub ops: Vec<Op>,
    pub cwd: CString,
    pub rlimits: Vec<(sys::Resource, u64)>,
    pub landlock: Landlock,
    pub filter: Vec<libc::sock_filter>,
    pub program: CString,
    pub argv: Vec<CString>,
    pub argv_ptrs: Vec<*const libc::c_char>,
    pub env: Vec<CString>,
    pub env_ptrs: Vec<*const libc::c_char>,
    /// (source fd in the parent, target fd number in the child): stdio and extra fds.
    pub fds: Vec<(RawFd, RawFd)>,
    /// First fd number not in `fds` targets: everything from here is closed on exec.
    pub first_free_fd: RawFd,
}

impl ChildPlan {
    /// The rest of the plan, once stored.
    pub fn rest(&self) -> Option<&RestPlan> {
        let p = self.rest.load(std::sync::atomic::Ordering::Acquire);
        // SAFETY: a non-null pointer was stored from a `Box<RestPlan>` that its owner
        // (`ChildMemory`) keeps alive and unchanged as long as this plan.
        unsafe { p.as_ref() }
    }

    /// The mount operation with the index the child reports: early ones first, then the rest.
    pub fn op(&self, index: usize) -> Option<&Op> {
        match index.checked_sub(self.early_ops.len()) {
            None => self.early_ops.get(index),
            Some(i) => self.rest().and_then(|r| r.ops.get(i)),
        }
    }
}

/// How paths will be judged when the program opens them.
#[derive(Debug, Clone, Default)]
pub struct PathRules {
    /// Prefixes visible read-only (or as expected probes): opens there are not findings.
    pub readable: Vec<String>,
    /// Prefixes the program may write.
    pub writable: Vec<String>,
    /// Host paths bound in on request (target, arguments, --ro, --allow-write): a socket there
    /// is a host service, not one the program made in its scratch.
    pub host: Vec<String>,
    /// Folders the sandbox makes that hold nothing of the host's but what is bound below them
    /// (the working directory): readable as themselves, a listing, not as prefixes.
    pub folders: Vec<String>,
}

impl PathRules {
    /// Readable: under a visible prefix, or a directory on the way to one ("/", "/etc").
    pub fn is_readable(&self, path: &str) -> bool {
        under_any(path, &self.readable)
            || self.is_writable(path)
            || self.folders.iter().any(|f| f == path.trim_end_matches('/'))
            || self
                .readable
                .iter()
                .chain(&self.writable)
                .any(|p| under_any(p, &[path.trim_end_matches('/').to_string()]) || path == "/")
    }
    /// Writable: under a writable prefix, unless a read-only one lies deeper on the way (a file
    /// bound read-only under the scratch `/tmp`).
    pub fn is_writable(&self, path: &str) -> bool {
        match deepest(path, &self.writable) {
            Some(w) => deepest(path, &self.readable).is_none_or(|r| r <= w),
            None => false,
        }
    }
    pub fn is_host(&self, path: &str) -> bool {
        under_any(path, &self.host)
    }
}

/// The length of the longest of `prefixes` that `path` is under.
fn deepest(path: &str, prefixes: &[String]) -> Option<usize> {
    prefixes
        .iter()
        .filter(|p| under_any(path, std::slice::from_ref(*p)))
        .map(String::len)
        .max()
}

fn under_any(path: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| {
        path == p
            || (path.starts_with(p.as_str())
                && (p == "/" || path.as_bytes().get(p.len()) == Some(&b'/')))
    })
}

/// Lexically normalises an absolute path ("/a/./b/../c" -> "/a/c").
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

pub fn cstr(b: impl AsRef<OsStr>) -> Result<CString, PlanError> {
    CString::new(b.as_ref().as_bytes()).map_err(|_| PlanError::Nul(b.as_ref().to_os_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("path or argument contains a NUL byte: {0:?}")]
    Nul(OsString),
    #[error("{0}: cannot be shown inside the sandbox ({1})")]
    Path(PathBuf, String),
}

/// Inputs to the mount plan.
pub struct MountInputs<'a> {
    pub ro: &'a [PathBuf],
    pub rw: &'a [PathBuf],
    pub cwd: &'a Path,
    pub scratch_bytes: u64,
}

pub const STAGE: &str = "/tmp";
const NEWROOT: &str = "/newroot";
const OLDROOT: &str = "/oldroot";

fn in_new(p: &Path) -> PathBuf {
    Path::new(NEWROOT).join(p.strip_prefix("/").unwrap_or(p))
}
fn in_old(p: &Path) -> PathBuf {
    Path::new(OLDROOT).join(p.strip_prefix("/").unwrap_or(p))
}

pub(crate) fn is_system(p: &Path) -> bool {
    SYSTEM_DIRS.iter().any(|s| p.starts_with(s))
}

/// What the host's system folders and /etc allow-list give every sandbox (~0.1 ms of stat calls
/// and a listing of /etc). `early_ops` reads it ahead of the command's plan, which then takes that
/// scan instead of making its own, so that both agree (for `jail`, milliseconds apart; for a
/// library caller whose next spawn comes later, the scan is as old as the child started ahead).
#[derive(Debug, Clone, Default)]
struct SystemPart {
    /// Folders to make, each with its parents.
    dirs: Vec<PathBuf>,
    touches: Vec<PathBuf>,
    links: Vec<(PathBuf, PathBuf)>,
    binds: Vec<(PathBuf, PathBuf, u64, bool)>,
    readable: Vec<String>,
}

/// The scan `early_ops` read, for the plan that follows it (once: a later plan scans anew).
static SCANNED: std::sync::Mutex<Option<SystemPart>> = std::sync::Mutex::new(None);

fn system_part() -> Result<SystemPart, PlanError> {
    let ahead = SCANNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    match ahead {
        Some(s) => Ok(s),
        None => scan_system(),
    }
}

fn scan_system() -> Result<SystemPart, PlanError> {
    use sys::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
    let ro_attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    let mut part = SystemPart::default();
    for s in SYSTEM_DIRS {
        let p = Path::new(s);
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target =
                    std::fs::read_link(p).map_err(|e| PlanError::Path(p.into(), e.to_string()))?;
                part.links.push((target, p.to_path_buf()));
                part.readable.push(s.to_string());
            }
            Ok(m) if m.is_dir() => {
                part.dirs.push(p.to_path_buf());
                part.binds
                    .push((p.to_path_buf(), p.to_path_buf(), ro_attrs, false));
                part.readable.push(s.to_string());
            }
            _ => {}
        }
    }
    part.dirs.push(PathBuf::from("/etc"));
    for e in ETC_ALLOW
        .iter()
        .map(|e| format!("/etc/{e}"))
        .chain(python_etc())
    {
        let p = Path::new(&e);
        let meta = std::fs::symlink_metadata(p);
        // An entry below a folder of /etc (ssl/openssl.cnf) needs that folder made first.
        if let (Ok(_), Some(parent)) = (&meta, p.parent()) {
            part.dirs.push(parent.to_path_buf());
        }
        match meta {
            Ok(m) if m.file_type().is_symlink() => {
                let target =
                    std::fs::read_link(p).map_err(|e| PlanError::Path(p.into(), e.to_string()))?;
                part.links.push((target, p.to_path_buf()));
            }
            Ok(m) if m.is_dir() => {
                part.dirs.push(p.to_path_buf());
                part.binds
                    .push((p.to_path_buf(), p.to_path_buf(), ro_attrs, false));
            }
            Ok(_) => {
                part.touches.push(p.to_path_buf());
                part.binds
                    .push((p.to_path_buf(), p.to_path_buf(), ro_attrs, false));
            }
            Err(_) => continue,
        }
        part.readable.push(e);
    }
    for f in ["/etc/passwd", "/etc/group", "/etc/hosts"] {
        part.readable.push(f.to_string());
    }
    Ok(part)
}

/// Builds the mount operations, run after the first pivot into the staging tmpfs (host root at
/// /oldroot, the new root at /newroot).
pub fn mounts(inp: &MountInputs) -> Result<(Vec<Op>, PathRules), PlanError> {
    mounts_with(inp, system_part()?)
}

fn mounts_with(inp: &MountInputs, system: SystemPart) -> Result<(Vec<Op>, PathRules), PlanError> {
    use sys::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
    let ro_attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut touches: Vec<PathBuf> = Vec::new();
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    // (host path, path inside, attrs, exact: see Op::Bind)
    let mut binds: Vec<(PathBuf, PathBuf, u64, bool)> = Vec::new();
    let mut rules = PathRules::default();

    let add_dir_chain = |dirs: &mut Vec<PathBuf>, p: &Path| {
        let mut acc = PathBuf::from("/");
        for c in p.components().skip(1) {
            acc.push(c);
            if !dirs.contains(&acc) {
                dirs.push(acc.clone());
            }
        }
    };

    for d in &system.dirs {
        add_dir_chain(&mut dirs, d);
    }
    touches.extend(system.touches);
    links.extend(system.links);
    binds.extend(system.binds);
    rules.readable.extend(system.readable);

    // Targets, arguments, --ro and --allow-write paths, bound at their canonical host path.
    let mut user: Vec<(PathBuf, bool)> = Vec::new();
    for (list, write) in [(inp.ro, false), (inp.rw, true)] {
        for p in list {
            let canon =
                std::fs::canonicalize(p).map_err(|e| PlanError::Path(p.clone(), e.to_string()))?;
            for bad in ["/proc", "/sys", "/dev"] {
                if canon.starts_with(bad) {
                    return Err(PlanError::Path(
                        p.clone(),
                        format!("{bad} is never bound into the sandbox"),
                    ));
                }
            }
            if canon == Path::new("/") {
                return Err(PlanError::Path(
                    p.clone(),
                    "the host root is never bound".into(),
                ));
            }
            if !write && is_system(&canon) {
                continue;
            }
            // A link in a writable folder may have been planted by an earlier run to lead a
            // later run's reads or writes anywhere: a bound path must be named as it really is.
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            if normalize(&cwd.join(p)) != canon {
                return Err(PlanError::Path(
                    p.clone(),
                    format!(
                        "paths bound into the sandbox may not go through a symlink: this one \
                         leads to {}; name that path if it is meant",
                        canon.display()
                    ),
                ));
            }
            user.push((canon, write));
        }
    }
    // Parents first; a path already under another bound path needs no bind of its own (unless it
    // is writable inside a read-only parent).
    user.sort_by_key(|(p, _)| p.components().count());
    let mut kept: Vec<(PathBuf, bool)> = Vec::new();
    for (p, w) in user {
        if kept.iter().any(|(k, kw)| p.starts_with(k) && (*kw || !w)) {
            continue;
        }
        kept.push((p, w));
    }
    for (p, w) in &kept {
        let meta = std::fs::metadata(p).map_err(|e| PlanError::Path(p.clone(), e.to_string()))?;
        if let Some(parent) = p.parent() {
            add_dir_chain(&mut dirs, parent);
        }
        if meta.is_dir() {
            add_dir_chain(&mut dirs, p);
        } else {
            touches.push(p.clone());
        }
        let attrs = if *w {
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
        } else {
            ro_attrs
        };
        binds.push((p.clone(), p.clone(), attrs, true));
        let s = p.to_string_lossy().into_owned();
        rules.host.push(s.clone());
        if *w {
            rules.writable.push(s);
        } else {
            rules.readable.push(s);
        }
    }
    // A working directory below /dev is made once the sandbox's own /dev is mounted (made now,
    // it would be hidden under it); see phase 3.
    let cwd_in_dev = inp.cwd.starts_with("/dev");
    if !cwd_in_dev {
        add_dir_chain(&mut dirs, inp.cwd);
    }
    // Python lists its working directory for modules (`sys.path[0]` of `python3 -c`): the folder
    // is the sandbox's own, empty but for what is bound below it.
    rules.folders.push(inp.cwd.to_string_lossy().into_owned());
    for d in ["/tmp", "/dev", "/proc"] {
        add_dir_chain(&mut dirs, Path::new(d));
    }
    rules.writable.push("/tmp".into());
    rules.writable.push("/dev/shm".into());
    // The devices Landlock lets it write, and the descriptors it holds (stdout, stderr, its own
    // pipes) reopened by name: writing there is no write to anything it was not given.
    for w in EXPECTED_WRITES {
        rules.writable.push(w.to_string());
    }
    for e in EXPECTED_PROBES {
        rules.readable.push(e.to_string());
    }

    let c = |p: PathBuf| cstr(p.as_os_str());
    let mut ops = Vec::new();
    // Phase 0: the scratch first, so targets bound under /tmp land on top of it, not under it.
    let scratch = format!("mode=1777,size={}", inp.scratch_bytes.max(1 << 20));
    ops.push(Op::Mkdir(c(in_new(Path::new("/tmp")))?));
    ops.push(Op::Tmpfs {
        dst: c(in_new(Path::new("/tmp")))?,
        data: cstr(scratch.as_str())?,
    });
    // Phase 1: the skeleton in the new root's tmpfs (and the scratch).
    for d in &dirs {
        ops.push(Op::Mkdir(c(in_new(d))?));
    }
    for t in &touches {
        ops.push(Op::Touch(c(in_new(t))?));
    }
    for (target, link) in &links {
        ops.push(Op::Symlink {
            target: cstr(target.as_os_str())?,
            link: c(in_new(link))?,
        });
    }
    for (path, contents) in [
        ("/etc/passwd", PASSWD),
        ("/etc/group", GROUP),
        ("/etc/hosts", HOSTS),
    ] {
        ops.push(Op::File {
            path: c(in_new(Path::new(path)))?,
            contents,
        });
    }
    // Phase 1b: the scratch folders on the way to a bind (`/tmp/a` of a bound `/tmp/a/b`) are
    // made mount points of themselves, which cannot be renamed: renamed, they would carry the
    // bind to a path the record no longer knows as the host's (`/tmp/elsewhere/b/svc.sock`).
    let mut pinned: Vec<&Path> = Vec::new();
    for (_, inside, _, _) in &binds {
        for a in inside.ancestors().skip(1) {
            let in_scratch = a.starts_with("/tmp") && a != Path::new("/tmp");
            if in_scratch && !kept.iter().any(|(k, _)| a.starts_with(k)) && !pinned.contains(&a) {
                pinned.push(a);
            }
        }
    }
    pinned.sort_by_key(|a| a.components().count());
    for a in pinned {
        ops.push(Op::Bind {
            src: c(in_new(a))?,
            dst: c(in_new(a))?,
            attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            exact: false,
        });
    }
    // Phase 2: binds, shallow paths first so deeper ones land on top.
    binds.sort_by_key(|(_, inside, _, _)| inside.components().count());
    for (host, inside, attrs, exact) in binds {
        ops.push(Op::Bind {
            src: c(in_old(&host))?,
            dst: c(in_new(&inside))?,
            attrs,
            exact,
        });
    }
    // Phase 3: the kernel file systems and scratch.
    ops.push(Op::Proc {
        dst: c(in_new(Path::new("/proc")))?,
    });
    ops.push(Op::Tmpfs {
        dst: c(in_new(Path::new("/dev")))?,
        data: cstr("mode=0755,size=64k")?,
    });
    for d in DEVICES {
        let p = Path::new("/dev").join(d);
        ops.push(Op::Touch(c(in_new(&p))?));
        // Read-only mounts: reads and writes of a device node still work (they go to the
        // driver), but its times and attributes on the host cannot be changed (utimensat).
        ops.push(Op::Bind {
            src: c(in_old(&p))?,
            dst: c(in_new(&p))?,
            attrs: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
            exact: false,
        });
    }
    // POSIX shared memory and semaphores (Python's multiprocessing, PyTorch's data loaders):
    // scratch of its own, as /tmp, its pages charged to the memory cgroup.
    ops.push(Op::Mkdir(c(in_new(Path::new("/dev/shm")))?));
    ops.push(Op::Tmpfs {
        dst: c(in_new(Path::new("/dev/shm")))?,
        data: cstr(scratch)?,
    });
    if cwd_in_dev {
        let mut late = Vec::new();
        add_dir_chain(&mut late, inp.cwd);
        // (/dev and /dev/shm are there already.)
        for d in late
            .iter()
            .filter(|d| !matches!(d.to_str(), Some("/dev" | "/dev/shm")))
        {
            ops.push(Op::Mkdir(c(in_new(d))?));
        }
    }
    // Run unprivileged, the program's uid is the caller's: the kernel would list the caller's
    // keys (descriptions, sizes) in /proc/keys. Emptied, as /proc/key-users.
    if sys::geteuid() != 0 {
        for f in ["/proc/keys", "/proc/key-users"] {
            if Path::new(f).exists() {
                ops.push(Op::Bind {
                    src: c(in_new(Path::new("/dev/null")))?,
                    dst: c(in_new(Path::new(f)))?,
                    attrs: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
                    exact: false,
                });
            }
        }
    }
    for (target, link) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ] {
        ops.push(Op::Symlink {
            target: cstr(target)?,
            link: c(in_new(&Path::new("/dev").join(link)))?,
        });
    }
    Ok((ops, rules))
}

fn python_etc() -> Vec<String> {
    // Debian's interpreters read /etc/pythonX.Y/sitecustomize.py at start.
    std::fs::read_dir("/etc")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("python"))
                .map(|n| format!("/etc/{n}"))
                .collect()
        })
        .unwrap_or_default()
}

/// The mount operations every plan of this process starts with, whatever its command: those of
/// a plan with no paths of its own, less the scratch tmpfs mounts whose size follows from the
/// memory limit. A child started ahead of its command (`warm_up_with_child`) runs these while the command
/// is still being planned; `split` then finds them in the command's plan.
pub fn early_ops() -> Result<Vec<Op>, PlanError> {
    let system = scan_system()?;
    *SCANNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(system.clone());
    let (ops, _) = mounts_with(
        &MountInputs {
            ro: &[],
            rw: &[],
            cwd: Path::new("/"),
            scratch_bytes: 0,
        },
        system,
    )?;
    let scratch = [in_new(Path::new("/tmp")), in_new(Path::new("/dev/shm"))];
    let mut early: Vec<Op> = Vec::with_capacity(ops.len());
    for op in ops {
        let sized = matches!(&op, Op::Tmpfs { dst, .. } if scratch.iter().any(|s| dst.as_bytes() == s.as_os_str().as_bytes()));
        // A folder made twice (/tmp, before its scratch and again with the skeleton): the second
        // `mkdir` finds it there and does nothing, wherever it runs, so it is left to the rest
        // of the plan, not tied to the scratch's place.
        let again = matches!(&op, Op::Mkdir(_)) && early.contains(&op);
        if !sized && !again {
            early.push(op);
        }
    }
    Ok(early)
}

impl Op {
    /// The path in the new root the operation makes or mounts on.
    fn path(&self) -> &[u8] {
        match self {
            Op::Mkdir(p) | Op::Touch(p) => p.as_bytes(),
            Op::Symlink { link, .. } => link.as_bytes(),
            Op::Bind { dst, .. } | Op::Tmpfs { dst, .. } | Op::Proc { dst } => dst.as_bytes(),
            Op::File { path, .. } => path.as_bytes(),
        }
    }

    /// A path in the new root the operation reads: a bind's source there (`/proc/keys` over the
    /// new root's `/dev/null`, a scratch folder bound onto itself).
    fn source_in_new(&self) -> Option<&[u8]> {
        match self {
            Op::Bind { src, .. } if src.as_bytes().starts_with(NEWROOT.as_bytes()) => {
                Some(src.as_bytes())
            }
            _ => None,
        }
    }

    /// Whether this and `other` touch one branch of the new root: one's path (or the source it
    /// reads there) is the other's or lies below it. Operations that do not may run in either
    /// order.
    fn meets(&self, other: &Op) -> bool {
        self.paths().into_iter().flatten().any(|a| {
            other
                .paths()
                .into_iter()
                .flatten()
                .any(|b| same_branch(a, b))
        })
    }

    fn paths(&self) -> [Option<&[u8]>; 2] {
        [Some(self.path()), self.source_in_new()]
    }
}

/// One path is the other or lies below it.
fn same_branch(a: &[u8], b: &[u8]) -> bool {
    let below = |x: &[u8], y: &[u8]| x.len() > y.len() && x.starts_with(y) && x[y.len()] == b'/';
    a == b || below(a, b) || below(b, a)
}

/// The operations of `full` left to run once `early` has run, where running `early` first and
/// then these builds the same tree as `full` in its own order; `None` where it would not: `early`
/// is not a subsequence of `full`, or an operation left for later came before an early one on the
/// same branch of the tree (a path bound over a folder the early part filled, say `--ro /etc`).
/// Operations on different branches do not see each other: they may run in either order (the
/// paths are the host's canonical ones, so none reaches another branch through a link).
pub fn split(full: &[Op], early: &[Op]) -> Option<Vec<Op>> {
    let mut is_early = vec![false; full.len()];
    let mut at = 0;
    for e in early {
        let i = at + full[at..].iter().position(|f| f == e)?;
        is_early[i] = true;
        at = i + 1;
    }
    for (i, x) in full.iter().enumerate().filter(|(i, _)| !is_early[*i]) {
        let moved_past = full[i + 1..]
            .iter()
            .zip(&is_early[i + 1..])
            .any(|(y, &e)| e && x.meets(y));
        if moved_past {
            return None;
        }
    }
    Some(
        full.iter()
            .zip(is_early)
            .filter(|(_, e)| !e)
            .map(|(op, _)| op.clone())
            .collect(),
    )
}

/// Landlock rules, with paths as the child sees them after the final pivot.
pub fn landlock(abi: u32, rw: &[PathBuf]) -> Result<Landlock, PlanError> {
    use access::*;
    let all = fs_all(abi);
    let mut rules = vec![
        (cstr("/")?, EXECUTE | READ_FILE | READ_DIR),
        (cstr("/tmp")?, all),
        (cstr("/dev/shm")?, all),
    ];
    for p in rw {
        let canon =
            std::fs::canonicalize(p).map_err(|e| PlanError::Path(p.clone(), e.to_string()))?;
        let file_only = !canon.is_dir();
        let rights = if file_only {
            all & (EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV)
        } else {
            all
        };
        rules.push((cstr(canon.as_os_str())?, rights));
    }
    for d in ["null", "zero", "full"] {
        rules.push((
            cstr(format!("/dev/{d}"))?,
            all & (READ_FILE | WRITE_FILE | TRUNCATE),
        ));
    }
    Ok(Landlock { abi, rules })
}

pub fn staging_paths() -> Result<[CString; 6], PlanError> {
    Ok([
        cstr(STAGE)?,
        cstr("newroot")?,
        cstr("oldroot")?,
        cstr(NEWROOT)?,
        cstr(".")?,
        cstr("/")?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_removes_dots() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(
            normalize(Path::new("/../../etc/shadow")),
            PathBuf::from("/etc/shadow")
        );
    }

    #[test]
    fn prefixes_respect_component_boundaries() {
        let r = PathRules {
            readable: vec!["/usr".into(), "/etc/hosts".into()],
            writable: vec!["/tmp".into()],
            host: vec!["/srv/in".into()],
            folders: vec!["/home/me/work".into()],
        };
        // The working directory reads as a listing, never as a prefix.
        assert!(r.is_readable("/home/me/work") && r.is_readable("/home/me/work/"));
        assert!(!r.is_readable("/home/me/work/secret.txt") && !r.is_readable("/home/me/workx"));
        assert!(!r.is_writable("/home/me/work"));
        assert!(r.is_host("/srv/in/sock"));
        assert!(!r.is_host("/srv/inside"));
        assert!(!r.is_host("/tmp/sock"));
        assert!(r.is_readable("/usr/lib/x.so"));
        assert!(r.is_readable("/usr"));
        assert!(!r.is_readable("/usrlocal/x"));
        assert!(!r.is_readable("/etc/shadow"));
        assert!(
            r.is_readable("/etc"),
            "an ancestor of a visible path is listable"
        );
        assert!(r.is_readable("/"));
        assert!(r.is_writable("/tmp/a"));
        assert!(!r.is_writable("/tmpx"));
    }

    #[test]
    fn mount_plan_binds_system_read_only_and_hides_the_rest() {
        let (ops, rules) = mounts(&MountInputs {
            ro: &[],
            rw: &[],
            cwd: Path::new("/"),
            scratch_bytes: 1 << 20,
        })
        .unwrap();
        let binds: Vec<String> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Bind { dst, attrs, .. } if attrs & sys::MOUNT_ATTR_RDONLY != 0 => {
                    Some(dst.to_string_lossy().into_owned())
                }
                _ => None,
            })
            .collect();
        assert!(binds.iter().any(|b| b == "/newroot/usr"));
        assert!(
            !binds
                .iter()
                .any(|b| b.starts_with("/newroot/root") || b.starts_with("/newroot/home"))
        );
        assert!(!rules.is_readable("/root/.ssh/id_rsa"));
        assert!(!rules.is_readable("/etc/shadow"));
        // OpenSSL's configuration, never its keys.
        if Path::new("/etc/ssl/openssl.cnf").is_file() {
            assert!(binds.iter().any(|b| b == "/newroot/etc/ssl/openssl.cnf"));
            assert!(rules.is_readable("/etc/ssl/openssl.cnf"));
        }
        assert!(
            !binds
                .iter()
                .any(|b| b.starts_with("/newroot/etc/ssl/private"))
        );
        assert!(!rules.is_readable("/etc/ssl/private/ssl-cert-snakeoil.key"));
        // POSIX shared memory: a tmpfs of its own, writable.
        assert!(ops.iter().any(
            |o| matches!(o, Op::Tmpfs { dst, .. } if dst.to_string_lossy() == "/newroot/dev/shm")
        ));
        assert!(rules.is_writable("/dev/shm/sem.x") && !rules.is_writable("/dev/sda"));
    }

    #[test]
    fn scratch_folders_on_the_way_to_a_bind_are_pinned_before_it() {
        let top = PathBuf::from(format!("/tmp/mv-plan-{}", std::process::id()));
        let file = top.join("a/b/f");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"x").unwrap();
        let planned = mounts(&MountInputs {
            ro: std::slice::from_ref(&file),
            rw: &[],
            cwd: Path::new("/"),
            scratch_bytes: 1 << 20,
        });
        let _ = std::fs::remove_dir_all(&top);
        let (ops, _) = planned.unwrap();
        let name = |c: &CString| c.to_string_lossy().into_owned();
        let pinned: Vec<(usize, String)> = ops
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Op::Bind { src, dst, .. } if src == dst => Some((i, name(dst))),
                _ => None,
            })
            .collect();
        let want: Vec<String> = ["", "/a", "/a/b"]
            .iter()
            .map(|s| format!("/newroot{}{s}", top.display()))
            .collect();
        assert_eq!(pinned.iter().map(|p| p.1.clone()).collect::<Vec<_>>(), want);
        let bind_of_file = ops
            .iter()
            .position(|o| matches!(o, Op::Bind { dst, .. } if name(dst).ends_with("/a/b/f")))
            .unwrap();
        // The skeleton's folders (not /dev/shm, made in /dev's tmpfs once that is mounted).
        let last_mkdir = ops
            .iter()
            .rposition(|o| matches!(o, Op::Mkdir(p) if !name(p).starts_with("/newroot/dev/")))
            .unwrap();
        assert!(
            pinned
                .iter()
                .all(|(i, _)| *i > last_mkdir && *i < bind_of_file)
        );
    }

    #[test]
    fn a_plan_splits_after_its_early_part_unless_a_path_of_its_own_covers_it() {
        let early = early_ops().unwrap();
        assert!(
            early
                .iter()
                .any(|o| matches!(o, Op::Bind { dst, .. } if dst.as_bytes() == b"/newroot/usr"))
        );
        // A target under the scratch and a working folder elsewhere: the rest is the scratch, the
        // command's folders and binds, and the /dev/shm tmpfs.
        let top = PathBuf::from(format!("/tmp/mv-split-{}", std::process::id()));
        std::fs::create_dir_all(&top).unwrap();
        let file = top.join("prog");
        std::fs::write(&file, b"x").unwrap();
        let plan = |ro: &[PathBuf]| {
            mounts(&MountInputs {
                ro,
                rw: &[],
                cwd: Path::new("/srv/job"),
                scratch_bytes: 8 << 20,
            })
            .unwrap()
            .0
        };
        let full = plan(std::slice::from_ref(&file));
        let late = split(&full, &early).expect("splits");
        assert_eq!(early.len() + late.len(), full.len());
        let name = |o: &Op| String::from_utf8_lossy(o.path()).into_owned();
        let late_names: Vec<String> = late.iter().map(name).collect();
        assert_eq!(
            late_names[0], "/newroot/tmp",
            "the scratch comes first: {late_names:?}"
        );
        assert!(late_names.iter().any(|n| n == "/newroot/srv/job"));
        assert!(
            late_names
                .iter()
                .any(|n| *n == format!("/newroot{}", file.display()))
        );
        assert!(late_names.iter().any(|n| n == "/newroot/dev/shm"));
        // Every early operation is in the full plan, in the same order.
        let mut it = full.iter();
        assert!(early.iter().all(|e| it.any(|f| f == e)));
        // A bind over a folder the early part filled must come before what it holds: no split.
        let full = plan(&[PathBuf::from("/etc")]);
        assert!(split(&full, &early).is_none());
        // Nor where the early part is not in the plan.
        assert!(split(&full[1..], &early).is_none() || early.is_empty());
        let _ = std::fs::remove_dir_all(&top);
    }

    #[test]
    fn a_read_only_bind_under_a_writable_folder_is_not_writable() {
        let rules = PathRules {
            readable: vec!["/usr".into(), "/tmp/job/data".into(), "/dev".into()],
            writable: vec![
                "/tmp".into(),
                "/tmp/job/data/out".into(),
                "/dev/null".into(),
            ],
            host: vec![],
            folders: vec![],
        };
        assert!(rules.is_writable("/tmp/x"));
        assert!(rules.is_writable("/tmp/job/other"));
        assert!(!rules.is_writable("/tmp/job/data/config"));
        assert!(!rules.is_writable("/tmp/job/data"));
        assert!(rules.is_writable("/tmp/job/data/out/r.json"));
        assert!(rules.is_writable("/dev/null"));
        assert!(!rules.is_writable("/dev/zero"));
        assert!(!rules.is_writable("/usr/bin/x"));
    }
}
