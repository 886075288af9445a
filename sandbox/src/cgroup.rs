//! Cgroups for one sandboxed run: a memory and a pids limit with their peaks, CPU time, and a
//! reliable kill of the whole tree. Hosts come as pure v2, pure v1, or hybrid (this project's CI
//! host: memory and pids on v1, `cgroup.kill` and `cpu.stat` on the v2 mount); each controller is
//! taken from wherever the host offers it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a controller lives: a directory in which we may create a child group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    pub parent: PathBuf,
    pub v2: bool,
}

/// What the host offers, found from /proc/self/mountinfo and /proc/self/cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Support {
    pub memory: Option<Controller>,
    pub pids: Option<Controller>,
    /// The v2 group of this process (for cgroup.kill and cpu.stat), if a v2 hierarchy is mounted.
    pub unified: Option<PathBuf>,
}

impl Support {
    /// `detect`, done once per process: the start-up helper and the host checks share it
    /// (whichever asks first reads /proc; the other waits for that answer).
    pub fn detected() -> Support {
        static ONCE: std::sync::OnceLock<Support> = std::sync::OnceLock::new();
        ONCE.get_or_init(Support::detect).clone()
    }

    pub fn detect() -> Support {
        let mountinfo = read_proc("/proc/self/mountinfo").unwrap_or_default();
        let own = read_proc("/proc/self/cgroup").unwrap_or_default();
        let mut s = Support::parse(&mountinfo, &own);
        // A controller is usable only if we can create groups in it.
        for c in [&mut s.memory, &mut s.pids] {
            if c.as_ref().is_some_and(|c| !writable(&c.parent)) {
                *c = None;
            }
        }
        if s.unified.as_ref().is_some_and(|u| !writable(u)) {
            s.unified = None;
        }
        s
    }

    /// Pure parsing, unit-tested with the shapes of real hosts.
    pub fn parse(mountinfo: &str, own_cgroup: &str) -> Support {
        let mut v1_mounts: Vec<(Vec<String>, PathBuf, String)> = Vec::new(); // (controllers, mountpoint, root)
        let mut v2_mount: Option<(PathBuf, String)> = None;
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            let (root, mountpoint) = (pre[3].to_string(), PathBuf::from(unescape(pre[4])));
            match post[0] {
                "cgroup2" => v2_mount = Some((mountpoint, root)),
                "cgroup" => {
                    let ctrls = post[2].split(',').map(str::to_string).collect();
                    v1_mounts.push((ctrls, mountpoint, root));
                }
                _ => {}
            }
        }
        let mut own_v1: Vec<(Vec<String>, String)> = Vec::new();
        let mut own_v2: Option<String> = None;
        for line in own_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if ctrls.is_empty() {
                own_v2 = Some(path.to_string());
            } else {
                own_v1.push((
                    ctrls.split(',').map(str::to_string).collect(),
                    path.to_string(),
                ));
            }
        }
        let join = |mountpoint: &Path, root: &str, path: &str| -> PathBuf {
            // The mount may show a sub-tree (root != "/"): strip it from our path.
            let rel = path
                .strip_prefix(root.trim_end_matches('/'))
                .unwrap_or(path);
            mountpoint.join(rel.trim_start_matches('/'))
        };
        let v1 = |name: &str| -> Option<Controller> {
            let (_, mp, root) = v1_mounts
                .iter()
                .find(|(c, _, _)| c.iter().any(|x| x == name))?;
            let (_, path) = own_v1.iter().find(|(c, _)| c.iter().any(|x| x == name))?;
            Some(Controller {
                parent: join(mp, root, path),
                v2: false,
            })
        };
        let unified = match (&v2_mount, &own_v2) {
            (Some((mp, root)), Some(path)) => Some(join(mp, root, path)),
            _ => None,
        };
        let controllers = unified
            .as_ref()
            .and_then(|u| read_text(&u.join("cgroup.controllers")));
        let v2_has = |name: &str| -> bool {
            controllers
                .as_deref()
                .is_some_and(|c| c.split_whitespace().any(|x| x == name))
        };
        let pick = |name: &str| -> Option<Controller> {
            v1(name).or_else(|| {
                v2_has(name).then(|| Controller {
                    parent: unified.clone().unwrap_or_default(),
                    v2: true,
                })
            })
        };
        Support {
            memory: pick("memory"),
            pids: pick("pids"),
            unified,
        }
    }

    pub fn describe(&self) -> String {
        let c = |c: &Option<Controller>| match c {
            Some(c) if c.v2 => "v2",
            Some(_) => "v1",
            None => "none",
        };
        format!(
            "memory: {}, pids: {}, unified: {}",
            c(&self.memory),
            c(&self.pids),
            if self.unified.is_some() { "yes" } else { "no" }
        )
    }
}

