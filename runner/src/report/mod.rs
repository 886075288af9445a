//! One internal report model per command; JSON, SARIF and text are views of it. Reports are
//! written whole or not at all.

use std::io::Write;
use std::path::Path;

use probes::finding::{Finding, Severity};
use serde::Serialize;

pub mod sandbox;
pub mod sarif;
pub mod sarif_target;
pub mod scan_text;
pub mod text;

pub const TOOL_NAME: &str = "modelvet";
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

pub fn tool() -> Tool {
    Tool {
        name: TOOL_NAME,
        version: TOOL_VERSION,
    }
}

/// Exit codes of SPEC: 0 no finding at or above `fail_on`, 1 at least one. (2 and 3 come from
/// errors, see `main`.)
pub fn exit_code(findings: &[Finding], fail_on: Severity) -> u8 {
    u8::from(findings.iter().any(|f| f.severity >= fail_on))
}

/// Where a report goes.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// A descriptor the caller passed, named as `/dev/stdout`, `/dev/stderr`, `/dev/fd/N` or
    /// `/proc/self/fd/N`: written through our copy of it (see `capture_output_fd`), so a `>> log`
    /// stays an append and a socket stays a socket.
    Fd(i32),
    /// A character device or a fifo named directly (`/dev/null`, `mkfifo`): opened without
    /// following links and written in place. Replacing it would put a regular file where
    /// `/dev/null` was, for every program on the host.
    InPlace,
    /// A new file, a regular file, or a symlink to one (or to nothing): written to a new temp file
    /// beside it and renamed over it, so a reader never sees half a report. A symlink is
    /// replaced, not followed: run as root, `-o` through a link someone else planted must not
    /// reach the file it names.
    Replace,
}

/// The descriptor number `-o PATH` names, if it names one of ours.
fn fd_path(p: &Path) -> Option<i32> {
    // Components, so that `//dev/./stdout` is `/dev/stdout` too.
    let norm: std::path::PathBuf = p.components().collect();
    let s = norm.to_str()?;
    match s {
        "/dev/stdout" => Some(1),
        "/dev/stderr" => Some(2),
        _ => s
            .strip_prefix("/dev/fd/")
            .or_else(|| s.strip_prefix("/proc/self/fd/"))
            .and_then(|n| n.parse::<i32>().ok())
            .filter(|&n| n >= 0),
    }
}

/// Our copy of the descriptor `-o` names, taken before modelvet opens anything of its own.
static OUTPUT_FD: std::sync::OnceLock<(i32, Option<std::os::fd::OwnedFd>)> =
    std::sync::OnceLock::new();

/// Call first thing in `main`: if the command line's `-o`/`--output` names a descriptor
/// (`/dev/stdout`, `/dev/fd/N`...), takes a close-on-exec copy of it now, while every open
/// descriptor is one the caller passed. Checked later against that copy, never against whatever
/// modelvet's own threads have opened under the same number since.
pub fn capture_output_fd() {
    let mut args = std::env::args_os().skip(1);
    let mut value = None;
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        }
        use std::os::unix::ffi::OsStrExt;
        let b = a.as_bytes();
        if a == "-o" || a == "--output" {
            value = args.next();
        } else if let Some(v) = b.strip_prefix(b"--output=").or_else(|| {
            // `-oPATH` and `-o=PATH`, as clap takes them.
            b.strip_prefix(b"-o")
                .map(|v| v.strip_prefix(b"=").unwrap_or(v))
        }) {
            value = Some(std::ffi::OsStr::from_bytes(v).to_owned());
        }
    }
    let Some(fd) = value.as_deref().map(Path::new).and_then(fd_path) else {
        return;
    };
    // SAFETY: F_DUPFD_CLOEXEC on an integer: a new descriptor (ours) or -1.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    let copy = (copy >= 0).then(|| {
        // SAFETY: fcntl just returned this new descriptor; nothing else owns it.
        unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(copy) }
    });
    let _ = OUTPUT_FD.set((fd, copy));
}

/// Our copy of descriptor `fd`, open for writing, taken by `capture_output_fd`.
fn output_fd(fd: i32) -> std::io::Result<std::os::fd::BorrowedFd<'static>> {
    use std::os::fd::{AsFd, AsRawFd};
    let copy = match OUTPUT_FD.get() {
        Some((n, Some(copy))) if *n == fd => copy,
        _ => return Err(std::io::Error::from_raw_os_error(libc::EBADF)),
    };
    // SAFETY: F_GETFL on a descriptor we own only queries it.
    let flags = unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_GETFL) };
    if flags == -1 || flags & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(std::io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(copy.as_fd())
}

