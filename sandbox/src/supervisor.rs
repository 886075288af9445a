//! The supervisor: answers every seccomp notification (decode, record, decide), enforces the wall
//! timeout and the cgroup limits, kills the whole tree at the end and gathers the figures. It
//! survives whatever the child does and always returns an `Outcome`.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cgroup::Group;
use crate::decode;
use crate::event::{Action, Event, EventKind, Exit, ExitStatus, Outcome, Resources};
use crate::plan::PathRules;
use crate::seccomp::policy::{self, Record, Tier};
use crate::sys::{self, SeccompNotif, SeccompNotifResp};

/// Events kept in a report; more are counted, not stored (a fork bomb would otherwise make the
/// report as large as the bomb).
pub const MAX_EVENTS: usize = 10_000;
/// Past `MAX_EVENTS`, the first event of each kind of behaviour (kind, syscall, action, and for
/// files whether it was outside and a write, for sockets the family) is still stored, up to this
/// many: a flood of harmless events must not hide what comes after it from the findings.
pub const MAX_LATE_EVENTS: usize = 2_000;
/// The bytes of the strings stored events carry (paths, argv, addresses): past this, events are
/// stored as past `MAX_EVENTS`, and past twice this not at all. 10,000 execs of 4 KB paths with 32
/// arguments of 255 bytes otherwise made a 1 GB supervisor and a 376 MB report.
pub const MAX_EVENT_BYTES: usize = 8 << 20;
/// How long a host pid's sandbox pid is trusted before it is read again (a host pid is reused
/// only after the kernel has cycled through all the others: far more forks than fit in this).
const NS_PID_FRESH: std::time::Duration = std::time::Duration::from_millis(100);
/// Cached host pids past which the stale ones are dropped (a fork-churning program must not
/// grow the cache without end).
const MAX_NS_PIDS: usize = 4096;
/// Distinct destinations of one sendmmsg listed in its event (all are judged).
const MAX_DESTINATIONS: usize = 16;
/// Distinct names given to syscall numbers no table names (`syscall_<nr>`); past it they are all
/// `syscall_other`, so a program walking the number line cannot grow the counts without end.
const MAX_UNNAMED: usize = 64;
/// Bytes of the program's stdout and stderr kept for the report.
pub const OUTPUT_TAIL: usize = 4096;
/// How long the program's output may keep coming once the run is over (the kill of its tree).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);
/// How often cgroup counters (OOM kills, refused forks) are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u64;

pub(crate) struct Supervisor {
    pub start: Instant,
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// Already answering the child's notifications (see `Notifier`).
    pub notifier: Notifier,
    pub group: Option<Group>,
    /// How long moving the child into its cgroups took (part of `setup_ms`).
    pub attach_ms: f64,
    pub timeout: Duration,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub echo: bool,
    /// The child's plan and stack, freed once the child is reaped.
    pub child_mem: crate::ChildMemory,
}

/// What the notification thread needs to start answering: where to take the listener from and
/// the recorder's inputs.
pub(crate) struct NotifyJob {
    /// The setup socket, on which the child sends MSG_LISTENER (or its error record) once its
    /// filter is installed, and the child's pidfd to take the listener with (pidfd_getfd).
    pub sock: OwnedFd,
    pub pidfd: OwnedFd,
    /// Where the thread says whether it got the listener (`Listener`).
    pub taken: std::sync::mpsc::Sender<Listener>,
    pub start: Instant,
    pub pid: i32,
    pub allow_exec: bool,
    pub rules: PathRules,
    /// The child's mount namespace, held here so that its teardown (its mounts' removal waits
    /// for an RCU grace period) falls to this thread once the filter's last task is gone, at
    /// the same time as the supervisor's own work at the end, and not to the exit of the
    /// target the supervisor waits for.
    pub mnt_ns: Option<OwnedFd>,
}

