//! The modelvet sandbox: runs an untrusted program in fresh namespaces with a read-only root,
//! Landlock, rlimits, cgroups and a three-tier seccomp filter whose notifications a supervisor
//! decodes and records. It knows nothing about models.
//!
//! `spawn` sets everything up and returns a `Running` sandbox whose supervisor already works on
//! its own thread; `Running::wait` returns the `Outcome`. If any layer cannot be set up the
//! program never runs and `spawn` returns a `SandboxError` naming the missing piece.

pub mod alloc;
pub mod cgroup;
mod child;
pub mod decode;
pub mod event;
pub mod host;
pub mod interrupt;
pub mod plan;
pub mod seccomp;
mod supervisor;
pub mod sys;

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use event::{Action, Event, EventKind, Exit, ExitStatus, Outcome, Resources};
pub use host::HostSupport;
pub use plan::PathRules;

use child::Step;
use plan::{ChildPlan, PlanError, RestPlan};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The host lacks something the sandbox needs: nothing ran.
    #[error("{what}\nHint: {hint}")]
    Unsupported { what: String, hint: String },
    /// A setup step failed in the child: nothing untrusted ran.
    #[error("sandbox setup failed while {step}: {error}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Setup {
        step: &'static str,
        error: std::io::Error,
        detail: Option<String>,
    },
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Sys(#[from] sys::SysError),
    #[error("{0}")]
    Cgroup(#[from] cgroup::CgroupError),
    #[error("{0}")]
    Filter(#[from] seccomp::FilterError),
    #[error("program not found or not executable: {0}")]
    ProgramNotFound(String),
    /// A limit the sandbox cannot apply (see `MIN_MEMORY`, `MAX_TIMEOUT`): nothing ran.
    #[error("{0}")]
    Limit(String),
    /// An interrupting signal (see `interrupt`) came before this sandbox started: nothing ran.
    #[error("interrupted by {} before the sandbox started", interrupt::name(*.0))]
    Interrupted(i32),
}

/// What to run and under which limits.
#[derive(Debug)]
pub struct Config {
    /// The program (a path, or a name looked up in PATH).
    pub program: OsString,
    /// Arguments after the program name.
    pub args: Vec<OsString>,
    /// Extra environment on top of the minimal one (PATH, HOME=/tmp, TMPDIR, LANG).
    pub env: Vec<(OsString, OsString)>,
    /// Working directory inside (created empty if it holds nothing bound). Defaults to the
    /// caller's working directory so relative arguments resolve.
    pub cwd: Option<PathBuf>,
    /// Host paths visible read-only at the same path.
    pub ro: Vec<PathBuf>,
    /// Host paths the program may write.
    pub rw: Vec<PathBuf>,
    /// Bind every argument that names an existing host file read-only (the jail's convenience).
    pub bind_args: bool,
    pub timeout: Duration,
    pub memory: u64,
    pub pids: u64,
    pub allow_exec: bool,
    /// Descriptors passed to the program as fd 3, 4, ...
    pub extra_fds: Vec<OwnedFd>,
    /// The in-kernel allow tier; defaults to `seccomp::policy::ALLOW`.
    pub allow: &'static [(i64, &'static str)],
    /// Relay the program's stdout and stderr to our stderr as they come.
    pub echo_output: bool,
    /// Supervise on a thread of its own from the spawn on (a caller that works beside the
    /// running program, such as a probe), rather than on the caller's thread inside
    /// `Running::wait` (a caller that only waits: one thread fewer to start before the clone).
    pub supervisor_thread: bool,
}

impl Config {
    pub fn new(program: impl Into<OsString>) -> Config {
        Config {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            ro: Vec::new(),
            rw: Vec::new(),
            bind_args: true,
            timeout: Duration::from_secs(30),
            memory: 1 << 30,
            pids: 64,
            allow_exec: false,
            extra_fds: Vec::new(),
            allow: seccomp::policy::ALLOW,
            echo_output: true,
            supervisor_thread: true,
        }
    }
}

/// A started sandbox. Its supervisor runs on its own thread from the moment `spawn` returns.
pub struct Running {
    pid: i32,
    pidfd: OwnedFd,
    /// Taken by `wait`; still here on drop only if nobody waited.
    supervision: Option<Supervision>,
    /// Our end of the setup socket: a failed exec of the program is reported on it.
    setup: OwnedFd,
    /// The child was one `warm_up_with_child` started ahead of the plan.
    ahead: bool,
}

impl Running {
    /// Whether the program runs in the child `warm_up_with_child` started ahead of its plan
    /// (rather than one cloned for it in `spawn`).
    pub fn started_ahead(&self) -> bool {
        self.ahead
    }

    /// The program's pid as the host sees it.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits up to `timeout` for the program to exit by itself; true if it did.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        sys::poll_in(
            self.pidfd.as_raw_fd(),
            timeout.as_millis().min(i32::MAX as u128) as i32,
        )
        .unwrap_or(false)
    }

    /// Kills the whole sandbox now (the program is pid 1 of its namespace: everything goes).
    pub fn kill(&self) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
    }

    pub fn wait(mut self) -> Outcome {
        let outcome = match self.supervision.take() {
            Some(Supervision::Thread(h)) => h.join(),
            Some(Supervision::Inline(s)) => {
                // Live until the outcome is made, the cgroups' removal included. A panic in the
                // supervisor is caught as a supervisor thread's would be (the program is then
                // killed below).
                let InlineSupervisor { live, sup } = *s;
                let _live = live;
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| supervise(sup)))
            }
            None => Err(Box::new("no supervision") as Box<dyn std::any::Any + Send>),
        };
        match outcome {
            Ok(mut o) => {
                // The child is reaped: what it wrote before it went is all there is.
                o.exec_error = exec_failure(&self.setup);
                o
            }
            Err(_) => {
                // The supervisor thread panicked: the process tree must still go.
                // SAFETY: kill(2) on the pid we spawned.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
                Outcome::killed(0)
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Not waited for (an error or a panic on the way to `wait`): an inline supervisor has
        // not run, so nothing enforces the timeout: the program is killed, then supervised to
        // its end (reaped, its cgroups removed, its memory freed). A supervisor thread goes on
        // by itself.
        if let Some(Supervision::Inline(s)) = self.supervision.take() {
            self.kill();
            let _live = s.live;
            drop(supervise(s.sup));
        }
    }
}

/// Who runs the supervisor of a started sandbox.
enum Supervision {
    Thread(std::thread::JoinHandle<Outcome>),
    /// Run by `Running::wait` on the caller's thread.
    Inline(Box<InlineSupervisor>),
}

struct InlineSupervisor {
    live: interrupt::Live,
    sup: supervisor::Supervisor,
}

/// Supervises the run to its end on this thread and makes its outcome.
fn supervise(sup: supervisor::Supervisor) -> Outcome {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let outcome = rt.block_on(sup.run_async());
            // An echo may still be blocked writing to a stderr nobody reads: the runtime's drop
            // would wait for it for as long as that lasts; the outcome is whole now.
            rt.shutdown_background();
            outcome
        }
        Err(_) => sup.run_without_runtime(),
    }
}

/// The smallest memory limit: the child's set-up and the first moments of its exec are charged to
/// the memory cgroup while the child still shares modelvet's memory (CLONE_VM), and an OOM kill
/// then would take every process sharing it, the supervisor too (below ~256 KiB measured here).
pub const MIN_MEMORY: u64 = 16 << 20;
/// The largest pids limit: the kernel's own ceiling on pids (PID_MAX_LIMIT on 64-bit); a pids
/// cgroup refuses more.
pub const MAX_PIDS: u64 = 4 << 20;
/// The longest wall timeout (a year): the deadline must stay representable.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Lowest fd number used for descriptors handed to the child, far above what the child keeps.
const HIGH_FD: RawFd = 200;
/// A uid/gid no account uses: the program's root maps to it on the host.
const UNUSED_ID_BASE: u32 = 0x3f00_0000;
const ENV_PATH: &str = "PATH=/usr/local/bin:/usr/bin:/bin";

