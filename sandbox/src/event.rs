//! What the supervisor records: events as SPEC's `sandbox.events`, per-syscall counts, the exit
//! and the resource figures. Records are "as attempted": an event says what the program asked
//! for, decoded from its memory at the time of the call; enforcement is the namespaces' and
//! Landlock's job, never a decision based on these bytes.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Exec,
    Network,
    File,
    Process,
    Denied,
    Syscall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allowed,
    Denied,
    Killed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub t_ms: f64,
    /// The pid inside the sandbox's pid namespace (the target is 1).
    pub pid: i64,
    pub kind: EventKind,
    pub syscall: String,
    pub action: Action,
    pub detail: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitStatus {
    Exited,
    Signaled,
    Timeout,
    Memory,
    Pids,
    Killed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Exit {
    pub status: ExitStatus,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Resources {
    pub wall_ms: u64,
    pub cpu_user_ms: u64,
    pub cpu_sys_ms: u64,
    pub peak_rss_bytes: u64,
    pub peak_pids: u64,
    /// Set when no pids cgroup gave a peak (none, or a kernel without `pids.peak`): `peak_pids`
    /// then counts every process the run made (one plus its forks), the most there can have been
    /// at once, not a measured peak.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub peak_pids_upper_bound: bool,
    /// From the start of `spawn` to the moment the program's first instruction may run (its
    /// execve answered): the cost of building the sandbox.
    pub setup_ms: f64,
    /// The part of `setup_ms` the supervisor spent moving the program into its groups: opening
    /// the cgroup-v1 groups' `tasks` files, which the child writes itself (without the kernel's
    /// global cgroup lock), and, for a child not born into its v2 group, the move into that one.
    pub cgroup_attach_ms: f64,
    /// Peak of the memory cgroup (page cache and tmpfs included), when the host has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
}

/// Everything the supervisor learnt about one run.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub exit: Exit,
    pub resources: Resources,
    pub syscalls: BTreeMap<String, u64>,
    pub events: Vec<Event>,
    /// Events past `MAX_EVENTS` are counted here instead of stored.
    pub events_dropped: u64,
    /// The last bytes the program wrote to stdout and stderr (relayed to our stderr as they came).
    #[serde(skip)]
    pub stdout_tail: Vec<u8>,
    #[serde(skip)]
    pub stderr_tail: Vec<u8>,
    /// The errno of the program's exec when it failed: the program never ran.
    #[serde(skip)]
    pub exec_error: Option<i32>,
}

impl Outcome {
    /// A run the supervisor had to kill before it could record anything.
    pub fn killed(wall_ms: u64) -> Outcome {
        Outcome {
            exit: Exit {
                status: ExitStatus::Killed,
                code: None,
                signal: Some(libc::SIGKILL),
            },
            resources: Resources {
                wall_ms,
                ..Default::default()
            },
            syscalls: BTreeMap::new(),
            events: Vec::new(),
            events_dropped: 0,
            stdout_tail: Vec::new(),
            stderr_tail: Vec::new(),
            exec_error: None,
        }
    }
}
