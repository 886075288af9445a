//! The `sandbox` part shared by the jail, probe and detonate reports, and the findings that a
//! run's record gives (exec, dangerous syscalls, network, files outside, resource kills).

use std::collections::BTreeMap;
use std::fmt::Write;

use probes::finding::{Category, Finding, Severity};
use sandbox::{EventKind, ExitStatus, Outcome};
use serde::Serialize;

/// At most this many findings of one rule are listed one by one; the rest are counted.
const MAX_FINDINGS_PER_RULE: usize = 20;

#[derive(Debug, Serialize)]
pub struct SandboxReport<'a> {
    pub exit: &'a sandbox::Exit,
    pub resources: &'a sandbox::Resources,
    pub syscalls: &'a BTreeMap<String, u64>,
    pub events: &'a [sandbox::Event],
    pub events_dropped: u64,
    pub host: &'a sandbox::HostSupport,
}

impl<'a> SandboxReport<'a> {
    pub fn new(o: &'a Outcome, host: &'a sandbox::HostSupport) -> Self {
        SandboxReport {
            exit: &o.exit,
            resources: &o.resources,
            syscalls: &o.syscalls,
            events: &o.events,
            events_dropped: o.events_dropped,
            host,
        }
    }
}

/// A recorded string cut for a finding's message or evidence (the shared rule: at most `max`
/// bytes at a character boundary, marked), so they stay small however long the record is.
fn clip(text: &str, max: usize) -> String {
    crate::host::channel::cut(text.to_string(), max)
}