/// The host paths that make the program runnable. Outside the system dirs, a program in a `bin/`
/// whose parent looks like an install prefix (a venv's, pyenv's or conda's: it has `lib`,
/// `lib64` or `pyvenv.cfg`) brings that `bin/` and those entries, so its interpreter finds its
/// library; never the prefix itself, which for `~/bin/tool` would be the whole home directory.
/// `program` is the real file; `invoked` the path it was named by with only its folders
/// resolved: a venv's `bin/python` is a link to the system's interpreter, and it is the folder
/// the link sits in that makes the venv.
fn program_paths(program: &Path, invoked: &Path) -> Vec<PathBuf> {
    const PREFIX_ENTRIES: [&str; 3] = ["lib", "lib64", "pyvenv.cfg"];
    let Some(bin) = invoked.parent() else {
        return vec![program.to_path_buf()];
    };
    let prefix = bin.parent().unwrap_or(bin);
    // Only entries that stay inside the prefix (a venv's lib64 -> lib), by their real path: a
    // link to elsewhere (lib -> ~) would show the program whatever it names.
    // Each must be one of the entries itself (lib64 may lead to lib): a link to the prefix or
    // to anything else in it (`lib -> .`, `lib -> .ssh`) brings nothing.
    let entries: Vec<PathBuf> = PREFIX_ENTRIES
        .iter()
        .filter_map(|e| std::fs::canonicalize(prefix.join(e)).ok())
        .filter(|p| PREFIX_ENTRIES.iter().any(|e| *p == prefix.join(e)))
        .collect();
    if bin.file_name().is_some_and(|n| n == "bin")
        && !plan::SYSTEM_DIRS.iter().any(|s| invoked.starts_with(s))
        && !entries.is_empty()
    {
        std::iter::once(bin.to_path_buf()).chain(entries).collect()
    } else {
        vec![program.to_path_buf()]
    }
}

/// A regular file with an execute bit, found as given or in PATH.
fn find_program(name: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.as_os_str().as_bytes().contains(&b'/') {
        return runnable(name).then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| runnable(p))
}

fn dup_high(fd: RawFd) -> Result<OwnedFd, sys::SysError> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a valid fd returns a new fd we own.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, HIGH_FD) };
    if r < 0 {
        return Err(sys::SysError {
            call: "fcntl(F_DUPFD_CLOEXEC)",
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        });
    }
    // SAFETY: r is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Sets up every layer and starts the program. Fails closed: on error nothing untrusted ran.
pub fn spawn(config: Config) -> Result<Running, SandboxError> {
    spawn_with(config, &host::HostSupport::detect())
}

/// `spawn` with host support already detected (callers that also report it detect it once).
pub fn spawn_with(mut config: Config, support: &HostSupport) -> Result<Running, SandboxError> {
    support.require()?;
    if config.memory < MIN_MEMORY {
        return Err(SandboxError::Limit(format!(
            "memory limit of {} bytes below the minimum of {} MiB",
            config.memory,
            MIN_MEMORY >> 20
        )));
    }
    if config.pids == 0 || config.pids > MAX_PIDS {
        return Err(SandboxError::Limit(format!(
            "pids limit of {} outside [1, {MAX_PIDS}]",
            config.pids
        )));
    }
    if config.timeout > MAX_TIMEOUT || config.timeout.is_zero() {
        return Err(SandboxError::Limit(format!(
            "timeout of {:?} outside (0, {} s]",
            config.timeout,
            MAX_TIMEOUT.as_secs()
        )));
    }
    // From here until its cgroups are gone an interrupt stops this sandbox instead of the process.
    let live = interrupt::Live::new();
    if let Some(sig) = interrupt::received() {
        return Err(SandboxError::Interrupted(sig));
    }
    let start = Instant::now();

    let program_host = find_program(Path::new(&config.program)).ok_or_else(|| {
        SandboxError::ProgramNotFound(config.program.to_string_lossy().into_owned())
    })?;
    let program = std::fs::canonicalize(&program_host)
        .map_err(|_| SandboxError::ProgramNotFound(program_host.display().to_string()))?;
    let cwd_host = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let cwd = config.cwd.clone().unwrap_or_else(|| cwd_host.clone());

    // Kernel work that does not depend on the plan runs on a helper thread while this one builds
    // the plan: the network namespace (the slowest namespace to make, about a millisecond) and
    // the cgroups.
    let mut prep = Prep::start(&support.cgroups, config.memory, config.pids);

    // What becomes visible: the program, and arguments that name existing host files.
    let mut ro = config.ro.clone();
    let invoked = program_host
        .parent()
        .and_then(|d| std::fs::canonicalize(d).ok())
        .zip(program_host.file_name())
        .map_or_else(|| program.clone(), |(d, f)| d.join(f));
    ro.extend(program_paths(&program, &invoked));
    if config.bind_args {
        for a in &config.args {
            let p = plan::normalize(&cwd_host.join(Path::new(a)));
            if !p.exists()
                || p.starts_with("/proc")
                || p.starts_with("/sys")
                || p.starts_with("/dev")
            {
                continue;
            }
            // Through a symlink (one an earlier run may have planted in an output folder), an
            // argument would show the program whatever the link names: not bound, and said so.
            match std::fs::canonicalize(&p) {
                Ok(real) if real == p || plan::is_system(&real) => ro.push(p),
                // Quoted and escaped ({:?}): the names are a planter's to choose.
                Ok(real) => eprintln!(
                    "modelvet: not showing {p:?} to the program: it goes through a symlink to \
                     {real:?}; name that path, or pass --ro with it"
                ),
                Err(_) => {}
            }
        }
    }
    let scratch = (config.memory / 4).clamp(1 << 20, 1 << 30);
    let (ops, rules) = plan::mounts(&plan::MountInputs {
        ro: &ro,
        rw: &config.rw,
        cwd: &cwd,
        scratch_bytes: scratch,
    })?;
    let landlock = plan::landlock(support.landlock_abi.unwrap_or(0), &config.rw)?;
    let filter = seccomp::build(config.allow)?;

    let mut argv = vec![plan::cstr(&config.program)?];
    for a in &config.args {
        argv.push(plan::cstr(a)?);
    }
    let mut env = vec![
        plan::cstr(ENV_PATH)?,
        plan::cstr("HOME=/tmp")?,
        plan::cstr("TMPDIR=/tmp")?,
        plan::cstr("LANG=C.UTF-8")?,
    ];
    for (k, v) in &config.env {
        let mut kv = k.clone();
        kv.push("=");
        kv.push(v);
        env.push(plan::cstr(&kv)?);
    }
    let argv_ptrs: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let env_ptrs: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();

    // A child started ahead of this plan (`warm_up_with_child`) takes the rest of it where its
    // early part is how this plan starts (and the plan hands no extra descriptors); otherwise
    // it is killed, and a child is cloned below.
    let extra = std::mem::take(&mut config.extra_fds);
    let ahead = prep.take_child(&support.cgroups);
    let late_ops = match ahead.0.as_ref() {
        Some(ec) if extra.is_empty() => plan::split(&ops, &ec.mem.plan().early_ops),
        _ => None,
    };
    // Descriptors: stdin from /dev/null, stdout/stderr into pipes we relay, extra fds from 3 on
    // (the child started ahead has its own).
    let (birth, ops, fds, first_free_fd) = match (ahead.0.as_ref(), late_ops) {
        (Some(ec), Some(late)) => {
            let fds = ec.fds.to_vec();
            (Birth::Ahead(ahead), late, fds, 3)
        }
        _ => {
            drop(ahead);
            let io = ChildIo::new(&extra)?;
            let (fds, first_free_fd) = (io.fds.clone(), io.first_free_fd);
            (Birth::Now(io), ops, fds, first_free_fd)
        }
    };
    let adopted = matches!(birth, Birth::Ahead(_));

    let mut rlimits = vec![
        (libc::RLIMIT_NOFILE, 1024),
        (libc::RLIMIT_CORE, 0),
        (libc::RLIMIT_FSIZE, scratch.max(64 << 20)),
        // Queued signals and locked shared memory count against the caller's uid too (see
        // child::USER_NS_LIMITS): a bounded share of each (lowering is all an rlimit can do).
        (
            libc::RLIMIT_SIGPENDING,
            sys::hard_limit(libc::RLIMIT_SIGPENDING).min(MAX_QUEUED_SIGNALS),
        ),
        (
            libc::RLIMIT_MEMLOCK,
            sys::hard_limit(libc::RLIMIT_MEMLOCK).min(MAX_LOCKED_BYTES),
        ),
        // A backstop behind the wall timeout, never before it: CPU time adds up over every
        // thread, so on n CPUs a busy program spends n seconds of it per second of wall time.
        (
            libc::RLIMIT_CPU,
            (config.timeout.as_secs() + 2).saturating_mul(cpus()),
        ),
    ];

    // The supervisor thread starts now, building its runtime while this thread waits for the
    // helper and clones the child (started after the clone, it sat between the clone and the
    // handshake the child waits for); it gets the child once the handshake is done.
    let supervisor = SupervisorThread::start(
        live,
        start,
        config.timeout,
        config.echo_output,
        config.supervisor_thread,
    )?;
    let (netns, mut early_notifier, group) = prep.finish();
    let mut group = group?;
    // The notification thread: before the clone, or for a child started ahead, once it has the
    // rest of its plan (it is building its root then).
    let notifier = if adopted {
        None
    } else {
        Some(start_notifier(early_notifier.take()).map_err(notifier_error)?)
    };
    if !group.as_ref().is_some_and(cgroup::Group::has_memory) {
        // No memory cgroup: the address-space rlimit is the fallback (coarser: it counts
        // reservations, not use).
        rlimits.push((libc::RLIMIT_AS, config.memory));
    }
    if !group.as_ref().is_some_and(cgroup::Group::has_pids) {
        // The program's uid is unique to this run, so the per-uid process limit is per sandbox.
        rlimits.push((libc::RLIMIT_NPROC, config.pids));
    }

    let rest = Box::new(RestPlan {
        ops,
        cwd: plan::cstr(cwd.as_os_str())?,
        rlimits,
        landlock,
        filter,
        program: plan::cstr(program.as_os_str())?,
        argv,
        argv_ptrs,
        env,
        env_ptrs,
        fds,
        first_free_fd,
    });
    let (pid, pidfd, parent_sock, out_r, err_r, mem, born_in) = match birth {
        Birth::Ahead(ahead) => ahead.adopt(rest, &mut prep)?,
        Birth::Now(io) => clone_now(io, rest, netns, group.as_ref())?,
    };
    drop(extra);

    // Kills the child and reaps it; only then may its memory go.
    let abort = |e: SandboxError, mem: ChildMemory| -> SandboxError {
        let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
        if sys::wait4(pid, 0).is_ok() {
            mem.release();
        }
        e
    };
    let mut notifier = match notifier.map_or_else(|| start_notifier(early_notifier.take()), Ok) {
        Ok(n) => n,
        Err(e) => return Err(abort(notifier_error(e), mem)),
    };
    // The supervisor's pidfd, and the setup socket and pidfd the notification thread takes the
    // listener with.
    let dups = (|| {
        Ok((
            pidfd.try_clone()?,
            parent_sock.try_clone()?,
            pidfd.try_clone()?,
        ))
    })();
    let (sup_pidfd, job_sock, job_pidfd) = match dups {
        Ok(d) => d,
        Err(e) => {
            let e = SandboxError::Setup {
                step: "duplicating the pidfd and the setup socket",
                error: e,
                detail: None,
            };
            return Err(abort(e, mem));
        }
    };
    let started = if adopted {
        // The thread that started it has done the first part.
        Ok(())
    } else {
        start_handshake(pid, &parent_sock, mem.plan())
    };
    let attach_ms = match started.and_then(|()| {
        finish_handshake(
            pid,
            &parent_sock,
            group.as_mut().map(|g| (g, &support.cgroups)),
            // Not born into its v2 group (started ahead, or its folder could not be opened for
            // CLONE_INTO_CGROUP): moved into it now, as into the v1 ones.
            !born_in,
            mem.plan(),
        )
    }) {
        Ok(ms) => ms,
        Err(e) => return Err(abort(e, mem)),
    };
    // The notification thread takes the listener from the child's next message itself and
    // answers the child's exec at once; this thread hears how it went meanwhile.
    let (taken_tx, taken) = std::sync::mpsc::channel();
    // The child is building its root meanwhile: this open is off the spawn's path. Without it
    // (no /proc, say) the child's exit tears its namespace down as it would anyway.
    let mnt_ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(OwnedFd::from);
    let begun = notifier.begin(supervisor::NotifyJob {
        sock: job_sock,
        pidfd: job_pidfd,
        taken: taken_tx,
        start,
        pid,
        allow_exec: config.allow_exec,
        rules,
        mnt_ns,
    });
    // A job that comes back holds the channel's sender: nothing would ever arrive.
    let heard = match begun {
        Ok(()) => taken.recv().ok(),
        Err(_) => None,
    };
    let listener_error = match heard {
        Some(supervisor::Listener::Taken) => None,
        Some(supervisor::Listener::ChildSaid(msg)) => Some(child_failure(&msg, mem.plan())),
        Some(supervisor::Listener::TimedOut) => Some(SandboxError::Setup {
            step: "waiting for the seccomp listener",
            error: std::io::Error::from(std::io::ErrorKind::TimedOut),
            detail: None,
        }),
        Some(supervisor::Listener::Failed("pidfd_getfd", e)) => Some(SandboxError::Unsupported {
            what: format!("cannot take the seccomp listener from the child: {e}"),
            hint: "pidfd_getfd needs Linux 5.6+ and ptrace access to our own child (kernel.yama.ptrace_scope <= 1)".into(),
        }),
        Some(supervisor::Listener::Failed(_, e)) => Some(e.into()),
        None => Some(SandboxError::Setup {
            step: "handing the listener to the notification thread",
            error: std::io::Error::other("the notification thread ended early"),
            detail: None,
        }),
    };
    if let Some(e) = listener_error {
        return Err(abort(e, mem));
    }
    // The supervisor keeps the child's memory until it has reaped the child.
    let supervision = match supervisor.hand_over(Handover {
        pid,
        pidfd: sup_pidfd,
        notifier,
        group,
        attach_ms,
        stdout: out_r,
        stderr: err_r,
        mem,
    }) {
        Ok(supervision) => supervision,
        Err(back) => {
            let e = SandboxError::Setup {
                step: "handing the child to its supervisor",
                error: std::io::Error::other("the supervisor thread ended early"),
                detail: None,
            };
            return Err(abort(e, back.mem));
        }
    };
    Ok(Running {
        pid,
        pidfd,
        supervision: Some(supervision),
        setup: parent_sock,
        ahead: adopted,
    })
}