/// A /proc file read whole with few reads: `read_to_string` starts from a small buffer for
/// files that report no size, and each read of mountinfo makes the kernel render it again
/// (eight reads of this host's, ~0.1 ms).
fn read_proc(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut buf = Vec::with_capacity(64 << 10);
    f.read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn make_dir(parent: &Path, name: &str) -> Result<PathBuf, CgroupError> {
    let p = parent.join(name);
    fs::create_dir(&p).map_err(io_err(&p))?;
    Ok(p)
}

/// `make_dir`, where the group may exist already: made ahead under this spawn's unique name by
/// `premake_unified`, on another thread, before or after this call.
fn make_dir_or_take(parent: &Path, name: &str) -> Result<PathBuf, CgroupError> {
    let p = parent.join(name);
    match fs::create_dir(&p) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(io_err(&p)(e)),
        _ => Ok(p),
    }
}

/// The unified group of the spawn that will be called `name` (see `group_name`), made ahead of
/// it for a child started early, which is cloned into it (CLONE_INTO_CGROUP: no move later, whose
/// `cgroup.procs` write would wait for an RCU grace period). Returns the group's directory, open
/// for the clone. The spawn's `Group::create_v2` takes the group over under the same name (and
/// removes it at its end); `remove_premade` removes one no spawn took.
pub fn premake_unified(support: &Support, name: &str) -> Option<fs::File> {
    let dir = make_dir_or_take(support.unified.as_ref()?, name).ok()?;
    fs::File::open(dir).ok()
}

