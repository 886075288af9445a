//! The pickle scanner: a symbolic emulation of CPython's C unpickler (protocols 0-5) that runs
//! a file's pickle streams without importing or calling anything, resolves every global the
//! load would import, and judges each against a default-deny policy. Evidence is the call the
//! load would make, rebuilt from the stream (`os.system('id')`), with its byte offset.

pub mod policy;
pub mod value;
pub mod vm;

use crate::finding::{Category, Finding, Severity};
pub use policy::{DenyClass, Judgment, judge};
pub use vm::{PickleError, ReadMode, Shared, Stream};

/// Opcodes run per stream. Each opcode consumes at least one byte, so time is already linear
/// in the input; this caps it for inputs far larger than any real pickle.
pub const MAX_OPCODES: u64 = 200_000_000;
/// Values on the stack (and MARKs on the mark stack): defends against a flat push bomb.
pub const MAX_STACK: usize = 2_000_000;
/// Memo entries: defends against memo growth (CPython itself allocates `2 * index` slots for a
/// LONG_BINPUT index, which a hostile file uses to exhaust memory).
pub const MAX_MEMO: usize = 2_000_000;
/// Nesting of containers and calls: defends against recursion in rendering and dropping.
pub const MAX_NESTING: u16 = 200;
/// Declared length of one string, bytes or line: defends against absurd lengths.
pub const MAX_STRING_BYTES: u64 = 4 << 30;
/// Distinct globals per file: defends against a table blow-up from generated names.
pub const MAX_GLOBALS: usize = 10_000;
/// Pickle streams read from one file (legacy torch reads five in a row).
pub const MAX_STREAMS: usize = 16;
/// Pickles nested inside a pickle (joblib object arrays).
pub const MAX_PICKLE_NESTING: u8 = 4;
/// Items of a container and characters of a string kept for evidence; the rest is counted.
pub const MAX_KEPT_ITEMS: usize = 16;
pub const MAX_KEPT_TEXT: usize = 200;
/// Length up to which bytes and string literals are kept whole, so a payload handed to a
/// nested `pickle.loads` can be scanned too (nested payloads are small; model data is not
/// passed to loaders).
pub const MAX_NESTED_LITERAL: usize = 64 << 10;
/// Characters of one piece of evidence.
pub const MAX_EVIDENCE_CHARS: usize = 400;
/// Structural notes kept per file: a hostile file can make one fire at every opcode.
pub const MAX_NOTES: usize = 64;

/// The bounds, as one value so tests can shrink them.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_opcodes: u64,
    pub max_stack: usize,
    pub max_memo: usize,
    pub max_nesting: u16,
    pub max_string_bytes: u64,
    pub max_globals: usize,
    pub max_streams: usize,
    pub max_pickle_nesting: u8,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_opcodes: MAX_OPCODES,
            max_stack: MAX_STACK,
            max_memo: MAX_MEMO,
            max_nesting: MAX_NESTING,
            max_string_bytes: MAX_STRING_BYTES,
            max_globals: MAX_GLOBALS,
            max_streams: MAX_STREAMS,
            max_pickle_nesting: MAX_PICKLE_NESTING,
        }
    }
}

/// The pickled magic number that opens a legacy (pre-zip) torch checkpoint, which holds five
/// pickles in a row followed by raw storage bytes.
pub const LEGACY_TORCH_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
const LEGACY_TORCH_STREAMS: usize = 5;

/// What scanning one buffer as pickle streams found.
#[derive(Debug, Clone, Default)]
pub struct PickleScan {
    pub findings: Vec<Finding>,
    /// The buffer is a pickle: its first stream reached STOP, or imported or called something.
    pub recognized: bool,
    pub streams: usize,
    /// A joblib `NumpyArrayWrapper` was seen.
    pub joblib: bool,
    /// A legacy torch checkpoint (magic number first).
    pub legacy_torch: bool,
    /// Where the last stream ended.
    pub end: usize,
    /// Every import named a real Python module and attribute (dotted identifiers), and at least
    /// one of them is not a plain data type: bytes that are also something else (a tar, an HDF5
    /// file, text) only count as a pickle when this holds, as an import of a garbled name fails
    /// in the unpickler before anything runs.
    pub imports_code: bool,
}