/// The notification thread the helper started, or one started now.
fn start_notifier(
    early: Option<std::sync::mpsc::Receiver<Option<supervisor::Notifier>>>,
) -> std::io::Result<supervisor::Notifier> {
    match early.and_then(|rx| rx.recv().ok().flatten()) {
        Some(n) => Ok(n),
        None => supervisor::Notifier::start(None, None),
    }
}

fn notifier_error(e: std::io::Error) -> SandboxError {
    SandboxError::Setup {
        step: "starting the notification thread",
        error: e,
        detail: None,
    }
}

/// The descriptors of a child: stdin from /dev/null, stdout and stderr into pipes the supervisor
/// relays, extra ones from 3 on, and the setup socket. All the child's sources sit above
/// `HIGH_FD`, so that no dup2 in the child clobbers another source.
struct ChildIo {
    /// The child's sources, open in the parent until the clone has copied them.
    keep: Vec<OwnedFd>,
    child_sock: OwnedFd,
    parent_sock: OwnedFd,
    out_r: OwnedFd,
    err_r: OwnedFd,
    fds: Vec<(RawFd, RawFd)>,
    first_free_fd: RawFd,
}

impl ChildIo {
    fn new(extra: &[OwnedFd]) -> Result<ChildIo, SandboxError> {
        let devnull = std::fs::File::open("/dev/null").map_err(|e| SandboxError::Setup {
            step: "opening /dev/null",
            error: e,
            detail: None,
        })?;
        let (out_r, out_w) = sys::pipe()?;
        let (err_r, err_w) = sys::pipe()?;
        let mut keep: Vec<OwnedFd> = Vec::new();
        let mut fds = Vec::new();
        let sources = [devnull.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()]
            .into_iter()
            .chain(extra.iter().map(AsRawFd::as_raw_fd));
        for (dst, src) in sources.enumerate() {
            let h = dup_high(src)?;
            fds.push((h.as_raw_fd(), dst as RawFd));
            keep.push(h);
        }
        let (parent_sock, child_sock) = sys::seqpacket_pair()?;
        let child_sock = dup_high(child_sock.as_raw_fd())?;
        Ok(ChildIo {
            keep,
            child_sock,
            parent_sock,
            out_r,
            err_r,
            first_free_fd: fds.len() as RawFd,
            fds,
        })
    }

    /// Once the child is cloned (it has its copies of its sources): the parent's ends, the setup
    /// socket, stdout and stderr; the rest is closed.
    fn parent_ends(self) -> (OwnedFd, OwnedFd, OwnedFd) {
        let ChildIo {
            keep,
            child_sock,
            parent_sock,
            out_r,
            err_r,
            ..
        } = self;
        drop((keep, child_sock));
        (parent_sock, out_r, err_r)
    }

    /// The plan's part that is known before the command: the stage's paths and the sockets.
    /// `ahead`: the child is started before the rest of its plan is known (`EarlyChild`).
    fn child_plan(
        &self,
        early_ops: Vec<plan::Op>,
        ahead: bool,
    ) -> Result<Box<ChildPlan>, SandboxError> {
        let [stage, newroot, oldroot, newroot_abs, dot, root] = plan::staging_paths()?;
        Ok(Box::new(ChildPlan {
            early_ops,
            stage,
            newroot,
            oldroot,
            newroot_abs,
            dot,
            root,
            hostname: b"modelvet",
            sock: self.child_sock.as_raw_fd(),
            parent_sock: self.parent_sock.as_raw_fd(),
            ahead,
            rest: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
        }))
    }
}