/// Classifies `-o PATH` without following a symlink to anything but a regular file.
fn target(p: &Path) -> std::io::Result<Target> {
    use std::os::unix::fs::FileTypeExt;
    if let Some(fd) = fd_path(p) {
        return Ok(Target::Fd(fd));
    }
    let refuse = |what: &str| {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is {what}", p.display()),
        ))
    };
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_symlink() => {
            // Judged by where the link really lives and points, not by how `p` is spelled
            // (`/tmp/../dev/stdin`, `/proc/self/root/dev/stdin`, `stdin` run from /dev).
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let real_dir = std::fs::canonicalize(dir).unwrap_or_default();
            let system = |d: &Path| ["/dev", "/proc", "/sys"].iter().any(|s| d.starts_with(s));
            let points_into_system = std::fs::read_link(p).is_ok_and(|t| system(&real_dir.join(t)))
                || std::fs::canonicalize(p).is_ok_and(|t| system(&t));
            match std::fs::metadata(p) {
                // /dev/stdin, /dev/core and the like: the system's links, never ours to replace.
                _ if system(&real_dir) || points_into_system => refuse("a system link"),
                Ok(t) if !t.is_file() => {
                    refuse("a symlink to something other than a regular file (name it directly)")
                }
                _ => Ok(Target::Replace),
            }
        }
        Ok(m) if m.file_type().is_char_device() || m.file_type().is_fifo() => Ok(Target::InPlace),
        Ok(m) if m.file_type().is_block_device() => refuse("a block device"),
        Ok(m) if m.file_type().is_socket() => refuse("a socket"),
        Ok(m) if m.is_dir() => refuse("a folder"),
        _ => Ok(Target::Replace),
    }
}

/// Checks before any work that the report can be written where asked, so a long run is never
/// lost to a typo in `-o`: the descriptor is open for writing, the device or fifo writable, the
/// folder of a new file writable.
pub fn check_output(path: Option<&Path>) -> Result<(), crate::error::CliError> {
    let Some(p) = path else { return Ok(()) };
    let fail = |e: std::io::Error| {
        crate::error::CliError::Input(format!("cannot write the report to {}: {e}", p.display()))
    };
    match target(p).map_err(fail)? {
        Target::Fd(fd) => output_fd(fd).map(drop).map_err(fail),
        Target::InPlace => {
            // Only asked, not opened: a fifo's reader would take our close for the end.
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default();
            // SAFETY: access(2) on a NUL-terminated path.
            if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
                return Err(fail(std::io::Error::last_os_error()));
            }
            Ok(())
        }
        Target::Replace => new_temp(p)
            .map(|(f, tmp)| {
                drop(f);
                let _ = std::fs::remove_file(tmp);
            })
            .map_err(fail),
    }
}