impl PickleScan {
    /// Whether these bytes, read as a pickle, import code by real names: a critical finding (a
    /// known module's callable, spelt exactly), or only imports of dotted identifiers with at
    /// least one not plain data. Bytes that are something else (a tar, an HDF5 file, text)
    /// count as a pickle only then: an import of a garbled name fails before anything runs.
    pub fn names_code(&self) -> bool {
        self.imports_code
            || self
                .findings
                .iter()
                .any(|f| f.severity == Severity::Critical)
    }
}

/// Whether `b` is a pickle opcode (protocols 0 to 5): `pickle.load` starts with whatever
/// opcode comes first, so a stream may open with any of them.
pub fn is_opcode(b: u8) -> bool {
    b"(.0123FIJKLMNPQRSTUVXabcdeghijlopqrstu}])GBC".contains(&b) || (0x80..=0x98).contains(&b)
}

/// A cheap look at the first bytes: could this be a pickle stream at all?
pub fn sniff(data: &[u8]) -> bool {
    match data {
        [0x80, p, ..] => *p <= 5,
        [first, ..] => b"(}])cNIJKLMSUVXFGTBCq".contains(first),
        [] => false,
    }
}

/// Scans `data` as consecutive pickle streams. `location` names the file or member in findings
/// (`archive/data.pkl@57`).
pub fn scan(data: &[u8], location: &str) -> PickleScan {
    scan_from(data, 0, location, &Limits::default())
}

pub fn scan_with(data: &[u8], location: &str, limits: &Limits) -> PickleScan {
    scan_from(data, 0, location, limits)
}

/// Scans the streams that start at `start` (offsets in findings stay relative to `data`).
/// When a read straddles a FRAME's end, the file is scanned a second time the way
/// `pickle.load(file)` reads it, and the findings of both readings are reported.
pub fn scan_from(data: &[u8], start: usize, location: &str, limits: &Limits) -> PickleScan {
    scan_nested(data, start, location, limits, 0)
}

fn scan_nested(
    data: &[u8],
    start: usize,
    location: &str,
    limits: &Limits,
    depth: u8,
) -> PickleScan {
    let (mut out, crossed, nested) = run_streams(data, start, location, limits, ReadMode::Linear);
    // Payloads handed to a nested pickle.loads: scanned as pickles of their own.
    for (off, payload) in nested {
        let loc = format!("{location}@{off}:loads");
        if depth + 1 >= limits.max_pickle_nesting {
            out.findings.push(
                Finding::new(
                    "pickle.limit-exceeded",
                    Severity::High,
                    Category::Resource,
                    format!(
                        "pickles nested more than {} deep: the innermost is not scanned",
                        limits.max_pickle_nesting
                    ),
                )
                .at(loc),
            );
            continue;
        }
        let inner = scan_nested(&payload, 0, &loc, limits, depth + 1);
        out.findings.extend(inner.findings);
    }
    if let Some(off) = crossed {
        let (file, _, _) = run_streams(data, start, location, limits, ReadMode::File);
        for f in file.findings {
            if !out.findings.contains(&f) {
                out.findings.push(f);
            }
        }
        out.recognized |= file.recognized;
        out.imports_code |= file.imports_code;
        out.joblib |= file.joblib;
        out.findings.push(
            Finding::new(
                "pickle.frame-crossing",
                Severity::High,
                Category::Static,
                "a read straddles the end of a FRAME: pickle.loads(bytes) decodes on linearly, pickle.load(file) (torch.load of data.pkl) drops the frame's rest and reads after it; both readings are reported",
            )
            .at(format!("{location}@{off}")),
        );
    }
    out
}

/// What `run_streams` found: the scan, the offset of a read that straddled a FRAME's end (if
/// one did), and the nested byte strings (offset, bytes) to scan as pickles of their own.
type Streams = (PickleScan, Option<usize>, Vec<(usize, std::rc::Rc<[u8]>)>);