/// The namespaces of every child's clone; the network namespace is added where none was made
/// ahead. The cgroup namespace the child makes itself once it is in its groups (see `child`).
const CLONE_NAMESPACES: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS) as u64;

/// The clone's arguments every child starts from: its namespaces, its pidfd stored in `pidfd`,
/// SIGCHLD at its exit.
fn clone_args(pidfd: &mut RawFd) -> sys::CloneArgs {
    sys::CloneArgs {
        flags: CLONE_NAMESPACES | sys::CLONE_PIDFD,
        pidfd: pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    }
}

fn namespaces_error(e: sys::SysError) -> SandboxError {
    SandboxError::Unsupported {
        what: format!("cannot create the sandbox's namespaces: {e}"),
        hint: "the host must allow user namespaces (sysctl user.max_user_namespaces > 0, \
               kernel.unprivileged_userns_clone=1, no AppArmor restriction on unprivileged userns)"
            .into(),
    }
}

type Cloned = (i32, OwnedFd, OwnedFd, OwnedFd, OwnedFd, ChildMemory, bool);

/// Clones a child on the whole plan: (pid, pidfd, setup socket, stdout, stderr, its memory,
/// whether it was born into its v2 group).
fn clone_now(
    io: ChildIo,
    rest: Box<RestPlan>,
    netns: Option<OwnedFd>,
    group: Option<&cgroup::Group>,
) -> Result<Cloned, SandboxError> {
    let mut mem = ChildMemory::new(io.child_plan(Vec::new(), false)?)?;
    mem.set_rest(rest);

    // Born into its v2 group (no migration); v1 groups are joined during the handshake.
    let unified_fd = group
        .and_then(cgroup::Group::unified_dir)
        .and_then(|d| std::fs::File::open(d).ok());
    let mut pidfd: RawFd = -1;
    let mut args = clone_args(&mut pidfd);
    // The child is born in the network namespace made ahead (this thread steps into it for the
    // clone and back out); without one, clone3 makes it.
    let netns_switch = match &netns {
        Some(ns) => {
            let own = sys::open_ns_net()?;
            sys::setns_net(ns)?;
            Some(own)
        }
        None => {
            args.flags |= libc::CLONE_NEWNET as u64;
            None
        }
    };
    let (cloned, born_in) = clone_into(&mem, args, unified_fd.as_ref());
    if let Some(own) = &netns_switch
        && let Err(e) = sys::setns_net(own)
    {
        // This thread cannot get back to the host's network: stop rather than go on in the
        // sandbox's empty one.
        if let Ok(pid) = cloned {
            // SAFETY: kill(2) on the pid we just spawned.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            if sys::wait4(pid, 0).is_ok() {
                mem.release();
            }
        }
        return Err(e.into());
    }
    drop(netns);
    let (pid, pidfd, mem) = took(cloned, pidfd, mem)?;
    let (parent_sock, out_r, err_r) = io.parent_ends();
    Ok((pid, pidfd, parent_sock, out_r, err_r, mem, born_in))
}

/// Clones the child into the unified group open at `unified` (CLONE_INTO_CGROUP: no move
/// later, whose `cgroup.procs` write would wait for an RCU grace period), or, where there is
/// none or the kernel refuses that, outside it, to be moved in by the handshake. Returns the
/// clone's outcome and whether the child was born in the group.
fn clone_into(
    mem: &ChildMemory,
    mut args: sys::CloneArgs,
    unified: Option<&std::fs::File>,
) -> (sys::SysResult<libc::pid_t>, bool) {
    if let Some(f) = unified {
        let mut into = args;
        into.flags |= sys::CLONE_INTO_CGROUP;
        into.cgroup = f.as_raw_fd() as u64;
        if let Ok(pid) = mem.clone_child(&mut into) {
            return (Ok(pid), true);
        }
    }
    (mem.clone_child(&mut args), false)
}

/// The clone's outcome: the child's pid and pidfd (CLONE_PIDFD stored it in `pidfd`), or, where
/// there is no child, its memory freed and the error.
fn took(
    cloned: sys::SysResult<libc::pid_t>,
    pidfd: RawFd,
    mem: ChildMemory,
) -> Result<(libc::pid_t, OwnedFd, ChildMemory), SandboxError> {
    match cloned {
        // SAFETY: CLONE_PIDFD stored a fresh descriptor for the child in `pidfd`.
        Ok(pid) => Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }, mem)),
        Err(e) => {
            mem.release();
            Err(namespaces_error(e))
        }
    }
}

/// A child that `warm_up_with_child` started ahead of its command's plan: cloned with its
/// namespaces (its network namespace too), its id maps written and its 'ready' heard, building
/// the part of its root that every plan shares (`plan::early_ops`); it then waits for the rest
/// (`MSG_PLAN`). Cloned by the helper thread, it runs with that thread's thread pointer, whose
/// memory goes with the thread: like every child between clone and exec, it touches no
/// thread-local storage (no libc, no errno).
struct EarlyChild {
    pid: i32,
    pidfd: OwnedFd,
    /// The parent's end of the setup socket.
    sock: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// Its stdin, stdout and stderr: (number in its descriptor table, target).
    fds: [(RawFd, RawFd); 3],
    /// The thread that cloned it (its parent until that thread has gone).
    cloner: libc::pid_t,
    mem: ChildMemory,
    /// Born into its unified cgroup (see `cgroup::premake_unified`).
    born_in: bool,
}

/// An early child no spawn has taken: killed and reaped when dropped (its memory then freed, or
/// leaked where the reaping failed).
struct Unadopted(Option<EarlyChild>);

impl Unadopted {
    /// Hands the child the rest of its plan (see `spawn_with`); on failure it is killed and
    /// reaped here.
    fn adopt(mut self, rest: Box<RestPlan>, prep: &mut Prep) -> Result<Cloned, SandboxError> {
        let ec = self.0.as_mut().expect("adopt is called with a child");
        ec.mem.set_rest(rest);
        // The child reads this once its early mounts are done, and only then sets its
        // parent-death signal: the thread that cloned it must be gone by then, so that the
        // signal follows the main thread, which the kernel hands the child to.
        prep.join_helper(ec.cloner)
            .map_err(|why| SandboxError::Setup {
                step: "ending the thread that started the child",
                error: std::io::Error::other(why),
                detail: None,
            })?;
        sys::write_all_raw(ec.sock.as_raw_fd(), &[child::MSG_PLAN])
            .map_err(|e| child_gone(&ec.sock, e, ec.mem.plan()))?;
        let ec = self.0.take().expect("adopt is called with a child");
        Ok((
            ec.pid, ec.pidfd, ec.sock, ec.stdout, ec.stderr, ec.mem, ec.born_in,
        ))
    }
}

/// Where a spawn's child comes from: started ahead (`warm_up_with_child`), or cloned now with
/// its descriptors.
enum Birth {
    Ahead(Unadopted),
    Now(ChildIo),
}

impl Drop for Unadopted {
    fn drop(&mut self) {
        if let Some(ec) = self.0.take() {
            let _ = sys::pidfd_send_signal(ec.pidfd.as_raw_fd(), libc::SIGKILL);
            if sys::wait4(ec.pid, 0).is_ok() {
                ec.mem.release();
            }
        }
    }
}

/// Starts a child ahead of its plan (see `EarlyChild`) from the calling thread, and does the
/// first part of its handshake. The thread must have ended before the child reads `MSG_PLAN`:
/// the child sets its parent-death signal then, and that signal follows the thread that cloned
/// it, or, once that one has ended, the thread it was handed to (the main thread, which outlives
/// every child).
#[cfg(target_arch = "x86_64")]
fn start_early_child(
    early_ops: Vec<plan::Op>,
    in_own_netns: bool,
    unified: Option<&std::fs::File>,
) -> Result<EarlyChild, SandboxError> {
    let io = ChildIo::new(&[])?;
    let mem = ChildMemory::new(io.child_plan(early_ops, true)?)?;
    let mut pidfd: RawFd = -1;
    // Born in this thread's network namespace (made for it), or, where this thread could not
    // make one (no CAP_SYS_ADMIN), in one clone3 makes, owned by the child's user namespace.
    let mut args = clone_args(&mut pidfd);
    if !in_own_netns {
        args.flags |= libc::CLONE_NEWNET as u64;
    }
    let (cloned, born_in) = clone_into(&mem, args, unified);
    let (pid, pidfd, mem) = took(cloned, pidfd, mem)?;
    let fds = [(io.fds[0].0, 0), (io.fds[1].0, 1), (io.fds[2].0, 2)];
    let (parent_sock, out_r, err_r) = io.parent_ends();
    let ec = Unadopted(Some(EarlyChild {
        pid,
        pidfd,
        sock: parent_sock,
        stdout: out_r,
        stderr: err_r,
        fds,
        cloner: sys::gettid(),
        mem,
        born_in,
    }));
    // The id maps and 'go' from here, so that the child goes on at once, whatever the caller's
    // thread is doing; its 'ready' is heard before the caller gets it.
    if let Some(c) = ec.0.as_ref() {
        start_handshake(c.pid, &c.sock, c.mem.plan())?;
    }
    let mut ec = ec;
    Ok(ec.0.take().expect("made above"))
}

