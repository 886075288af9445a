//! `modelvet detonate FILE`: loads a pickle-family file with a real Python unpickler inside the
//! sandbox (the harness `runner/src/detonate/harness.py`, loading the file the way torch, numpy,
//! joblib or pickle would) and reports what the load attempted. The verdict rests on the
//! sandbox's record; the harness's own summary (what loaded, the Python audit events) is
//! evidence reported from inside a process the payload shares, so it can only add findings.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use probes::finding::{Category, Finding, Severity, verdict};
use sandbox::{EventKind, ExitStatus, Outcome};
use serde::{Deserialize, Serialize};

use crate::cli::{DetonateArgs, Format};
use crate::commands::jail;
use crate::commands::scan::{FileEntry, ScanReport};
use crate::error::{CliError, Result};
use crate::report::{self, sandbox::SandboxReport};

pub const SCHEMA: &str = "modelvet.detonate/1";

/// The harness, passed to Python with `-c` so there is no file to bind or to swap.
const HARNESS: &str = include_str!("../detonate/harness.py");

/// Interpreter flags: `-I` ignores PYTHON* variables, the user site and the script directory;
/// `-B` writes no .pyc, so every write in the record is the payload's. Not `-S`: the victim's
/// loader imports from site-packages (numpy, joblib, the classes its pickles name), so must
/// the harness's `find_class`.
const PYTHON_FLAGS: &[&str] = &["-I", "-B"];

/// Bytes of harness summary read back: defends against a payload flooding the summary pipe.
const MAX_SUMMARY_BYTES: usize = 1 << 20;
/// Records of one list kept from the summary (the harness keeps 200; a forged one may not).
const MAX_SUMMARY_RECORDS: usize = 500;
/// At most this many findings of one detonate rule are listed; the rest are counted.
const MAX_FINDINGS_PER_RULE: usize = 20;
/// Bytes of the program's stdout and stderr tails kept in the report.
const OUTPUT_TAIL_BYTES: usize = 2048;

/// Formats that are not pickles (their readers run no code): `modelvet scan` judges them.
const NOT_PICKLE: &[&str] = &["safetensors", "onnx", "gguf", "keras"];