/// `s` with DEL, the C1 controls and the unseen format characters (`text::unseen`: bidirectional
/// overrides, line separators, zero-width characters...) as `\uXXXX`: JSON allows them raw in
/// strings and serde writes them so, where a terminal would act on them or a reader miss them.
/// Outside strings they never occur in JSON, and the text views have escaped them already, so
/// this is safe for every format.
pub fn json_inert(s: &str) -> std::borrow::Cow<'_, str> {
    let acts = |c: char| matches!(c, '\u{7f}'..='\u{9f}') || text::unseen(c);
    if !s.chars().any(acts) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if acts(c) {
            // Above the BMP (tag characters) as a surrogate pair, as JSON spells those.
            for unit in c.encode_utf16(&mut [0u16; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Refuses a report file inside a folder the sandboxed program may write: the program could
/// replace the report, or swap a folder on its path for a link that sends modelvet's write (as
/// root, perhaps) anywhere.
pub fn check_output_apart(
    path: Option<&Path>,
    writable: &[std::path::PathBuf],
) -> Result<(), crate::error::CliError> {
    let Some(p) = path else { return Ok(()) };
    if fd_path(p).is_some() {
        return Ok(());
    }
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // As written and as resolved now: a link inside the folder (`out/latest -> elsewhere`) is
    // the program's to repoint during the run.
    let cwd = std::env::current_dir().unwrap_or_default();
    let resolved = std::fs::canonicalize(dir).ok();
    // Every folder the path passes through as written (`out/sub/../../r.json` passes through
    // out/sub, which the program could turn into a link), each as written and as resolved now.
    let mut passes: Vec<std::path::PathBuf> = Vec::new();
    let mut acc = std::path::PathBuf::new();
    for c in cwd.join(p).components() {
        acc.push(c);
        passes.push(::sandbox::plan::normalize(&acc));
        if let Ok(real) = std::fs::canonicalize(&acc) {
            passes.push(real);
        }
    }
    for w in writable {
        let w_written = ::sandbox::plan::normalize(&cwd.join(w));
        let w_real = std::fs::canonicalize(w).ok();
        let inside = |w: &Path| {
            passes.iter().any(|q| q.starts_with(w))
                || resolved.as_ref().is_some_and(|d| d.starts_with(w))
        };
        if inside(&w_written) || w_real.as_deref().is_some_and(inside) {
            let w = w_real.unwrap_or(w_written);
            return Err(crate::error::CliError::Input(format!(
                "the report {} may not go inside {}, which the program may write: it could \
                 replace or redirect the report",
                p.display(),
                w.display()
            )));
        }
    }
    Ok(())
}

/// A new file beside `p` for its replacement, created exclusively: never a file or link that was
/// already there (a predictable name in a shared folder could otherwise be a planted link).
fn new_temp(p: &Path) -> std::io::Result<(std::fs::File, std::path::PathBuf)> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut last = None;
    for _ in 0..16 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{seq}.{nanos}.tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temp name")))
}

/// Writes `rendered` where `-o` says (see `Target`), or to stdout, in one piece.
pub fn emit(path: Option<&Path>, rendered: &str) -> std::io::Result<()> {
    let rendered = &json_inert(rendered);
    use std::os::unix::fs::OpenOptionsExt;
    let Some(p) = path else {
        let mut out = std::io::stdout().lock();
        out.write_all(rendered.as_bytes())?;
        return out.flush();
    };
    match target(p)? {
        Target::Fd(fd) => {
            let mut f = std::fs::File::from(output_fd(fd)?.try_clone_to_owned()?);
            f.write_all(rendered.as_bytes())?;
            f.flush()
        }
        Target::InPlace => {
            use std::os::unix::fs::FileTypeExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
                .open(p)?;
            // What was checked may have been swapped since: write only into a device or fifo.
            let kind = f.metadata()?.file_type();
            if !(kind.is_char_device() || kind.is_fifo()) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{} is no longer a device or fifo", p.display()),
                ));
            }
            f.write_all(rendered.as_bytes())?;
            f.flush()
        }
        Target::Replace => {
            let (mut f, tmp) = new_temp(p)?;
            let result = (|| {
                f.write_all(rendered.as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, p)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn descriptor_paths_are_recognised_however_written() {
        for (p, fd) in [
            ("/dev/stdout", Some(1)),
            ("//dev/./stdout", Some(1)),
            ("/dev/stderr", Some(2)),
            ("/dev/fd/7", Some(7)),
            ("/proc/self/fd/3", Some(3)),
            ("/dev/fd/-1", None),
            ("/dev/fd/x", None),
            ("/dev/stdin", None),
            ("report.json", None),
            ("/tmp/dev/stdout", None),
        ] {
            assert_eq!(fd_path(Path::new(p)), fd, "{p}");
        }
    }

    use super::*;
    use probes::finding::Category;

    #[test]
    fn json_keeps_no_character_a_terminal_acts_on() {
        let v =
            serde_json::json!({"path": "/tmp/a\u{202e}b\u{9b}c\u{7f}d\u{2028}e\u{e0001}f\u{200b}"});
        let s = serde_json::to_string(&v).unwrap();
        let safe = json_inert(&s);
        assert!(
            !safe
                .chars()
                .any(|c| ('\u{7f}'..='\u{9f}').contains(&c) || text::unseen(c))
        );
        assert!(safe.contains("\\udb40\\udc01"), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn exit_code_respects_fail_on() {
        let f = vec![Finding::new("r", Severity::Medium, Category::Static, "m")];
        assert_eq!(exit_code(&f, Severity::High), 0);
        assert_eq!(exit_code(&f, Severity::Medium), 1);
        assert_eq!(exit_code(&f, Severity::Info), 1);
        assert_eq!(exit_code(&[], Severity::Info), 0);
    }
}