/// What the supervisor thread gets once the child has passed its handshake.
struct Handover {
    pid: i32,
    pidfd: OwnedFd,
    notifier: supervisor::Notifier,
    group: Option<cgroup::Group>,
    attach_ms: f64,
    stdout: OwnedFd,
    stderr: OwnedFd,
    mem: ChildMemory,
}

/// The supervisor's thread, started before the child so that its runtime is built by the time
/// the child is handed over; or, for a caller that supervises on its own thread, only what the
/// supervisor will need. Dropped without a handover, the thread ends (it sees the channel
/// closed) and is joined, so that its part of `interrupt::Live` is gone before the error is
/// returned.
struct SupervisorThread {
    tx: Option<std::sync::mpsc::Sender<Handover>>,
    handle: Option<std::thread::JoinHandle<Outcome>>,
    /// Inline: the interrupt guard and the supervisor's settings, kept for `hand_over`.
    inline: Option<(interrupt::Live, Instant, Duration, bool)>,
}

impl SupervisorThread {
    fn start(
        live: interrupt::Live,
        start: Instant,
        timeout: Duration,
        echo: bool,
        thread: bool,
    ) -> Result<SupervisorThread, SandboxError> {
        if !thread {
            return Ok(SupervisorThread {
                tx: None,
                handle: None,
                inline: Some((live, start, timeout, echo)),
            });
        }
        let (tx, rx) = std::sync::mpsc::channel::<Handover>();
        let handle = std::thread::Builder::new()
            .name("modelvet-supervisor".into())
            .spawn(move || {
                // Live until the outcome is made, the cgroups' removal included.
                let _live = live;
                // Nothing handed over: the spawn failed and has reaped its child itself; this
                // outcome is dropped unread.
                let Ok(h) = rx.recv() else {
                    return Outcome::killed(start.elapsed().as_millis() as u64);
                };
                supervise(h.into_supervisor(start, timeout, echo))
            })
            .map_err(|e| SandboxError::Setup {
                step: "starting the supervisor thread",
                error: e,
                detail: None,
            })?;
        Ok(SupervisorThread {
            tx: Some(tx),
            handle: Some(handle),
            inline: None,
        })
    }

    /// Gives the child to the thread (or makes the inline supervisor); the handover comes back
    /// if the thread has ended.
    fn hand_over(mut self, h: Handover) -> Result<Supervision, Box<Handover>> {
        if let Some((live, start, timeout, echo)) = self.inline.take() {
            return Ok(Supervision::Inline(Box::new(InlineSupervisor {
                live,
                sup: h.into_supervisor(start, timeout, echo),
            })));
        }
        let tx = self.tx.take().expect("handed over once");
        match tx.send(h) {
            Ok(()) => Ok(Supervision::Thread(
                self.handle.take().expect("joined only on drop"),
            )),
            Err(std::sync::mpsc::SendError(h)) => Err(Box::new(h)),
        }
    }
}

impl Handover {
    fn into_supervisor(
        self,
        start: Instant,
        timeout: Duration,
        echo: bool,
    ) -> supervisor::Supervisor {
        supervisor::Supervisor {
            start,
            pid: self.pid,
            pidfd: self.pidfd,
            notifier: self.notifier,
            group: self.group,
            attach_ms: self.attach_ms,
            timeout,
            stdout: Some(self.stdout),
            stderr: Some(self.stderr),
            echo,
            child_mem: self.mem,
        }
    }
}

impl Drop for SupervisorThread {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The CPUs this thread, and so the child, may run on; the most a wide machine's mask can name
/// when it cannot be read. (The program may widen its own mask within its cpuset: then, busy on
/// more CPUs than it was given, it can reach the backstop before the wall timeout.)
fn cpus() -> u64 {
    sys::affinity_cpus().map_or(8192, |n| n.max(1))
}

/// Realtime signals the program may have queued at once: the kernel counts them against the
/// caller's uid as well, where a program took all of root's 96,365 (host root processes then
/// could not queue a signal or make a timer).
const MAX_QUEUED_SIGNALS: u64 = 1024;
/// Shared memory the program may lock (SHM_LOCK), which counts against the caller's uid as well:
/// run unprivileged, a program took all of the caller's 8 MiB.
const MAX_LOCKED_BYTES: u64 = 1 << 20;

/// Stack of the child between clone and exec: its walk of the plan needs a few KiB.
#[cfg(target_arch = "x86_64")]
const CHILD_STACK: usize = 256 << 10;

/// What the child reads between clone and exec: the plan and, on x86_64, the stack it runs on.
/// There the child shares our memory (CLONE_VM), so both stay mapped and unchanged until the
/// child is known to be gone: they are freed only once it has been reaped (`release`) and
/// leaked on every other path (an error or a panic while the child may still be running).
pub(crate) struct ChildMemory {
    plan: Option<Box<ChildPlan>>,
    /// The plan's rest, which `plan.rest` points into.
    rest: Option<Box<RestPlan>>,
    #[cfg(target_arch = "x86_64")]
    stack: Option<sys::ChildStack>,
    reaped: bool,
}

// SAFETY: the raw pointers in the plan and its rest point into their own strings; nothing else
// refers to them. The plan is only read (by us and by the child) once built; the rest is written
// once, before the child is told of it, and only read after that (see `set_rest`).
unsafe impl Send for ChildMemory {}

/// The stack of the last child reaped, kept for this process's next spawn. Unmapping it at the
/// end of a run cost a TLB shootdown on every core the process had run on (~25 us on this VM,
/// on the way to `jail`'s exit), and the process's own exit frees it in the same sweep as the
/// rest of its memory.
#[cfg(target_arch = "x86_64")]
static SPARE_STACK: std::sync::Mutex<Option<sys::ChildStack>> = std::sync::Mutex::new(None);

impl ChildMemory {
    fn new(plan: Box<ChildPlan>) -> Result<ChildMemory, SandboxError> {
        #[cfg(target_arch = "x86_64")]
        let stack = match SPARE_STACK.lock().ok().and_then(|mut s| s.take()) {
            Some(stack) => stack,
            None => sys::ChildStack::new(CHILD_STACK)?,
        };
        Ok(ChildMemory {
            plan: Some(plan),
            rest: None,
            #[cfg(target_arch = "x86_64")]
            stack: Some(stack),
            reaped: false,
        })
    }

    /// Stores the rest of the plan, once: before the clone, or for a child started ahead of it,
    /// before `MSG_PLAN` tells it so.
    fn set_rest(&mut self, rest: Box<RestPlan>) {
        debug_assert!(self.rest.is_none(), "the rest is stored once");
        let p: *const RestPlan = &*rest;
        self.rest = Some(rest);
        // The box's contents stay where they are while it lives in `self.rest`.
        self.plan()
            .rest
            .store(p.cast_mut(), std::sync::atomic::Ordering::Release);
    }

    fn plan(&self) -> &ChildPlan {
        self.plan
            .as_deref()
            .expect("the plan lives as long as ChildMemory")
    }

    /// Starts the child on this plan; returns its pid (in the parent only: the child never
    /// returns from here).
    #[cfg(target_arch = "x86_64")]
    fn clone_child(&self, args: &mut sys::CloneArgs) -> sys::SysResult<libc::pid_t> {
        let stack = self
            .stack
            .as_ref()
            .expect("the stack lives as long as ChildMemory");
        let (base, size) = stack.range();
        args.flags |= sys::CLONE_VM;
        args.stack = base;
        args.stack_size = size;
        // Signals stay blocked in the child until it resets every handler to the default: our
        // handlers must never run on its stack.
        let old = sys::block_all_signals()?;
        let plan: *const ChildPlan = self.plan();
        // SAFETY: CLONE_VM with a stack of our own that, like the plan, is freed only once the
        // child is reaped (see the type); the child runs `child_entry`, which only makes raw
        // syscalls (no allocation, locks or errno) and ends in execve or exit; signals are
        // blocked around the call.
        let r = unsafe { sys::clone3_vm(args, child_entry, plan.cast()) };
        sys::restore_signal_mask(&old);
        r
    }