fn run_streams(
    data: &[u8],
    start: usize,
    location: &str,
    limits: &Limits,
    mode: ReadMode,
) -> Streams {
    let mut crossed = None;
    let mut shared = Shared::default();
    let head = data.get(start..).unwrap_or_default();
    let legacy_torch = head.starts_with(LEGACY_TORCH_MAGIC);
    let max_streams = if legacy_torch {
        LEGACY_TORCH_STREAMS
    } else {
        limits.max_streams
    };
    let mut out = PickleScan {
        legacy_torch,
        ..PickleScan::default()
    };
    let mut extra: Vec<Finding> = Vec::new();
    let at = |off: usize| format!("{location}@{off}");
    let mut pos = start;
    while pos < data.len() && out.streams < max_streams {
        let s = vm::Vm::with_mode(data, pos, limits, &mut shared, 0, mode).run();
        if crossed.is_none() {
            crossed = s.crossed_at;
        }
        let first = out.streams == 0;
        out.streams += 1;
        out.end = s.end;
        if first {
            let limit = matches!(s.error, Some(PickleError::Limit { .. }));
            out.recognized = s.error.is_none()
                || s.saw_code
                || limit
                || (sniff(head) && head[0] == 0x80 && s.opcodes > 2);
            if !out.recognized {
                let none = PickleScan {
                    recognized: false,
                    ..PickleScan::default()
                };
                return (none, None, Vec::new());
            }
        } else if s.error.is_some() && !s.saw_code {
            // Bytes after the last STOP that do not form a pickle: ignored by every loader.
            out.streams -= 1;
            if !legacy_torch {
                extra.push(
                    Finding::new(
                        "pickle.trailing-data",
                        Severity::Info,
                        Category::Integrity,
                        format!(
                            "{} bytes after the last pickle stream are not a pickle",
                            data.len() - pos
                        ),
                    )
                    .at(at(pos)),
                );
            }
            break;
        } else if !legacy_torch {
            extra.push(
                Finding::new(
                    "pickle.multiple-streams",
                    Severity::Low,
                    Category::Static,
                    "another pickle stream follows STOP: a loader that calls load() again runs it too",
                )
                .at(at(s.start)),
            );
        }
        if let Some(e) = &s.error {
            extra.push(error_finding(e, &at, shared.has_unsafe()));
            break;
        }
        pos = s.end;
    }
    out.joblib = shared.joblib;
    // An EXT code alone (random bytes often start with EXT1) names nothing: a named import
    // that is not plain data must be there.
    out.imports_code = shared
        .globals
        .iter()
        .any(|g| g.judgment != Judgment::Allowed)
        && shared
            .globals
            .iter()
            .all(|g| is_dotted_identifier(&g.module) && is_dotted_identifier(&g.name));
    out.findings = findings(&shared, &at);
    out.findings.extend(extra);
    let nested = std::mem::take(&mut shared.nested);
    (out, crossed, nested)
}

/// `a.b.c` where every part is a Python identifier (ASCII letters, digits and `_`, or any
/// non-ASCII letter, not starting with a digit).
fn is_dotted_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        })
}

fn error_finding(e: &PickleError, at: &dyn Fn(usize) -> String, ran_unsafe: bool) -> Finding {
    match e {
        PickleError::Limit { .. } => Finding::new(
            "pickle.limit-exceeded",
            Severity::High,
            Category::Resource,
            format!(
                "{e}: the scan of this stream stops here; no real pickle comes near this bound"
            ),
        )
        .at(at(e.offset())),
        _ => {
            let mut msg = format!("the unpickler fails here ({e})");
            if ran_unsafe {
                msg.push_str(
                    "; everything before this byte has already run when the error is raised",
                );
            }
            Finding::new(
                "pickle.malformed",
                Severity::Medium,
                Category::Integrity,
                msg,
            )
            .at(at(e.offset()))
        }
    }
}

fn note_severity(rule: &str) -> (Severity, Category) {
    match rule {
        "pickle.indirect-call"
        | "pickle.dynamic-global"
        | "pickle.ext-code"
        | "pickle.global-mutation" => (Severity::High, Category::Static),
        "pickle.nested-pickle" => (Severity::Medium, Category::Static),
        _ => (Severity::Medium, Category::Integrity),
    }
}