/// Removes a group `premake_unified` made that no spawn took (its early child killed and
/// reaped), so that a command that ends before its spawn leaves nothing behind.
pub fn remove_premade(support: &Support, name: &str) {
    if let Some(u) = &support.unified {
        let _ = fs::remove_dir(u.join(name));
    }
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn writable(dir: &Path) -> bool {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap_or_default();
    // SAFETY: access(2) on a NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// The groups of one run. Removed on drop.
#[derive(Debug)]
pub struct Group {
    memory: Option<(PathBuf, bool)>,
    pids: Option<(PathBuf, bool)>,
    unified: Option<PathBuf>,
    /// cgroup-v1 groups still to make (`create_v1`): the name and the limits.
    pending_v1: Option<(String, u64, u64)>,
    /// Which controllers there will be once `create_v1` is done.
    will_have: (bool, bool),
    /// The files the run's figures are read from, opened once (`open_figures`).
    figures: std::sync::OnceLock<Figures>,
}

/// The open figure files of a group. Opening a cgroup file walks its path (~10-40 us each here);
/// reading an open one again from its start renders it anew, so the figures at the run's end
/// cost a read each.
#[derive(Debug, Default)]
struct Figures {
    oom: Option<fs::File>,
    pids_events: Option<fs::File>,
    peak_memory: Option<fs::File>,
    peak_pids: Option<fs::File>,
    cpu_stat: Option<fs::File>,
}

impl Group {
    /// Every group of the run at once.
    pub fn create(
        support: &Support,
        name: &str,
        memory: u64,
        pids: u64,
    ) -> Result<Group, CgroupError> {
        let mut g = Group::create_v2(support, name, memory, pids)?;
        g.create_v1(support)?;
        Ok(g)
    }

    /// The part that must exist before the clone: the unified group, which the child is born
    /// into (CLONE_INTO_CGROUP), with the limits of the controllers on v2. cgroup-v1 groups are
    /// joined by the child itself after the clone (`v1_tasks`), so `create_v1` can make them
    /// then, while the child builds its root (a v1 memory group's mkdir alone took ~50 us here).
    pub fn create_v2(
        support: &Support,
        name: &str,
        memory: u64,
        pids: u64,
    ) -> Result<Group, CgroupError> {
        let mut g = Group {
            memory: None,
            pids: None,
            unified: None,
            pending_v1: None,
            will_have: (support.memory.is_some(), support.pids.is_some()),
            figures: std::sync::OnceLock::new(),
        };
        if let Some(u) = &support.unified {
            // Made ahead for a child started early (`premake_unified`), or made now.
            g.unified = Some(make_dir_or_take(u, name)?);
        }
        // A v2 controller's group is the unified one (or, without it, one of its own).
        let v2_dir = |g: &Group, c: &Controller| match &g.unified {
            Some(u) => Ok(u.clone()),
            None => make_dir(&c.parent, name),
        };
        if let Some(c) = support.memory.as_ref().filter(|c| c.v2) {
            let dir = v2_dir(&g, c)?;
            g.memory = Some((dir.clone(), true));
            write(&dir.join("memory.max"), &memory.to_string())?;
            let _ = write(&dir.join("memory.swap.max"), "0");
        }
        if let Some(c) = support.pids.as_ref().filter(|c| c.v2) {
            let dir = v2_dir(&g, c)?;
            g.pids = Some((dir.clone(), true));
            write(&dir.join("pids.max"), &pids.to_string())?;
        }
        if [&support.memory, &support.pids]
            .into_iter()
            .flatten()
            .any(|c| !c.v2)
        {
            g.pending_v1 = Some((name.to_string(), memory, pids));
        }
        Ok(g)
    }

    /// The cgroup-v1 groups (see `create_v2`); nothing to do where there are none.
    pub fn create_v1(&mut self, support: &Support) -> Result<(), CgroupError> {
        let Some((name, memory, pids)) = self.pending_v1.take() else {
            return Ok(());
        };
        if let Some(c) = support.memory.as_ref().filter(|c| !c.v2) {
            let dir = make_dir(&c.parent, &name)?;
            self.memory = Some((dir.clone(), false));
            write(&dir.join("memory.limit_in_bytes"), &memory.to_string())?;
            // Without swap accounting this file is absent: memory alone is then the bound.
            let _ = write(
                &dir.join("memory.memsw.limit_in_bytes"),
                &memory.to_string(),
            );
        }
        if let Some(c) = support.pids.as_ref().filter(|c| !c.v2) {
            let dir = make_dir(&c.parent, &name)?;
            self.pids = Some((dir.clone(), false));
            write(&dir.join("pids.max"), &pids.to_string())?;
        }
        Ok(())
    }

    fn dirs(&self) -> Vec<&Path> {
        let mut d: Vec<&Path> = Vec::new();
        for p in [
            self.memory.as_ref().map(|m| m.0.as_path()),
            self.pids.as_ref().map(|m| m.0.as_path()),
            self.unified.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            if !d.contains(&p) {
                d.push(p);
            }
        }
        d
    }

    /// Moves `pid` into the unified group (a child not born into it with CLONE_INTO_CGROUP).
    /// A move through `cgroup.procs` takes the kernel's `cgroup_threadgroup_rwsem` for writing,
    /// which waits for an RCU grace period when nobody took it lately (2 to 20 ms measured on
    /// this project's hosts): the fallback only.
    pub fn attach_unified(&self, pid: i32) -> Result<(), CgroupError> {
        match &self.unified {
            Some(u) => write(&u.join("cgroup.procs"), &pid.to_string()),
            None => Ok(()),
        }
    }

    /// The `tasks` files of the cgroup-v1 groups, open for writing, for the child to join them
    /// itself: a single-threaded process writing `0` (itself) to a v1 `tasks` file moves without
    /// the kernel's global `cgroup_threadgroup_rwsem` (`cgroup_procs_write_start` skips it for a
    /// lone thread moving itself), so the move costs ~30 us instead of an RCU grace period
    /// (5 to 19 ms measured on this hybrid host for a move through `cgroup.procs`). The kernel
    /// checks the permission against the credentials these files were opened with (ours), not
    /// the child's. Close-on-exec.
    pub fn v1_tasks(&self) -> Result<Vec<fs::File>, CgroupError> {
        let mut files = Vec::new();
        for d in self.dirs() {
            if Some(d) == self.unified.as_deref() {
                continue;
            }
            let path = d.join("tasks");
            let f = fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            files.push(f);
        }
        Ok(files)
    }

    /// The v2 group, to clone into.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// Whether the run has (or, once `create_v1` is done, will have) a memory group.
    pub fn has_memory(&self) -> bool {
        self.will_have.0
    }

    /// Whether the run has (or will have) a pids group.
    pub fn has_pids(&self) -> bool {
        self.will_have.1
    }

    /// Kills every process in the group at once, where the host has `cgroup.kill`.
    pub fn kill(&self) -> bool {
        self.unified
            .as_ref()
            .is_some_and(|u| write(&u.join("cgroup.kill"), "1").is_ok())
    }

    /// Opens the files the figures below are read from (done by the first figure read if not
    /// before): the supervisor opens them while the program runs, off the run's end.
    pub fn open_figures(&self) {
        self.figures();
    }

    fn figures(&self) -> &Figures {
        self.figures.get_or_init(|| {
            let open = |d: &Path, f: &str| fs::File::open(d.join(f)).ok();
            let mut fig = Figures::default();
            if let Some((d, v2)) = &self.memory {
                fig.oom = open(
                    d,
                    if *v2 {
                        "memory.events"
                    } else {
                        "memory.oom_control"
                    },
                );
                fig.peak_memory = open(
                    d,
                    if *v2 {
                        "memory.peak"
                    } else {
                        "memory.max_usage_in_bytes"
                    },
                );
            }
            if let Some((d, _)) = &self.pids {
                fig.pids_events = open(d, "pids.events");
                fig.peak_pids = open(d, "pids.peak");
            }
            if let Some(u) = &self.unified {
                fig.cpu_stat = open(u, "cpu.stat");
            }
            fig
        })
    }

    pub fn oom_kills(&self) -> u64 {
        read_text_at(self.figures().oom.as_ref())
            .and_then(|t| key_in(&t, "oom_kill"))
            .unwrap_or(0)
    }

    /// How many forks the pids limit refused.
    pub fn pids_max_hits(&self) -> u64 {
        read_text_at(self.figures().pids_events.as_ref())
            .and_then(|t| key_in(&t, "max"))
            .unwrap_or(0)
    }

    pub fn peak_memory(&self) -> Option<u64> {
        read_text_at(self.figures().peak_memory.as_ref())?
            .trim()
            .parse()
            .ok()
    }

    pub fn peak_pids(&self) -> Option<u64> {
        read_text_at(self.figures().peak_pids.as_ref())?
            .trim()
            .parse()
            .ok()
    }

    /// (user, system) CPU time in microseconds of everything that ran in the group.
    pub fn cpu_usec(&self) -> Option<(u64, u64)> {
        let text = read_text_at(self.figures().cpu_stat.as_ref())?;
        Some((key_in(&text, "user_usec")?, key_in(&text, "system_usec")?))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // A group can be removed only once its last task is gone. After a run that ended with
        // its pid 1 none is left and the removal just works; a group that still has tasks (a
        // spawn that failed half-way) is killed where the host has `cgroup.kill` (elsewhere its
        // tasks are ended by whoever ends the spawn), and exiting tasks can take a moment.
        let mut killed = false;
        for d in self.dirs() {
            for attempt in 0..100 {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(_) if !killed => {
                        killed = true;
                        self.kill();
                    }
                    Err(_) => std::thread::sleep(Duration::from_micros(200 * (attempt + 1))),
                }
            }
        }
    }
}

/// The cgroups' name for a new spawn, `modelvet-<pid>-<seq>-<time>-<pidns>`: unique per spawn
/// (threads of one process spawn at once: the sequence number; a pid comes back after a crash
/// that left its groups behind: the time), and telling `prune_stale` whose pid it is (the pid
/// namespace's inode: a modelvet in another pid namespace sharing this hierarchy has pids that
/// look dead from here).
pub fn group_name() -> String {
    static SPAWNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = format!(
        "modelvet-{}-{}-{}",
        std::process::id(),
        SPAWNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() % 1_000_000_000_000)
    );
    // Where /proc cannot tell the namespace, the older name without it.
    match own_pidns() {
        0 => name,
        ns => format!("{name}-{ns}"),
    }
}

