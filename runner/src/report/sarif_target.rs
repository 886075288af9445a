//! SARIF for the single-target reports (probe, jail, detonate): the target becomes the one
//! artifact and the findings its results, rendered by the same writer as `scan`.

use probes::finding::Finding;

use crate::commands::scan::{FileEntry, ScanReport};

pub fn render(
    schema: &'static str,
    path: &str,
    format: &'static str,
    sha256: &str,
    bytes: u64,
    findings: &[Finding],
) -> String {
    let max_severity = findings
        .iter()
        .map(|f| f.severity)
        .max()
        .map_or("none", |s| s.as_str());
    let entry = FileEntry {
        path: path.to_string(),
        format,
        sha256: sha256.to_string(),
        bytes,
        max_severity,
        findings: findings.to_vec(),
    };
    let mut r = ScanReport::new(vec![entry]);
    r.schema = schema;
    super::sarif::render(&r)
}