/// The harness's summary line: SPEC-free, the harness's own shape (see harness.py).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadSummary {
    pub harness: u32,
    pub python: String,
    pub numpy: Option<String>,
    pub joblib: Option<String>,
    /// How the harness loaded the file: pickle, torch-legacy, torch-zip, torch-tar, numpy, joblib.
    pub loader: Option<String>,
    pub streams: Vec<Stream>,
    pub globals: Vec<Global>,
    pub audit: Vec<AuditRecord>,
    pub audit_dropped: u64,
    pub imports: Vec<String>,
    pub error: Option<String>,
    /// The harness could open the file (false: nothing was loaded, the run proves nothing).
    pub opened: bool,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Stream {
    #[serde(rename = "where")]
    pub location: String,
    /// loaded, error or skipped.
    pub status: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Global {
    pub name: String,
    /// real (imported and resolved), stand-in (a torch/numpy data helper answered by a stub),
    /// emulated (torch's `_load_from_bytes` and `_rebuild_from_type`), unresolved (this Python
    /// cannot import it; a stand-in took its place), resolved (by an unpickler the payload
    /// made itself, e.g. a nested `pickle.loads`, seen through the audit hook).
    pub how: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditRecord {
    pub event: String,
    pub args: String,
    pub count: u64,
}

#[derive(Serialize)]
struct Target {
    path: String,
    format: &'static str,
    sha256: String,
    bytes: u64,
}

#[derive(Serialize)]
struct Output {
    stdout_tail: String,
    stderr_tail: String,
}

#[derive(Serialize)]
struct DetonateReport<'a> {
    schema: &'static str,
    tool: report::Tool,
    verdict: &'static str,
    findings: &'a [Finding],
    target: Target,
    /// The harness's summary, `null` when it wrote none.
    load: Option<&'a LoadSummary>,
    output: Output,
    sandbox: SandboxReport<'a>,
}

/// What one Python audit event means when a load raises it: (event, or a prefix ending in
/// '.', rule, severity, what the load did). First match wins.
#[rustfmt::skip]
const AUDIT_RULES: &[(&str, &str, Severity, &str)] = &[
    ("os.system", "detonate.python-exec", Severity::Critical, "ran a shell command"),
    ("os.exec", "detonate.python-exec", Severity::Critical, "executed a program"),
    ("os.posix_spawn", "detonate.python-exec", Severity::Critical, "spawned a program"),
    ("os.spawn", "detonate.python-exec", Severity::Critical, "spawned a program"),
    ("subprocess.Popen", "detonate.python-exec", Severity::Critical, "started a subprocess"),
    ("pty.spawn", "detonate.python-exec", Severity::Critical, "spawned a program on a pty"),
    ("exec", "detonate.python-code", Severity::Critical, "executed dynamically built code"),
    ("compile", "detonate.python-code", Severity::Critical, "compiled code from data"),
    ("code.__new__", "detonate.python-code", Severity::Critical, "built a code object"),
    ("function.__new__", "detonate.python-code", Severity::Critical, "built a function"),
    ("marshal.loads", "detonate.python-code", Severity::Critical, "unmarshalled code"),
    ("marshal.load", "detonate.python-code", Severity::Critical, "unmarshalled code"),
    ("ctypes.", "detonate.python-code", Severity::Critical, "reached native code through ctypes"),
    ("cpython.", "detonate.python-code", Severity::Critical, "ran interpreter-level code"),
    ("sys.addaudithook", "detonate.python-code", Severity::Critical, "installed an audit hook"),
    ("sys.settrace", "detonate.python-code", Severity::High, "installed a trace function"),
    ("sys.setprofile", "detonate.python-code", Severity::High, "installed a profile function"),
    ("os.fork", "detonate.python-process", Severity::High, "forked the interpreter"),
    ("os.forkpty", "detonate.python-process", Severity::High, "forked the interpreter"),
    ("os.kill", "detonate.python-process", Severity::High, "sent a signal"),
    ("os.killpg", "detonate.python-process", Severity::High, "sent a signal"),
    ("socket.", "detonate.python-network", Severity::High, "used a socket"),
    ("urllib.", "detonate.python-network", Severity::High, "made a URL request"),
    ("http.", "detonate.python-network", Severity::High, "made an HTTP connection"),
    ("ftplib.", "detonate.python-network", Severity::High, "made an FTP connection"),
    ("smtplib.", "detonate.python-network", Severity::High, "made an SMTP connection"),
    ("poplib.", "detonate.python-network", Severity::High, "made a POP connection"),
    ("imaplib.", "detonate.python-network", Severity::High, "made an IMAP connection"),
    ("nntplib.", "detonate.python-network", Severity::High, "made an NNTP connection"),
    ("telnetlib.", "detonate.python-network", Severity::High, "made a telnet connection"),
    ("webbrowser.", "detonate.python-network", Severity::High, "opened a web browser"),
    ("open", "detonate.python-file", Severity::High, "opened a file"),
    ("shutil.", "detonate.python-file", Severity::High, "copied, moved or deleted files"),
    ("tempfile.", "detonate.python-file", Severity::High, "created temporary files"),
    ("glob.glob", "detonate.python-file", Severity::High, "listed files"),
    ("sqlite3.connect", "detonate.python-file", Severity::High, "opened a database"),
    ("os.", "detonate.python-file", Severity::High, "changed or listed the file system"),
    ("mmap.__new__", "detonate.python-file", Severity::Medium, "mapped memory"),
    ("resource.setrlimit", "detonate.python-process", Severity::Medium, "changed a limit"),
    ("builtins.input", "detonate.python-process", Severity::Medium, "read from the terminal"),
    ("syslog.", "detonate.python-process", Severity::Medium, "wrote to syslog"),
];

fn audit_rule(event: &str) -> Option<(&'static str, Severity, &'static str)> {
    AUDIT_RULES
        .iter()
        .find(|(e, ..)| {
            if e.ends_with('.') {
                event.starts_with(e)
            } else {
                event == *e || event.starts_with(&format!("{e}."))
            }
        })
        .map(|(_, r, s, w)| (*r, *s, *w))
}

/// Looks up the interpreter the way the sandbox will (a path, or a name in PATH).
fn find_python(p: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let ok = |c: &Path| {
        std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if p.components().count() > 1 || p.is_absolute() {
        return ok(p).then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(p))
        .find(|c| ok(c))
}

/// Reads the summary pipe to its end in the background, keeping at most MAX_SUMMARY_BYTES.
fn read_summary_pipe(fd: OwnedFd) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(fd);
        let mut out = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = MAX_SUMMARY_BYTES.saturating_sub(out.len());
                    out.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        out
    })
}

