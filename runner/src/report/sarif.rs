//! SARIF 2.1.0 view of a scan report, for code-scanning dashboards. Rule ids are the stable ids
//! of `docs/rules.md`; `security-severity` follows SPEC (9.5 / 8.0 / 5.0 / 2.0 / 0.1); each
//! result carries `partialFingerprints` built from the file's sha256 and the rule id, so a
//! dashboard keeps tracking one issue across runs and renames.

use std::collections::BTreeMap;

use probes::finding::{Finding, Severity};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::commands::scan::ScanReport;

pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The scan rules: id, default severity, one-line description. Kept in step with
/// `docs/rules.md`; rules of other readers not listed here are described from their findings.
pub const RULES: &[(&str, Severity, &str)] = &[
    (
        "pickle.unsafe-global",
        Severity::Critical,
        "A pickle imports or calls a global that runs code (os, subprocess, eval, getattr, runpy, pip, nested pickle loads...)",
    ),
    (
        "pickle.network-global",
        Severity::High,
        "A pickle imports or calls a global that opens network connections",
    ),
    (
        "pickle.file-global",
        Severity::High,
        "A pickle imports or calls a global that reads, writes or deletes files",
    ),
    (
        "pickle.unknown-global",
        Severity::High,
        "A pickle imports a global that is not on the allow-list of what model files use",
    ),
    (
        "pickle.dynamic-global",
        Severity::High,
        "STACK_GLOBAL operands are computed at load time, not literal strings",
    ),
    (
        "pickle.ext-code",
        Severity::High,
        "An EXT opcode imports whatever the loading process registered under an extension code",
    ),
    (
        "pickle.indirect-call",
        Severity::High,
        "A call whose callable is the result of another call",
    ),
    (
        "pickle.global-mutation",
        Severity::High,
        "BUILD, SETITEM or APPEND rewrites an imported module or class (monkey-patching)",
    ),
    (
        "pickle.limit-exceeded",
        Severity::High,
        "A bound on hostile input was exceeded (stack, memo, nesting, opcodes, string size)",
    ),
    (
        "pickle.nested-pickle",
        Severity::Medium,
        "A pickle is loaded from inside another pickle stream (joblib object array)",
    ),
    (
        "pickle.malformed",
        Severity::Medium,
        "The unpickler fails at this byte; what came before has run",
    ),
    (
        "pickle.multiple-streams",
        Severity::Low,
        "Another pickle stream follows STOP",
    ),
    (
        "pickle.trailing-data",
        Severity::Info,
        "Bytes after the last pickle stream",
    ),
    (
        "zip.flag-bits",
        Severity::High,
        "Zip general-purpose flag bits that Python's zipfile refuses and torch ignores",
    ),
    (
        "zip.crc-mismatch",
        Severity::High,
        "Zip member CRC-32 mismatch: zipfile raises, torch does not check",
    ),
    (
        "zip.name-mismatch",
        Severity::High,
        "Local and central zip headers name a member differently",
    ),
    (
        "zip.duplicate-name",
        Severity::High,
        "Two zip members share a name; readers disagree on which one wins",
    ),
    (
        "zip.hidden-member",
        Severity::High,
        "A local zip header the central directory does not list",
    ),
    (
        "zip.overlap",
        Severity::High,
        "Zip members share bytes (overlapping-member bomb or parser trick)",
    ),
    (
        "zip.polyglot",
        Severity::High,
        "The file is another format from its start and a zip from its end",
    ),
    (
        "zip.malformed",
        Severity::Medium,
        "Zip structure unreadable; members found by walking local headers",
    ),
    (
        "zip.unsupported-method",
        Severity::Medium,
        "Zip compression method not read by torch nor this scanner",
    ),
    (
        "zip.size-mismatch",
        Severity::Medium,
        "Zip member inflates to a size other than declared",
    ),
    (
        "zip.corrupt-member",
        Severity::Medium,
        "Zip member deflate data is corrupt",
    ),
    (
        "tar.link-escape",
        Severity::High,
        "A tar link member points outside the archive",
    ),
    (
        "tar.malformed",
        Severity::Medium,
        "Tar structure unreadable",
    ),
    (
        "archive.bomb",
        Severity::High,
        "Decompression passed the size budget",
    ),
    (
        "archive.depth-exceeded",
        Severity::High,
        "Archives nested past the depth budget",
    ),
    (
        "archive.limit-exceeded",
        Severity::High,
        "Archive entry count past the budget",
    ),
    (
        "archive.unscanned-compression",
        Severity::Medium,
        "Compressed content this scanner does not decompress (zstd, lz4, legacy joblib ZF)",
    ),
    (
        "archive.corrupt-stream",
        Severity::Medium,
        "A gzip or zlib stream is corrupt",
    ),
    (
        "numpy.object-array",
        Severity::Medium,
        "A .npy object array: its data is a pickle",
    ),
    (
        "numpy.malformed",
        Severity::Medium,
        "A .npy header or data is unreadable",
    ),
];

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    probes::scan::hex(&h.finalize())
}

