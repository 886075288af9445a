//! `modelvet scan PATH...`: walks the paths (directories recursively, in a stable order), scans
//! every file statically with `probes::scan`, and renders the `modelvet.scan/1` report as JSON,
//! SARIF or text. Nothing from the files is ever run.

use std::path::{Path, PathBuf};

use probes::finding::{Finding, Severity, verdict};
use probes::scan::{FileScan, scan_file_bytes, scan_path};
use serde::Serialize;

use crate::cli::{Format, ScanArgs};
use crate::error::{CliError, Result};
use crate::report::{Tool, emit, exit_code, sarif, scan_text, tool};

pub const SCHEMA: &str = "modelvet.scan/1";

/// The scan report: SPEC's `modelvet.scan/1`. JSON, SARIF and text are views of it.
#[derive(Debug, Serialize)]
pub struct ScanReport {
    pub schema: &'static str,
    pub tool: Tool,
    pub verdict: &'static str,
    pub files: Vec<FileEntry>,
    pub summary: Summary,
}

#[derive(Debug, Serialize)]
pub struct FileEntry {
    pub path: String,
    pub format: &'static str,
    pub sha256: String,
    pub bytes: u64,
    pub max_severity: &'static str,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub files: usize,
    pub by_severity: BySeverity,
}

#[derive(Debug, Default, Serialize)]
pub struct BySeverity {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub info: usize,
}

impl From<FileScan> for FileEntry {
    fn from(s: FileScan) -> Self {
        let max_severity = s
            .findings
            .iter()
            .map(|f| f.severity)
            .max()
            .map_or("none", Severity::as_str);
        FileEntry {
            path: s.path,
            format: s.format,
            sha256: s.sha256,
            bytes: s.bytes,
            max_severity,
            findings: s.findings,
        }
    }
}

impl ScanReport {
    pub fn new(files: Vec<FileEntry>) -> Self {
        let mut by = BySeverity::default();
        for f in files.iter().flat_map(|f| &f.findings) {
            *match f.severity {
                Severity::Critical => &mut by.critical,
                Severity::High => &mut by.high,
                Severity::Medium => &mut by.medium,
                Severity::Low => &mut by.low,
                Severity::Info => &mut by.info,
            } += 1;
        }
        let all: Vec<Finding> = files
            .iter()
            .flat_map(|f| f.findings.iter().cloned())
            .collect();
        ScanReport {
            schema: SCHEMA,
            tool: tool(),
            verdict: verdict(&all),
            summary: Summary {
                files: files.len(),
                by_severity: by,
            },
            files,
        }
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.files.iter().flat_map(|f| &f.findings)
    }
}

pub fn run(args: ScanArgs) -> Result<u8> {
    crate::report::check_output(args.common.output.as_deref())?;
    let mut paths = Vec::new();
    for p in &args.paths {
        collect(p, &mut paths)?;
    }
    let mut files = Vec::with_capacity(paths.len());
    for p in &paths {
        files.push(FileEntry::from(scan_one(p)?));
    }
    let report = ScanReport::new(files);
    let rendered = match args.common.format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&report)
                .map_err(|e| CliError::Input(format!("cannot render the report: {e}")))?;
            s.push('\n');
            s
        }
        Format::Sarif => sarif::render(&report),
        Format::Text => crate::report::text::terminal_safe(scan_text::render(&report)),
    };
    emit(args.common.output.as_deref(), &rendered)?;
    let all: Vec<Finding> = report.findings().cloned().collect();
    Ok(exit_code(&all, args.common.fail_on.0))
}

/// Files under `path` in a stable order. Symlinked directories are not followed (a link loop
/// would never end); symlinked files are scanned as what they point to.
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_dir() {
        // The entry's type comes from readdir (d_type), so a directory of thousands of files
        // costs no stat per file; only entries whose type is unknown are stat'ed.
        let mut entries: Vec<(PathBuf, Option<std::fs::FileType>)> = std::fs::read_dir(path)
            .map_err(|e| CliError::Input(format!("cannot read directory {}: {e}", path.display())))?
            .filter_map(|e| e.ok().map(|e| (e.path(), e.file_type().ok())))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (e, kind) in entries {
            let kind = match kind {
                Some(k) => k,
                None => std::fs::symlink_metadata(&e)
                    .map_err(|err| CliError::Input(format!("cannot read {}: {err}", e.display())))?
                    .file_type(),
            };
            if kind.is_dir() {
                collect(&e, out)?;
            } else if kind.is_symlink() {
                if std::fs::metadata(&e).map(|t| t.is_file()).unwrap_or(false) {
                    out.push(e);
                }
            } else if kind.is_file() {
                out.push(e);
            }
        }
    } else if meta.file_type().is_symlink() {
        let target = std::fs::metadata(path)
            .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?;
        if target.is_dir() {
            collect(
                &std::fs::canonicalize(path)
                    .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?,
                out,
            )?;
        } else {
            out.push(path.to_path_buf());
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Files from this size on are mapped rather than read, so a 20 GB checkpoint costs address
/// space, not 20 GB of memory.
const MAP_FROM_BYTES: u64 = 64 << 20;

fn scan_one(path: &Path) -> Result<FileScan> {
    let unreadable =
        |e: std::io::Error| CliError::Input(format!("cannot read {}: {e}", path.display()));
    let len = std::fs::metadata(path).map_err(unreadable)?.len();
    if len < MAP_FROM_BYTES {
        return scan_path(path).map_err(|e| CliError::Input(e.to_string()));
    }
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let map = Mapped::new(&file, len).map_err(unreadable)?;
    Ok(scan_file_bytes(path, map.bytes()))
}

/// A read-only private mapping of a whole file, unmapped on drop.
struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapped {
    fn new(file: &std::fs::File, len: u64) -> std::io::Result<Mapped> {
        use std::os::fd::AsRawFd;
        let len =
            usize::try_from(len).map_err(|_| std::io::Error::other("file too large to map"))?;
        // SAFETY: a fresh read-only private mapping of `len` bytes of an open file descriptor;
        // the kernel picks the address, nothing else aliases it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapped { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live PROT_READ mapping of `len` bytes owned by `self` (unmapped
        // only in drop), so the slice is valid for `self`'s lifetime. A file truncated by
        // someone else while mapped raises SIGBUS: the scan dies, it never reports clean.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`; no slice of it outlives `self`.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}
