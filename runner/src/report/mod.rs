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
    /// An open descriptor of ours, named as `/dev/stdout`, `/dev/fd/N` or `/proc/self/fd/N`:
    /// written through the descriptor (a `>> log` stays an append, a socket stays a socket).
    Fd(i32),
    /// A character device or a fifo named directly (`/dev/null`, `mkfifo`): opened without
    /// following links and written in place. Replacing it would put a regular file where
    /// `/dev/null` was, for every program on the host.
    InPlace,
    /// Anything else (a new file, a regular file, a symlink): written to a new temp file beside
    /// it and renamed over it, so a reader never sees half a report. A symlink is replaced, not
    /// followed: run as root, `-o` through a link someone else planted must not reach the file
    /// it names.
    Replace,
}

/// Classifies `-o PATH` without following a symlink at its last component.
fn target(p: &Path) -> std::io::Result<Target> {
    use std::os::unix::fs::FileTypeExt;
    let s = p.to_string_lossy();
    let fd = match s.as_ref() {
        "/dev/stdout" => Some(1),
        "/dev/stderr" => Some(2),
        _ => s
            .strip_prefix("/dev/fd/")
            .or_else(|| s.strip_prefix("/proc/self/fd/"))
            .and_then(|n| n.parse::<i32>().ok()),
    };
    if let Some(fd) = fd {
        return Ok(Target::Fd(fd));
    }
    let refuse = |what: &str| {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is {what}", p.display()),
        ))
    };
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_char_device() || m.file_type().is_fifo() => Ok(Target::InPlace),
        Ok(m) if m.file_type().is_block_device() => refuse("a block device"),
        Ok(m) if m.file_type().is_socket() => refuse("a socket"),
        Ok(m) if m.is_dir() => refuse("a folder"),
        _ => Ok(Target::Replace),
    }
}

/// Checks before any work that the report can be written where asked, so a long run is never
/// lost to a typo in `-o`: the descriptor is open, the device or fifo writable, the folder of a
/// new file writable.
pub fn check_output(path: Option<&Path>) -> Result<(), crate::error::CliError> {
    let Some(p) = path else { return Ok(()) };
    let fail = |e: std::io::Error| {
        crate::error::CliError::Input(format!("cannot write the report to {}: {e}", p.display()))
    };
    match target(p).map_err(fail)? {
        Target::Fd(fd) => {
            // SAFETY: F_GETFL on an integer only queries the descriptor table.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags == -1 {
                return Err(fail(std::io::Error::last_os_error()));
            }
            if flags & libc::O_ACCMODE == libc::O_RDONLY {
                return Err(fail(std::io::Error::from_raw_os_error(libc::EBADF)));
            }
            Ok(())
        }
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
    use std::os::unix::fs::OpenOptionsExt;
    let Some(p) = path else {
        let mut out = std::io::stdout().lock();
        out.write_all(rendered.as_bytes())?;
        return out.flush();
    };
    match target(p)? {
        Target::Fd(fd) => {
            // SAFETY: `fd` was checked open and writable by `check_output`; the borrow lasts for
            // this call only and the descriptor stays ours (ManuallyDrop: never closed here).
            let mut f = std::mem::ManuallyDrop::new(unsafe {
                <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd)
            });
            f.write_all(rendered.as_bytes())?;
            f.flush()
        }
        Target::InPlace => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(p)?;
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
    use super::*;
    use probes::finding::Category;

    #[test]
    fn exit_code_respects_fail_on() {
        let f = vec![Finding::new("r", Severity::Medium, Category::Static, "m")];
        assert_eq!(exit_code(&f, Severity::High), 0);
        assert_eq!(exit_code(&f, Severity::Medium), 1);
        assert_eq!(exit_code(&f, Severity::Info), 1);
        assert_eq!(exit_code(&[], Severity::Info), 0);
    }
}
