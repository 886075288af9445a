//! GGUF (llama.cpp): header, metadata key/values, tensor infos. Every count and length is
//! checked against the bytes that remain before it is used. The metadata's
//! `tokenizer.chat_template` is Jinja that runtimes render with the prompt: a template that
//! reaches Python internals (`__class__`, `__globals__`, `os.popen`...) is code execution in
//! any runtime that renders it outside a sandboxed environment, so it is analysed here.

use std::collections::HashSet;

use super::{ByteReader, Findings, Truncated};
use crate::finding::{Category, Finding, Severity};

/// Tensors in one file. Real models have a few thousand; the bound stops a crafted count from
/// driving a long walk over garbage.
pub const MAX_TENSORS: u64 = 1 << 20;
/// Metadata key/value pairs in one file (real files: dozens).
pub const MAX_KV: u64 = 1 << 16;
/// Longest metadata string (chat templates are tens of KB). Bigger ones are reported, skipped.
pub const MAX_STRING_BYTES: u64 = 16 << 20;
/// Longest metadata array (vocabularies and merges reach a few hundred thousand entries).
pub const MAX_ARRAY_LEN: u64 = 1 << 24;
/// Dims of one tensor: ggml's GGML_MAX_DIMS.
pub const MAX_TENSOR_DIMS: u32 = 4;
/// Default data alignment when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;

const MAGIC: &[u8; 4] = b"GGUF";