fn s(v: &serde_json::Value, k: &str) -> String {
    match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Local-socket use that libc does on its own (the name-service cache lookups of getpwnam and
/// friends): recorded as events, not findings.
fn is_benign_local(d: &serde_json::Value) -> bool {
    if d["family"] != "unix" {
        return false;
    }
    match d.get("path").and_then(|p| p.as_str()) {
        None => true, // socket(AF_UNIX) itself: nothing reached yet
        Some(p) => matches!(p, "/var/run/nscd/socket" | "/run/nscd/socket"),
    }
}

/// send/sendto/sendmsg with no destination go down an already connected socket (one the
/// program was given, or whose connect was itself recorded): an event, not a new finding.
fn is_unaddressed_send(syscall: &str, d: &serde_json::Value) -> bool {
    matches!(syscall, "sendto" | "sendmsg" | "sendmmsg")
        && d.get("address").is_none()
        && d.get("path").is_none()
}

/// The finding for one destination of a socket call (none for the harmless ones), with its
/// grouping key.
fn network_finding(syscall: &str, d: &serde_json::Value) -> Option<(String, Finding)> {
    if is_benign_local(d) || is_unaddressed_send(syscall, d) {
        return None;
    }
    if d["family"] == "unix" {
        let path = clip(&s(d, "path"), 256);
        let f = if d["host"] == true {
            Finding::new(
                "sandbox.unix-socket",
                Severity::High,
                Category::Behaviour,
                format!(
                    "attempt to reach a host service: {syscall} unix {path} (a socket under a \
                     path bound in from the host)"
                ),
            )
        } else {
            Finding::new(
                "sandbox.unix-socket",
                Severity::Medium,
                Category::Behaviour,
                format!("local socket attempt: {syscall} unix {path}"),
            )
        };
        return Some((
            format!("{syscall} {path}"),
            f.with_evidence(format!("{syscall} {d}")),
        ));
    }
    let target = match (d.get("address"), d.get("path")) {
        (Some(a), _) => format!(
            "{} {}:{}",
            s(d, "family"),
            a.as_str().unwrap_or(""),
            s(d, "port")
        ),
        (None, Some(p)) => format!("unix {}", p.as_str().unwrap_or("")),
        _ if d.get("type").is_some() => {
            format!("{} socket (type {})", s(d, "family"), s(d, "type"))
        }
        _ => format!("{} socket", s(d, "family")),
    };
    let why = match d.get("refused").and_then(|w| w.as_str()) {
        Some(w) => format!("refused: {w}"),
        None => "the sandbox has no network".to_string(),
    };
    Some((
        format!("{syscall} {target}"),
        Finding::new(
            "sandbox.network",
            Severity::High,
            Category::Behaviour,
            format!("network attempt: {syscall} {target} ({why})"),
        )
        .with_evidence(format!("{syscall} {d}")),
    ))
}

/// Findings from a run's record, grouped so a fork bomb gives one line, not ten thousand.
pub fn findings(o: &Outcome, timeout_s: f64, memory: u64, pids: u64) -> Vec<Finding> {
    let mut groups: BTreeMap<(String, String), (Finding, u64)> = BTreeMap::new();
    let mut add = |key: String, f: Finding| {
        groups
            .entry((f.rule.clone(), key))
            .and_modify(|e| e.1 += 1)
            .or_insert((f, 1));
    };
    for e in &o.events {
        let d = &e.detail;
        let loc = format!("pid {} @ {:.1} ms", e.pid, e.t_ms);
        if d["unreadable"] == true {
            // Arguments put where the supervisor cannot read them: a way to act unrecorded.
            add(
                e.syscall.clone(),
                Finding::new(
                    "sandbox.unreadable-argument",
                    Severity::High,
                    Category::Behaviour,
                    format!(
                        "{} with its arguments in memory the supervisor cannot read (refused with \
                         EFAULT): a way to hide what a call does from the record",
                        e.syscall
                    ),
                )
                .at(loc)
                .with_evidence(format!("{}(args {})", e.syscall, d["args"])),
            );
            continue;
        }
        match e.kind {
            EventKind::Exec => {
                let path = clip(&s(d, "path"), 256);
                let mut argv: Vec<String> = d["argv"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .take(8)
                            .filter_map(|x| x.as_str().map(|a| clip(a, 64)))
                            .collect()
                    })
                    .unwrap_or_default();
                if d["argv"].as_array().is_some_and(|a| a.len() > 8) {
                    argv.push("...".into());
                }
                let verb = if e.action == sandbox::Action::Denied {
                    "denied"
                } else {
                    "allowed by --allow-exec"
                };
                // The file the kernel would run (a memfd by descriptor, a name below a folder).
                let file = match d.get("resolved").and_then(|r| r.as_str()) {
                    Some(r) => clip(r, 256),
                    None => path.clone(),
                };
                add(
                    file.clone(),
                    Finding::new(
                        "sandbox.exec",
                        Severity::Critical,
                        Category::Behaviour,
                        format!("the program tried to execute {file} ({verb})"),
                    )
                    .at(loc)
                    .with_evidence(format!("{}({path:?}, {argv:?})", e.syscall)),
                );
            }
            EventKind::Denied => add(
                e.syscall.clone(),
                Finding::new(
                    "sandbox.dangerous-syscall",
                    Severity::Critical,
                    Category::Behaviour,
                    format!("dangerous syscall {} denied with EPERM", e.syscall),
                )
                .at(loc)
                .with_evidence(format!(
                    "{}(nr {}, args {})",
                    e.syscall,
                    s(d, "nr"),
                    d["args"]
                )),
            ),
            EventKind::Process if e.action == sandbox::Action::Denied => add(
                e.syscall.clone(),
                Finding::new(
                    "sandbox.dangerous-syscall",
                    Severity::Critical,
                    Category::Behaviour,
                    format!("{} asked for new namespaces (denied)", e.syscall),
                )
                .at(loc)
                .with_evidence(format!("{}(flags {})", e.syscall, s(d, "flags"))),
            ),
            EventKind::Network => {
                // A sendmmsg lists each message's destination; anything else has one.
                let one = [d.clone()];
                let dests = d["destinations"].as_array().map_or(&one[..], Vec::as_slice);
                for dd in dests {
                    if let Some((key, f)) = network_finding(&e.syscall, dd) {
                        add(key, f.at(loc.clone()));
                    }
                }
            }
            EventKind::File if d.get("outside").is_some() => {
                let path = clip(
                    &d.get("resolved")
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| s(d, "path")),
                    256,
                );
                let write = d["write"].as_bool().unwrap_or(false);
                let (rule, what) = if write {
                    ("sandbox.file-write", "write")
                } else {
                    ("sandbox.file-outside", "read")
                };
                add(
                    path.clone(),
                    Finding::new(
                        rule,
                        Severity::High,
                        Category::Behaviour,
                        format!(
                            "attempted {what} of {path}, outside the files the program was given"
                        ),
                    )
                    .at(loc)
                    .with_evidence(format!(
                        "{}({:?})",
                        e.syscall,
                        clip(&s(d, "path"), 256)
                    )),
                );
            }
            EventKind::Syscall => add(
                e.syscall.clone(),
                Finding::new(
                    "sandbox.unknown-syscall",
                    Severity::Low,
                    Category::Behaviour,
                    format!("syscall {} is in no policy tier", e.syscall),
                )
                .at(loc)
                .with_evidence(format!("{} {}", e.syscall, d)),
            ),
            _ => {}
        }
    }
    let mut per_rule: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for ((rule, _), (mut f, count)) in groups {
        let n = per_rule.entry(rule).or_insert(0);
        *n += 1;
        if *n > MAX_FINDINGS_PER_RULE {
            continue;
        }
        if count > 1 {
            f.message = format!("{} ({count} attempts)", f.message);
        }
        out.push(f);
    }
    for (rule, n) in per_rule {
        if n > MAX_FINDINGS_PER_RULE {
            let sev = out
                .iter()
                .find(|f| f.rule == rule)
                .map_or(Severity::High, |f| f.severity);
            out.push(Finding::new(
                &rule,
                sev,
                Category::Behaviour,
                format!(
                    "{} more distinct {rule} findings not listed",
                    n - MAX_FINDINGS_PER_RULE
                ),
            ));
        }
    }
    let res =
        |rule: &str, msg: String| Finding::new(rule, Severity::Medium, Category::Resource, msg);
    match o.exit.status {
        ExitStatus::Timeout => out.push(res(
            "resource.timeout",
            format!("still running at the {timeout_s} s wall limit: killed (raise --timeout for slow but benign programs)"),
        )),
        ExitStatus::Memory => out.push(res(
            "resource.memory",
            format!("hit the memory limit of {} MiB: killed", memory >> 20),
        )),
        ExitStatus::Pids => out.push(res(
            "resource.pids",
            format!("hit the limit of {pids} processes: the whole tree was killed"),
        )),
        ExitStatus::Killed if sandbox::interrupt::received().is_some() => out.push(res(
            "sandbox.interrupted",
            "modelvet was interrupted (SIGINT, SIGTERM or SIGHUP) and stopped the program before it \
             finished: what it did after that moment is not known"
                .into(),
        )),
        _ => {}
    }
    if o.events_dropped > 0 {
        out.push(Finding::new(
            "sandbox.events-dropped",
            Severity::Info,
            Category::Behaviour,
            format!(
                "{} events beyond the report's limit were counted, not stored",
                o.events_dropped
            ),
        ));
    }
    out
}