/// A relative or absolute path as a SARIF `uri` (RFC 3986: unreserved characters and `/` kept,
/// the rest percent-encoded).
pub fn path_uri(path: &str) -> String {
    let mut out = String::new();
    if path.starts_with('/') {
        out.push_str("file://");
    }
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `archive/data.pkl@57` -> (`archive/data.pkl`, Some(57)).
fn split_location(loc: &str) -> (&str, Option<u64>) {
    match loc.rsplit_once('@') {
        Some((m, off)) => match off.parse() {
            Ok(n) => (m, Some(n)),
            Err(_) => (loc, None),
        },
        None => (loc, None),
    }
}

pub fn render(r: &ScanReport) -> String {
    // Rules: the table first (stable indices), then any other rule seen, sorted.
    let mut ids: Vec<String> = RULES.iter().map(|(id, _, _)| id.to_string()).collect();
    let mut extra: BTreeMap<String, Severity> = BTreeMap::new();
    for f in r.findings() {
        if !RULES.iter().any(|(id, _, _)| *id == f.rule) {
            let e = extra.entry(f.rule.clone()).or_insert(f.severity);
            *e = (*e).max(f.severity);
        }
    }
    ids.extend(extra.keys().cloned());
    let rules: Vec<Value> = ids
        .iter()
        .map(|id| {
            let (sev, text) = match RULES.iter().find(|(r, _, _)| r == id) {
                Some((_, s, t)) => (*s, t.to_string()),
                None => (extra[id], format!("modelvet rule {id} (see docs/rules.md)")),
            };
            json!({
                "id": id,
                "name": id.replace(['.', '-'], "_"),
                "shortDescription": {"text": text},
                "fullDescription": {"text": text},
                "help": {"text": format!("{text}. Rule table: docs/rules.md")},
                "defaultConfiguration": {"level": level(sev)},
                "properties": {
                    "security-severity": sev.security_severity(),
                    "tags": ["security", "machine-learning", "model-supply-chain"],
                    "precision": "high"
                }
            })
        })
        .collect();

    let mut results = Vec::new();
    let mut artifacts = Vec::new();
    for (ai, file) in r.files.iter().enumerate() {
        let uri = path_uri(&file.path);
        artifacts.push(json!({
            "location": {"uri": uri},
            "length": file.bytes,
            "hashes": {"sha-256": file.sha256},
            "properties": {"format": file.format}
        }));
        let base = std::path::Path::new(&file.path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for f in &file.findings {
            results.push(result(f, file, &uri, ai, &base, &ids));
        }
    }

    let doc = json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": r.tool.name,
                "version": r.tool.version,
                "semanticVersion": r.tool.version,
                "rules": rules
            }},
            "artifacts": artifacts,
            "results": results,
            "columnKind": "unicodeCodePoints",
            "properties": {"schema": r.schema, "verdict": r.verdict}
        }]
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn result(
    f: &Finding,
    file: &crate::commands::scan::FileEntry,
    uri: &str,
    artifact: usize,
    base: &str,
    ids: &[String],
) -> Value {
    let loc = f.location.clone().unwrap_or_default();
    let (member, offset) = split_location(&loc);
    let mut physical = json!({"artifactLocation": {"uri": uri, "index": artifact}});
    // A byte offset is a region of the file itself only when the finding is not in a member.
    if let Some(off) = offset
        && (member == base || member.is_empty())
    {
        physical["region"] = json!({"byteOffset": off, "byteLength": 1});
    }
    let mut location = json!({"physicalLocation": physical});
    if !loc.is_empty() {
        location["logicalLocations"] = json!([{"fullyQualifiedName": loc, "kind": "member"}]);
    }
    let mut text = f.message.clone();
    if let Some(e) = &f.evidence {
        text.push_str(&format!(" Evidence: {e}"));
    }
    let mut props = json!({"security-severity": f.severity.security_severity(), "severity": f.severity.as_str(), "category": f.category});
    if let Some(e) = &f.evidence {
        props["evidence"] = json!(e);
    }
    json!({
        "ruleId": f.rule,
        "ruleIndex": ids.iter().position(|i| *i == f.rule).unwrap_or(0),
        "level": level(f.severity),
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {
            "modelvet/fileRule/v1": fingerprint(&[&file.sha256, &f.rule]),
            "modelvet/fileRuleLocation/v1": fingerprint(&[&file.sha256, &f.rule, &loc])
        },
        "properties": props
    })
}