/// Content sniffing: the magic.
pub fn sniff(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

/// (bytes per block, elements per block) of a ggml tensor type.
fn ggml_type(t: u32) -> Option<(u64, u64)> {
    Some(match t {
        0 => (4, 1),      // F32
        1 => (2, 1),      // F16
        2 => (18, 32),    // Q4_0
        3 => (20, 32),    // Q4_1
        6 => (22, 32),    // Q5_0
        7 => (24, 32),    // Q5_1
        8 => (34, 32),    // Q8_0
        9 => (36, 32),    // Q8_1
        10 => (84, 256),  // Q2_K
        11 => (110, 256), // Q3_K
        12 => (144, 256), // Q4_K
        13 => (176, 256), // Q5_K
        14 => (210, 256), // Q6_K
        15 => (292, 256), // Q8_K
        16 => (66, 256),  // IQ2_XXS
        17 => (74, 256),  // IQ2_XS
        18 => (98, 256),  // IQ3_XXS
        19 => (50, 256),  // IQ1_S
        20 => (18, 32),   // IQ4_NL
        21 => (110, 256), // IQ3_S
        22 => (82, 256),  // IQ2_S
        23 => (136, 256), // IQ4_XS
        24 => (1, 1),     // I8
        25 => (2, 1),     // I16
        26 => (4, 1),     // I32
        27 => (8, 1),     // I64
        28 => (8, 1),     // F64
        29 => (56, 256),  // IQ1_M
        30 => (2, 1),     // BF16
        34 => (54, 256),  // TQ1_0
        35 => (66, 256),  // TQ2_0
        39 => (17, 32),   // MXFP4
        _ => return None,
    })
}

const TYPE_STRING: u32 = 8;
const TYPE_ARRAY: u32 = 9;

/// Fixed width of a scalar metadata type; `None` for string, array and unknown types.
fn scalar_width(t: u32) -> Option<u64> {
    Some(match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

/// Why parsing stopped early (each also becomes a finding).
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error(transparent)]
    Truncated(#[from] Truncated),
    #[error("already reported")]
    Reported,
}

struct Parser<'a, 'l> {
    r: ByteReader<'a>,
    version: u32,
    location: &'l str,
    out: Findings,
}

fn high(rule: &str, message: impl Into<String>) -> Finding {
    Finding::new(rule, Severity::High, Category::Integrity, message)
}

/// Scans a GGUF file; `location` names it in findings.
pub fn scan(data: &[u8], location: &str) -> Vec<Finding> {
    let mut p = Parser {
        r: ByteReader::new(data),
        version: 0,
        location,
        out: Findings::default(),
    };
    match p.file(data.len()) {
        Ok(()) | Err(Stop::Reported) => {}
        Err(Stop::Truncated(t)) => {
            let f = high(
                "gguf.truncated",
                "file ends inside its header, metadata or tensor infos",
            )
            .at(format!("{location}@{}", t.offset))
            .with_evidence(t.to_string());
            p.out.push(f);
        }
    }
    p.out.finish()
}

impl<'a, 'l> Parser<'a, 'l> {
    fn at(&self, offset: usize) -> String {
        format!("{}@{}", self.location, offset)
    }

    fn count(&mut self) -> Result<u64, Truncated> {
        if self.version == 1 {
            Ok(u64::from(self.r.u32()?))
        } else {
            self.r.u64()
        }
    }

    /// Reads a string; one over [`MAX_STRING_BYTES`] is reported and skipped (`None`).
    fn string(&mut self) -> Result<Option<&'a [u8]>, Truncated> {
        let at = self.r.pos();
        let len = self.count()?;
        let bytes = self.r.take(len)?;
        if len > MAX_STRING_BYTES {
            let f = high(
                "gguf.string-limit",
                format!("string of {len} bytes exceeds the {MAX_STRING_BYTES}-byte limit"),
            )
            .at(self.at(at));
            self.out.push(f);
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    fn file(&mut self, len: usize) -> Result<(), Stop> {
        self.r.take(4)?;
        let raw = self.r.u32()?;
        let version = if (1..=3).contains(&raw) {
            raw
        } else if (1..=3).contains(&raw.swap_bytes()) {
            self.r.set_big_endian(true);
            raw.swap_bytes()
        } else {
            let f = high("gguf.unsupported-version", "GGUF version is not 1, 2 or 3")
                .at(self.at(4))
                .with_evidence(format!("version={raw}"));
            self.out.push(f);
            return Err(Stop::Reported);
        };
        self.version = version;
        let tensors = self.count()?;
        let kvs = self.count()?;
        for (what, n, max) in [("tensor", tensors, MAX_TENSORS), ("metadata", kvs, MAX_KV)] {
            if n > max {
                let f = high(
                    "gguf.count-limit",
                    format!("{what} count {n} exceeds the limit of {max}"),
                )
                .at(self.at(8))
                .with_evidence(format!("{what}_count={n}"));
                self.out.push(f);
                return Err(Stop::Reported);
            }
        }

        let mut alignment = DEFAULT_ALIGNMENT;
        let mut keys: HashSet<&'a [u8]> = HashSet::new();
        for _ in 0..kvs {
            let at = self.r.pos();
            let key = self.string()?.unwrap_or(b"");
            if !keys.insert(key) {
                let f = high(
                    "gguf.duplicate-key",
                    "metadata key appears twice; readers disagree on which value wins",
                )
                .at(self.at(at))
                .with_evidence(String::from_utf8_lossy(key).into_owned());
                self.out.push(f);
            }
            let vtype = self.r.u32()?;
            let key_text = String::from_utf8_lossy(key);
            if key_text == "general.alignment" {
                if vtype != 4 {
                    let f = high("gguf.bad-alignment", "general.alignment must be a uint32")
                        .at(self.at(at));
                    self.out.push(f);
                    return Err(Stop::Reported);
                }
                let a = self.r.u32()?;
                if a == 0 || !a.is_power_of_two() {
                    let f = high(
                        "gguf.bad-alignment",
                        "general.alignment is not a power of two",
                    )
                    .at(self.at(at))
                    .with_evidence(format!("alignment={a}"));
                    self.out.push(f);
                    return Err(Stop::Reported);
                }
                alignment = u64::from(a);
            } else if key_text.starts_with("tokenizer.chat_template") && vtype == TYPE_STRING {
                let value_at = self.r.pos();
                if let Some(t) = self.string()? {
                    let template = String::from_utf8_lossy(t);
                    let loc = format!("{}@{}/{}", self.location, value_at, key_text);
                    for f in scan_chat_template(&template, &loc) {
                        self.out.push(f);
                    }
                }
            } else {
                self.value(vtype, at, 0)?;
            }
        }

        // Tensor infos.
        let mut infos: Vec<(String, u64, u64, usize)> = Vec::new();
        let mut names: HashSet<&'a [u8]> = HashSet::new();
        for _ in 0..tensors {
            let at = self.r.pos();
            let name_bytes = self.string()?.unwrap_or(b"");
            let name = String::from_utf8_lossy(name_bytes).into_owned();
            if !names.insert(name_bytes) {
                let f = high("gguf.duplicate-tensor", "two tensors share a name")
                    .at(self.at(at))
                    .with_evidence(name.clone());
                self.out.push(f);
            }
            let n_dims = self.r.u32()?;
            if n_dims > MAX_TENSOR_DIMS {
                let f = high(
                    "gguf.tensor-dims",
                    format!("tensor has {n_dims} dims; ggml supports {MAX_TENSOR_DIMS}"),
                )
                .at(format!("{}@tensor/{name}", self.location));
                self.out.push(f);
                return Err(Stop::Reported);
            }
            let mut numel: Option<u64> = Some(1);
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                let d = self.count()?;
                dims.push(d);
                numel = numel.and_then(|n| n.checked_mul(d));
            }
            let ttype = self.r.u32()?;
            let offset = self.r.u64()?;
            let loc = format!("{}@tensor/{name}", self.location);
            let Some((block_bytes, block_elems)) = ggml_type(ttype) else {
                let f = Finding::new(
                    "gguf.unknown-tensor-type",
                    Severity::Medium,
                    Category::Integrity,
                    "tensor type unknown to this scanner; its size cannot be checked",
                )
                .at(loc)
                .with_evidence(format!("ggml_type={ttype}"));
                self.out.push(f);
                continue;
            };
            let size = match numel {
                Some(n) if n % block_elems == 0 => (n / block_elems).checked_mul(block_bytes),
                _ => None,
            };
            let Some(size) = size else {
                let f = high(
                    "gguf.tensor-dims",
                    "tensor dims overflow or are not a whole number of blocks",
                )
                .at(loc)
                .with_evidence(format!("dims={dims:?} ggml_type={ttype}"));
                self.out.push(f);
                continue;
            };
            if offset % alignment != 0 {
                let f = high(
                    "gguf.tensor-misaligned",
                    "tensor data offset is not a multiple of the alignment",
                )
                .at(loc.clone())
                .with_evidence(format!("offset={offset} alignment={alignment}"));
                self.out.push(f);
            }
            infos.push((name, offset, size, at));
        }

        let data_start = (self.r.pos() as u64).div_ceil(alignment) * alignment;
        let file_len = len as u64;
        infos.sort_by_key(|i| (i.1, i.2));
        let mut covered = 0u64;
        let mut previous = String::new();
        for (name, offset, size, _) in &infos {
            let loc = format!("{}@tensor/{name}", self.location);
            let end = data_start
                .checked_add(*offset)
                .and_then(|s| s.checked_add(*size));
            match end {
                Some(e) if e <= file_len => {}
                _ => {
                    let f = high("gguf.tensor-past-end", "tensor data runs past the end of the file")
                        .at(loc.clone())
                        .with_evidence(format!(
                            "data starts at {data_start}, offset {offset} + size {size} > file length {file_len}"
                        ));
                    self.out.push(f);
                }
            }
            if *offset < covered {
                let f = high(
                    "gguf.tensor-overlap",
                    format!("tensor data overlaps that of '{previous}'"),
                )
                .at(loc)
                .with_evidence(format!("offset {offset} < previous end {covered}"));
                self.out.push(f);
            }
            let end = offset.saturating_add(*size);
            if end > covered {
                covered = end;
                previous = name.clone();
            }
        }
        Ok(())
    }

    /// Skips one metadata value, checking types and bounds.
    fn value(&mut self, vtype: u32, kv_at: usize, depth: u32) -> Result<(), Stop> {
        if let Some(w) = scalar_width(vtype) {
            self.r.take(w)?;
            return Ok(());
        }
        match vtype {
            TYPE_STRING => {
                self.string()?;
                Ok(())
            }
            TYPE_ARRAY => {
                let etype = self.r.u32()?;
                let n = self.count()?;
                if n > MAX_ARRAY_LEN {
                    let f = high(
                        "gguf.array-limit",
                        format!("array of {n} elements exceeds the limit of {MAX_ARRAY_LEN}"),
                    )
                    .at(self.at(kv_at))
                    .with_evidence(format!("len={n}"));
                    self.out.push(f);
                }
                if etype == TYPE_ARRAY {
                    let f = high("gguf.nested-array", "array of arrays: llama.cpp refuses it")
                        .at(self.at(kv_at));
                    self.out.push(f);
                    if depth >= 1 {
                        return Err(Stop::Reported);
                    }
                }
                if let Some(w) = scalar_width(etype) {
                    // Bounded by the remaining bytes before anything is skipped.
                    let total = n.saturating_mul(w);
                    self.r.take(total)?;
                    return Ok(());
                }
                // Strings and arrays take at least 8 bytes each (v1: 4): a count the remaining
                // bytes cannot hold is truncation, found before walking it.
                let min = if self.version == 1 { 4 } else { 8 };
                if n.saturating_mul(min) > self.r.remaining() as u64 {
                    return Err(Stop::Truncated(Truncated {
                        offset: self.r.pos(),
                        needed: n.saturating_mul(min),
                        remaining: self.r.remaining(),
                    }));
                }
                for _ in 0..n {
                    self.value(etype, kv_at, depth + 1)?;
                }
                Ok(())
            }
            _ => {
                let f = high(
                    "gguf.bad-value-type",
                    "metadata value type is not a GGUF type",
                )
                .at(self.at(kv_at))
                .with_evidence(format!("type={vtype}"));
                self.out.push(f);
                Err(Stop::Reported)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Chat template (Jinja) analysis.

/// Names that reach code execution or the interpreter when used bare in a template.
const NAME_DANGER: &[&str] = &[
    "os",
    "sys",
    "subprocess",
    "popen",
    "eval",
    "exec",
    "execfile",
    "compile",
    "builtins",
    "importlib",
    "import_module",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "locals",
    "open",
    "posix",
    "pty",
    "socket",
    "shutil",
    "ctypes",
    "pickle",
    "marshal",
    "runpy",
];
/// Attributes that only an escape reaches for (`x.system(...)`, `f.__globals__`...).
const ATTR_DANGER: &[&str] = &[
    "os",
    "sys",
    "subprocess",
    "system",
    "popen",
    "spawn",
    "spawnl",
    "spawnv",
    "spawnve",
    "execl",
    "execv",
    "execve",
    "execvp",
    "fork",
    "eval",
    "exec",
    "load_module",
    "import_module",
    "getoutput",
    "check_output",
    "check_call",
    "communicate",
    "mro",
    "func_globals",
    "f_globals",
    "f_locals",
    "f_builtins",
    "gi_frame",
    "gi_code",
    "co_code",
    "cr_frame",
    "tb_frame",
    "modules",
    "builtins",
    "globals",
    "getattr",
    "rmtree",
    "unlink",
];
/// Jinja globals used as the root of sandbox escapes (`cycler.__init__.__globals__.os`...).
/// Benign templates call them (`namespace(found=false)`), they never take attributes of them.
const GADGET_ROOTS: &[&str] = &[
    "cycler",
    "joiner",
    "namespace",
    "lipsum",
    "self",
    "config",
    "request",
    "url_for",
    "get_flashed_messages",
];
/// Reasons kept per template region: one region of a hostile template can hold millions of
/// dunders, and the finding must stay small.
const MAX_REASONS: usize = 16;
/// Statements that load other templates: meaningless in a chat template.
const LOADER_STATEMENTS: &[&str] = &["include", "import", "extends", "from"];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// A string literal, decoded; `escaped` when an escape spelled an identifier character.
    Str {
        value: String,
        escaped: bool,
    },
    Num,
    Op(char),
}

/// A `{{ ... }}` or `{% ... %}` region: byte offset, code, and whether it is a statement.
fn regions(t: &str) -> Vec<(usize, &str, bool)> {
    let b = t.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != b'{' || !matches!(b[i + 1], b'{' | b'%' | b'#') {
            i += 1;
            continue;
        }
        let kind = b[i + 1];
        let start = i + 2;
        if kind == b'#' {
            i = t[start..].find("#}").map_or(b.len(), |e| start + e + 2);
            continue;
        }
        let close = if kind == b'{' { b'}' } else { b'%' };
        // Find the closing delimiter outside string literals.
        let mut j = start;
        let mut quote: Option<u8> = None;
        while j < b.len() {
            let c = b[j];
            match quote {
                Some(q) => {
                    if c == b'\\' {
                        j += 1;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => {
                    if c == b'\'' || c == b'"' {
                        quote = Some(c);
                    } else if c == close && b.get(j + 1) == Some(&b'}') {
                        break;
                    }
                }
            }
            j += 1;
        }
        let end = j.min(b.len());
        let code = &t[start..end];
        out.push((i, code, kind == b'%'));
        i = end + 2;
        if kind == b'%' {
            // `{% raw %}` ... `{% endraw %}` is literal output.
            let word = code.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
            if word == "raw" {
                match t.get(i..).and_then(|rest| rest.find("endraw")) {
                    Some(e) => i += e + 6,
                    None => break,
                }
            }
        }
    }
    out
}

/// Decodes a Jinja (Python) string literal body; `escaped` is set when an escape sequence
/// spells a letter, digit, `_` or `.`, which only obfuscation does.
fn decode_string(body: &str) -> (String, bool) {
    let mut out = String::with_capacity(body.len());
    let mut escaped = false;
    let mut chars = body.chars().peekable();
    let note = |c: char, out: &mut String| -> bool {
        out.push(c);
        c.is_ascii_alphanumeric() || c == '_' || c == '.'
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            out.push('\\');
            break;
        };
        let hex = |chars: &mut std::iter::Peekable<std::str::Chars>, n: usize| {
            let mut v = 0u32;
            for _ in 0..n {
                match chars.peek().and_then(|c| c.to_digit(16)) {
                    Some(d) => {
                        v = v * 16 + d;
                        chars.next();
                    }
                    None => break,
                }
            }
            char::from_u32(v).unwrap_or('\u{fffd}')
        };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '\\' | '\'' | '"' => out.push(e),
            'x' => escaped |= note(hex(&mut chars, 2), &mut out),
            'u' => escaped |= note(hex(&mut chars, 4), &mut out),
            'U' => escaped |= note(hex(&mut chars, 8), &mut out),
            'N' => {
                // \N{LOW LINE}: a named character; only obfuscation spells names this way.
                escaped = true;
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                }
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                escaped |= note(char::from_u32(v).unwrap_or('\u{fffd}'), &mut out);
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    (out, escaped)
}

fn tokenize(code: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'\'' || c == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j] != c {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = j.min(b.len());
            let (value, escaped) = decode_string(code.get(start..end).unwrap_or(""));
            toks.push(Tok::Str { value, escaped });
            i = end + 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            toks.push(Tok::Ident(code[start..i].to_string()));
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            toks.push(Tok::Num);
        } else {
            // Multi-byte UTF-8 outside strings is not Jinja syntax; skip the whole char.
            let ch = code[i..].chars().next().unwrap_or('?');
            toks.push(Tok::Op(ch));
            i += ch.len_utf8();
        }
    }
    toks
}

/// Double underscore touching a letter or digit: the shape of a dunder name, whole or in part.
fn has_dunder(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(3).any(|w| {
        (w[0] == b'_' && w[1] == b'_' && w[2].is_ascii_alphanumeric())
            || (w[0].is_ascii_alphanumeric() && w[1] == b'_' && w[2] == b'_')
    })
}

/// Whether the `[` at `i` subscripts a value (after a name, a call, a literal or another
/// subscript) rather than opening a list literal.
fn is_subscript(toks: &[Tok], i: usize) -> bool {
    match i.checked_sub(1).and_then(|p| toks.get(p)) {
        Some(Tok::Ident(n)) => !matches!(
            n.as_str(),
            "in" | "and" | "or" | "not" | "if" | "else" | "is" | "set"
        ),
        Some(Tok::Str { .. }) | Some(Tok::Op(')' | ']')) => true,
        _ => false,
    }
}

fn is_danger_name(s: &str) -> bool {
    NAME_DANGER.contains(&s) || ATTR_DANGER.contains(&s) || s.starts_with("__")
}

/// Why a region is hostile, if it is.
fn judge_region(toks: &[Tok], statement: bool) -> Vec<(Severity, String)> {
    let mut why = Vec::new();
    let op = |i: usize, c: char| matches!(toks.get(i), Some(Tok::Op(x)) if *x == c);
    let ident = |i: usize, s: &str| matches!(toks.get(i), Some(Tok::Ident(x)) if x == s);
    if statement {
        let first = toks.iter().find(|t| !matches!(t, Tok::Op('-' | '+')));
        if let Some(Tok::Ident(w)) = first
            && LOADER_STATEMENTS.contains(&w.as_str())
        {
            why.push((
                Severity::High,
                format!("'{w}' statement loads another template"),
            ));
        }
    }
    // The matching `]` of every `[` (unmatched: the end), found in one pass.
    let mut close = vec![toks.len(); toks.len()];
    let mut open = Vec::new();
    for (j, t) in toks.iter().enumerate() {
        match t {
            Tok::Op('[') => open.push(j),
            Tok::Op(']') => {
                if let Some(o) = open.pop() {
                    close[o] = j;
                }
            }
            _ => {}
        }
    }
    for (i, t) in toks.iter().enumerate() {
        if why.len() >= MAX_REASONS {
            break;
        }
        let after_dot = i > 0 && op(i - 1, '.');
        match t {
            Tok::Ident(name) => {
                if name.starts_with("__") {
                    why.push((Severity::Critical, format!("reaches '{name}'")));
                } else if after_dot && ATTR_DANGER.contains(&name.as_str()) {
                    why.push((Severity::Critical, format!("reaches attribute '.{name}'")));
                } else if !after_dot && NAME_DANGER.contains(&name.as_str()) {
                    why.push((Severity::Critical, format!("uses '{name}'")));
                }
                if !after_dot
                    && GADGET_ROOTS.contains(&name.as_str())
                    && (op(i + 1, '.')
                        || op(i + 1, '[')
                        || (op(i + 1, '|') && ident(i + 2, "attr")))
                {
                    why.push((
                        Severity::Critical,
                        format!(
                            "takes an attribute of the '{name}' global (sandbox escape gadget)"
                        ),
                    ));
                } else if !after_dot
                    && matches!(name.as_str(), "cycler" | "lipsum")
                    // Not a name being bound (`set cycler = ...`, `f(cycler=1)`).
                    && !op(i + 1, '=')
                    && (i == 0 || !ident(i - 1, "set"))
                {
                    // No chat template needs a cycler or lorem ipsum; an instance, an alias or
                    // a list holding one reaches `__init__.__globals__` by keys built anywhere.
                    why.push((
                        Severity::Critical,
                        format!("uses the '{name}' global (a sandbox escape gadget no chat template needs)"),
                    ));
                } else if !after_dot
                    && name == "joiner"
                    && !op(i + 1, '(')
                    && !op(i + 1, '=')
                    && (i == 0 || !ident(i - 1, "set"))
                {
                    // Named as a value (`{% set c = joiner %}`), not called: the alias reaches
                    // the same attributes in another region, by names built there.
                    why.push((
                        Severity::Critical,
                        format!("takes the '{name}' global as a value (an alias to a sandbox escape gadget)"),
                    ));
                }
                if name == "attr" && i > 0 && op(i - 1, '|') {
                    // The argument must be one plain, harmless string literal.
                    let plain = match (toks.get(i + 1), toks.get(i + 2), toks.get(i + 3)) {
                        (
                            Some(Tok::Op('(')),
                            Some(Tok::Str {
                                value,
                                escaped: false,
                            }),
                            Some(Tok::Op(')')),
                        ) => {
                            !value.is_empty()
                                && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                                && !is_danger_name(value)
                                && !has_dunder(value)
                        }
                        _ => false,
                    };
                    if !plain {
                        why.push((
                            Severity::Critical,
                            "'|attr' with a computed or dangerous attribute name".to_string(),
                        ));
                    }
                }
            }
            Tok::Str { value, escaped } => {
                if *escaped {
                    why.push((
                        Severity::Critical,
                        format!("escape sequences spell identifier characters ({value:?})"),
                    ));
                }
                if has_dunder(value) {
                    why.push((
                        Severity::Critical,
                        format!("string names a dunder ({value:?})"),
                    ));
                }
                if i > 0 && op(i - 1, '[') && is_danger_name(value) {
                    why.push((Severity::Critical, format!("subscript reaches {value:?}")));
                }
                if value.contains("%c")
                    && (op(i + 1, '%') || (op(i + 1, '|') && ident(i + 2, "format")))
                {
                    why.push((
                        Severity::Critical,
                        "builds characters from codes with '%c'".to_string(),
                    ));
                }
                if !value.is_empty()
                    && value.chars().all(|c| c == '_')
                    && (op(i + 1, '*') || (i > 0 && op(i - 1, '*')))
                {
                    why.push((
                        Severity::Critical,
                        "multiplies underscores into a dunder".to_string(),
                    ));
                }
            }
            Tok::Op('[') if is_subscript(toks, i) => {
                // x[a ~ 'b'], x['a' + b], x[parts|join]: Jinja's subscript falls back to
                // getattr, so a computed string key is attribute access by a hidden name.
                // Only the tokens directly inside (nested brackets are judged on their own),
                // so nested subscripts cost linear time.
                let mut inner = Vec::new();
                let mut k = i + 1;
                while k < close[i] {
                    if matches!(toks[k], Tok::Op('[')) {
                        k = close[k].saturating_add(1);
                        continue;
                    }
                    inner.push(&toks[k]);
                    k += 1;
                }
                let has_str = inner.iter().any(|t| matches!(t, Tok::Str { .. }));
                let computed = inner.iter().any(|t| match t {
                    Tok::Op('~') => true,
                    Tok::Op('+') => has_str,
                    Tok::Ident(n) => matches!(
                        n.as_str(),
                        "join" | "format" | "replace" | "string" | "reverse"
                    ),
                    _ => false,
                });
                if computed {
                    why.push((
                        Severity::Critical,
                        "subscript with a computed string name (getattr in disguise)".to_string(),
                    ));
                }
            }
            Tok::Num | Tok::Op(_) => {}
        }
        if let Tok::Ident(name) = t {
            if name == "replace"
                && toks[i + 1..]
                    .iter()
                    .take(6)
                    .any(|t| matches!(t, Tok::Str { value, .. } if !value.is_empty() && value.chars().all(|c| c == '_')))
            {
                why.push((Severity::Critical, "manufactures underscores with replace".to_string()));
            }
            if name == "string" && i > 0 && op(i - 1, '|') {
                let mut j = i + 1;
                while op(j, ')') {
                    j += 1;
                }
                if op(j, '[')
                    || (op(j, '|')
                        && matches!(toks.get(j + 1), Some(Tok::Ident(n)) if matches!(n.as_str(), "list" | "first" | "last" | "batch" | "slice")))
                {
                    why.push((
                        Severity::Critical,
                        "picks characters out of an object's string form".to_string(),
                    ));
                }
            }
        }
    }
    if why.is_empty() {
        // Concatenation tricks: '__cla' ~ 'ss__', ['__', 'globals', '__']|join, adjacent literals.
        let joined: String = toks
            .iter()
            .filter_map(|t| match t {
                Tok::Str { value, .. } => Some(value.as_str()),
                _ => None,
            })
            .collect();
        let reversed: String = joined.chars().rev().collect();
        for s in [&joined, &reversed] {
            if has_dunder(s) || s.contains("__") && (s.contains("class") || s.contains("globals")) {
                why.push((
                    Severity::Critical,
                    "string pieces concatenate to a dunder name".to_string(),
                ));
                break;
            }
        }
    }
    why
}

/// Names a `set` binds to a joiner (`{% set comma = joiner(', ') %}`): the instance reaches the
/// same globals as the class (`comma.__init__.__globals__`), by keys built elsewhere, so it may
/// only be called.
fn gadget_instances(regions: &[(usize, &str, bool)]) -> HashSet<String> {
    let mut names = HashSet::new();
    for (_, code, statement) in regions {
        if !statement {
            continue;
        }
        let toks = tokenize(code);
        for w in toks.windows(5) {
            if let [
                Tok::Ident(set),
                Tok::Ident(name),
                Tok::Op('='),
                Tok::Ident(root),
                Tok::Op('('),
            ] = w
                && set == "set"
                && root == "joiner"
            {
                names.insert(name.clone());
            }
        }
    }
    names
}

/// Analyses a Jinja chat template (GGUF `tokenizer.chat_template`, or `chat_template` of a
/// Hugging Face `tokenizer_config.json`). `location` names it in findings.
pub fn scan_chat_template(template: &str, location: &str) -> Vec<Finding> {
    let mut out = Findings::default();
    let regions = regions(template);
    let instances = gadget_instances(&regions);
    for (offset, code, statement) in regions {
        let toks = tokenize(code);
        let mut reasons = judge_region(&toks, statement);
        for (i, t) in toks.iter().enumerate() {
            if let Tok::Ident(name) = t
                && instances.contains(name)
                && (i == 0 || !matches!(toks.get(i - 1), Some(Tok::Op('.'))))
                // A joiner is only ever called (`comma()`); anything else (an alias, a
                // subscript, a list holding it) reaches its class's globals.
                && !matches!(toks.get(i + 1), Some(Tok::Op('(' | '=')))
                && (i == 0 || !matches!(toks.get(i - 1), Some(Tok::Ident(w)) if w == "set"))
            {
                reasons.push((
                    Severity::Critical,
                    format!("uses '{name}', an instance of a sandbox escape gadget, other than by calling it"),
                ));
                break;
            }
        }
        let Some(worst) = reasons.iter().map(|r| r.0).max() else {
            continue;
        };
        let message = reasons
            .iter()
            .map(|r| r.1.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let snippet: String = code.trim().chars().take(160).collect();
        let rule = if worst == Severity::Critical {
            "gguf.template-injection"
        } else {
            "gguf.template-include"
        };
        out.push(
            Finding::new(
                rule,
                worst,
                Category::Static,
                format!("chat template: {message}"),
            )
            .at(format!("{location}+{offset}"))
            .with_evidence(snippet),
        );
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    const LLAMA2: &str = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

    const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

    const QWEN_TOOLS: &str = r#"{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}{%- endif %}
    {{- "\n\n# Tools\n\n<tools>" }}
    {%- for tool in tools %}{{- "\n" }}{{- tool | tojson }}{%- endfor %}
    {{- "\n</tools><|im_end|>\n" }}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>')) %}
        {%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
            {{- '<tool_call>\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}{{- tool_call.arguments | tojson }}{{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- message.content | default('', true) | replace('\r', '') }}{{- message.tool_calls | map(attribute='id') | join(', ') }}
    {%- endif %}
{%- endfor %}
{#- a comment with __class__ in it is not code -#}
{%- raw %}{{ literal __globals__ }}{% endraw %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"#;

    const HOSTILE: &[&str] = &[
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ joiner.__init__.__globals__['os'].popen('id') }}",
        "{% set x = namespace.__init__ %}{{ x }}",
        "{{ lipsum|attr('__globals__') }}",
        "{{ ()|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
        "{{ ()|attr('__cla' ~ 'ss__') }}",
        "{{ ()|attr(['__cla','ss__']|join) }}",
        "{{ ()|attr(x) }}",
        "{{ self._TemplateReference__context }}",
        "{{ x[('_'*2)+'class'+('_'*2)] }}",
        "{{ x['%c%cclass%c%c'|format(95,95,95,95)] }}",
        "{% set a = '__clas' %}{% set b = 's__' %}",
        "{{ config.items() }}",
        "{{ request.application }}",
        "{{ x[\"__globals\" \"__\"] }}",
        "{{ '__ssalc__'|reverse }}",
        "{{ range.__init__ }}",
        "{{ x|attr('\\u005f\\u005fglobals\\u005f\\u005f') }}",
        "{{ x|attr('\\137\\137globals\\137\\137') }}",
        "{{ x|attr('\\N{LOW LINE}\\N{LOW LINE}globals\\N{LOW LINE}\\N{LOW LINE}') }}",
        "{{ foo.system('id') }}",
        "{{ eval('1') }}",
        "{{ x['os'] }}",
        "{{ __import__('os') }}",
        "{{ subprocess }}",
        "{{ x.__builtins__ }}",
        "{% set u = 'x'|replace('x','_') %}",
        "{{ ()[d ~ 'class' ~ d] }}",
        "{{ x['glob' + 'als'] }}",
        "{{ (()|select|string)[24] }}",
        "{{ ()|select|string|list }}",
        "{% set c = cycler %}",
        "{{ f(joiner) }}",
        "{% set c = cycler(1) %}{{ c[k] }}",
        "{% for c in [cycler(1)] %}{{ c[k] }}{% endfor %}",
        "{% set j = joiner() %}{% set c = j %}",
        "{% set j = joiner() %}{{ [j][0][k] }}",
    ];

    const GEMMA: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

    const PHI3: &str = "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

    const MISTRAL_TOOLS: &str = r#"{%- if messages[0]["role"] == "system" %}{%- set system_message = messages[0]["content"] %}{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}{%- if not tools is defined %}{%- set tools = none %}{%- endif %}{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}{{- bos_token }}{%- for message in loop_messages %}{%- if message["role"] == "user" %}{%- if tools is not none and (message == user_messages[-1]) %}{{- "[AVAILABLE_TOOLS] [" }}{%- for tool in tools %}{%- set tool = tool.function %}{{- '{"type": "function", "function": {' }}{%- for key, val in tool.items() if key != "return" %}{%- if val is string %}{{- '"' + key + '": "' + val + '"' }}{%- else %}{{- '"' + key + '": ' + val|tojson }}{%- endif %}{%- if not loop.last %}{{- ", " }}{%- endif %}{%- endfor %}{{- "}}" }}{%- endfor %}{{- "[/AVAILABLE_TOOLS]" }}{%- endif %}{{- "[INST] " + message["content"] + "[/INST]" }}{%- elif message.tool_calls is defined and message.tool_calls is not none %}{%- for tool_call in message.tool_calls %}{%- if not tool_call.id is defined or tool_call.id|length != 9 %}{{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}{%- endif %}{{- ', "id": "' + tool_call.id + '"}' }}{%- endfor %}{%- elif message["role"] == "assistant" %}{{- " " + message["content"]|trim + eos_token}}{%- endif %}{%- endfor %}"#;

    const LLAMA31_TOOLS: &str = r#"{{- bos_token }}{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif %}{%- if not date_string is defined %}{%- set date_string = "26 Jul 2024" %}{%- endif %}{%- if builtin_tools is defined or tools is not none %}{{- "Environment: ipython
" }}{%- endif %}{%- if builtin_tools is defined %}{{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "

"}}{%- endif %}{{- "Cutting Knowledge Date: December 2023
" }}{{- "Today Date: " + date_string + "

" }}{%- for message in messages %}{%- if 'tool_calls' in message %}{%- set tool_call = message.tool_calls[0].function %}{%- if builtin_tools is defined and tool_call.name in builtin_tools %}{{- '<|start_header_id|>assistant<|end_header_id|>

' -}}{{- "<|python_tag|>" + tool_call.name + ".call(" }}{%- for arg_name, arg_val in tool_call.arguments | items %}{{- arg_name + '="' + arg_val + '"' }}{%- if not loop.last %}{{- ", " }}{%- endif %}{%- endfor %}{{- ")" }}{%- else %}{{- '{"name": "' + tool_call.name + '", ' }}{{- '"parameters": ' }}{{- tool_call.arguments | tojson }}{{- "}" }}{%- endif %}{%- endif %}{%- endfor %}"#;

    const DEEPSEEK: &str = "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}{%- for message in messages %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- if message['role'] == 'tool' %}{{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endfor -%}";

    #[test]
    fn benign_templates_are_clean() {
        for t in [
            CHATML,
            LLAMA2,
            LLAMA3,
            QWEN_TOOLS,
            GEMMA,
            PHI3,
            MISTRAL_TOOLS,
            LLAMA31_TOOLS,
            DEEPSEEK,
        ] {
            assert_eq!(scan_chat_template(t, "t"), Vec::new(), "{t}");
        }
    }

    /// Nested and unclosed subscripts, and floods of dunders, take linear time and give one
    /// bounded finding per region.
    #[test]
    fn pathological_templates_stay_linear() {
        for t in [
            format!("{{{{ {} }}}}", "x[".repeat(200_000)),
            format!("{{{{ {}{} }}}}", "x[".repeat(100_000), "]".repeat(100_000)),
            format!("{{{{ {} }}}}", "x.__class__ ".repeat(100_000)),
        ] {
            let start = std::time::Instant::now();
            let f = scan_chat_template(&t, "t");
            assert!(
                start.elapsed() < std::time::Duration::from_secs(2),
                "{:?}",
                start.elapsed()
            );
            assert!(f.len() <= 1 && f.iter().all(|f| f.message.len() < 4096));
        }
    }

    #[test]
    fn every_hostile_template_is_critical() {
        let joined = "{% set comma = joiner(', ') %}{% for m in messages %}{{ comma() }}{{ m['content'] }}{% endfor %}";
        assert!(
            scan_chat_template(joined, "t").is_empty(),
            "a joiner called is no finding"
        );
        let named = "{% set cycler = namespace(n=1) %}{{ f(joiner=1) }}{% set config = 2 %}";
        assert!(
            scan_chat_template(named, "t").is_empty(),
            "names bound are no aliases"
        );
        for t in HOSTILE {
            let f = scan_chat_template(t, "t");
            assert!(
                f.iter().any(
                    |f| f.severity == Severity::Critical && f.rule == "gguf.template-injection"
                ),
                "not flagged: {t} -> {f:?}"
            );
        }
        let inc = scan_chat_template("{% include 'other.j2' %}", "t");
        assert_eq!(
            (inc[0].rule.as_str(), inc[0].severity),
            ("gguf.template-include", Severity::High)
        );
    }

    /// GGUF writer for tests (v3, little endian).
    pub(crate) struct Gguf {
        kv: Vec<u8>,
        nkv: u64,
        tensors: Vec<u8>,
        ntensors: u64,
        data_len: u64,
    }

    impl Gguf {
        pub(crate) fn new() -> Self {
            Gguf {
                kv: Vec::new(),
                nkv: 0,
                tensors: Vec::new(),
                ntensors: 0,
                data_len: 0,
            }
        }
        fn s(buf: &mut Vec<u8>, s: &str) {
            buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
        pub(crate) fn kv_str(mut self, k: &str, v: &str) -> Self {
            Self::s(&mut self.kv, k);
            self.kv.extend_from_slice(&8u32.to_le_bytes());
            Self::s(&mut self.kv, v);
            self.nkv += 1;
            self
        }
        pub(crate) fn kv_raw(mut self, k: &str, vtype: u32, raw: &[u8]) -> Self {
            Self::s(&mut self.kv, k);
            self.kv.extend_from_slice(&vtype.to_le_bytes());
            self.kv.extend_from_slice(raw);
            self.nkv += 1;
            self
        }
        pub(crate) fn tensor(
            mut self,
            name: &str,
            dims: &[u64],
            ttype: u32,
            offset: u64,
            size: u64,
        ) -> Self {
            Self::s(&mut self.tensors, name);
            self.tensors
                .extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                self.tensors.extend_from_slice(&d.to_le_bytes());
            }
            self.tensors.extend_from_slice(&ttype.to_le_bytes());
            self.tensors.extend_from_slice(&offset.to_le_bytes());
            self.ntensors += 1;
            self.data_len = self.data_len.max(offset + size);
            self
        }
        pub(crate) fn build(self) -> Vec<u8> {
            let mut out = b"GGUF".to_vec();
            out.extend_from_slice(&3u32.to_le_bytes());
            out.extend_from_slice(&self.ntensors.to_le_bytes());
            out.extend_from_slice(&self.nkv.to_le_bytes());
            out.extend_from_slice(&self.kv);
            out.extend_from_slice(&self.tensors);
            while !out.len().is_multiple_of(32) {
                out.push(0);
            }
            out.resize(out.len() + self.data_len as usize, 0);
            out
        }
    }

    fn rules(data: &[u8]) -> Vec<String> {
        let mut r: Vec<String> = scan(data, "m.gguf").into_iter().map(|f| f.rule).collect();
        r.dedup();
        r
    }

    fn benign() -> Gguf {
        let mut tokens = Vec::new();
        tokens.extend_from_slice(&8u32.to_le_bytes());
        tokens.extend_from_slice(&2u64.to_le_bytes());
        for t in ["<s>", "</s>"] {
            tokens.extend_from_slice(&(t.len() as u64).to_le_bytes());
            tokens.extend_from_slice(t.as_bytes());
        }
        Gguf::new()
            .kv_str("general.architecture", "llama")
            .kv_raw("general.alignment", 4, &32u32.to_le_bytes())
            .kv_raw("tokenizer.ggml.tokens", 9, &tokens)
            .kv_str("tokenizer.chat_template", CHATML)
            .tensor("tok_embd.weight", &[64, 2], 8, 0, 2 * 34 * 2)
            .tensor("output_norm.weight", &[64], 0, 160, 256)
    }

    #[test]
    fn benign_file_is_clean_and_sniffed() {
        let f = benign().build();
        assert!(sniff(&f));
        assert_eq!(rules(&f), Vec::<String>::new());
    }

    #[test]
    fn every_rule_fires_on_a_minimal_input() {
        let t = benign()
            .kv_str("tokenizer.chat_template.tool_use", HOSTILE[1])
            .build();
        assert_eq!(rules(&t), ["gguf.template-injection"]);
        let mut v = benign().build();
        v[4] = 9;
        assert_eq!(rules(&v), ["gguf.unsupported-version"]);
        let mut c = benign().build();
        c[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(rules(&c), ["gguf.count-limit"]);
        let b = benign().build();
        assert_eq!(rules(&b[..b.len() - 300]), ["gguf.tensor-past-end"]);
        assert_eq!(rules(&b[..60]), ["gguf.truncated"]);
        let dup = benign().kv_str("general.architecture", "x").build();
        assert_eq!(rules(&dup), ["gguf.duplicate-key"]);
        let mut arr = 0u32.to_le_bytes().to_vec();
        arr.extend_from_slice(&(MAX_ARRAY_LEN + 1).to_le_bytes());
        assert!(
            rules(&benign().kv_raw("x", 9, &arr).build())
                .starts_with(&["gguf.array-limit".to_string()])
        );
        assert_eq!(
            rules(&benign().kv_raw("x", 13, &[0; 8]).build()),
            ["gguf.bad-value-type"]
        );
        let mut nested = 9u32.to_le_bytes().to_vec();
        nested.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(
            rules(&benign().kv_raw("x", 9, &nested).build()),
            ["gguf.nested-array"]
        );
        assert_eq!(
            rules(
                &benign()
                    .kv_raw("general.alignment", 4, &3u32.to_le_bytes())
                    .build()
            )[..],
            ["gguf.duplicate-key", "gguf.bad-alignment"]
        );
        assert_eq!(
            rules(&benign().tensor("x", &[64], 0, 0, 256).build()),
            ["gguf.tensor-overlap"]
        );
        assert_eq!(
            rules(&benign().tensor("x", &[64], 0, 420, 256).build()),
            ["gguf.tensor-misaligned"]
        );
        assert_eq!(
            rules(&benign().tensor("x", &[1, 1, 1, 1, 1], 0, 416, 4).build()),
            ["gguf.tensor-dims"]
        );
        assert_eq!(
            rules(&benign().tensor("x", &[33], 8, 448, 34).build()),
            ["gguf.tensor-dims"]
        );
        assert_eq!(
            rules(&benign().tensor("x", &[33], 99, 448, 34).build()),
            ["gguf.unknown-tensor-type"]
        );
        assert_eq!(
            rules(
                &benign()
                    .tensor("output_norm.weight", &[64], 0, 448, 256)
                    .build()
            ),
            ["gguf.duplicate-tensor"]
        );
        let mut long = (MAX_STRING_BYTES + 1).to_le_bytes().to_vec();
        long.resize(long.len() + MAX_STRING_BYTES as usize + 1, b'a');
        assert_eq!(
            rules(&benign().kv_raw("x", 8, &long).build()),
            ["gguf.string-limit"]
        );
    }

    #[test]
    fn big_endian_files_are_read() {
        let mut f = b"GGUF".to_vec();
        f.extend_from_slice(&3u32.to_be_bytes());
        f.extend_from_slice(&0u64.to_be_bytes());
        f.extend_from_slice(&1u64.to_be_bytes());
        f.extend_from_slice(&23u64.to_be_bytes());
        f.extend_from_slice(b"tokenizer.chat_template");
        f.extend_from_slice(&8u32.to_be_bytes());
        let t = HOSTILE[0];
        f.extend_from_slice(&(t.len() as u64).to_be_bytes());
        f.extend_from_slice(t.as_bytes());
        assert_eq!(rules(&f), ["gguf.template-injection"]);
    }
}