/// The inode of our pid namespace (0 where /proc cannot tell).
fn own_pidns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    static NS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NS.get_or_init(|| fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino()))
}

/// How old an abandoned group must be before it is removed: far longer than any spawn takes to
/// move its child in, so that a group just made by a process we cannot see (another pid
/// namespace sharing this hierarchy) is never taken from under it.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// `prune_stale`, at most once per process, by whoever asks first; a later caller does not wait
/// for it. The warm-up helper asks, off the spawn's path, once it has made the namespace; the
/// supervisor asks at the end of every run, for a process without the helper or a helper that
/// never got a CPU.
pub fn prune_stale_once(support: &Support) {
    static CLAIMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !CLAIMED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        prune_stale(support);
    }
}

/// Removes the empty groups that modelvet processes killed without a chance to clean up
/// (SIGKILL, a crash) left behind: named by `group_name` in our pid namespace (or by the older
/// names without one), that pid gone, no task inside (the kernel refuses to remove a group that
/// still has one), older than `STALE_AFTER`.
fn prune_stale(support: &Support) {
    let parents = [
        support.unified.as_deref(),
        support.memory.as_ref().map(|c| c.parent.as_path()),
        support.pids.as_ref().map(|c| c.parent.as_path()),
    ];
    let mut seen: Vec<&Path> = Vec::new();
    for parent in parents.into_iter().flatten() {
        if seen.contains(&parent) {
            continue;
        }
        seen.push(parent);
        let Ok(entries) = fs::read_dir(parent) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some((pid, ns)) = stale_owner(&name.to_string_lossy()) else {
                continue;
            };
            // Another pid namespace's (its pid means nothing here), or one nobody could name.
            if ns.is_some_and(|ns| ns == 0 || ns != own_pidns()) {
                continue;
            }
            // SAFETY: kill(2) with signal 0 only checks that the pid exists.
            let gone = unsafe { libc::kill(pid, 0) } != 0
                && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= STALE_AFTER));
            if gone && old {
                let _ = fs::remove_dir(e.path());
            }
        }
    }
}