/// The last line of `bytes` that parses as a harness summary.
pub fn parse_summary(bytes: &[u8]) -> Option<LoadSummary> {
    let text = String::from_utf8_lossy(bytes);
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l.trim()).ok()?;
        v.get("harness")?;
        let mut s: LoadSummary = serde_json::from_value(v).ok()?;
        s.streams.truncate(MAX_SUMMARY_RECORDS);
        s.globals.truncate(MAX_SUMMARY_RECORDS);
        s.audit.truncate(MAX_SUMMARY_RECORDS);
        s.imports.truncate(MAX_SUMMARY_RECORDS);
        Some(s)
    })
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(OUTPUT_TAIL_BYTES);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Findings of a detonation beyond the sandbox's own: writes the scratch absorbed, what the
/// harness saw from inside, and what it could not do.
pub fn load_findings(
    outcome: &Outcome,
    summary: Option<&LoadSummary>,
    python: &str,
) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let mut per_rule: std::collections::BTreeMap<String, usize> = Default::default();
    let mut push = |out: &mut Vec<Finding>, f: Finding| {
        let n = per_rule.entry(f.rule.clone()).or_insert(0);
        *n += 1;
        if *n <= MAX_FINDINGS_PER_RULE {
            out.push(f);
        }
    };

    // The harness writes nothing (-B, no files of its own): a write the sandbox allowed went
    // to the scratch tmpfs or an --allow-write path, and on the victim's machine it lands.
    let mut seen = std::collections::BTreeSet::new();
    for e in &outcome.events {
        let d = &e.detail;
        if e.kind != EventKind::File || d.get("outside").is_some() || d["write"] != true {
            continue;
        }
        let path = d
            .get("resolved")
            .or_else(|| d.get("path"))
            .and_then(|p| p.as_str())
            .unwrap_or("")
            .to_string();
        // Devices, and the program's own descriptors and thread names in its /proc (a
        // descriptor holding a file is judged as that file's path), land nowhere; /dev/shm is
        // the host's shared tmpfs, where a dropped file lands like one in /tmp.
        let lands = !path.starts_with("/dev/") || path.starts_with("/dev/shm/");
        if !lands || path.starts_with("/proc/") || !seen.insert(path.clone()) {
            continue;
        }
        push(
            &mut out,
            Finding::new(
                "detonate.file-write",
                Severity::High,
                Category::Behaviour,
                format!(
                    "the load wrote {path}: the sandbox's scratch absorbed it; loaded outside \
                     the sandbox, the write would land on the host"
                ),
            )
            .at(format!("pid {} @ {:.1} ms", e.pid, e.t_ms))
            .with_evidence(format!(
                "{}({:?}, write)",
                e.syscall,
                d["path"].as_str().unwrap_or("")
            )),
        );
    }

    let Some(s) = summary else {
        let died = matches!(
            outcome.exit.status,
            ExitStatus::Exited | ExitStatus::Signaled | ExitStatus::Killed
        );
        if died {
            let last = String::from_utf8_lossy(&outcome.stderr_tail)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_string();
            let how = match (outcome.exit.code, outcome.exit.signal) {
                (Some(c), _) => format!("exit code {c}"),
                (_, Some(sig)) => format!("signal {sig}"),
                _ => "no exit status".into(),
            };
            let mut f = Finding::new(
                "detonate.no-summary",
                Severity::Medium,
                Category::Behaviour,
                format!(
                    "the harness wrote no summary ({how}): the load ended the interpreter \
                     before it finished (a payload calling os._exit or crashing it), or {python} \
                     is not a Python 3.8+ interpreter"
                ),
            );
            if !last.is_empty() {
                f = f.with_evidence(last);
            }
            out.push(f);
        }
        return out;
    };

    for a in &s.audit {
        let Some((rule, sev, what)) = audit_rule(&a.event) else {
            continue;
        };
        let times = if a.count > 1 {
            format!(" ({} times)", a.count)
        } else {
            String::new()
        };
        push(
            &mut out,
            Finding::new(
                rule,
                sev,
                Category::Behaviour,
                format!(
                    "the load {what}{times} (Python audit event {}, reported from inside the \
                     interpreter)",
                    a.event
                ),
            )
            .at("python audit hook")
            .with_evidence(format!("{}{}", a.event, a.args)),
        );
    }
    if s.audit_dropped > 0 {
        out.push(Finding::new(
            "detonate.audit-dropped",
            Severity::Info,
            Category::Behaviour,
            format!(
                "{} more audit records beyond the harness's limit were counted, not kept",
                s.audit_dropped
            ),
        ));
    }
    for g in s.globals.iter().filter(|g| g.how == "unresolved") {
        let mut f = Finding::new(
            "detonate.unresolved-global",
            Severity::Medium,
            Category::Behaviour,
            format!(
                "{} cannot be imported by {python}: the load went on with a stand-in, so what it \
                 does in the victim's environment was not observed (pass --python with the \
                 victim's interpreter; `modelvet scan` judges it statically)",
                g.name
            ),
        )
        .at("find_class");
        if let Some(e) = &g.error {
            f = f.with_evidence(e.clone());
        }
        push(&mut out, f);
    }
    for st in s.streams.iter().filter(|st| st.status == "error") {
        push(
            &mut out,
            Finding::new(
                "detonate.load-error",
                Severity::Low,
                Category::Behaviour,
                format!(
                    "loading {} failed: {}",
                    st.location,
                    st.error.as_deref().unwrap_or("unknown error")
                ),
            )
            .at(st.location.clone())
            .with_evidence(st.error.clone().unwrap_or_default()),
        );
    }
    if !s.streams.iter().any(|st| st.status == "error")
        && let Some(e) = &s.error
    {
        push(
            &mut out,
            Finding::new(
                "detonate.load-error",
                Severity::Low,
                Category::Behaviour,
                format!("the harness failed: {e}"),
            )
            .with_evidence(e.clone()),
        );
    }
    out
}

