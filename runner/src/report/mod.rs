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

/// Checks before any work that the report can be written where asked (its folder exists and is
/// writable), so a long run is never lost to a typo in `-o`.
pub fn check_output(path: Option<&Path>) -> Result<(), crate::error::CliError> {
    let Some(p) = path else { return Ok(()) };
    if is_special(p) {
        // A device, pipe or socket the user named (-o /dev/null, -o /dev/stdout, a fifo), written
        // in place. Only asked, not opened: a fifo's reader would take our close for the end.
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default();
        // SAFETY: access(2) on a NUL-terminated path.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
            return Err(crate::error::CliError::Input(format!(
                "cannot write the report to {}: {}",
                p.display(),
                std::io::Error::last_os_error()
            )));
        }
        return Ok(());
    }
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".modelvet-write-check.{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(crate::error::CliError::Input(format!(
            "cannot write the report to {}: {e}",
            p.display()
        ))),
    }
}

/// Whether `path` (or what it links to) exists and is not a regular file or a folder: a device,
/// a pipe, a socket. Such a file is written in place; replacing it (the temp file and rename of
/// a regular report) would put a regular file where `/dev/null` was.
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Writes `rendered` to `path` atomically (temp file + rename), or to stdout in one write.
/// A reader never sees half a report. A symlink to a regular file is followed (the file it names
/// is replaced, the link stays); a device, pipe or socket is written in place.
pub fn emit(path: Option<&Path>, rendered: &str) -> std::io::Result<()> {
    match path {
        Some(p) if is_special(p) => {
            let mut f = std::fs::OpenOptions::new().write(true).open(p)?;
            f.write_all(rendered.as_bytes())?;
            f.flush()
        }
        Some(p) => {
            let resolved = if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_symlink()) {
                std::fs::canonicalize(p).ok()
            } else {
                None
            };
            let p = resolved.as_deref().unwrap_or(p);
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
            let result = (|| {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(rendered.as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, p)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(rendered.as_bytes())?;
            out.flush()
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