    /// Elsewhere a copy-on-write fork: the child walks its own copy of the plan.
    #[cfg(not(target_arch = "x86_64"))]
    fn clone_child(&self, args: &mut sys::CloneArgs) -> sys::SysResult<libc::pid_t> {
        // As on x86_64, no handler of ours may run in the child: signals stay blocked there until
        // it resets every handler to the default.
        let old = sys::block_all_signals()?;
        // SAFETY: the child only runs `child::run`, which makes raw syscalls on the precomputed
        // plan and ends in execve or _exit.
        let r = match unsafe { sys::clone3(args) } {
            Ok(sys::Forked::Child) => child::run(self.plan()),
            Ok(sys::Forked::Parent { pid }) => Ok(pid),
            Err(e) => Err(e),
        };
        sys::restore_signal_mask(&old);
        r
    }

    /// Nothing runs on this memory any more (the child was reaped, or never started): free it.
    pub(crate) fn release(mut self) {
        self.reaped = true;
        // The child is gone (reaped): its stack can serve the next one.
        #[cfg(target_arch = "x86_64")]
        if let (Some(stack), Ok(mut spare)) = (self.stack.take(), SPARE_STACK.lock())
            && spare.is_none()
        {
            *spare = Some(stack);
        }
    }
}

impl Drop for ChildMemory {
    fn drop(&mut self) {
        if !self.reaped && cfg!(target_arch = "x86_64") {
            // The child may still be running on this memory: leak it rather than free it under
            // its feet.
            std::mem::forget(self.plan.take());
            std::mem::forget(self.rest.take());
            #[cfg(target_arch = "x86_64")]
            std::mem::forget(self.stack.take());
        }
    }
}

/// Where the CLONE_VM child starts, on its own stack.
#[cfg(target_arch = "x86_64")]
extern "C" fn child_entry(plan: *const u8) -> ! {
    // SAFETY: `ChildMemory::clone_child` passes its plan, which stays alive and unchanged until
    // the child is reaped.
    let plan = unsafe { &*plan.cast::<ChildPlan>() };
    child::run(plan)
}

/// Where a network namespace made ahead arrives (see `warm_up`), and, from `warm_up`, the
/// notification thread started by the same helper once the namespace is handed over.
struct Early {
    netns: std::sync::mpsc::Receiver<Option<OwnedFd>>,
    notifier: Option<std::sync::mpsc::Receiver<Option<supervisor::Notifier>>>,
    /// A child started ahead of its plan (`warm_up_with_child`).
    child: Option<std::sync::mpsc::Receiver<Unadopted>>,
    /// The thread that cloned it, joined before the child is handed the rest of its plan.
    helper: Option<std::thread::JoinHandle<()>>,
    /// The next spawn's cgroup name, whose unified group the helper made for the child started
    /// ahead (`cgroup::premake_unified`): the spawn takes the name and the group with it.
    group_name: Option<String>,
}

static EARLY_NETNS: std::sync::Mutex<Option<Early>> = std::sync::Mutex::new(None);

/// A source of network namespaces made ahead and what ends it (see `netns_made_by`).
type NetnsSource = (fn() -> Option<OwnedFd>, fn());

/// Where a network namespace made before the warm-up comes from (see `netns_made_by`).
static NETNS_SOURCE: std::sync::OnceLock<NetnsSource> = std::sync::OnceLock::new();

/// Names where the next sandbox's network namespace may already be made, before `warm_up`: the
/// `modelvet` binary's entry makes one for its sandboxing commands in a process of its own while
/// the binary starts. `source` is asked once, by the thread that would otherwise make one
/// (waiting for it if need be); where it has none, that thread makes one. `finish` is called
/// once the namespace is in use (the child cloned into it), off the spawn's path: the maker's
/// reaping. Set once per process.
pub fn netns_made_by(source: fn() -> Option<OwnedFd>, finish: fn()) {
    let _ = NETNS_SOURCE.set((source, finish));
}

/// A network namespace from `netns_made_by`'s source, if there is one.
fn made_netns() -> Option<OwnedFd> {
    NETNS_SOURCE.get().and_then(|(source, _)| source())
}

/// `netns_made_by`'s `finish`, if there is one.
fn made_netns_done() {
    if let Some((_, finish)) = NETNS_SOURCE.get() {
        finish();
    }
}

/// Starts the slow kernel work of the next sandbox now, on a thread of its own on the other core,
/// so that it overlaps the caller's start-up (argument parsing, host checks, planning): the
/// network namespace (~0.6 ms here; the next `spawn` uses it, without a call `spawn` makes one
/// itself). The cgroup detection runs here meanwhile.
pub fn warm_up() {
    warm_up_inner(false)
}

/// `warm_up`, and on x86_64 also the next sandbox's child, started ahead of its plan on the
/// helper thread (see `EarlyChild`): its clone (with the network namespace, into its unified
/// cgroup made ahead) and the part of its root every plan shares overlap the caller's start-up
/// too, on the other core. A caller that may end without its spawn calls `end_warm_up`. For a
/// caller whose next spawn hands the child no extra descriptors (`jail`); a spawn that cannot use
/// it (extra descriptors, or paths of its own over the shared part, `--ro /etc` say) kills it and
/// clones its own.
pub fn warm_up_with_child() {
    warm_up_inner(cfg!(target_arch = "x86_64"))
}

fn warm_up_inner(with_child: bool) {
    if let Ok(mut slot) = EARLY_NETNS.lock()
        && slot.is_none()
    {
        // The child's early part is planned here, while the helper makes the namespace.
        let (early_tx, early_rx) = std::sync::mpsc::channel::<Option<Vec<plan::Op>>>();
        let early_ops = with_child.then_some(early_rx);
        let (tx, netns) = std::sync::mpsc::channel();
        let (notifier_tx, notifier) = std::sync::mpsc::channel();
        // An early child nobody takes is killed and reaped where it is dropped.
        let (child_tx, child) = std::sync::mpsc::channel::<Unadopted>();
        let whole = sys::CpuMask::current().ok();
        let group_name = with_child.then(cgroup::group_name);
        let premade = group_name.clone();
        let started = spawn_elsewhere("modelvet-netns", move || {
            #[cfg(not(target_arch = "x86_64"))]
            drop((early_ops, premade));
            #[cfg(target_arch = "x86_64")]
            if let Some(ops) = early_ops {
                // The child's network namespace, made here while the caller plans the child's
                // early part: the child, cloned from this thread, is born in it. The caller's
                // thread starts the notification thread (this core is the child's now).
                let _ = tx.send(None);
                drop(tx);
                drop(notifier_tx);
                // Its unified group, made now so that it is born in it (see
                // `cgroup::premake_unified`), with the host's cgroups found here while the
                // caller plans the early part (and the entry's process finishes the namespace).
                let unified = premade
                    .as_deref()
                    .and_then(|name| cgroup::premake_unified(&cgroup::Support::detected(), name));
                let netns = match made_netns() {
                    Some(ns) => sys::setns_net(&ns).map(|()| ns),
                    None => sys::fresh_netns(),
                };
                let ops = ops.recv().ok().flatten();
                // The child, and the program after it, may run on any of our CPUs.
                if let Some(m) = whole {
                    let _ = m.apply_here();
                }
                let child = match ops {
                    Some(ops) => start_early_child(ops, netns.is_ok(), unified.as_ref()).ok(),
                    None => None,
                };
                let _ = child_tx.send(Unadopted(child));
                drop(child_tx);
                made_netns_done();
                // Done: the core is the child's. The caller joins this thread before it hands the
                // child the rest of its plan (see `start_early_child`), and prunes stale groups
                // itself while it waits for the child.
                return;
            }
            drop(child_tx);
            let host = sys::open_ns_net().ok();
            let _ = tx.send(made_netns().or_else(|| sys::fresh_netns().ok()));
            drop(tx);
            // The notification thread from here rather than from the main thread (a thread's
            // start cost the main thread 20-90 us here, just before the clone), once the
            // namespace is handed over. It steps back into the host's network namespace, like
            // every other thread of ours, and takes back the whole CPU mask.
            let _ = notifier_tx.send(supervisor::Notifier::start(host, whole).ok());
            drop(notifier_tx);
            made_netns_done();
            // The rest may run on either core again.
            if let Some(m) = whole {
                let _ = m.apply_here();
            }
            let support = cgroup::Support::detected();
            // Then, at the lowest nice, the removal of groups that killed runs left behind
            // (~0.1 ms of directory reads that sat on the spawn's path). The supervisor does
            // it at the end of the run if this never got to it.
            let _ = sys::lowest_priority();
            cgroup::prune_stale_once(&support);
        });
        if let Ok(handle) = started {
            let helper = with_child.then(|| {
                let _ = early_tx.send(plan::early_ops().ok());
                handle
            });
            *slot = Some(Early {
                netns,
                notifier: Some(notifier),
                child: with_child.then_some(child),
                helper,
                group_name,
            });
        }
    }
    let _ = cgroup::Support::detected();
}

/// Starts `f` on a new thread that runs on another core than the caller's (where there is one),
/// so that both go on at once. The scheduler tends to put a new thread on its creator's core and
/// let it run first: on this project's two-core VM the namespace thread waited there ~0.35 ms,
/// or took the core from the caller for as long, while the other core idled. The thread waits at
/// a gate until it has been moved, so none of `f` runs on the caller's core. For short jobs:
/// the thread keeps the narrower mask. (Tried for the supervisor's and notifier's threads too,
/// which then take back the whole mask: no gain measured.)
fn spawn_elsewhere<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    let other = sys::CpuMask::current()
        .ok()
        .and_then(|m| m.without_this_cpu().ok().flatten());
    let (go, gate) = std::sync::mpsc::sync_channel::<()>(1);
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // Closed unsent only if the caller is gone: run anyway.
            let _ = gate.recv();
            f()
        })?;
    if let Some(m) = other {
        let _ = m.apply_to(&handle);
    }
    let _ = go.send(());
    Ok(handle)
}

