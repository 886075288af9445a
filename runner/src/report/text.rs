//! Shared pieces of the readable text view.

use probes::finding::Finding;
use std::fmt::Write;

/// One block per finding: `SEVERITY rule  location\n    message\n    evidence`.
pub fn findings(out: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        out.push_str("  no findings\n");
        return;
    }
    for f in findings {
        let _ = write!(
            out,
            "  {:<8} {}",
            f.severity.as_str().to_uppercase(),
            f.rule
        );
        if let Some(loc) = &f.location {
            let _ = write!(out, "  {loc}");
        }
        let _ = writeln!(out, "\n           {}", f.message);
        if let Some(ev) = &f.evidence {
            let _ = writeln!(out, "           evidence: {ev}");
        }
    }
}
