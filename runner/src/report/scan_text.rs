//! The readable view of a scan report: one block per file (path, format, size, sha256, worst
//! severity, then its findings with their evidence), then a one-line summary and the verdict.

use std::fmt::Write;

use crate::commands::scan::ScanReport;

use super::text;

pub fn render(r: &ScanReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "modelvet scan ({})", r.schema);
    for f in &r.files {
        let _ = writeln!(
            out,
            "\n{}\n  format {}  {} bytes  sha256 {}  max {}",
            text::inert(&f.path),
            f.format,
            f.bytes,
            f.sha256,
            f.max_severity
        );
        text::findings(&mut out, &f.findings);
    }
    let s = &r.summary.by_severity;
    let _ = writeln!(
        out,
        "\n{} file(s): {} critical, {} high, {} medium, {} low, {} info; verdict {}",
        r.summary.files, s.critical, s.high, s.medium, s.low, s.info, r.verdict
    );
    out
}