pub fn run(args: DetonateArgs) -> Result<u8> {
    report::check_output(args.common.output.as_deref())?;
    report::check_output_apart(args.common.output.as_deref(), &args.sandbox.allow_write)?;
    let meta = std::fs::metadata(&args.file)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", args.file.display())))?;
    if !meta.is_file() {
        return Err(CliError::Input(format!(
            "{} is not a regular file",
            args.file.display()
        )));
    }
    let scan = probes::scan::scan_path(&args.file).map_err(|e| CliError::Input(e.to_string()))?;
    // A zip the router calls Keras (it has Keras's files) that also carries pickles a loader
    // would unpickle (a torch checkpoint's archive/data.pkl): those are detonated.
    let carries_pickles = scan.findings.iter().any(|f| f.rule.starts_with("pickle."));
    if NOT_PICKLE.contains(&scan.format) && !(scan.format == "keras" && carries_pickles) {
        return Err(CliError::Input(format!(
            "{} is {}, not a pickle-family file: its loaders unpickle nothing, so there is \
             nothing to detonate; use `modelvet scan`",
            args.file.display(),
            scan.format
        )));
    }
    let Some(python) = find_python(&args.python) else {
        return Err(CliError::Sandbox(format!(
            "no Python at {}; pass --python PATH",
            args.python.display()
        )));
    };
    let file = std::fs::canonicalize(&args.file)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", args.file.display())))?;

    let mut cfg = jail::config(&python, &args.sandbox);
    cfg.args = PYTHON_FLAGS.iter().map(Into::into).collect();
    cfg.args.push("-c".into());
    cfg.args.push(HARNESS.into());
    cfg.args.push(file.clone().into_os_string());
    // Opened here with our permissions and handed over as fd 4 (fd 3 is the summary pipe).
    let target = std::fs::File::open(&file)
        .map_err(|e| CliError::Input(format!("{}: {e}", args.file.display())))?;
    cfg.args.push("4".into());
    cfg.echo_output = false;
    // This thread only waits: it supervises (one thread fewer to start before the clone).
    cfg.supervisor_thread = false;
    let (summary_r, summary_w) = sandbox::sys::pipe()
        .map_err(|e| CliError::Sandbox(format!("cannot create the summary pipe: {e}")))?;
    cfg.extra_fds = vec![summary_w, std::os::fd::OwnedFd::from(target)];
    let host = sandbox::HostSupport::detect();
    let running = sandbox::spawn_with(cfg, &host).map_err(jail::sandbox_error)?;
    // Started after the spawn: the child is cloned from a process with no thread of ours
    // mid-allocation.
    let reader = read_summary_pipe(summary_r);
    let outcome = running.wait();
    let summary_bytes = reader.join().unwrap_or_default();
    if let Some(errno) = outcome.exec_error {
        return Err(jail::cannot_execute(&args.python.to_string_lossy(), errno));
    }
    // fd 3 first; stdout is where the harness falls back when a payload closed fd 3.
    let summary = parse_summary(&summary_bytes).or_else(|| parse_summary(&outcome.stdout_tail));

    let python_name = python.display().to_string();
    let mut findings = report::sandbox::findings(
        &outcome,
        args.sandbox.timeout,
        args.sandbox.memory,
        args.sandbox.pids,
    );
    findings.extend(load_findings(&outcome, summary.as_ref(), &python_name));
    if let Some(s) = summary.as_ref().filter(|s| !s.opened) {
        // The summary is the harness's word, which the file's own code can forge (a pickle can
        // set the flag by SETITEM alone). What the sandbox recorded is not: if it recorded what
        // a load does, something ran, and the report stands with that contradiction in it.
        let recorded = findings
            .iter()
            .any(|f| f.rule.starts_with("sandbox.") || f.rule == "detonate.file-write");
        if !recorded {
            // Nothing was loaded: a clean record would prove nothing, so this is no report.
            return Err(CliError::Sandbox(format!(
                "the harness could not open {} inside the sandbox ({}); nothing was loaded",
                args.file.display(),
                s.error.as_deref().unwrap_or("no reason given")
            )));
        }
        findings.push(Finding::new(
            "detonate.summary-forged",
            Severity::Critical,
            Category::Behaviour,
            "the harness's summary says the file was never opened, yet the sandbox recorded what \
             a load does: the file's code ran and rewrote the summary"
                .to_string(),
        ));
    }

    let target = Target {
        path: args.file.display().to_string(),
        format: scan.format,
        sha256: scan.sha256.clone(),
        bytes: scan.bytes,
    };
    let rendered = match args.common.format {
        Format::Json => {
            let r = DetonateReport {
                schema: SCHEMA,
                tool: report::tool(),
                verdict: verdict(&findings),
                findings: &findings,
                target,
                load: summary.as_ref(),
                output: Output {
                    stdout_tail: tail(&outcome.stdout_tail),
                    stderr_tail: tail(&outcome.stderr_tail),
                },
                sandbox: SandboxReport::new(&outcome, &host),
            };
            let mut s = serde_json::to_string_pretty(&r)
                .map_err(|e| CliError::Input(format!("cannot render the report: {e}")))?;
            s.push('\n');
            s
        }
        Format::Sarif => {
            // The scan report's SARIF view, with this file as its one artifact.
            let mut r = ScanReport::new(vec![FileEntry {
                path: target.path,
                format: target.format,
                sha256: target.sha256,
                bytes: target.bytes,
                max_severity: findings
                    .iter()
                    .map(|f| f.severity)
                    .max()
                    .map_or("none", Severity::as_str),
                findings: findings.clone(),
            }]);
            r.schema = SCHEMA;
            report::sarif::render(&r)
        }
        Format::Text => {
            report::text::terminal_safe(text(&target, summary.as_ref(), &outcome, &findings))
        }
    };
    report::emit(args.common.output.as_deref(), &rendered)?;
    Ok(report::exit_code(&findings, args.common.fail_on.0))
}