/// How taking the listener went.
pub(crate) enum Listener {
    Taken,
    /// The child sent this instead (its error record, or nothing: the socket's end).
    ChildSaid(Vec<u8>),
    TimedOut,
    Failed(&'static str, sys::SysError),
}

/// Waits (up to 10 s) for the child's MSG_LISTENER and takes the listener out of the child.
fn take_listener(job: &NotifyJob) -> Result<OwnedFd, Listener> {
    match sys::poll_in(job.sock.as_raw_fd(), 10_000) {
        Ok(true) => {}
        Ok(false) => return Err(Listener::TimedOut),
        Err(e) => return Err(Listener::Failed("poll", e)),
    }
    let mut buf = [0u8; 16];
    let n =
        sys::read_setup(job.sock.as_raw_fd(), &mut buf).map_err(|e| Listener::Failed("read", e))?;
    if n != 5 || buf[0] != crate::child::MSG_LISTENER {
        return Err(Listener::ChildSaid(buf[..n].to_vec()));
    }
    let fd = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let listener = sys::pidfd_getfd(job.pidfd.as_raw_fd(), fd)
        .map_err(|e| Listener::Failed("pidfd_getfd", e))?;
    if sys::notif_set_sync_wakeup(&listener).is_err() {
        // Kernels before 6.6 lack it: notifications still work, only slower.
    }
    Ok(listener)
}

/// The thread that answers the child's seccomp notifications, started before the child is
/// cloned and handed the listener straight from the handshake: the child's first notification
/// (its exec of the target) is answered without waiting for a thread to be made, nor for the
/// supervisor's thread to wake. Finished, it hands over its record and is left to end on its
/// own (see `finish`); dropped unfinished, it is told to stop and joined.
pub(crate) struct Notifier {
    tx: Option<std::sync::mpsc::Sender<NotifyJob>>,
    handle: Option<std::thread::JoinHandle<()>>,
    recorded: Option<std::sync::mpsc::Receiver<Recorder>>,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Notifier {
    /// Starts the thread. A helper that starts it from inside a sandbox's network namespace,
    /// held to another core than the main thread's, passes the host's namespace and the whole
    /// CPU mask, which the thread takes first.
    pub(crate) fn start(
        netns: Option<OwnedFd>,
        mask: Option<sys::CpuMask>,
    ) -> std::io::Result<Notifier> {
        let (tx, rx) = std::sync::mpsc::channel::<NotifyJob>();
        let (rec_tx, recorded) = std::sync::mpsc::sync_channel::<Recorder>(1);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done_flag = done.clone();
        // Blocked in poll(2) on the listener: the fewest syscalls per notification, and the
        // one SYNC_WAKE_UP wakes on the same CPU.
        let handle = std::thread::Builder::new()
            .name("modelvet-notify".into())
            .spawn(move || {
                if let Some(ns) = netns {
                    let _ = sys::setns_net(&ns);
                }
                if let Some(m) = mask {
                    let _ = m.apply_here();
                }
                let Ok(mut job) = rx.recv() else {
                    return;
                };
                let mnt_ns = job.mnt_ns.take();
                // The listener straight from the child's message: the child's exec waits for
                // this thread's first answer, and no other thread wakes in between.
                let listener = match take_listener(&job) {
                    Ok(l) => {
                        let _ = job.taken.send(Listener::Taken);
                        l
                    }
                    Err(why) => {
                        let _ = job.taken.send(why);
                        return;
                    }
                };
                let mut rec = Recorder {
                    start: job.start,
                    tiers: policy::tiers(),
                    events: Vec::new(),
                    dropped: 0,
                    syscalls: BTreeMap::new(),
                    names: HashMap::new(),
                    unnamed: 0,
                    kinds: std::collections::HashSet::new(),
                    event_bytes: 0,
                    ns_pids: HashMap::new(),
                    first_exec_done: false,
                    first_exec_at: None,
                    target_pid: job.pid as u32,
                    allow_exec: job.allow_exec,
                    rules: job.rules,
                    clones: 0,
                };
                notify_loop(&listener, &mut rec, &done_flag);
                // The record is whole: the supervisor goes on with it while this thread lets go
                // of the rest.
                let _ = rec_tx.send(rec);
                drop(listener);
                // The filter's last task is gone, but the target may still be on its way out:
                // the namespace is let go once it has ended (its pidfd is readable), so that
                // this is its last holder. At most 1 s, and not once we are told to stop (a
                // notifier dropped unfinished: its owner kills the target after joining us).
                if mnt_ns.is_some() {
                    for _ in 0..100 {
                        if done_flag.load(std::sync::atomic::Ordering::Relaxed)
                            || sys::poll_in(job.pidfd.as_raw_fd(), 10).unwrap_or(true)
                        {
                            break;
                        }
                    }
                }
                drop(mnt_ns);
            })?;
        Ok(Notifier {
            tx: Some(tx),
            handle: Some(handle),
            recorded: Some(recorded),
            done,
        })
    }

    /// Starts answering; the job comes back if the thread has ended.
    pub(crate) fn begin(&mut self, job: NotifyJob) -> Result<(), Box<NotifyJob>> {
        match self.tx.take() {
            Some(tx) => tx
                .send(job)
                .map_err(|std::sync::mpsc::SendError(job)| Box::new(job)),
            None => Err(Box::new(job)),
        }
    }

    /// Stops the thread (it notices within its poll timeout once no task is left under the
    /// filter) and returns what it recorded. The thread is not waited for: what it does after
    /// handing over the record (letting go of the child's mount namespace, whose teardown waits
    /// for an RCU grace period, and the end of a thread: its stack given back, one TLB
    /// shootdown per core each) overlaps the supervisor's report; should the process exit
    /// first, the kernel ends the thread and closes what it holds.
    fn finish(mut self) -> Option<Recorder> {
        self.stop_asking();
        let rec = self.recorded.take()?.recv().ok();
        // A thread that handed over its record has nothing left that needs us.
        if rec.is_some() {
            drop(self.handle.take());
        }
        rec
    }

    fn stop_asking(&mut self) {
        drop(self.tx.take());
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stop_asking();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct Recorder {
    start: Instant,
    tiers: Vec<Tier>,
    events: Vec<Event>,
    dropped: u64,
    syscalls: BTreeMap<String, u64>,
    names: HashMap<i64, String>,
    unnamed: usize,
    /// The kinds of behaviour stored so far (see `MAX_LATE_EVENTS`).
    kinds: std::collections::HashSet<String>,
    /// What the stored events weigh (see `MAX_EVENT_BYTES`).
    event_bytes: usize,
    /// Host pid to the sandbox's, with when it was read (see `ns_pid`).
    ns_pids: HashMap<u32, (i64, Instant)>,
    first_exec_done: bool,
    first_exec_at: Option<Instant>,
    target_pid: u32,
    allow_exec: bool,
    rules: PathRules,
    clones: u64,
}

impl Recorder {
    fn name(&mut self, nr: i64) -> String {
        if let Some(n) = self.names.get(&nr) {
            return n.clone();
        }
        let name = policy::name(nr);
        if name.starts_with("syscall_") {
            if self.unnamed >= MAX_UNNAMED {
                return "syscall_other".into();
            }
            self.unnamed += 1;
        }
        self.names.insert(nr, name.clone());
        name
    }

    /// The pid as the sandbox sees it, from the last NSpid field of /proc/<pid>/status.
    fn ns_pid(&mut self, host_pid: u32) -> i64 {
        // The target is pid 1 for as long as it lives, and with it the namespace.
        if host_pid == self.target_pid {
            return 1;
        }
        // A host pid is reused only once the kernel has handed out every other one (32,768 and
        // more forks): an answer younger than NS_PID_FRESH cannot be a dead process's.
        if let Some((p, at)) = self.ns_pids.get(&host_pid)
            && at.elapsed() < NS_PID_FRESH
        {
            return *p;
        }
        if self.ns_pids.len() >= MAX_NS_PIDS {
            self.ns_pids
                .retain(|_, (_, at)| at.elapsed() < NS_PID_FRESH);
            // All fresh (a fork storm): start over rather than grow or rescan at every miss.
            if self.ns_pids.len() >= MAX_NS_PIDS / 2 {
                self.ns_pids.clear();
            }
        }
        let p = std::fs::read_to_string(format!("/proc/{host_pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("NSpid:"))
                    .and_then(|l| l.split_whitespace().last().and_then(|v| v.parse().ok()))
            })
            .unwrap_or(-1);
        if p > 0 {
            self.ns_pids.insert(host_pid, (p, Instant::now()));
        }
        p
    }

    fn push(&mut self, pid: u32, kind: EventKind, syscall: String, action: Action, detail: Value) {
        // Below the limit every event is stored and no key is needed; the kinds stored so far are
        // gathered once, when the limit is first reached.
        let size = weight(&detail) + syscall.len();
        if self.events.len() >= MAX_EVENTS || self.event_bytes + size > MAX_EVENT_BYTES {
            if self.kinds.is_empty() {
                self.kinds = self
                    .events
                    .iter()
                    .map(|e| behaviour(e.kind, &e.syscall, e.action, &e.detail))
                    .collect();
            }
            let key = behaviour(kind, &syscall, action, &detail);
            if self.events.len() >= MAX_EVENTS + MAX_LATE_EVENTS
                || self.event_bytes + size > 2 * MAX_EVENT_BYTES
                || !self.kinds.insert(key)
            {
                self.dropped += 1;
                return;
            }
        }
        self.event_bytes += size;
        let pid = self.ns_pid(pid);
        let t_ms = (self.start.elapsed().as_secs_f64() * 1e3 * 1000.0).round() / 1000.0;
        self.events.push(Event {
            t_ms,
            pid,
            kind,
            syscall,
            action,
            detail,
        });
    }

    /// A recorded syscall whose arguments we could not read (see `decode::Unreadable`): refused
    /// with EFAULT, what the kernel answers for memory it cannot read either, and recorded.
    fn refuse_unreadable(
        &mut self,
        listener: &OwnedFd,
        n: &SeccompNotif,
        name: String,
        kind: EventKind,
    ) -> Option<SeccompNotifResp> {
        if !sys::notif_id_valid(listener, n.id) {
            return None;
        }
        self.push(
            n.pid,
            kind,
            name,
            Action::Denied,
            json!({
                "unreadable": true,
                "args": n.data.args,
                "note": "arguments in memory the supervisor cannot read (an execute-only page, nothing mapped): refused with EFAULT",
            }),
        );
        Some(SeccompNotifResp {
            id: n.id,
            val: 0,
            error: -libc::EFAULT,
            flags: 0,
        })
    }

    /// Decides one notification. Returns the response to send, or None when the notification
    /// died while we read its memory.
    fn handle(&mut self, listener: &OwnedFd, n: &SeccompNotif) -> Option<SeccompNotifResp> {
        let nr = i64::from(n.data.nr);
        let a = n.data.args;
        let pid = n.pid;
        if n.data.arch != crate::seccomp::AUDIT_ARCH {
            // Another ABI (i386's int 0x80 on x86_64), a known way past filters written for
            // one: its numbers name other syscalls, so none runs, whatever it is.
            let abi = crate::seccomp::abi_name(n.data.arch);
            let name = format!("{abi}_syscall");
            *self.syscalls.entry(name.clone()).or_insert(0) += 1;
            self.push(
                pid,
                EventKind::Denied,
                name,
                Action::Denied,
                json!({"nr": nr, "abi": abi, "args": a}),
            );
            return Some(SeccompNotifResp {
                id: n.id,
                val: 0,
                error: -libc::EPERM,
                flags: 0,
            });
        }
        let name = self.name(nr);
        *self.syscalls.entry(name.clone()).or_insert(0) += 1;
        let tier = if nr >= 0 && (nr as usize) < self.tiers.len() {
            self.tiers[nr as usize]
        } else {
            // x32 or out-of-range numbers on the native architecture: never expected.
            Tier::Deny
        };
        let cont = SeccompNotifResp {
            id: n.id,
            val: 0,
            error: 0,
            flags: sys::SECCOMP_USER_NOTIF_FLAG_CONTINUE,
        };
        let deny = |errno: i32| SeccompNotifResp {
            id: n.id,
            val: 0,
            error: -errno,
            flags: 0,
        };
        let valid = |l: &OwnedFd| sys::notif_id_valid(l, n.id);
        // mknod makes FIFOs and sockets (recorded as file writes); a device node is denied as the
        // deny tier's calls are (the kernel refuses one in the user namespace anyway: the mode, a
        // register, is only read here).
        let mknod_mode = mknod_mode(nr, &a);
        let tier = if mknod_mode.is_some_and(makes_device) {
            Tier::Deny
        } else {
            tier
        };

        match tier {
            Tier::Allow => Some(cont),
            Tier::Deny => {
                self.push(
                    pid,
                    EventKind::Denied,
                    name,
                    Action::Denied,
                    json!({"nr": nr, "args": a}),
                );
                Some(deny(libc::EPERM))
            }
            Tier::Unknown => {
                self.push(
                    pid,
                    EventKind::Syscall,
                    name,
                    Action::Allowed,
                    json!({"nr": nr, "args": a}),
                );
                Some(cont)
            }
            Tier::Record(Record::Network) => {
                let decoded = match nr {
                    x if x == libc::SYS_socket => {
                        let mut m = Map::new();
                        m.insert("family".into(), json!(decode::family_name(a[0] as u16)));
                        m.insert("type".into(), json!(decode::socket_type_name(a[1])));
                        m.insert("protocol".into(), json!(a[2]));
                        Ok(m)
                    }
                    x if x == libc::SYS_connect || x == libc::SYS_bind => {
                        decode::read_sockaddr(pid, a[1], a[2]).map(Option::unwrap_or_default)
                    }
                    x if x == libc::SYS_sendto => {
                        decode::read_sockaddr(pid, a[4], a[5]).map(Option::unwrap_or_default)
                    }
                    x if x == libc::SYS_sendmsg => {
                        decode::read_msghdr_name(pid, a[1]).map(Option::unwrap_or_default)
                    }
                    // sendmmsg: every message may name its own destination. The first one named
                    // leads; all of them are listed.
                    _ => decode::read_mmsg_names(pid, a[1], a[2]).map(|names| {
                        let mut m = names.first().cloned().unwrap_or_default();
                        m.insert("messages".into(), json!(a[2]));
                        if names.len() > 1 {
                            m.insert("destinations".into(), json!(names));
                        }
                        m
                    }),
                };
                let Ok(mut d) = decoded else {
                    return self.refuse_unreadable(listener, n, name, EventKind::Network);
                };
                if !valid(listener) {
                    return None;
                }
                d.entry("family").or_insert(json!("other"));
                if nr != libc::SYS_socket {
                    d.insert("fd".into(), json!(a[0] as i64));
                }
                let unconfined =
                    policy::UNCONFINED_SOCKETS
                        .iter()
                        .find(|(family, protocol, ..)| {
                            nr == libc::SYS_socket
                                && *family == a[0] as i32
                                && protocol.is_none_or(|p| p == a[2] as i32)
                        });
                if let Some(&(_, _, errno, why)) = unconfined {
                    d.insert("refused".into(), json!(why));
                    self.push(
                        pid,
                        EventKind::Network,
                        name,
                        Action::Denied,
                        Value::Object(d),
                    );
                    return Some(deny(errno));
                }
                // A socket path as the kernel will resolve it; one under a bound host path, or
                // reached through a link we cannot follow here, is a host service's. Abstract and
                // unnamed addresses live in the sandbox's own network namespace, and a bind makes
                // the program's own socket: neither is a host's.
                // One call's lookups, all its destinations together (see `MAX_SOCKET_LOOKUPS`).
                let lookups = Lookups::default();
                let judge = |rec: &Self, m: &Map<String, Value>| -> Option<(String, bool)> {
                    let path = m.get("path").and_then(Value::as_str)?;
                    if path.is_empty() || m.get("abstract").is_some() {
                        return None;
                    }
                    let (resolved, linked) = rec.socket_path(pid, path, &lookups);
                    // A name that was not UTF-8 cannot be looked at here: judged a host's.
                    let is_host =
                        linked || path.contains('\u{fffd}') || rec.rules.is_host(&resolved);
                    Some((resolved, is_host))
                };
                let mut host = false;
                if nr != libc::SYS_bind {
                    if let Some(path) = d.get("path").and_then(Value::as_str).map(str::to_string)
                        && let Some((resolved, is_host)) = judge(self, &d)
                    {
                        if resolved != path {
                            d.insert("resolved".into(), json!(resolved));
                        }
                        host |= is_host;
                    }
                    let mut unlisted = 0;
                    if let Some(Value::Array(ds)) = d.get_mut("destinations") {
                        for m in ds.iter_mut() {
                            if let Value::Object(o) = m
                                && let Some((_, true)) = judge(self, o)
                            {
                                o.insert("host".into(), json!(true));
                                host = true;
                            }
                        }
                        // Listed up to a bound, host services first; the flags above saw all.
                        if ds.len() > MAX_DESTINATIONS {
                            ds.sort_by_key(|m| m.get("host").is_none());
                            unlisted = ds.len() - MAX_DESTINATIONS;
                            ds.truncate(MAX_DESTINATIONS);
                        }
                    }
                    if unlisted > 0 {
                        d.insert("destinations_not_listed".into(), json!(unlisted));
                    }
                }
                if host {
                    d.insert("host".into(), json!(true));
                }
                self.push(
                    pid,
                    EventKind::Network,
                    name,
                    Action::Allowed,
                    Value::Object(d),
                );
                Some(cont)
            }
            Tier::Record(Record::Exec) => {
                let (path_arg, argv_arg) = if nr == libc::SYS_execveat {
                    (a[1], a[2])
                } else {
                    (a[0], a[1])
                };
                let first = !self.first_exec_done && pid == self.target_pid;
                if first {
                    self.first_exec_done = true;
                    self.first_exec_at = Some(Instant::now());
                    // The target's own start (from our plan's memory, not the program's) is not
                    // an event of the program.
                    return Some(cont);
                }
                let (Ok(path), Ok(argv)) = (
                    decode::read_cstring(pid, path_arg, decode::MAX_PATH),
                    decode::read_argv(pid, argv_arg),
                ) else {
                    return self.refuse_unreadable(listener, n, name, EventKind::Exec);
                };
                let path = path.unwrap_or_default();
                if !valid(listener) {
                    return None;
                }
                // An exec from another thread of the sandbox's first process makes that thread
                // the process's main thread, and threads start without the parent-death signal:
                // the program could then outlive a modelvet killed outright. Refused even with
                // --allow-exec (forked processes may exec: they die with the namespace's pid 1).
                // A thread gone before we could tell counts as one: its exec cannot happen anyway.
                let from_thread = pid != self.target_pid
                    && thread_group(pid).is_none_or(|g| g == self.target_pid);
                let allowed = self.allow_exec && !from_thread;
                let mut detail = json!({"path": path, "argv": argv, "first": false});
                // The file the kernel runs, as read at the call (another thread may change the
                // name or the descriptor before the kernel looks): with AT_EMPTY_PATH the one the
                // descriptor holds, else the path resolved as opens are; a descriptor named
                // through /proc or /dev/fd (how a memfd is run) by what it holds.
                let (dirfd, at_flags) = if nr == libc::SYS_execveat {
                    (a[0] as i32 as i64, a[4] as i32)
                } else {
                    (libc::AT_FDCWD as i64, 0)
                };
                let resolved = if path.is_empty() {
                    (at_flags & libc::AT_EMPTY_PATH != 0)
                        .then(|| proc_link(pid, &format!("fd/{dirfd}")))
                        .flatten()
                } else {
                    self.resolve(pid, dirfd, &path, false)
                        .map(|r| held_descriptor(pid, &r).unwrap_or(r))
                };
                if let Some(r) = resolved.filter(|r| *r != path) {
                    detail["resolved"] = json!(r);
                }
                if from_thread {
                    detail["thread"] = json!(true);
                    detail["note"] = json!(
                        "exec from a secondary thread of the sandbox's first process: refused, it \
                         would drop the parent-death signal"
                    );
                }
                let action = if allowed {
                    Action::Allowed
                } else {
                    Action::Denied
                };
                self.push(pid, EventKind::Exec, name, action, detail);
                Some(if allowed { cont } else { deny(libc::EPERM) })
            }
            Tier::Record(Record::Process) => {
                self.clones += 1;
                let (flags, resp, note) = if nr == libc::SYS_clone3 {
                    // clone3's flags live in memory another thread could change after we read
                    // them: answer ENOSYS so libc falls back to clone(2), whose flags are registers.
                    (
                        None,
                        deny(libc::ENOSYS),
                        Some("answered ENOSYS; libc falls back to clone"),
                    )
                } else if nr == libc::SYS_clone {
                    let f = a[0];
                    if f & CLONE_NS_FLAGS != 0 {
                        (
                            Some(f),
                            deny(libc::EPERM),
                            Some("new namespaces are not allowed"),
                        )
                    } else {
                        (Some(f), cont, None)
                    }
                } else {
                    (Some(0), cont, None)
                };
                let threads = flags.is_some_and(|f| f & libc::CLONE_THREAD as u64 != 0);
                let mut d = json!({"threads": threads});
                if let Some(f) = flags {
                    d["flags"] = json!(format!("{f:#x}"));
                }
                if let Some(note) = note {
                    d["note"] = json!(note);
                }
                let action = if resp.flags == 0 && nr != libc::SYS_clone3 {
                    Action::Denied
                } else {
                    Action::Allowed
                };
                self.push(pid, EventKind::Process, name, action, d);
                Some(resp)
            }
            Tier::Record(Record::Attributes) => {
                // The program's main thread keeps the parent-death signal the child set before
                // its exec: without it, a modelvet killed outright (SIGKILL, the OOM killer) would
                // leave the program running unsupervised. Registers only: nothing to re-read.
                // The option is an int: the kernel ignores the register's upper half, so must we.
                let drops_pdeathsig = a[0] as u32 == libc::PR_SET_PDEATHSIG as u32
                    && a[1] != libc::SIGKILL as u64
                    && pid == self.target_pid;
                if !drops_pdeathsig {
                    return Some(cont);
                }
                self.push(
                    pid,
                    EventKind::Denied,
                    name,
                    Action::Denied,
                    json!({"nr": nr, "args": a, "option": "PR_SET_PDEATHSIG"}),
                );
                Some(deny(libc::EPERM))
            }
            Tier::Record(Record::File) => {
                // mknod of a FIFO or socket: a write at its path, as an open with O_CREAT.
                let create = (libc::O_CREAT | libc::O_WRONLY) as u64;
                // openat2 with RESOLVE_IN_ROOT: the path, absolute or not, is inside the dirfd.
                let mut in_root = false;
                let (dirfd, path_arg, flags) = match nr {
                    #[cfg(target_arch = "x86_64")]
                    x if x == libc::SYS_mknod => (libc::AT_FDCWD as i64, a[0], create),
                    x if x == libc::SYS_mknodat => (a[0] as i32 as i64, a[1], create),
                    #[cfg(target_arch = "x86_64")]
                    x if x == libc::SYS_open => (libc::AT_FDCWD as i64, a[0], a[1]),
                    #[cfg(target_arch = "x86_64")]
                    x if x == libc::SYS_creat => (
                        libc::AT_FDCWD as i64,
                        a[0],
                        (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64,
                    ),
                    x if x == libc::SYS_openat2 => {
                        // struct open_how: flags, mode, resolve (u64 each). A smaller size is the
                        // kernel's EINVAL: nothing to read.
                        let size = if a[3] >= 24 { 24 } else { 0 };
                        let Ok(how) = decode::read_bytes(pid, a[2], size) else {
                            return self.refuse_unreadable(listener, n, name, EventKind::File);
                        };
                        let field = |i: usize| {
                            how.as_ref()
                                .and_then(|b| b.get(i * 8..i * 8 + 8))
                                .and_then(|b| b.try_into().ok())
                                .map_or(0, u64::from_ne_bytes)
                        };
                        in_root = field(2) & RESOLVE_IN_ROOT != 0;
                        (a[0] as i32 as i64, a[1], field(0))
                    }
                    _ => (a[0] as i32 as i64, a[1], a[2]),
                };
                let Ok(path) = decode::read_cstring(pid, path_arg, decode::MAX_PATH) else {
                    return self.refuse_unreadable(listener, n, name, EventKind::File);
                };
                let path = path.unwrap_or_default();
                if !valid(listener) {
                    return None;
                }
                let write = flags
                    & (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u64
                    != 0;
                let mut d = json!({"path": path, "write": write});
                if let Some(mode) = mknod_mode {
                    d["node"] = json!(match mode as u32 & libc::S_IFMT {
                        libc::S_IFIFO => "fifo",
                        libc::S_IFSOCK => "socket",
                        _ => "file",
                    });
                }
                let resolved = self.resolve(pid, dirfd, &path, in_root);
                // A path that cannot be followed from here (through another process's /proc
                // links) is judged outside.
                if resolved.is_none() {
                    d["outside"] = json!(true);
                }
                if let Some(r) = &resolved {
                    if r != &path {
                        d["resolved"] = json!(r);
                    }
                    let outside = if write {
                        !self.rules.is_writable(r) && !own_proc_attribute(r)
                    } else {
                        !self.rules.is_readable(r)
                    };
                    if outside {
                        d["outside"] = json!(true);
                    }
                }
                self.push(pid, EventKind::File, name, Action::Allowed, d);
                Some(cont)
            }
        }
    }
}

impl Recorder {
    /// `path` as the kernel will resolve it for `pid`: relative to its working directory or the
    /// directory fd, inside that fd with `RESOLVE_IN_ROOT`, through /proc's magic links. None
    /// when it cannot be followed from here (through another process's /proc links).
    fn resolve(&mut self, pid: u32, dirfd: i64, path: &str, in_root: bool) -> Option<String> {
        let link = |what: &str| proc_link(pid, what);
        let start = if path.starts_with('/') && !in_root {
            Some(String::new())
        } else if dirfd == libc::AT_FDCWD as i64 {
            link("cwd")
        } else {
            link(&format!("fd/{dirfd}"))
        };
        start.and_then(|s| {
            if in_root {
                // Nothing climbs out of that root, and /proc in it is a plain folder.
                let inner = crate::plan::normalize(
                    &std::path::Path::new("/").join(path.trim_start_matches('/')),
                );
                return Some(format!("{}{}", s.trim_end_matches('/'), inner.display()));
            }
            let full = format!("{s}/{path}");
            // The caller's own ids as the sandbox numbers them, for `/proc/<pid>/...` and the
            // /dev links to it (read only when the walk may meet them; unknown ids make such a
            // walk judged outside).
            let meets = ["/proc", "/dev/fd", "/dev/std"];
            let own = if meets.iter().any(|m| full.contains(m)) {
                let process = thread_group(pid).unwrap_or(pid);
                let id = |n: i64| if n > 0 { n.to_string() } else { String::new() };
                (id(self.ns_pid(process)), id(self.ns_pid(pid)))
            } else {
                (String::new(), String::new())
            };
            walk(&full, (&own.0, &own.1), &link)
        })
    }

    /// A socket path as the kernel would resolve it for `pid` (relative to its working
    /// directory, `/proc/.../cwd` and `/proc/.../root` unwrapped, normalised), and whether a
    /// component of it is a symlink in the sandbox's tree (where it leads is not judged here:
    /// the caller treats it as a host path).
    fn socket_path(&self, pid: u32, path: &str, lookups: &Lookups) -> (String, bool) {
        let absolute = if path.starts_with('/') {
            path.to_string()
        } else {
            match proc_link(pid, "cwd") {
                // A working directory not in UTF-8 cannot be looked at here.
                Some(c) if !c.contains('\u{fffd}') => format!("{c}/{path}"),
                _ => return (path.to_string(), true),
            }
        };
        // Each component costs a lookup from the root below: a path deep enough to make that
        // slow would hold the notification while the program swaps what it names (a red team
        // stretched one check to 0.44 s that way). No socket a program means lies this deep.
        if absolute.split('/').filter(|c| !c.is_empty()).count() > MAX_SOCKET_DEPTH {
            return (absolute, true);
        }
        // Walked in order, each component looked at through the program's own root before any
        // `..` may drop it: the first symlink (a link in scratch, /proc/self, /proc/<pid>/cwd...)
        // leads somewhere this record cannot follow, and is judged a host's.
        let mut stack: Vec<&str> = Vec::new();
        for c in absolute.split('/') {
            match c {
                "" | "." => continue,
                ".." => {
                    stack.pop();
                    continue;
                }
                c => stack.push(c),
            }
            let prefix = format!("/{}", stack.join("/"));
            if !lookups.plain(&prefix, || {
                match std::fs::symlink_metadata(format!("/proc/{pid}/root{prefix}")) {
                    Ok(m) => !m.file_type().is_symlink(),
                    // Nothing there: the kernel fails the same way.
                    Err(e) => e.kind() == std::io::ErrorKind::NotFound,
                }
            }) {
                // A link, a name this side cannot look at (too long, say), or past the call's
                // lookups: a host's.
                return (prefix, true);
            }
        }
        (format!("/{}", stack.join("/")), false)
    }
}

/// An absolute path as the kernel walks it, lexically: `.` and `..` (never above `/`), and the
/// magic links of /proc: `/proc/<pid>/root` (every process of the sandbox has its root, so any
/// pid; `task/<tid>` too) jumps to `/`; `/proc/self/cwd` and `/proc/self/fd/<n>` (or
/// `thread-self`, or the caller's own pid or thread id) jump to the caller's working directory and
/// descriptor, read through `link` ("cwd", "fd/3" for the calling thread's, marked
/// `PROCESS_LINK` for its process's). `own` is the caller's (process, thread) id in the sandbox.
/// Another process's cwd or descriptors cannot be told from here: None, as for any jump `link`
/// cannot read. Symlinks are not followed, except /proc's own (`self`, `thread-self`, `net`,
/// `mounts`) and the sandbox's /dev links to descriptors, which lead to fixed places.
fn walk(path: &str, own: (&str, &str), link: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let (own_process, own_thread) = own;
    enum Jump {
        Root,
        Link(String),
        Unknown,
    }
    let magic = |stack: &[String]| -> Option<Jump> {
        // (`self`, `thread-self`, `net` and `mounts` were expanded to the ids when pushed.)
        let own = |w: &str| !w.is_empty() && (w == own_process || w == own_thread);
        // `/proc/<pid>` is the process, whose cwd and descriptors are its main thread's;
        // `/proc/<tid>` and `/proc/<pid>/task/<tid>` the calling thread (they differ for a
        // thread made without CLONE_FS or CLONE_FILES). The link reader is told which.
        let of = |w: &str, what: String| {
            if w == own_thread && w != own_process {
                what
            } else {
                format!("{PROCESS_LINK}{what}")
            }
        };
        let pid = |w: &str| own(w) || w.bytes().all(|b| b.is_ascii_digit());
        let digits = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
        let (w, rest) = match stack {
            [p, w, rest @ ..] if p == "proc" && pid(w) => (w.as_str(), rest),
            _ => return None,
        };
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        let jump = |what: &str, own_task: bool| {
            if own_task {
                Jump::Link(what.to_string())
            } else {
                Jump::Unknown
            }
        };
        match rest.as_slice() {
            ["root"] | ["task", _, "root"] if rest.len() == 1 || digits(rest[1]) => {
                Some(Jump::Root)
            }
            ["cwd"] => Some(jump(&of(w, "cwd".into()), own(w))),
            ["fd", n] if digits(n) => Some(jump(&of(w, format!("fd/{n}")), own(w))),
            // The calling thread under its process (`/proc/thread-self` is that) or itself.
            ["task", t, "cwd"] if !t.is_empty() && *t == own_thread && own(w) => {
                Some(Jump::Link("cwd".into()))
            }
            ["task", t, "fd", n] if !t.is_empty() && *t == own_thread && own(w) && digits(n) => {
                Some(Jump::Link(format!("fd/{n}")))
            }
            ["task", t, "cwd"] if digits(t) => Some(Jump::Unknown),
            ["task", t, "fd", n] if digits(t) && digits(n) => Some(Jump::Unknown),
            _ => None,
        }
    };
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut stack: Vec<String> = Vec::new();
    let mut jumps = 0;
    for (i, c) in parts.iter().enumerate() {
        if *c == ".." {
            stack.pop();
            continue;
        }
        stack.push(c.to_string());
        // /proc's own symlinks, followed as the kernel does, so that a `..` after one climbs
        // from where it leads (`/proc/thread-self/..` is `/proc/<pid>/task`).
        if let [p, name] = stack.as_slice()
            && p == "proc"
            && matches!(name.as_str(), "self" | "thread-self" | "net" | "mounts")
        {
            if own_process.is_empty() {
                return None;
            }
            let mut to = vec!["proc".to_string(), own_process.to_string()];
            match name.as_str() {
                "thread-self" => to.extend(["task".to_string(), own_thread.to_string()]),
                "net" | "mounts" => to.push(name.clone()),
                _ => {}
            }
            stack = to;
        }
        // The sandbox's /dev (read-only, made by us) links `fd` to /proc/self/fd and `stdin`,
        // `stdout`, `stderr` to its descriptors 0 to 2.
        if let [d, name] = stack.as_slice()
            && d == "dev"
        {
            let fd: Option<&[&str]> = match name.as_str() {
                "fd" => Some(&[]),
                "stdin" => Some(&["0"]),
                "stdout" => Some(&["1"]),
                "stderr" => Some(&["2"]),
                _ => None,
            };
            if let Some(fd) = fd {
                if own_process.is_empty() {
                    return None;
                }
                stack = ["proc", own_process, "fd"]
                    .iter()
                    .chain(fd)
                    .map(|s| s.to_string())
                    .collect();
            }
        }
        let last = i + 1 == parts.len();
        match magic(&stack) {
            Some(Jump::Root) => stack.clear(),
            // A descriptor itself (`/proc/self/fd/1`): reopening what the program holds, judged
            // as the file it is (a read-only file reopened for writing is a write to it); a pipe,
            // socket or memfd is named `/proc/self/fd/N`, an expected write.
            Some(Jump::Link(what))
                if last && what.trim_start_matches(PROCESS_LINK).starts_with("fd/") =>
            {
                // A descriptor that cannot be read here (closed, or swapped in later): outside.
                let target = link(&what)?;
                stack = if target.starts_with('/') && !target.starts_with("/memfd:") {
                    target
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                        .collect()
                } else {
                    // What the program was given (a pipe, socket, memfd), however it spelt the
                    // name: the name of an expected write.
                    let n = what
                        .trim_start_matches(PROCESS_LINK)
                        .trim_start_matches("fd/");
                    ["proc", "self", "fd", n].map(str::to_string).to_vec()
                };
            }
            Some(Jump::Link(what)) => {
                jumps += 1;
                // What a link reads is itself a plain path; a few jumps are all a walk needs.
                if jumps > 8 {
                    return None;
                }
                let target = link(&what)?;
                // A pipe, socket or memfd (`pipe:[12]`, `/memfd:x (deleted)`) is no folder: the
                // kernel goes no further; judged as written.
                if !target.starts_with('/') || target.starts_with("/memfd:") {
                    continue;
                }
                stack = target
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            Some(Jump::Unknown) => return None,
            None => {}
        }
    }
    Some(format!("/{}", stack.join("/")))
}

/// About what a recorded detail weighs in memory and in the report: its strings' bytes, a few
/// for everything else.
fn weight(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 2,
        Value::Array(a) => a.iter().map(weight).sum::<usize>() + 2,
        Value::Object(o) => {
            o.iter()
                .map(|(k, v)| k.len() + 3 + weight(v))
                .sum::<usize>()
                + 2
        }
        _ => 8,
    }
}

/// The kind of behaviour an event shows, as the late-event key (see `MAX_LATE_EVENTS`). What
/// decides a finding's rule and severity is in it: a decoy of one kind (an nscd connect, a
/// scratch socket) must not take the slot of another (a host socket).
fn behaviour(kind: EventKind, syscall: &str, action: Action, detail: &Value) -> String {
    let flag = |k: &str| detail.get(k).map_or_else(String::new, Value::to_string);
    let addressed = detail.get("address").is_some() || detail.get("path").is_some();
    let nscd = matches!(
        detail.get("path").and_then(Value::as_str),
        Some("/var/run/nscd/socket" | "/run/nscd/socket")
    );
    // A sendmmsg's other destinations: their families too.
    let mut families: Vec<String> = detail
        .get("destinations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| m.get("family").map_or_else(String::new, Value::to_string))
        .collect();
    families.sort();
    families.dedup();
    format!(
        "{kind:?} {syscall} {action:?} {} {} {} {} {} {addressed} {nscd} {} {}",
        flag("unreadable"),
        flag("outside"),
        flag("write"),
        flag("family"),
        flag("host"),
        flag("thread"),
        families.join(",")
    )
}

/// The thread group (process) a thread belongs to, from the Tgid field of /proc/<tid>/status.
fn thread_group(tid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

/// Components past which a socket path (with the working directory before a relative one) is
/// judged a host's without looking (see `socket_path`).
const MAX_SOCKET_DEPTH: usize = 64;

/// Lookups one call's socket paths may cost in all (a sendmmsg names up to 1,024): past them,
/// its remaining destinations are judged a host's without looking. A red team held one call for
/// 0.6 s with 1,023 paths just under `MAX_SOCKET_DEPTH`, long enough to swap what another named.
const MAX_SOCKET_LOOKUPS: usize = 512;

/// A thread's name in the sandbox's own /proc (`/proc/<pid>/comm`, `/proc/<pid>/task/<tid>/comm`:
/// glibc's pthread_setname_np writes it for a thread other than the caller) or a process's
/// core-dump filter (`/proc/<pid>/coredump_filter`, which a JVM sets at start; cores are off). Each
/// is an attribute of a process of the sandbox, nothing of the host's: no finding.
fn own_proc_attribute(path: &str) -> bool {
    let digits = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    match parts.as_slice() {
        ["proc", p, "comm" | "coredump_filter"] => digits(p),
        ["proc", p, "task", t, "comm"] => digits(p) && digits(t),
        _ => false,
    }
}

#[cfg(test)]
mod thread_name_tests {
    #[test]
    fn only_thread_names_and_core_filters_in_proc_are_harmless_writes() {
        use super::own_proc_attribute as n;
        assert!(n("/proc/4/comm") && n("/proc/4/task/6/comm") && n("/proc/1/coredump_filter"));
        assert!(!n("/proc/4/task/6/coredump_filter") && !n("/proc/4/oom_score_adj"));
        assert!(!n("/proc/4/attr/current") && !n("/proc/sysrq-trigger"));
        assert!(!n("/proc/self/comm/x") && !n("/tmp/proc/4/comm") && !n("/proc/x/comm"));
    }
}

/// The lookups of one call's socket paths: each prefix looked at once (a sendmmsg's paths share
/// their folders), at most `MAX_SOCKET_LOOKUPS` in all.
struct Lookups {
    left: std::cell::Cell<usize>,
    seen: std::cell::RefCell<HashMap<String, bool>>,
}

impl Default for Lookups {
    fn default() -> Self {
        Lookups {
            left: std::cell::Cell::new(MAX_SOCKET_LOOKUPS),
            seen: std::cell::RefCell::new(HashMap::new()),
        }
    }
}

impl Lookups {
    /// Whether `prefix` is a plain component (no link, or nothing there), by `look` when not
    /// seen before in this call; false once the call's lookups are spent.
    fn plain(&self, prefix: &str, look: impl FnOnce() -> bool) -> bool {
        if let Some(&known) = self.seen.borrow().get(prefix) {
            return known;
        }
        if self.left.get() == 0 {
            return false;
        }
        self.left.set(self.left.get() - 1);
        let known = look();
        self.seen.borrow_mut().insert(prefix.to_string(), known);
        known
    }
}

#[cfg(test)]
mod lookups_tests {
    #[test]
    fn each_prefix_is_looked_at_once_and_the_lookups_are_bounded() {
        let l = super::Lookups::default();
        let looks = std::cell::Cell::new(0);
        let look = || {
            looks.set(looks.get() + 1);
            true
        };
        for _ in 0..1000 {
            assert!(l.plain("/tmp", look));
        }
        assert_eq!(looks.get(), 1);
        for i in 0..super::MAX_SOCKET_LOOKUPS - 1 {
            assert!(l.plain(&format!("/tmp/{i}"), look));
        }
        // Spent: anything new is not plain (judged a host's), what was seen stays as seen.
        assert!(!l.plain("/tmp/new", look));
        assert!(l.plain("/tmp", look));
        assert_eq!(looks.get(), super::MAX_SOCKET_LOOKUPS);
    }
}

/// openat2's `RESOLVE_IN_ROOT` (linux/openat2.h).
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Marks a link `walk` asks for as the process's (its main thread's), not the calling thread's.
const PROCESS_LINK: &str = "process:";

/// Reads /proc/<pid>/<link> for the calling thread `pid`, or for its process when `link` is
/// marked `PROCESS_LINK`. The kernel renders it relative to the child's root when the child is in
/// our mount tree's view; after pivot_root it is the path the child itself would see.
/// The mode argument of a mknod call (the node's type is in its S_IFMT bits).
fn mknod_mode(nr: i64, a: &[u64; 6]) -> Option<u64> {
    match nr {
        #[cfg(target_arch = "x86_64")]
        x if x == libc::SYS_mknod => Some(a[1]),
        x if x == libc::SYS_mknodat => Some(a[2]),
        _ => None,
    }
}

/// A character or block device node: denied as the deny tier's calls are. FIFOs, sockets and
/// regular files pass as file writes.
fn makes_device(mode: u64) -> bool {
    matches!(mode as u32 & libc::S_IFMT, libc::S_IFCHR | libc::S_IFBLK)
}

#[cfg(test)]
mod mknod_tests {
    use super::*;

    #[test]
    fn only_device_modes_are_devices_and_the_mode_is_the_right_argument() {
        let fifo = (libc::S_IFIFO | 0o644) as u64;
        let chr = (libc::S_IFCHR | 0o600) as u64;
        // mknodat(dirfd, path, mode, dev): the mode is the third argument.
        assert_eq!(
            mknod_mode(libc::SYS_mknodat, &[0, 0, chr, 0, 0, 0]),
            Some(chr)
        );
        assert_eq!(
            mknod_mode(libc::SYS_mknodat, &[0, chr, fifo, 0, 0, 0]),
            Some(fifo)
        );
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            mknod_mode(libc::SYS_mknod, &[0, chr, 0, 0, 0, 0]),
            Some(chr)
        );
        assert_eq!(mknod_mode(libc::SYS_openat, &[0, 0, chr, 0, 0, 0]), None);
        assert!(makes_device(chr) && makes_device((libc::S_IFBLK | 0o600) as u64));
        // High bits beyond the mode's 32 do not make a FIFO a device, nor hide one.
        assert!(makes_device(chr | 1 << 44) && !makes_device(fifo | 1 << 44));
        for m in [fifo, libc::S_IFSOCK as u64, libc::S_IFREG as u64, 0o644] {
            assert!(!makes_device(m), "{m:o}");
        }
    }
}

/// What a descriptor path of the caller's own (`/proc/<n>/fd/<k>`, as a walk leaves a pipe's or
/// memfd's) holds: `/memfd:payload (deleted)`, `pipe:[123]`.
fn held_descriptor(pid: u32, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    match parts.as_slice() {
        ["proc", _, "fd", k] if k.bytes().all(|b| b.is_ascii_digit()) => {
            proc_link(pid, &format!("fd/{k}"))
        }
        _ => None,
    }
}

fn proc_link(pid: u32, link: &str) -> Option<String> {
    if let Some(link) = link.strip_prefix(PROCESS_LINK) {
        return proc_link(thread_group(pid)?, link);
    }
    std::fs::read_link(format!("/proc/{pid}/{link}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

impl Supervisor {
    /// Last resort when no runtime can be built (e.g. no fds left): kill and report.
    pub(crate) fn run_without_runtime(self) -> Outcome {
        Supervisor::fallback_outcome(self.start, self.pid)
    }

    pub(crate) async fn run_async(self) -> Outcome {
        let Supervisor {
            start,
            pid,
            pidfd,
            notifier,
            group,
            attach_ms,
            timeout,
            stdout,
            stderr,
            echo,
            child_mem,
        } = self;
        let out_task = stdout.map(|fd| tokio::spawn(relay(fd, echo)));
        let err_task = stderr.map(|fd| tokio::spawn(relay(fd, echo)));

        // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it until dropped, so the
        // descriptor stays open and the same for the AsyncFd's whole life.
        let exited =
            unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
        let deadline = tokio::time::Instant::from_std(start + timeout);
        // The figures' files are opened now, while the program runs: at its end each figure is
        // one read. The first check comes after one interval (nothing has run out before).
        if let Some(g) = &group {
            g.open_figures();
        }
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + POLL_INTERVAL, POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut forced: Option<ExitStatus> = None;

        let exited = match exited {
            Ok(e) => e,
            Err(_) => {
                // The program dies first: only then may the notification thread be stopped and
                // joined.
                let outcome = Supervisor::fallback_outcome(start, pid);
                drop(notifier);
                return outcome;
            }
        };

        // When the run was cut short: the output's grace counts from then, so the kernel's
        // teardown of a large tree (seconds for tens of thousands of mappings, all before the
        // target's exit shows) is inside it, not on top of it.
        let mut killed_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = exited.readable() => break,
                _ = tokio::time::sleep_until(deadline), if forced.is_none() => {
                    forced = Some(ExitStatus::Timeout);
                    killed_at = Some(tokio::time::Instant::now());
                    kill_tree(&group, exited.get_ref());
                }
                _ = tick.tick(), if forced.is_none() => {
                    let why = if crate::interrupt::received().is_some() {
                        // We were asked to stop (Ctrl-C, SIGTERM): stop the program like a timeout.
                        Some(ExitStatus::Killed)
                    } else if let Some(g) = &group {
                        if g.oom_kills() > 0 {
                            Some(ExitStatus::Memory)
                        } else if g.pids_max_hits() > 0 {
                            Some(ExitStatus::Pids)
                        } else {
                            None
                        }
                    } else {
                        None
                    };
                    if why.is_some() {
                        forced = why;
                        killed_at = Some(tokio::time::Instant::now());
                        kill_tree(&group, exited.get_ref());
                    }
                }
            }
        }
        let ended = killed_at.unwrap_or_else(tokio::time::Instant::now);
        let wall = start.elapsed();
        // Nothing is left to kill once the pidfd is readable: the target was pid 1 of its
        // namespace, and the kernel ends every other process of the namespace (forks under way
        // included: the namespace takes no new pid once its first process is gone) and waits for
        // them to be gone before its exit shows there. Should the loop have ended otherwise (the
        // runtime shutting down), the tree is killed as before; one poll that does not wait.
        if !sys::poll_in(exited.get_ref().as_raw_fd(), 0).unwrap_or(false) {
            kill_tree(&group, exited.get_ref());
        }
        let waited = sys::wait4(pid, 0).ok().flatten();
        if waited.is_some() {
            child_mem.release();
        }
        let (status_raw, ru) = match waited {
            Some(w) => (Some(w.0), Some(w.1)),
            None => (None, None),
        };
        let (code, signal) = match status_raw {
            Some(s) if libc::WIFEXITED(s) => (Some(libc::WEXITSTATUS(s)), None),
            Some(s) if libc::WIFSIGNALED(s) => (None, Some(libc::WTERMSIG(s))),
            _ => (None, None),
        };
        let oom = group.as_ref().map_or(0, Group::oom_kills);
        let status = match forced {
            Some(s) => s,
            None if oom > 0 => ExitStatus::Memory,
            None if signal.is_some() && group.as_ref().is_some_and(|g| g.pids_max_hits() > 0) => {
                ExitStatus::Pids
            }
            None if signal.is_some() => ExitStatus::Signaled,
            None => ExitStatus::Exited,
        };
        let mut resources = Resources {
            wall_ms: wall.as_millis() as u64,
            cgroup_attach_ms: (attach_ms * 1000.0).round() / 1000.0,
            ..Default::default()
        };
        if let Some(ru) = ru {
            resources.cpu_user_ms =
                (ru.ru_utime.tv_sec as u64) * 1000 + (ru.ru_utime.tv_usec as u64) / 1000;
            resources.cpu_sys_ms =
                (ru.ru_stime.tv_sec as u64) * 1000 + (ru.ru_stime.tv_usec as u64) / 1000;
            resources.peak_rss_bytes = (ru.ru_maxrss as u64) * 1024;
        }
        if let Some(g) = &group {
            if let Some((u, s)) = g.cpu_usec() {
                // The cgroup counts processes that were killed unreaped too.
                resources.cpu_user_ms = resources.cpu_user_ms.max(u / 1000);
                resources.cpu_sys_ms = resources.cpu_sys_ms.max(s / 1000);
            }
            resources.peak_memory_bytes = g.peak_memory();
            resources.peak_pids = g.peak_pids().unwrap_or(0);
        }
        drop(group);
        // The notification thread's record (it hands it over, then lets go of the child's mount
        // namespace on its own: see `Notifier::finish`).
        let Some(rec) = notifier.finish() else {
            // Reaped above, or to be left alone: no pid of ours to kill any more.
            return Outcome::killed(wall.as_millis() as u64);
        };
        resources.setup_ms = rec
            .first_exec_at
            .map_or(0.0, |t| ((t - start).as_secs_f64() * 1e6).round() / 1e3);
        if resources.peak_pids == 0 {
            resources.peak_pids = 1 + rec.clones;
            resources.peak_pids_upper_bound = true;
        }
        // Abandoned groups of earlier runs, if the warm-up helper did not get to them.
        crate::cgroup::prune_stale_once(&crate::cgroup::Support::detected());
        // Everything is dead, so the pipes end now, unless a write end outlives the tree (passed
        // in a socket's queue that something of ours still holds): a bounded wait, then none.
        let tail = |t: Option<tokio::task::JoinHandle<Vec<u8>>>| async move {
            let Some(mut t) = t else {
                return Vec::new();
            };
            // At least a moment once we get here: after a long teardown the grace may be spent,
            // and output whose writers are all gone only waits to be read.
            let until = (ended + OUTPUT_GRACE)
                .max(tokio::time::Instant::now() + Duration::from_millis(100));
            match tokio::time::timeout_at(until, &mut t).await {
                Ok(r) => r.unwrap_or_default(),
                Err(_) => {
                    t.abort();
                    Vec::new()
                }
            }
        };
        // Both at once: one grace period in all, not one per stream.
        let (stdout_tail, stderr_tail) = tokio::join!(tail(out_task), tail(err_task));
        Outcome {
            exit: Exit {
                status,
                code,
                signal,
            },
            resources,
            syscalls: rec.syscalls,
            events: rec.events,
            events_dropped: rec.dropped,
            stdout_tail,
            stderr_tail,
            exec_error: None,
        }
    }

    pub(crate) fn fallback_outcome(start: Instant, pid: i32) -> Outcome {
        // SAFETY: kill(2) with a pid we created and have not reaped; at worst ESRCH.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = sys::wait4(pid, 0);
        Outcome::killed(start.elapsed().as_millis() as u64)
    }
}

fn kill_tree(group: &Option<Group>, pidfd: &OwnedFd) {
    let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
    if let Some(g) = group {
        g.kill();
    }
}

/// Answers notifications until no task is left under the filter (POLLHUP) or the run is over.
fn notify_loop(listener: &OwnedFd, rec: &mut Recorder, done: &std::sync::atomic::AtomicBool) {
    let fd = listener.as_raw_fd();
    loop {
        // Checked every time round, not only when a poll times out: a program that never stops
        // making notified calls would otherwise keep a stopping supervisor waiting for ever.
        if done.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the timeout lets us notice `done` if HUP never comes.
        let r = unsafe { libc::poll(&mut pfd, 1, 100) };
        if r < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        if r == 0 {
            continue;
        }
        if pfd.revents & libc::POLLIN != 0 {
            match sys::notif_recv(listener) {
                Ok(n) => {
                    if let Some(resp) = rec.handle(listener, &n) {
                        let _ = sys::notif_send(listener, &resp);
                    }
                }
                Err(e) if e.errno == libc::ENOENT || e.errno == libc::EINTR => {}
                Err(_) => return,
            }
        } else if pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return;
        }
    }
}

/// The program's output made harmless to a terminal: newline and tab pass, and so does valid
/// UTF-8 text; control characters (C0, DEL, C1), bidirectional overrides and bytes that are not
/// (whole) UTF-8 are written as `\x..` text, each byte. Judged per chunk, so a sequence split
/// across reads, or across stdout and stderr, is escaped on both sides instead of forming one.
/// Raw, a program could leave the terminal concealing, erasing or reordering what follows it.
fn inert_output(b: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let acts = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if let Ok(text) = std::str::from_utf8(b)
        && !text.chars().any(acts)
    {
        return std::borrow::Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len() + 16);
    let escape = |out: &mut Vec<u8>, bytes: &[u8]| {
        for c in bytes {
            out.extend_from_slice(format!("\\x{c:02x}").as_bytes());
        }
    };
    let mut rest = b;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(t) => (t, 0),
            Err(e) => (
                // SAFETY: from_utf8 vouches for the bytes up to valid_up_to.
                unsafe { std::str::from_utf8_unchecked(&rest[..e.valid_up_to()]) },
                e.error_len().unwrap_or(rest.len() - e.valid_up_to()),
            ),
        };
        for c in valid.chars() {
            let mut buf = [0u8; 4];
            let bytes = c.encode_utf8(&mut buf).as_bytes();
            if acts(c) {
                escape(&mut out, bytes);
            } else {
                out.extend_from_slice(bytes);
            }
        }
        let at = valid.len();
        escape(&mut out, &rest[at..at + bad]);
        rest = &rest[at + bad..];
    }
    std::borrow::Cow::Owned(out)
}

/// Copies the program's output to our stderr (never stdout: JSON reports go there), keeping the tail.
async fn relay(fd: OwnedFd, echo: bool) -> Vec<u8> {
    let mut tail: Vec<u8> = Vec::new();
    let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return tail;
    };
    let mut err = tokio::io::stderr();
    let mut buf = vec![0u8; 16 * 1024];
    // The start of a character the read cut off, held for the next read of this stream.
    let mut held: Vec<u8> = Vec::new();
    loop {
        match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if echo {
                    let mut chunk = std::mem::take(&mut held);
                    chunk.extend_from_slice(&buf[..n]);
                    held = chunk.split_off(chunk.len() - cut_character(&chunk));
                    // Flushed: tokio's stderr hands the bytes to a blocking thread, and only a
                    // flush waits for them to be written (the runtime is shut down without
                    // waiting for that thread, see `spawn_with`).
                    let _ = err.write_all(&inert_output(&chunk)).await;
                    let _ = err.flush().await;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > OUTPUT_TAIL {
                    tail.drain(..tail.len() - OUTPUT_TAIL);
                }
            }
        }
    }
    if echo && !held.is_empty() {
        let _ = err.write_all(&inert_output(&held)).await;
        let _ = err.flush().await;
    }
    tail
}

/// How many bytes at the end of `b` start a UTF-8 character that is not complete yet (0 to 3).
fn cut_character(b: &[u8]) -> usize {
    for back in 1..=b.len().min(3) {
        let c = b[b.len() - back];
        if c & 0xc0 == 0x80 {
            continue; // a continuation byte: look further back for the lead
        }
        let need = match c {
            0xf0.. => 4,
            0xe0.. => 3,
            0xc0.. => 2,
            _ => 1,
        };
        return if need > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_walked_through_proc_root_and_cwd_as_the_kernel_would() {
        // The process's links; the calling thread has its own cwd (no CLONE_FS).
        let link = |what: &str| match what {
            "process:cwd" => Some("/work/dir".to_string()),
            "cwd" => Some("/thread/dir".to_string()),
            "process:fd/3" => Some("/".to_string()),
            "process:fd/7" => Some("pipe:[1234]".to_string()),
            "process:fd/5" => Some("/etc/ld.so.cache".to_string()),
            "process:fd/0" => Some("/dev/null".to_string()),
            "process:fd/1" => Some("pipe:[9]".to_string()),
            "process:fd/4" => Some("anon_inode:[eventfd]".to_string()),
            "process:fd/6" => Some("/tmp/x (deleted)".to_string()),
            "process:fd/8" => Some("/memfd:m (deleted)".to_string()),
            "fd/7" => Some("pipe:[5]".to_string()),
            _ => None,
        };
        for (path, want) in [
            ("/proc/self/root/etc/shadow", Some("/etc/shadow")),
            ("/proc/1/root", Some("/")),
            ("/proc/thread-self/root/x", Some("/x")),
            ("/proc/7/task/9/root/etc/x", Some("/etc/x")),
            // `..` after the link climbs from the root it leads to, not from /proc/self.
            ("/proc/self/root/../etc/shadow", Some("/etc/shadow")),
            ("/tmp/../proc/self/root/./etc//x", Some("/etc/x")),
            ("/proc/self/cwd/a.sock", Some("/work/dir/a.sock")),
            ("/proc/self/cwd/../b", Some("/work/b")),
            ("/proc/self/fd/3/etc/shadow", Some("/etc/shadow")),
            ("/proc/4/cwd/a", Some("/work/dir/a")),
            ("/proc/thread-self/cwd/a", Some("/thread/dir/a")),
            // The caller's own thread id is the thread; its process id the process.
            ("/proc/6/cwd/a", Some("/thread/dir/a")),
            ("/proc/4/fd/3/etc/x", Some("/etc/x")),
            // A descriptor itself is the file it holds (a pipe is `/proc/self/fd/N`); one that
            // is no folder leads nowhere further.
            ("/proc/self/fd/3", Some("/")),
            ("/proc/self/fd/5", Some("/etc/ld.so.cache")),
            ("/proc/self/fd/7", Some("/proc/self/fd/7")),
            ("/proc/self/fd/7/x", Some("/proc/4/fd/7/x")),
            // The sandbox's /dev links.
            ("/dev/fd/5", Some("/etc/ld.so.cache")),
            ("/dev/fd/3/etc/x", Some("/etc/x")),
            ("/dev/stdout", Some("/proc/self/fd/1")),
            ("/dev/stdin", Some("/dev/null")),
            ("/proc/self/fd/4", Some("/proc/self/fd/4")),
            ("/proc/self/fd/6", Some("/tmp/x (deleted)")),
            ("/proc/self/fd/8", Some("/proc/self/fd/8")),
            ("/proc/thread-self/fd/5", None),
            ("/proc/self/root/dev/stdout", Some("/proc/self/fd/1")),
            // A descriptor that cannot be read: outside.
            ("/proc/self/fd/11", None),
            ("/dev/null", Some("/dev/null")),
            // Another process's cwd or descriptors, a thread's, an unreadable descriptor.
            ("/proc/2/cwd/x", None),
            ("/proc/self/task/5/cwd/x", None),
            ("/proc/2/fd/3/x", None),
            ("/proc/self/fd/9/x", None),
            // Not magic links: as written.
            ("/proc/self/rootfs/x", Some("/proc/4/rootfs/x")),
            ("/proc/self/status", Some("/proc/4/status")),
            // /proc's own links are followed before a `..`: thread-self is <pid>/task/<tid>.
            ("/proc/thread-self/../../cwd/../x", Some("/work/x")),
            ("/proc/net/../root/etc/shadow", Some("/etc/shadow")),
            ("/proc/mounts", Some("/proc/4/mounts")),
            // The calling thread's own entries, however reached.
            ("/proc/self/task/6/cwd/a", Some("/thread/dir/a")),
            ("/proc/6/task/6/cwd/a", Some("/thread/dir/a")),
            ("/proc/4/fd/7", Some("/proc/self/fd/7")),
            ("/proc/thread-self/fd/7", Some("/proc/self/fd/7")),
            ("/proc/abc/root/x", Some("/proc/abc/root/x")),
            ("/../etc/passwd", Some("/etc/passwd")),
        ] {
            assert_eq!(
                super::walk(path, ("4", "6"), &link).as_deref(),
                want,
                "{path}"
            );
        }
        assert_eq!(super::walk("/proc/self/cwd/x", ("4", "6"), &|_| None), None);
        // Ids that could not be read: a walk that meets /proc's own links is judged outside.
        assert_eq!(
            super::walk("/proc/thread-self/root/etc/x", ("", ""), &link),
            None
        );
        assert_eq!(super::walk("/dev/stdout", ("", ""), &link), None);
    }

    #[test]
    fn a_character_cut_by_a_read_waits_for_the_rest() {
        use super::cut_character as cut;
        let e = "é".as_bytes(); // c3 a9
        let han = "中".as_bytes(); // e4 b8 ad
        assert_eq!(cut(b"abc"), 0);
        assert_eq!(cut(&[b'a', e[0]]), 1);
        assert_eq!(cut(e), 0);
        assert_eq!(cut(&han[..2]), 2);
        assert_eq!(cut(han), 0);
        // A C1 lead cut off waits too, and is judged whole with what follows.
        assert_eq!(cut(&[b'x', 0xc2]), 1);
        assert_eq!(cut(&[0x80, 0x80, 0x80]), 0);
    }

    #[test]
    fn echoed_output_cannot_drive_the_terminal() {
        use super::inert_output;
        assert_eq!(
            &*inert_output(b"plain\ttext\n\xc3\xa9"),
            b"plain\ttext\n\xc3\xa9"
        );
        assert_eq!(
            &*inert_output(b"\x1b[8mhidden\x07\r\xc2\x9b2J\xc3\xa9"),
            b"\\x1b[8mhidden\\x07\\x0d\\xc2\\x9b2J\xc3\xa9"
        );
        // Half a sequence at either end of a chunk, a bidi override, a stray byte.
        assert_eq!(&*inert_output(b"a\xc2"), b"a\\xc2");
        assert_eq!(&*inert_output(b"\x9bb"), b"\\x9bb");
        assert_eq!(
            &*inert_output("x\u{202e}y".as_bytes()),
            b"x\\xe2\\x80\\xaey"
        );
        assert_eq!(&*inert_output(b"\xffz"), b"\\xffz");
    }
}