/// Ends what `warm_up_with_child` started and no spawn took: the child started ahead is killed
/// and reaped, and the unified cgroup made for it removed. For a command that ends without its
/// spawn (bad arguments, a missing file): without this the group stays until a later run's
/// pruning of stale groups.
pub fn end_warm_up() {
    let Some(mut early) = take_early_netns() else {
        return;
    };
    if let Some(child) = early.child.take() {
        drop(child.recv());
    }
    if let Some(name) = early.group_name.take() {
        cgroup::remove_premade(&cgroup::Support::detected(), &name);
    }
}

fn take_early_netns() -> Option<Early> {
    EARLY_NETNS.lock().ok()?.take()
}

type Prepared = (
    Option<OwnedFd>,
    Option<std::sync::mpsc::Receiver<Option<supervisor::Notifier>>>,
    Result<Option<cgroup::Group>, SandboxError>,
);

/// What `spawn_with` needs before the clone besides its plan: a fresh network namespace (the one
/// `warm_up` started, or one made now on a helper thread while the caller builds the plan) and
/// the part of the cgroups the child is born into (`Group::create_v2`, made on the caller's
/// thread: a directory or two; the cgroup-v1 groups follow in the handshake).
struct Prep {
    netns: Option<Early>,
    group: Option<Result<Option<cgroup::Group>, SandboxError>>,
    /// See `Early::helper`.
    helper: Option<std::thread::JoinHandle<()>>,
}

impl Prep {
    fn start(cgroups: &cgroup::Support, memory: u64, pids: u64) -> Prep {
        // EPERM without CAP_SYS_ADMIN: clone3 then makes the namespace itself. The thread ends
        // once it has it, so it does not matter that it stays in the namespace. On another core
        // than the caller's, which goes on with the plan meanwhile. (On this thread a namespace
        // would be ours for good: without a thread, clone3 makes one.)
        let mut netns = take_early_netns().or_else(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            spawn_elsewhere("modelvet-prep", move || {
                let _ = tx.send(made_netns().or_else(|| sys::fresh_netns().ok()));
                made_netns_done();
            })
            .ok()
            .map(|_| Early {
                netns: rx,
                notifier: None,
                child: None,
                helper: None,
                group_name: None,
            })
        });
        // The name the helper made the child's unified group under, if it started one.
        let name = netns
            .as_mut()
            .and_then(|e| e.group_name.take())
            .unwrap_or_else(cgroup::group_name);
        let group = if cgroups.memory.is_none() && cgroups.pids.is_none() {
            Ok(None)
        } else {
            cgroup::Group::create_v2(cgroups, &name, memory, pids)
                .map(Some)
                .map_err(SandboxError::from)
        };
        Prep {
            helper: netns.as_mut().and_then(|e| e.helper.take()),
            netns,
            group: Some(group),
        }
    }

    /// The child started ahead, if there is one (waiting for its clone), with the first part of
    /// its handshake done by the helper: its id maps, 'go' and 'ready'.
    fn take_child(&mut self, cgroups: &cgroup::Support) -> Unadopted {
        let Some(rx) = self.netns.as_mut().and_then(|e| e.child.take()) else {
            return Unadopted(None);
        };
        // While the helper clones, what it leaves to the caller where it starts a child: the
        // removal of groups killed runs left behind.
        cgroup::prune_stale_once(cgroups);
        rx.recv().unwrap_or(Unadopted(None))
    }

    /// Waits for the helper thread `tid` that cloned the child to be gone (see
    /// `start_early_child`): joined, and then unhashed, which the kernel does after it has handed
    /// the thread's children to another thread of ours (the join returns earlier, once the thread
    /// has left its memory; the hand-over, which fires a parent-death signal already set, comes
    /// after that).
    fn join_helper(&mut self, tid: libc::pid_t) -> Result<(), &'static str> {
        match self.helper.take().map(std::thread::JoinHandle::join) {
            Some(Ok(())) => {}
            Some(Err(_)) => return Err("the thread panicked"),
            None => return Err("no thread to wait for"),
        }
        // Microseconds after the join, normally: a bounded wait (a traced thread is freed only
        // once its tracer lets it go), then give up (the caller kills the child, which then has
        // no parent-death signal set, and fails the spawn).
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            if sys::thread_gone(tid) {
                return Ok(());
            }
            std::thread::yield_now();
        }
        Err("the thread was still there a second after it ended")
    }

    fn finish(&mut self) -> Prepared {
        let (netns, notifier) = match self.netns.take() {
            Some(e) => (e.netns.recv().ok().flatten(), e.notifier),
            None => (None, None),
        };
        let group = self.group.take().unwrap_or(Ok(None));
        (netns, notifier, group)
    }
}

/// Parent side of the setup, first part: the id maps, 'go', and the child's 'ready'.
fn start_handshake(pid: i32, sock: &OwnedFd, cplan: &ChildPlan) -> Result<(), SandboxError> {
    let setup_err = |step: &'static str, e: std::io::Error| SandboxError::Setup {
        step,
        error: e,
        detail: None,
    };
    // SAFETY: geteuid has no failure modes.
    let euid = unsafe { libc::geteuid() };
    // SAFETY: getegid has no failure modes.
    let egid = unsafe { libc::getegid() };
    let outer = if euid == 0 {
        (
            UNUSED_ID_BASE + (pid as u32 & 0xffff),
            UNUSED_ID_BASE + (pid as u32 & 0xffff),
        )
    } else {
        (euid, egid)
    };
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let maps = [
        ("setgroups", "writing setgroups", "deny".to_string()),
        ("uid_map", "writing uid_map", format!("0 {} 1\n", outer.0)),
        ("gid_map", "writing gid_map", format!("0 {} 1\n", outer.1)),
    ];
    // Each map can be written once only: a second attempt goes on from the first one not yet
    // written (a retry of uid_map would fail with EPERM and hide what really failed).
    let mut written = 0;
    let mut write_maps = || -> Result<(), SandboxError> {
        for (file, step, text) in &maps[written..] {
            std::fs::write(proc.join(file), text).map_err(|e| setup_err(step, e))?;
            written += 1;
        }
        Ok(())
    };
    // The maps can be written as soon as the child is dumpable, which it is from birth when we
    // are: it shares our memory (CLONE_VM), or has a copy of it with the same flag. Written
    // while the child starts up, they are ready when it asks (its first wait no longer includes
    // our three writes). Otherwise they wait for the child's PR_SET_DUMPABLE (MSG_READY).
    let early = sys::dumpable() && write_maps().is_ok();
    // With the maps written the child may go on as soon as it asks: its 'go' waits for it in
    // the socket (its wait no longer includes this thread's wake-up on its MSG_READY).
    if early {
        sys::write_all_raw(sock.as_raw_fd(), &[child::MSG_GO])?;
    }
    if !sys::poll_in(sock.as_raw_fd(), 10_000)? {
        return Err(setup_err(
            "waiting for the child",
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        ));
    }
    let mut buf = [0u8; 16];
    let n = sys::read_setup(sock.as_raw_fd(), &mut buf)?;
    if n != 1 || buf[0] != child::MSG_READY {
        return Err(child_failure(&buf[..n], cplan));
    }
    if !early {
        write_maps()?;
        sys::write_all_raw(sock.as_raw_fd(), &[child::MSG_GO])?;
    }
    Ok(())
}