/// The text block describing a run.
pub fn text(out: &mut String, o: &Outcome) {
    let e = &o.exit;
    let _ = write!(
        out,
        "exit: {}",
        serde_json::to_value(e.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    );
    if let Some(c) = e.code {
        let _ = write!(out, " (code {c})");
    }
    if let Some(sig) = e.signal {
        let _ = write!(out, " (signal {sig})");
    }
    let r = &o.resources;
    let _ = writeln!(
        out,
        "\nresources: wall {} ms, cpu {} ms user + {} ms sys, peak rss {:.1} MiB, peak pids {}{}",
        r.wall_ms,
        r.cpu_user_ms,
        r.cpu_sys_ms,
        r.peak_rss_bytes as f64 / 1048576.0,
        if r.peak_pids_upper_bound {
            format!(
                "at most {} (processes made; no pids cgroup peak)",
                r.peak_pids
            )
        } else {
            r.peak_pids.to_string()
        },
        r.peak_memory_bytes
            .map(|m| format!(", cgroup memory peak {:.1} MiB", m as f64 / 1048576.0))
            .unwrap_or_default()
    );
    if !o.syscalls.is_empty() {
        let list: Vec<String> = o.syscalls.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "recorded syscalls: {}", list.join(", "));
    }
    let _ = writeln!(
        out,
        "events: {}{}",
        o.events.len(),
        if o.events_dropped > 0 {
            format!(" (+{} dropped)", o.events_dropped)
        } else {
            String::new()
        }
    );
}