fn text(t: &Target, s: Option<&LoadSummary>, o: &Outcome, findings: &[Finding]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "modelvet detonate: {} ({}, {} bytes, sha256 {})\nverdict: {}",
        t.path,
        t.format,
        t.bytes,
        t.sha256,
        verdict(findings)
    );
    match s {
        Some(s) => {
            // Every field of the summary is the harness's word, which a payload can rewrite:
            // each is made inert (no line of its own, no terminal control).
            let inert = report::text::inert;
            let _ = writeln!(
                out,
                "load: {} with Python {} (numpy {}, joblib {})",
                inert(s.loader.as_deref().unwrap_or("nothing loaded")),
                inert(&s.python),
                inert(s.numpy.as_deref().unwrap_or("absent")),
                inert(s.joblib.as_deref().unwrap_or("absent"))
            );
            for st in &s.streams {
                let _ = write!(out, "  {}: {}", inert(&st.location), inert(&st.status));
                if let Some(k) = &st.kind {
                    let _ = write!(out, " ({})", inert(k));
                }
                if let Some(e) = &st.error {
                    let _ = write!(out, " ({})", inert(e));
                }
                out.push('\n');
            }
            if !s.globals.is_empty() {
                let g: Vec<String> = s
                    .globals
                    .iter()
                    .map(|g| format!("{} ({})", inert(&g.name), inert(&g.how)))
                    .collect();
                let _ = writeln!(out, "  globals: {}", g.join(", "));
            }
        }
        None => out.push_str("load: the harness wrote no summary\n"),
    }
    report::sandbox::text(&mut out, o);
    out.push_str("findings:\n");
    report::text::findings(&mut out, findings);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_events_map_to_rules() {
        assert_eq!(
            audit_rule("os.system").map(|r| r.1),
            Some(Severity::Critical)
        );
        assert_eq!(
            audit_rule("os.exec").map(|r| r.0),
            Some("detonate.python-exec")
        );
        assert_eq!(
            audit_rule("os.remove").map(|r| r.0),
            Some("detonate.python-file")
        );
        assert_eq!(
            audit_rule("socket.connect").map(|r| r.0),
            Some("detonate.python-network")
        );
        assert_eq!(
            audit_rule("exec").map(|r| r.0),
            Some("detonate.python-code")
        );
        // `open` must not swallow `openpty`-like names, nor `exec` the `execve` of os.
        assert_eq!(audit_rule("opened"), None);
        assert_eq!(audit_rule("pickle.find_class"), None);
    }

    fn outcome(events: Vec<sandbox::Event>, code: Option<i32>) -> Outcome {
        Outcome {
            exit: sandbox::Exit {
                status: ExitStatus::Exited,
                code,
                signal: None,
            },
            resources: Default::default(),
            syscalls: Default::default(),
            events,
            events_dropped: 0,
            stdout_tail: Vec::new(),
            stderr_tail: b"Fatal Python error: boom\n".to_vec(),
            exec_error: None,
        }
    }

    fn file_event(detail: serde_json::Value) -> sandbox::Event {
        sandbox::Event {
            t_ms: 1.0,
            pid: 1,
            kind: EventKind::File,
            syscall: "openat".into(),
            action: sandbox::Action::Allowed,
            detail,
        }
    }

    #[test]
    fn scratch_writes_are_findings_and_device_writes_are_not() {
        let o = outcome(
            vec![
                file_event(serde_json::json!({"path": "/tmp/x", "write": true})),
                file_event(serde_json::json!({"path": "/tmp/x", "write": true})),
                file_event(serde_json::json!({"path": "/dev/null", "write": true})),
                // stdout by name: the descriptor's pipe, as the record names it.
                file_event(
                    serde_json::json!({"path": "/dev/stdout", "resolved": "/proc/self/fd/1", "write": true}),
                ),
                file_event(serde_json::json!({"path": "/usr/lib/a.py", "write": false})),
                // Outside: the sandbox's own findings cover it.
                file_event(serde_json::json!({"path": "/home/a", "write": true, "outside": true})),
            ],
            Some(0),
        );
        let s = LoadSummary {
            opened: true,
            ..Default::default()
        };
        let f = load_findings(&o, Some(&s), "python3");
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].rule, "detonate.file-write");
        assert!(f[0].message.contains("/tmp/x"));
    }

    #[test]
    fn no_summary_is_a_medium_finding_with_the_last_stderr_line() {
        let f = load_findings(&outcome(Vec::new(), Some(7)), None, "python3");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "detonate.no-summary");
        assert_eq!(f[0].severity, Severity::Medium);
        assert!(f[0].message.contains("exit code 7"));
        assert_eq!(f[0].evidence.as_deref(), Some("Fatal Python error: boom"));
    }

    #[test]
    fn summary_is_the_last_parseable_line() {
        let s = parse_summary(
            b"noise\n{\"harness\": 1, \"python\": \"3.11.2\", \"streams\": \
              [{\"where\": \"a\", \"status\": \"error\", \"error\": \"E: x\"}]}\n{broken\n",
        )
        .expect("summary");
        assert_eq!(s.python, "3.11.2");
        assert_eq!(s.streams[0].location, "a");
        assert!(parse_summary(b"{\"other\": 1}\n").is_none());
    }
}