/// Parent side of the setup, second part: the cgroups, made while the child builds its root; it
/// waits for `MSG_CGROUPS`, which carries the `tasks` files of the v1 groups for it to join them
/// itself (see `cgroup::Group::v1_tasks`), before it installs the filter and execs. `unified`:
/// the child was not born into the v2 group and is moved into it now. Returns the milliseconds
/// of our part of the moves (the files opened and handed over, and the unified move if any).
/// The listener that follows is the notification thread's to take.
fn finish_handshake(
    pid: i32,
    sock: &OwnedFd,
    group: Option<(&mut cgroup::Group, &cgroup::Support)>,
    unified: bool,
    cplan: &ChildPlan,
) -> Result<f64, SandboxError> {
    // The cgroup-v1 groups are made now, while the child builds its root (see
    // `Group::create_v2`); `attach_ms` is the moves alone.
    let mut t = Instant::now();
    let mut tasks = Vec::new();
    if let Some((g, support)) = group {
        g.create_v1(support)?;
        t = Instant::now();
        if unified {
            g.attach_unified(pid)?;
        }
        tasks = g.v1_tasks()?;
    }
    let fds: Vec<RawFd> = tasks.iter().map(|f| f.as_raw_fd()).collect();
    sys::send_with_fds(sock.as_raw_fd(), &[child::MSG_CGROUPS], &fds)
        .map_err(|e| child_gone(sock, e, cplan))?;
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// A write to the child that failed: a child that failed a step meanwhile has said which, and
/// gone.
fn child_gone(sock: &OwnedFd, e: sys::SysError, cplan: &ChildPlan) -> SandboxError {
    let mut buf = [0u8; 16];
    match sys::recv_nowait(sock.as_raw_fd(), &mut buf) {
        Ok(n) if error_record(&buf[..n]).is_some() => child_failure(&buf[..n], cplan),
        _ => e.into(),
    }
}

/// The errno of the program's exec, when it failed (the program never ran: not executable, a
/// missing interpreter, another architecture). A child whose exec succeeded closed its end of the
/// setup socket (close-on-exec) having written nothing more.
fn exec_failure(sock: &OwnedFd) -> Option<i32> {
    let mut buf = [0u8; 16];
    let n = sys::recv_nowait(sock.as_raw_fd(), &mut buf).ok()?;
    match error_record(&buf[..n])? {
        (Some(Step::Exec), _, errno) => Some(errno),
        _ => None,
    }
}

/// The child's failure record (see `child::fail`): its step, the index within it, the errno.
fn error_record(msg: &[u8]) -> Option<(Option<Step>, usize, i32)> {
    if msg.len() != 13 || msg[0] != child::MSG_ERROR {
        return None;
    }
    let step = u32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]);
    let index = u32::from_le_bytes([msg[5], msg[6], msg[7], msg[8]]) as usize;
    let errno = i32::from_le_bytes([msg[9], msg[10], msg[11], msg[12]]);
    Some((Step::from_u32(step), index, errno))
}

const APPARMOR_USERNS_SYSCTL: &str = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns";

/// Ubuntu (23.10 on) lets an unprivileged process create a user namespace but, unless an AppArmor
/// profile allows it, takes every capability inside away: the child's first privileged step
/// (becoming root of its namespace, the hostname, the mounts) then fails with EPERM, which alone
/// would not tell the user what to change.
fn userns_restriction_hint(
    step: Step,
    errno: i32,
    euid: u32,
    restricted: bool,
) -> Option<&'static str> {
    let early = matches!(
        step,
        Step::Sync | Step::Hostname | Step::Mounts | Step::Pivot
    );
    (early && errno == libc::EPERM && euid != 0 && restricted).then_some(
        "AppArmor restricts unprivileged user namespaces on this host \
         (kernel.apparmor_restrict_unprivileged_userns=1): allow them for modelvet with an AppArmor \
         profile granting `userns,`, or set the sysctl to 0",
    )
}

fn child_failure(msg: &[u8], cplan: &ChildPlan) -> SandboxError {
    if let Some((step, index, errno)) = error_record(msg) {
        let step = step.unwrap_or(Step::Sync);
        let detail = match step {
            Step::Mounts => cplan.op(index).map(|op| match op {
                plan::Op::Bind { src, .. } if errno == libc::EACCES => {
                    let host = src.to_string_lossy().trim_start_matches("/oldroot").to_string();
                    format!(
                        "the sandbox's unprivileged user cannot reach {host}: a directory above it is not \
                         searchable by others (e.g. /root); copy it elsewhere or name another path, \
                         such as /usr/bin/python3 instead of a pyenv shim"
                    )
                }
                other => format!("{other:?}"),
            }),
            Step::Landlock if index > 0 => cplan
                .rest()
                .and_then(|r| r.landlock.rules.get(index - 1))
                .map(|r| format!("rule {:?}", r.0)),
            _ => None,
        };
        // SAFETY: geteuid has no failure modes.
        let euid = unsafe { libc::geteuid() };
        let restricted =
            std::fs::read_to_string(APPARMOR_USERNS_SYSCTL).is_ok_and(|v| v.trim() == "1");
        let detail = match userns_restriction_hint(step, errno, euid, restricted) {
            Some(hint) => Some(match detail {
                Some(d) => format!("{hint}; {d}"),
                None => hint.to_string(),
            }),
            None => detail,
        };
        return SandboxError::Setup {
            step: step.describe(),
            error: std::io::Error::from_raw_os_error(errno),
            detail,
        };
    }
    SandboxError::Setup {
        step: "starting the child",
        error: std::io::Error::other("the child exited during setup"),
        detail: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_in_a_bin_brings_an_install_prefix_never_a_home() {
        let dir = std::env::temp_dir().join(format!("mv-prefix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // ~/bin/tool: the tool only, not the home beside it.
        let home = dir.join("home");
        std::fs::create_dir_all(home.join("bin")).unwrap();
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        let tool = home.join("bin/tool");
        assert_eq!(program_paths(&tool, &tool), vec![tool.clone()]);
        // A venv: its bin/, lib/ and pyvenv.cfg, never the folder holding them.
        let venv = dir.join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::create_dir_all(venv.join("lib/python3.11/site-packages")).unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        std::fs::write(venv.join("secret"), "").unwrap();
        let got = program_paths(Path::new("/usr/bin/python3"), &venv.join("bin/python"));
        assert_eq!(
            got,
            vec![venv.join("bin"), venv.join("lib"), venv.join("pyvenv.cfg")]
        );
        // Entries that lead out of the prefix are left out; those that stay in it come by their
        // real path.
        let (outside, venv2) = (dir.join("outside"), dir.join("venv2"));
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(venv2.join("bin")).unwrap();
        std::fs::create_dir_all(venv2.join("lib")).unwrap();
        std::os::unix::fs::symlink(venv2.join("lib"), venv2.join("lib64")).unwrap();
        std::os::unix::fs::symlink(&outside, venv2.join("pyvenv.cfg")).unwrap();
        let got2 = program_paths(&venv2.join("bin/python"), &venv2.join("bin/python"));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            got2,
            vec![venv2.join("bin"), venv2.join("lib"), venv2.join("lib")]
        );
        // A link to the prefix itself, or to something else in it, brings nothing.
        let venv3 = dir.join("venv3");
        std::fs::create_dir_all(venv3.join("bin")).unwrap();
        std::fs::create_dir_all(venv3.join(".ssh")).unwrap();
        std::os::unix::fs::symlink(".", venv3.join("lib")).unwrap();
        std::os::unix::fs::symlink(".ssh", venv3.join("lib64")).unwrap();
        let tool3 = venv3.join("bin/tool");
        let got3 = program_paths(&tool3, &tool3);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(got3, vec![tool3.clone()]);
        // System programs: themselves.
        assert_eq!(
            program_paths(Path::new("/usr/bin/env"), Path::new("/usr/bin/env")),
            vec![PathBuf::from("/usr/bin/env")]
        );
    }

    #[test]
    fn an_apparmor_userns_restriction_is_named_only_where_it_explains_the_failure() {
        let hint = |step, errno, euid, restricted| {
            userns_restriction_hint(step, errno, euid, restricted).is_some()
        };
        for step in [Step::Sync, Step::Hostname, Step::Mounts, Step::Pivot] {
            assert!(hint(step, libc::EPERM, 1000, true), "{step:?}");
        }
        // Root is not restricted; other errors, later steps and unrestricted hosts are not it.
        assert!(!hint(Step::Sync, libc::EPERM, 0, true));
        assert!(!hint(Step::Sync, libc::EPERM, 1000, false));
        assert!(!hint(Step::Mounts, libc::EACCES, 1000, true));
        assert!(!hint(Step::Landlock, libc::EPERM, 1000, true));
        assert!(!hint(Step::Exec, libc::EPERM, 1000, true));
    }
}