fn findings(shared: &Shared, at: &dyn Fn(usize) -> String) -> Vec<Finding> {
    let mut out = Vec::new();
    for g in &shared.globals {
        let Some(severity) = g.judgment.severity() else {
            continue;
        };
        let qual = format!("{}.{}", g.module, g.name);
        let why = match g.judgment {
            Judgment::Denied { reason, .. } => reason.to_string(),
            _ => "not on the allow-list of what model files import".to_string(),
        };
        let (offset, evidence, verb) = match &g.evidence {
            Some((off, call)) => (*off, call.clone(), "imports and calls"),
            None => (g.offset, qual.clone(), "imports"),
        };
        let message = format!("the load {verb} {qual} via {} ({why})", g.opcode);
        out.push(
            Finding::new(g.judgment.rule(), severity, Category::Static, message)
                .at(at(offset))
                .with_evidence(evidence),
        );
    }
    for n in &shared.notes {
        let (severity, category) = note_severity(n.rule);
        let mut f = Finding::new(n.rule, severity, category, n.message.clone()).at(at(n.offset));
        if let Some(e) = &n.evidence {
            f = f.with_evidence(e.clone());
        }
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worst(s: &PickleScan) -> Option<Severity> {
        s.findings.iter().map(|f| f.severity).max()
    }

    fn rules(s: &PickleScan) -> Vec<&str> {
        s.findings.iter().map(|f| f.rule.as_str()).collect()
    }

    #[test]
    fn protocol0_global_reduce_is_reconstructed() {
        let p = b"cos\nsystem\n(S'touch /tmp/x'\ntR.";
        let s = scan(p, "m.pkl");
        assert!(s.recognized);
        let f = &s.findings[0];
        assert_eq!(f.rule, "pickle.unsafe-global");
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.evidence.as_deref(), Some("os.system('touch /tmp/x')"));
        assert_eq!(f.location.as_deref(), Some("m.pkl@29"));
    }

    #[test]
    fn stack_global_takes_binstring_operands_and_memo() {
        // SHORT_BINSTRING operands, memoized and fetched back, then STACK_GLOBAL.
        let mut p = vec![0x80, 4];
        p.extend(b"U\x05posixq\x00U\x06systemq\x01h\x00h\x01\x93");
        p.extend(b"\x8c\x02id\x85R.");
        let s = scan(&p, "x");
        assert_eq!(worst(&s), Some(Severity::Critical));
        assert_eq!(
            s.findings[0].evidence.as_deref(),
            Some("posix.system('id')")
        );
    }

    #[test]
    fn memo_uses_explicit_indices() {
        // PUT 7 then GET 7 works; GET 0 (what a counter would give) fails.
        let ok = b"\x80\x02K\x01r\x07\x00\x00\x000j\x07\x00\x00\x00.";
        assert!(scan(ok, "x").findings.is_empty());
        let bad = b"\x80\x02K\x01r\x07\x00\x00\x000h\x00.";
        let s = scan(bad, "x");
        assert!(rules(&s).contains(&"pickle.malformed"), "{:?}", s.findings);
    }

    #[test]
    fn frames_are_read_linearly_like_the_c_unpickler() {
        // A FRAME of 3 bytes, but the SHORT_BINUNICODE inside it runs past the frame's end.
        let mut p = vec![0x80, 4, 0x95, 3, 0, 0, 0, 0, 0, 0, 0];
        p.extend(b"\x8c\x02osK\x00\x8c\x06system\x93");
        // drop the K\x00 again: POP
        let mut q = vec![0x80, 4, 0x95, 3, 0, 0, 0, 0, 0, 0, 0];
        q.extend(b"\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.");
        let s = scan(&q, "x");
        assert_eq!(worst(&s), Some(Severity::Critical));
        // A frame longer than the data is a truncation error before anything runs.
        let r = b"\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00\x8c\x02os.";
        let s = scan(r, "x");
        assert!(!rules(&s).contains(&"pickle.unsafe-global"));
        let _ = p;
    }

    #[test]
    fn a_read_across_a_frame_end_is_decoded_both_ways() {
        // Linear (pickle.loads): the SHORT_BINUNICODE swallows the payload and STOP returns {}.
        // File (pickle.load(BytesIO), torch): the string comes from after the frame, and the
        // payload runs.
        let mut p = vec![
            0x80, 4, b'}', 0x95, 4, 0, 0, 0, 0, 0, 0, 0, 0x8c, 11, b'a', b'b',
        ];
        p.extend(b"123456789");
        p.extend(b"0.");
        p.extend(b"0\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.");
        let s = scan(&p, "x");
        assert!(
            rules(&s).contains(&"pickle.frame-crossing"),
            "{:?}",
            s.findings
        );
        assert!(
            s.findings
                .iter()
                .any(|f| f.evidence.as_deref() == Some("os.system('id')"))
        );
    }

    #[test]
    fn nested_loads_payloads_are_scanned() {
        // pickle.loads(b"...subprocess.getoutput('id')...") and the same via _codecs.encode.
        let inner = b"csubprocess\ngetoutput\n(S'id'\ntR.";
        let mut p = b"\x80\x02cpickle\nloads\nC".to_vec();
        p.push(inner.len() as u8);
        p.extend(inner);
        p.extend(b"\x85R.");
        let s = scan(&p, "x");
        assert!(
            s.findings.iter().any(
                |f| f.evidence.as_deref() == Some("subprocess.getoutput('id')")
                    && f.location.as_deref().is_some_and(|l| l.starts_with("x@"))
            ),
            "{:?}",
            s.findings
        );
        let mut q = b"\x80\x02cpickle\nloads\nc_codecs\nencode\nX".to_vec();
        q.extend((inner.len() as u32).to_le_bytes());
        q.extend(inner);
        q.extend(b"X\x06\x00\x00\x00latin1\x86R\x85R.");
        let s = scan(&q, "x");
        assert!(
            s.findings
                .iter()
                .any(|f| f.evidence.as_deref() == Some("subprocess.getoutput('id')")),
            "{:?}",
            s.findings
        );
    }

    #[test]
    fn inst_and_obj_import_and_call() {
        let inst = b"(S'id'\nios\nsystem\n.";
        let s = scan(inst, "x");
        assert_eq!(s.findings[0].evidence.as_deref(), Some("os.system('id')"));
        let obj = b"(cos\nsystem\nS'id'\no.";
        let s = scan(obj, "x");
        assert_eq!(s.findings[0].evidence.as_deref(), Some("os.system('id')"));
    }

    #[test]
    fn dotted_names_resolve() {
        let p = b"\x80\x04\x8c\x07pathlib\x8c\x09os.system\x93\x8c\x02id\x85R.";
        let s = scan(p, "x");
        assert_eq!(worst(&s), Some(Severity::Critical));
    }

    #[test]
    fn newobj_ex_and_build_are_followed() {
        let p = b"\x80\x04\x8c\x0asubprocess\x8c\x05Popen\x93)}\x92}b.";
        let s = scan(p, "x");
        assert_eq!(worst(&s), Some(Severity::Critical));
        assert!(
            s.findings[0]
                .evidence
                .as_deref()
                .unwrap_or("")
                .contains("Popen.__new__")
        );
    }

    #[test]
    fn ext_codes_resolve_through_add_extension() {
        let p = b"ccopyreg\nadd_extension\n(S'os'\nS'system'\nK\x07tR0\x82\x07(S'id'\ntR.";
        let s = scan(p, "x");
        assert!(
            s.findings.iter().any(|f| f.severity == Severity::Critical
                && f.evidence.as_deref() == Some("os.system('id')")),
            "{:?}",
            s.findings
        );
        let unregistered = b"\x80\x02\x82\x09)R.";
        assert!(rules(&scan(unregistered, "x")).contains(&"pickle.ext-code"));
    }

    #[test]
    fn persistent_ids_do_not_fail_the_stream() {
        let p = b"\x80\x02(X\x07\x00\x00\x00storageq\x00K\x00tQ.";
        let s = scan(p, "x");
        assert!(s.recognized);
        assert!(s.findings.is_empty(), "{:?}", s.findings);
    }

    #[test]
    fn every_stream_is_read_and_garbage_reported() {
        let mut p = b"\x80\x02K\x01.".to_vec();
        p.extend(b"cos\nsystem\n(S'id'\ntR.");
        p.extend(b"\xff\xfe garbage");
        let s = scan(&p, "x");
        assert_eq!(s.streams, 2);
        assert!(rules(&s).contains(&"pickle.unsafe-global"));
        assert!(rules(&s).contains(&"pickle.trailing-data"));
        // Payload then garbage inside the same stream: the call is reported, then the error.
        let q = b"cos\nsystem\n(S'id'\ntR\xff";
        let s = scan(q, "x");
        assert!(rules(&s).contains(&"pickle.unsafe-global"));
        assert!(rules(&s).contains(&"pickle.malformed"));
    }

    #[test]
    fn stack_underflow_respects_marks() {
        // POP below a MARK pops the mark (CPython), a second REDUCE underflows at the fence.
        let p = b"\x80\x02(0N.";
        assert!(scan(p, "x").findings.is_empty());
        let q = b"\x80\x02N(R.";
        assert!(rules(&scan(q, "x")).contains(&"pickle.malformed"));
    }

    #[test]
    fn bounds_are_findings_not_crashes() {
        let tight = Limits {
            max_stack: 100,
            max_nesting: 10,
            max_memo: 4,
            max_opcodes: 1000,
            ..Limits::default()
        };
        let push_bomb: Vec<u8> = std::iter::once(0x80)
            .chain(std::iter::once(2))
            .chain(std::iter::repeat_n(b'N', 200))
            .collect();
        assert!(rules(&scan_with(&push_bomb, "x", &tight)).contains(&"pickle.limit-exceeded"));
        let mut nest = vec![0x80, 2];
        for _ in 0..50 {
            nest.extend(b"]");
        }
        for _ in 0..49 {
            nest.extend(b"a");
        }
        nest.push(b'.');
        assert!(rules(&scan_with(&nest, "x", &tight)).contains(&"pickle.limit-exceeded"));
        let mut memo = vec![0x80, 2, b'N'];
        for i in 0..10u8 {
            memo.extend([b'q', i]);
        }
        memo.push(b'.');
        assert!(rules(&scan_with(&memo, "x", &tight)).contains(&"pickle.limit-exceeded"));
        let spin: Vec<u8> = [0x80, 2]
            .into_iter()
            .chain((0..2000).flat_map(|_| [b'N', b'0']))
            .collect();
        assert!(rules(&scan_with(&spin, "x", &tight)).contains(&"pickle.limit-exceeded"));
        // Real nesting of 100k lists with default bounds: a finding, no stack overflow.
        let mut deep = vec![0x80, 2];
        deep.extend(std::iter::repeat_n(b']', 100_000));
        deep.extend(std::iter::repeat_n(b'a', 99_999));
        deep.push(b'.');
        assert!(rules(&scan(&deep, "x")).contains(&"pickle.limit-exceeded"));
    }

    #[test]
    fn allowed_model_pickle_is_clean() {
        // collections.OrderedDict() with one tensor rebuilt from a persistent id.
        let mut p = vec![0x80, 2];
        p.extend(b"ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00w");
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storage");
        p.extend(b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00K\x04\x85K\x01\x85\x89h\x00)RtRs.");
        let s = scan(&p, "x");
        assert!(s.recognized);
        assert!(s.findings.is_empty(), "{:?}", s.findings);
    }

    #[test]
    fn text_is_not_a_pickle() {
        assert!(!scan(b"hello world, this is a text file\n", "x").recognized);
        assert!(!scan(b"\x00\x01\x02", "x").recognized);
    }

    #[test]
    fn build_on_a_global_is_monkey_patching() {
        let p = b"\x80\x02ctorch\n_utils\n(N}X\x01\x00\x00\x00aK\x01stb.";
        let s = scan(p, "x");
        assert!(
            rules(&s).contains(&"pickle.global-mutation"),
            "{:?}",
            s.findings
        );
    }

    #[test]
    fn joblib_array_bytes_are_skipped_and_object_arrays_scanned() {
        // NumpyArrayWrapper with shape (2,), dtype f8, alignment: 1 pad-length byte, padding,
        // 16 raw bytes, then the stream continues.
        let mut p = vec![0x80, 4];
        p.extend(b"\x8c\x13joblib.numpy_pickle\x8c\x11NumpyArrayWrapper\x93)\x81}(\x8c\x05shapeK\x02\x85");
        p.extend(b"\x8c\x05dtype\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02f8\x89\x88\x87R");
        p.extend(b"\x8c\x1bnumpy_array_alignment_bytesK\x10ub");
        p.extend([3, 0xff, 0xff, 0xff]);
        p.extend([0x2e; 16]); // raw array bytes that look like STOP opcodes
        p.extend(b"0\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.");
        let s = scan(&p, "x");
        assert!(s.joblib);
        assert!(
            rules(&s).contains(&"pickle.unsafe-global"),
            "{:?}",
            s.findings
        );
    }
}