/// The pid and pid namespace in a group name this module makes (see `group_name`; names
/// without the namespace, from before it was added, give none).
fn stale_owner(name: &str) -> Option<(i32, Option<u64>)> {
    let parts: Vec<&str> = name.strip_prefix("modelvet-")?.split('-').collect();
    let pid = parts.first()?.parse::<i32>().ok().filter(|&p| p > 0)?;
    if !parts[1..]
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    match parts.len() {
        3 => Some((pid, None)),
        4 => Some((pid, Some(parts[3].parse().ok()?))),
        _ => None,
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(io_err(path))
}

/// A cgroup file's text. The cgroup file system hands out a file's whole text in one read when
/// the buffer holds it, so a short read is the end: no size query and no second read to find
/// the end, as `fs::read_to_string` makes.
fn read_text(path: &Path) -> Option<String> {
    read_text_at(Some(&fs::File::open(path).ok()?))
}

/// `read_text` of an open file, read from its start (which renders a cgroup file anew).
fn read_text_at(f: Option<&fs::File>) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let f = f?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        match f.read_at(&mut buf[len..], len as u64) {
            Ok(n) => {
                len += n;
                if n == 0 || len < buf.len() {
                    break;
                }
                buf.resize(buf.len() * 2, 0);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

/// The value of `key` in a flat-keyed cgroup file's text ("key value" lines).
fn key_in(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
37 30 0:33 / /sys/fs/cgroup/cpu,cpuacct rw shared:17 - cgroup cgroup rw,cpu,cpuacct
";
    const HYBRID_SELF: &str = "8:pids:/\n4:memory:/process_api/abc\n2:cpu,cpuacct:/\n0::/\n";

    #[test]
    fn hybrid_host_takes_memory_and_pids_from_v1() {
        let s = Support::parse(HYBRID_MOUNTINFO, HYBRID_SELF);
        assert_eq!(
            s.memory,
            Some(Controller {
                parent: PathBuf::from("/sys/fs/cgroup/memory/process_api/abc"),
                v2: false
            })
        );
        assert_eq!(
            s.pids,
            Some(Controller {
                parent: PathBuf::from("/sys/fs/cgroup/pids"),
                v2: false
            })
        );
        assert_eq!(s.unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn pure_v1_host_has_no_unified_group() {
        let mi = "35 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let s = Support::parse(mi, "4:memory:/user.slice\n");
        assert_eq!(
            s.memory.unwrap().parent,
            PathBuf::from("/sys/fs/cgroup/memory/user.slice")
        );
        assert!(s.pids.is_none());
        assert!(s.unified.is_none());
    }

    #[test]
    fn v2_mount_of_a_subtree_strips_the_root() {
        let mi = "31 25 0:27 /user.slice /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let s = Support::parse(mi, "0::/user.slice/session-1.scope\n");
        assert_eq!(
            s.unified,
            Some(PathBuf::from("/sys/fs/cgroup/session-1.scope"))
        );
    }

    #[test]
    fn pruning_removes_only_old_empty_groups_of_dead_owners() {
        let support = Support::detected();
        let parents: Vec<PathBuf> = [
            support.unified.clone(),
            support.memory.as_ref().map(|c| c.parent.clone()),
            support.pids.as_ref().map(|c| c.parent.clone()),
        ]
        .into_iter()
        .flatten()
        .filter(|p| writable(p))
        .collect();
        if parents.is_empty() {
            eprintln!("no writable cgroup hierarchy here: nothing to prune");
            return;
        }
        // A pid that existed and is gone: a child we ran and reaped.
        let dead = std::process::Command::new("true")
            .spawn()
            .and_then(|mut c| c.wait().map(|_| c.id()))
            .expect("run true");
        let me = std::process::id();
        let two_minutes_ago = std::time::SystemTime::now() - Duration::from_secs(120);
        let make = |parent: &Path, name: &str, old: bool| -> PathBuf {
            let p = parent.join(name);
            fs::create_dir(&p).expect("make a test group");
            if old {
                fs::File::open(&p)
                    .and_then(|f| f.set_modified(two_minutes_ago))
                    .expect("age the test group");
            }
            p
        };
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        for parent in &parents {
            let ns = own_pidns();
            removed.push(make(parent, &format!("modelvet-{dead}-0-1"), true));
            removed.push(make(parent, &format!("modelvet-{dead}-0-1-{ns}"), true));
            kept.push(make(parent, &format!("modelvet-{dead}-1-2-{ns}"), false));
            kept.push(make(parent, &format!("modelvet-{me}-0-3-{ns}"), true));
            // Another pid namespace's: its pid means nothing here. One nobody could name, neither.
            kept.push(make(
                parent,
                &format!("modelvet-{dead}-0-4-{}", ns + 1),
                true,
            ));
            kept.push(make(parent, &format!("modelvet-{dead}-0-5-0"), true));
        }
        prune_stale(&support);
        let survivors: Vec<_> = removed.iter().filter(|p| p.exists()).collect();
        let lost: Vec<_> = kept.iter().filter(|p| !p.exists()).collect();
        for p in kept.iter().chain(&removed) {
            let _ = fs::remove_dir(p);
        }
        assert!(survivors.is_empty(), "abandoned groups left: {survivors:?}");
        assert!(
            lost.is_empty(),
            "groups removed that were not abandoned: {lost:?}"
        );
    }

    #[test]
    fn only_names_this_module_makes_have_an_owner() {
        assert_eq!(
            stale_owner("modelvet-3301-0-93090941658"),
            Some((3301, None))
        );
        assert_eq!(
            stale_owner("modelvet-3301-12-1-4026531836"),
            Some((3301, Some(4026531836)))
        );
        let ours = group_name();
        let me = std::process::id() as i32;
        assert_eq!(stale_owner(&ours), Some((me, Some(own_pidns()))), "{ours}");
        for other in [
            "modelvet",
            "modelvet-",
            "modelvet-x-0-1",
            "modelvet-0-0-1",
            "modelvet-3301",
            "modelvet-3301-0",
            "modelvet-3301-0-1-2-3",
            "modelvet-3301-0-x",
            "modelvet-3301-0-1-99999999999999999999999",
            "system.slice",
            "user-3301-0-1",
        ] {
            assert_eq!(stale_owner(other), None, "{other}");
        }
    }

    #[test]
    fn keyed_files_parse() {
        let dir = std::env::temp_dir().join(format!("mv-cg-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("memory.oom_control");
        fs::write(&f, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        let key = |k: &str| read_text(&f).and_then(|t| key_in(&t, k));
        assert_eq!(key("oom_kill"), Some(3));
        assert_eq!(key("missing"), None);
        // An open file is read from its start each time: a figure read twice sees the new text.
        let open = fs::File::open(&f).unwrap();
        let first = read_text_at(Some(&open)).unwrap();
        fs::write(
            &f,
            "oom_kill 4
",
        )
        .unwrap();
        assert_ne!(read_text_at(Some(&open)).unwrap(), first);
        assert_eq!(
            key_in(&read_text_at(Some(&open)).unwrap(), "oom_kill"),
            Some(4)
        );
        // Longer than one buffer: read whole.
        let long = "x".repeat(10_000);
        fs::write(&f, &long).unwrap();
        assert_eq!(read_text_at(Some(&open)).unwrap(), long);
        fs::remove_dir_all(&dir).unwrap();
    }
}
