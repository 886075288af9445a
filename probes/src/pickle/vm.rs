//! The symbolic unpickler: CPython's `_pickle` load loop, opcode by opcode, over values that are
//! descriptions rather than objects. Where CPython would fail, this VM fails at the same byte
//! (stack underflow at the fence, missing MARK, memo miss, truncation), so what it reports as
//! having run is what would have run.

use std::collections::HashMap;
use std::rc::Rc;

use thiserror::Error;

use super::policy::{self, Judgment};
use super::value::{self, Call, CallKind, Pairs, Seq, Text, Value};
use super::{Limits, MAX_EVIDENCE_CHARS};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PickleError {
    #[error("pickle data was truncated at byte {0}")]
    Truncated(usize),
    #[error("invalid opcode 0x{op:02x} at byte {at}")]
    BadOpcode { op: u8, at: usize },
    #[error("unpickling stack underflow at byte {0}")]
    StackUnderflow(usize),
    #[error("could not find MARK at byte {0}")]
    NoMark(usize),
    #[error("memo value not found at index {index} (byte {at})")]
    MemoMissing { index: u64, at: usize },
    #[error("{what} at byte {at}")]
    Invalid { what: String, at: usize },
    #[error("bound exceeded: {what} above {limit} at byte {at}")]
    Limit {
        what: &'static str,
        limit: u64,
        at: usize,
    },
}

impl PickleError {
    pub fn offset(&self) -> usize {
        match self {
            PickleError::Truncated(at)
            | PickleError::StackUnderflow(at)
            | PickleError::NoMark(at) => *at,
            PickleError::BadOpcode { at, .. }
            | PickleError::MemoMissing { at, .. }
            | PickleError::Invalid { at, .. }
            | PickleError::Limit { at, .. } => *at,
        }
    }

    fn invalid(what: impl Into<String>, at: usize) -> Self {
        PickleError::Invalid {
            what: what.into(),
            at,
        }
    }
}

/// One distinct global a pickle imports, with the first place it is used.
#[derive(Debug, Clone)]
pub struct GlobalRec {
    pub module: String,
    pub name: String,
    pub offset: usize,
    pub opcode: &'static str,
    pub judgment: Judgment,
    /// The first call (or construct) that involves this global: offset and rendered source.
    pub evidence: Option<(usize, String)>,
}

/// A structural observation made while running (error, bound, odd construct), reported as a
/// finding by the caller.
#[derive(Debug, Clone)]
pub struct Note {
    pub rule: &'static str,
    pub offset: usize,
    pub message: String,
    pub evidence: Option<String>,
}

/// State shared by every stream of one file: the globals table, the extension registry (a
/// `copyreg.add_extension` call in one pickle serves the next) and the notes.
#[derive(Debug, Default)]
pub struct Shared {
    pub globals: Vec<GlobalRec>,
    index: HashMap<(String, String), u32>,
    unsafe_seen: bool,
    ext: HashMap<u64, u32>,
    pub notes: Vec<Note>,
    pub joblib: bool,
    pub calls: u64,
    /// Literal payloads handed to a nested loader (`pickle.loads(b'...')`), with the offset of
    /// the call: scanned as pickles of their own.
    pub nested: Vec<(usize, Rc<[u8]>)>,
}

impl Shared {
    pub fn name_of(&self, id: u32) -> String {
        match self.globals.get(id as usize) {
            Some(g) => format!("{}.{}", g.module, g.name),
            None => "<global>".into(),
        }
    }

    pub fn has_unsafe(&self) -> bool {
        self.unsafe_seen
    }

    fn note(
        &mut self,
        rule: &'static str,
        offset: usize,
        message: String,
        evidence: Option<String>,
    ) {
        if self.notes.len() < super::MAX_NOTES {
            self.notes.push(Note {
                rule,
                offset,
                message,
                evidence,
            });
        }
    }
}

/// How one stream ended.
#[derive(Debug, Clone)]
pub struct Stream {
    pub start: usize,
    /// The byte after STOP, or where the error struck.
    pub end: usize,
    pub error: Option<PickleError>,
    pub opcodes: u64,
    /// The stream imported a global or made a call before it ended.
    pub saw_code: bool,
    /// First byte where a read straddled the end of the buffered FRAME: from there on
    /// `pickle.loads(bytes)` and `pickle.load(file)` decode different opcodes.
    pub crossed_at: Option<usize>,
}

/// How the C unpickler gets its bytes. `pickle.loads(bytes)` sees one buffer and reads
/// linearly. `pickle.load(file)` without `peek` (io.BytesIO, as torch reads `data.pkl`) reads a
/// FRAME into a buffer, and a read that runs past that buffer drops the frame's remaining bytes
/// and reads fresh ones from the file after the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Linear,
    File,
}

pub struct Vm<'a, 's> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    proto: u8,
    limits: &'s Limits,
    shared: &'s mut Shared,
    opcodes: u64,
    saw_code: bool,
    nesting: u8,
    mode: ReadMode,
    /// One shared empty container: EMPTY_LIST and friends cost a reference count, and the copy
    /// happens on the first append (`Rc::make_mut`). A run of 50 000 `]` allocates nothing.
    empty_seq: Rc<Seq>,
    empty_pairs: Rc<Pairs>,
    /// End of the bytes the C unpickler holds in its buffer (everything before is consumed
    /// from the file). Without frames it always equals `pos`.
    buf_end: usize,
    crossed_at: Option<usize>,
}

type R<T> = Result<T, PickleError>;

impl<'a, 's> Vm<'a, 's> {
    pub fn new(
        data: &'a [u8],
        start: usize,
        limits: &'s Limits,
        shared: &'s mut Shared,
        nesting: u8,
    ) -> Self {
        Self::with_mode(data, start, limits, shared, nesting, ReadMode::Linear)
    }

    pub fn with_mode(
        data: &'a [u8],
        start: usize,
        limits: &'s Limits,
        shared: &'s mut Shared,
        nesting: u8,
        mode: ReadMode,
    ) -> Self {
        Vm {
            empty_seq: Rc::new(Seq::default()),
            empty_pairs: Rc::new(Pairs::default()),
            mode,
            buf_end: start,
            crossed_at: None,
            data,
            pos: start,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            proto: 0,
            limits,
            shared,
            opcodes: 0,
            saw_code: false,
            nesting,
        }
    }

    /// Runs one pickle from the start position to its STOP (or its first error).
    pub fn run(mut self) -> Stream {
        let start = self.pos;
        let result = self.load();
        let end = match &result {
            Ok(()) => self.pos,
            Err(e) => e.offset(),
        };
        Stream {
            start,
            end,
            error: result.err(),
            opcodes: self.opcodes,
            saw_code: self.saw_code,
            crossed_at: self.crossed_at,
        }
    }

    // ---- reading --------------------------------------------------------------------------

    fn take(&mut self, n: u64) -> R<&'a [u8]> {
        if n > self.limits.max_string_bytes {
            return Err(PickleError::Limit {
                what: "string or bytes size",
                limit: self.limits.max_string_bytes,
                at: self.pos,
            });
        }
        if self.pos as u64 + n > self.buf_end as u64 {
            // Not satisfied by the buffer: a fresh read of n bytes from the file.
            if self.pos < self.buf_end {
                self.crossed_at.get_or_insert(self.pos);
                if self.mode == ReadMode::File {
                    self.pos = self.buf_end;
                }
            }
            if n > (self.data.len() - self.pos) as u64 {
                return Err(PickleError::Truncated(self.pos));
            }
            self.buf_end = self.pos + n as usize;
        }
        let out = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(out)
    }

    fn byte(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16le(&mut self) -> R<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32le(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64le(&mut self) -> R<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A protocol-0 argument: bytes up to the newline, without it.
    fn line(&mut self) -> R<&'a [u8]> {
        if self.pos < self.buf_end {
            let buffered = &self.data[self.pos..self.buf_end];
            if let Some(n) = buffered.iter().position(|&c| c == b'\n') {
                let line = &buffered[..n];
                self.pos += n + 1;
                return Ok(line);
            }
            // readline() past the buffer: the file mode drops the buffered rest.
            self.crossed_at.get_or_insert(self.pos);
            if self.mode == ReadMode::File {
                self.pos = self.buf_end;
            }
        }
        let rest = &self.data[self.pos..];
        let found = rest.iter().position(|&c| c == b'\n');
        if let Some(n) = found {
            self.buf_end = self.buf_end.max(self.pos + n + 1);
        }
        match found {
            Some(n) => {
                if n as u64 > self.limits.max_string_bytes {
                    return Err(PickleError::Limit {
                        what: "line length",
                        limit: self.limits.max_string_bytes,
                        at: self.pos,
                    });
                }
                let line = &rest[..n];
                self.pos += n + 1;
                Ok(line)
            }
            None => Err(PickleError::Truncated(self.pos)),
        }
    }

    // ---- the stack ------------------------------------------------------------------------

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, v: Value, at: usize) -> R<()> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(PickleError::Limit {
                what: "stack depth",
                limit: self.limits.max_stack as u64,
                at,
            });
        }
        if v.depth() > self.limits.max_nesting {
            return Err(PickleError::Limit {
                what: "nesting depth",
                limit: self.limits.max_nesting as u64,
                at,
            });
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self, at: usize) -> R<Value> {
        if self.stack.len() <= self.fence() {
            return Err(PickleError::StackUnderflow(at));
        }
        self.stack.pop().ok_or(PickleError::StackUnderflow(at))
    }

    fn top_mut(&mut self, at: usize) -> R<&mut Value> {
        if self.stack.len() <= self.fence() {
            return Err(PickleError::StackUnderflow(at));
        }
        self.stack.last_mut().ok_or(PickleError::StackUnderflow(at))
    }

    /// Pops the innermost MARK and everything above it.
    fn pop_mark(&mut self, at: usize) -> R<Vec<Value>> {
        let mark = self.marks.pop().ok_or(PickleError::NoMark(at))?;
        let mark = mark.min(self.stack.len());
        Ok(self.stack.split_off(mark))
    }

    fn seq(items: Vec<Value>) -> Seq {
        let mut s = Seq::default();
        for v in items {
            s.push(v);
        }
        s
    }

    // ---- globals and calls ----------------------------------------------------------------

    fn global(&mut self, module: &str, name: &str, at: usize, opcode: &'static str) -> R<Value> {
        // No module file or attribute has a space, a slash or a control character in its name:
        // CPython's import fails here before anything runs (text or tensor bytes read as a
        // GLOBAL opcode are not a pickle). Hyphens stay: real modules carry them.
        let importable = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        if !importable(module) || !importable(name) {
            return Err(PickleError::invalid(
                "a global whose name no module can have (the import fails before anything runs)",
                at,
            ));
        }
        self.saw_code = true;
        let key = (module.to_string(), name.to_string());
        if let Some(&id) = self.shared.index.get(&key) {
            return Ok(Value::Global(id));
        }
        if self.shared.globals.len() >= self.limits.max_globals {
            return Err(PickleError::Limit {
                what: "distinct globals",
                limit: self.limits.max_globals as u64,
                at,
            });
        }
        let judgment = policy::judge(module, name);
        if judgment != Judgment::Allowed {
            self.shared.unsafe_seen = true;
        }
        if name == "NumpyArrayWrapper" || name == "NDArrayWrapper" {
            self.shared.joblib = true;
        }
        let id = self.shared.globals.len() as u32;
        self.shared.globals.push(GlobalRec {
            module: module.to_string(),
            name: name.to_string(),
            offset: at,
            opcode,
            judgment,
            evidence: None,
        });
        self.shared.index.insert(key, id);
        Ok(Value::Global(id))
    }

    fn render(&self, v: &Value) -> String {
        let shared = &*self.shared;
        let names = |i: u32| shared.name_of(i);
        let mut out = String::new();
        value::render(v, &names, &mut out, MAX_EVIDENCE_CHARS);
        if out.len() > MAX_EVIDENCE_CHARS {
            let mut end = MAX_EVIDENCE_CHARS;
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
            out.push_str("...");
        }
        out
    }

    /// Collects the ids of globals inside `v`, visiting at most a bounded number of nodes.
    fn globals_in(v: &Value, out: &mut Vec<u32>, budget: &mut usize) {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        match v {
            Value::Global(i) => out.push(*i),
            Value::List(s) | Value::Tuple(s) | Value::Set(s) | Value::FrozenSet(s) => {
                for x in &s.items {
                    Self::globals_in(x, out, budget);
                }
            }
            Value::Dict(p) => {
                for (k, x) in &p.items {
                    Self::globals_in(k, out, budget);
                    Self::globals_in(x, out, budget);
                }
            }
            Value::Call(c) => {
                Self::globals_in(&c.callee, out, budget);
                Self::globals_in(&c.args, out, budget);
                if let Some(k) = &c.kwargs {
                    Self::globals_in(k, out, budget);
                }
            }
            Value::PersId(x) => Self::globals_in(x, out, budget),
            _ => {}
        }
    }

    fn call(
        &mut self,
        kind: CallKind,
        callee: Value,
        args: Value,
        kwargs: Option<Value>,
        at: usize,
    ) -> R<Value> {
        self.saw_code = true;
        self.shared.calls += 1;
        let depth = callee
            .depth()
            .max(args.depth())
            .max(kwargs.as_ref().map_or(0, Value::depth))
            .saturating_add(1);
        let call = Call {
            kind,
            callee,
            args,
            kwargs,
            state: None,
            offset: at,
            depth,
        };
        if !matches!(call.callee, Value::Global(_)) {
            let what = self.render(&call.callee);
            self.shared.note(
                "pickle.indirect-call",
                at,
                "calls the result of another call or a non-global value: the callable is chosen at load time"
                    .into(),
                Some(what),
            );
        }
        if self.shared.unsafe_seen {
            let mut ids = Vec::new();
            let mut budget = 256;
            Self::globals_in(&call.callee, &mut ids, &mut budget);
            Self::globals_in(&call.args, &mut ids, &mut budget);
            if let Some(k) = &call.kwargs {
                Self::globals_in(k, &mut ids, &mut budget);
            }
            let pending: Vec<u32> =
                ids.into_iter()
                    .filter(|&i| {
                        self.shared.globals.get(i as usize).is_some_and(|g| {
                            g.judgment != Judgment::Allowed && g.evidence.is_none()
                        })
                    })
                    .collect();
            if !pending.is_empty() {
                let mut text = String::new();
                let shared = &*self.shared;
                let names = |i: u32| shared.name_of(i);
                value::render_call(&call, &names, &mut text, MAX_EVIDENCE_CHARS);
                for i in pending {
                    if let Some(g) = self.shared.globals.get_mut(i as usize) {
                        g.evidence = Some((at, text.clone()));
                    }
                }
            }
        }
        self.extension_registration(&call);
        if let Some(payload) = self.nested_payload(&call)
            && self.shared.nested.len() < super::MAX_NOTES
        {
            self.shared.nested.push((at, payload));
        }
        Ok(Value::Call(Rc::new(call)))
    }

    fn global_name(&self, v: &Value) -> Option<String> {
        let Value::Global(id) = v else { return None };
        let g = self.shared.globals.get(*id as usize)?;
        Some(format!(
            "{}.{}",
            policy::canonical_module(&g.module),
            g.name
        ))
    }

    /// The bytes a nested loader call would unpickle, when the pickle spells them out: a bytes
    /// literal, or `_codecs.encode(str, 'latin1')` of a string literal (how protocol 2 writes
    /// bytes).
    fn nested_payload(&self, call: &Call) -> Option<Rc<[u8]>> {
        let callee = self.global_name(&call.callee)?;
        if !NESTED_LOADERS.contains(&callee.as_str()) {
            return None;
        }
        let Value::Tuple(args) = &call.args else {
            return None;
        };
        match args.items.first()? {
            Value::Bytes(t) => t.raw.clone(),
            Value::Call(inner) => {
                let f = self.global_name(&inner.callee)?;
                let Value::Tuple(a) = &inner.args else {
                    return None;
                };
                match (f.as_str(), a.items.as_slice()) {
                    ("_codecs.encode" | "codecs.encode", [Value::Str(s), Value::Str(enc)])
                        if matches!(enc.head.as_str(), "latin1" | "latin-1" | "iso-8859-1") =>
                    {
                        let text = std::str::from_utf8(s.raw.as_deref()?).ok()?;
                        let bytes: Option<Vec<u8>> =
                            text.chars().map(|c| u8::try_from(c as u32).ok()).collect();
                        bytes.map(Rc::from)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// `copyreg.add_extension(module, name, code)` made by the pickle itself: later EXT opcodes
    /// with that code import `module.name`.
    fn extension_registration(&mut self, call: &Call) {
        let Value::Global(id) = call.callee else {
            return;
        };
        let Some(g) = self.shared.globals.get(id as usize) else {
            return;
        };
        if policy::canonical_module(&g.module) != "copyreg" || g.name != "add_extension" {
            return;
        }
        if let Value::Tuple(s) = &call.args
            && let [Value::Str(m), Value::Str(n), Value::Int(code)] = s.items.as_slice()
        {
            let (m, n, code) = (m.head.clone(), n.head.clone(), *code as u64);
            if let Ok(Value::Global(gid)) = self.global(&m, &n, call.offset, "EXT") {
                self.shared.ext.insert(code, gid);
            }
        }
    }

    fn mutation_of_global(&mut self, target: &Value, op: &'static str, at: usize) {
        if let Value::Global(id) = target {
            let name = self.shared.name_of(*id);
            self.shared.note(
                "pickle.global-mutation",
                at,
                format!("{op} modifies an imported object: attributes or items of {name} are rewritten at load time"),
                Some(name),
            );
        }
    }

    // ---- the load loop --------------------------------------------------------------------

    fn load(&mut self) -> R<()> {
        loop {
            if self.opcodes >= self.limits.max_opcodes {
                return Err(PickleError::Limit {
                    what: "opcode count",
                    limit: self.limits.max_opcodes,
                    at: self.pos,
                });
            }
            self.opcodes += 1;
            let at = self.pos;
            let op = self.byte()?;
            match op {
                b'(' => {
                    if self.marks.len() >= self.limits.max_stack {
                        return Err(PickleError::Limit {
                            what: "mark depth",
                            limit: self.limits.max_stack as u64,
                            at,
                        });
                    }
                    self.marks.push(self.stack.len());
                }
                b'.' => {
                    self.pop(at)?;
                    return Ok(());
                }
                b'0' => {
                    let len = self.stack.len();
                    if self.marks.last() == Some(&len) {
                        self.marks.pop();
                    } else {
                        self.pop(at)?;
                    }
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let v = self.top_mut(at)?.clone();
                    self.push(v, at)?;
                }
                b'F' => {
                    let line = self.line()?;
                    let s = std::str::from_utf8(c_text(line))
                        .map_err(|_| PickleError::invalid("FLOAT is not ASCII", at))?;
                    let f: f64 = py_float(s)
                        .ok_or_else(|| PickleError::invalid("could not convert FLOAT", at))?;
                    self.push(Value::Float(f), at)?;
                }
                b'I' => {
                    let line = self.line()?;
                    let v = match line {
                        b"01" => Value::Bool(true),
                        b"00" => Value::Bool(false),
                        _ => parse_int(line, at)?,
                    };
                    self.push(v, at)?;
                }
                b'J' => {
                    let v = self.u32le()? as i32;
                    self.push(Value::Int(v as i64), at)?;
                }
                b'K' => {
                    let v = self.byte()?;
                    self.push(Value::Int(v as i64), at)?;
                }
                b'L' => {
                    let line = self.line()?;
                    let line = line.strip_suffix(b"L").unwrap_or(line);
                    let v = parse_int(line, at)?;
                    self.push(v, at)?;
                }
                b'M' => {
                    let v = self.u16le()?;
                    self.push(Value::Int(v as i64), at)?;
                }
                b'N' => self.push(Value::None, at)?,
                b'P' => {
                    let line = self.line()?;
                    if !line.is_ascii() {
                        return Err(PickleError::invalid(
                            "persistent IDs in protocol 0 must be ASCII strings",
                            at,
                        ));
                    }
                    let pid = Value::str(&String::from_utf8_lossy(line));
                    self.saw_code = true;
                    self.push(Value::PersId(Rc::new(pid)), at)?;
                }
                b'Q' => {
                    let pid = self.pop(at)?;
                    self.saw_code = true;
                    self.push(Value::PersId(Rc::new(pid)), at)?;
                }
                b'R' => {
                    let args = self.pop(at)?;
                    let callee = self.pop(at)?;
                    let v = self.call(CallKind::Call, callee, args, None, at)?;
                    self.push(v, at)?;
                }
                b'S' => {
                    let line = self.line()?;
                    let v = decode_string_literal(line, at)?;
                    self.push(v, at)?;
                }
                b'T' => {
                    let n = self.u32le()? as i32;
                    if n < 0 {
                        return Err(PickleError::invalid(
                            "BINSTRING pickle has negative byte count",
                            at,
                        ));
                    }
                    let b = self.take(n as u64)?;
                    self.push(Value::Str(Rc::new(Text::from_bytes(b))), at)?;
                }
                b'U' => {
                    let n = self.byte()?;
                    let b = self.take(n as u64)?;
                    self.push(Value::Str(Rc::new(Text::from_bytes(b))), at)?;
                }
                b'V' => {
                    let line = self.line()?;
                    let s = raw_unicode_escape(line);
                    self.push(
                        Value::Str(Rc::new(Text {
                            raw: None,
                            len: line.len(),
                            head: s,
                        })),
                        at,
                    )?;
                }
                b'X' => {
                    let n = self.u32le()?;
                    let b = self.take(n as u64)?;
                    self.push(utf8_value(b), at)?;
                }
                0x8c => {
                    let n = self.byte()?;
                    let b = self.take(n as u64)?;
                    self.push(utf8_value(b), at)?;
                }
                0x8d => {
                    let n = self.u64le()?;
                    let b = self.take(n)?;
                    self.push(utf8_value(b), at)?;
                }
                b'B' => {
                    let n = self.u32le()?;
                    let b = self.take(n as u64)?;
                    self.push(Value::Bytes(Rc::new(Text::from_bytes(b))), at)?;
                }
                b'C' => {
                    let n = self.byte()?;
                    let b = self.take(n as u64)?;
                    self.push(Value::Bytes(Rc::new(Text::from_bytes(b))), at)?;
                }
                0x8e | 0x96 => {
                    let n = self.u64le()?;
                    let b = self.take(n)?;
                    self.push(Value::Bytes(Rc::new(Text::from_bytes(b))), at)?;
                }
                b'a' => {
                    let v = self.pop(at)?;
                    let fence = self.fence();
                    let len = self.stack.len();
                    if len == 0 || len - 1 < fence {
                        return Err(PickleError::StackUnderflow(at));
                    }
                    let target = &mut self.stack[len - 1];
                    Self::append(target, vec![v]);
                    let t = self.stack[len - 1].clone();
                    self.mutation_of_global(&t, "APPEND", at);
                    self.check_depth(len - 1, at)?;
                }
                b'e' => {
                    let items = self.pop_mark(at)?;
                    let len = self.stack.len();
                    if len == 0 || len - 1 < self.fence() {
                        return Err(PickleError::StackUnderflow(at));
                    }
                    Self::append(&mut self.stack[len - 1], items);
                    let t = self.stack[len - 1].clone();
                    self.mutation_of_global(&t, "APPENDS", at);
                    self.check_depth(len - 1, at)?;
                }
                b'b' => {
                    let state = self.pop(at)?;
                    let fence = self.fence();
                    let len = self.stack.len();
                    if len == 0 || len - 1 < fence {
                        return Err(PickleError::StackUnderflow(at));
                    }
                    let target = self.stack[len - 1].clone();
                    self.mutation_of_global(&target, "BUILD", at);
                    let is_wrapper = self.is_joblib_wrapper(&target);
                    if let Value::Call(c) = &mut self.stack[len - 1] {
                        let c = Rc::make_mut(c);
                        c.depth = c.depth.max(state.depth().saturating_add(1));
                        c.state = Some(state.clone());
                    }
                    self.check_depth(len - 1, at)?;
                    if is_wrapper {
                        self.joblib_array(&state, at)?;
                    }
                }
                b'c' => {
                    let module = String::from_utf8_lossy(self.line()?).into_owned();
                    let name = String::from_utf8_lossy(self.line()?).into_owned();
                    let v = self.global(&module, &name, at, "GLOBAL")?;
                    self.push(v, at)?;
                }
                0x93 => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let v = match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => {
                            let (m, n) = (m.to_string(), n.to_string());
                            self.global(&m, &n, at, "STACK_GLOBAL")?
                        }
                        _ => {
                            let text = format!("{}, {}", self.render(&module), self.render(&name));
                            self.saw_code = true;
                            self.shared.unsafe_seen = true;
                            self.shared.note(
                                "pickle.dynamic-global",
                                at,
                                "STACK_GLOBAL operands are not literal strings: the imported name is computed at load time".into(),
                                Some(text),
                            );
                            Value::Opaque
                        }
                    };
                    self.push(v, at)?;
                }
                b'd' => {
                    let items = self.pop_mark(at)?;
                    if items.len() % 2 != 0 {
                        return Err(PickleError::invalid("odd number of items for DICT", at));
                    }
                    let mut p = Pairs::default();
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        p.push(k, v);
                    }
                    self.push(Value::Dict(Rc::new(p)), at)?;
                }
                b'}' => self.push(Value::Dict(self.empty_pairs.clone()), at)?,
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    let len = self.stack.len();
                    if len == 0 || len - 1 < self.fence() {
                        return Err(PickleError::StackUnderflow(at));
                    }
                    Self::set_items(&mut self.stack[len - 1], vec![k, v]);
                    let t = self.stack[len - 1].clone();
                    self.mutation_of_global(&t, "SETITEM", at);
                    self.check_depth(len - 1, at)?;
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    if items.len() % 2 != 0 {
                        return Err(PickleError::invalid("odd number of items for SETITEMS", at));
                    }
                    let len = self.stack.len();
                    if len == 0 || len - 1 < self.fence() {
                        return Err(PickleError::StackUnderflow(at));
                    }
                    Self::set_items(&mut self.stack[len - 1], items);
                    let t = self.stack[len - 1].clone();
                    self.mutation_of_global(&t, "SETITEMS", at);
                    self.check_depth(len - 1, at)?;
                }
                b'g' => {
                    let line = self.line()?;
                    let idx = parse_index(line, at)?;
                    self.get(idx, at)?;
                }
                b'h' => {
                    let idx = self.byte()? as u64;
                    self.get(idx, at)?;
                }
                b'j' => {
                    let idx = self.u32le()? as u64;
                    self.get(idx, at)?;
                }
                b'p' => {
                    let line = self.line()?;
                    let idx = parse_index(line, at)?;
                    self.put(idx, at)?;
                }
                b'q' => {
                    let idx = self.byte()? as u64;
                    self.put(idx, at)?;
                }
                b'r' => {
                    let idx = self.u32le()? as u64;
                    self.put(idx, at)?;
                }
                0x94 => {
                    let idx = self.memo.len() as u64;
                    self.put(idx, at)?;
                }
                b'i' => {
                    let module = String::from_utf8_lossy(self.line()?).into_owned();
                    let name = String::from_utf8_lossy(self.line()?).into_owned();
                    let args = self.pop_mark(at)?;
                    let cls = self.global(&module, &name, at, "INST")?;
                    let v = self.call(
                        CallKind::Call,
                        cls,
                        Value::Tuple(Rc::new(Self::seq(args))),
                        None,
                        at,
                    )?;
                    self.push(v, at)?;
                }
                b'o' => {
                    let mut items = self.pop_mark(at)?;
                    if items.is_empty() {
                        return Err(PickleError::StackUnderflow(at));
                    }
                    let cls = items.remove(0);
                    let v = self.call(
                        CallKind::Call,
                        cls,
                        Value::Tuple(Rc::new(Self::seq(items))),
                        None,
                        at,
                    )?;
                    self.push(v, at)?;
                }
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.push(Value::List(Rc::new(Self::seq(items))), at)?;
                }
                b']' => self.push(Value::List(self.empty_seq.clone()), at)?,
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.push(Value::Tuple(Rc::new(Self::seq(items))), at)?;
                }
                b')' => self.push(Value::Tuple(self.empty_seq.clone()), at)?,
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop(at)?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(Rc::new(Self::seq(items))), at)?;
                }
                0x88 => self.push(Value::Bool(true), at)?,
                0x89 => self.push(Value::Bool(false), at)?,
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Value::Float(f64::from_be_bytes(a)), at)?;
                }
                0x80 => {
                    let p = self.byte()?;
                    if p > 5 {
                        return Err(PickleError::invalid(
                            format!("unsupported pickle protocol: {p}"),
                            at,
                        ));
                    }
                    self.proto = p;
                }
                0x81 => {
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    let v = self.call(CallKind::New, cls, args, None, at)?;
                    self.push(v, at)?;
                }
                0x92 => {
                    let kwargs = self.pop(at)?;
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    let v = self.call(CallKind::NewEx, cls, args, Some(kwargs), at)?;
                    self.push(v, at)?;
                }
                0x82..=0x84 => {
                    let code = match op {
                        0x82 => self.byte()? as u64,
                        0x83 => self.u16le()? as u64,
                        _ => self.u32le()? as u64,
                    };
                    if code == 0 {
                        return Err(PickleError::invalid("EXT specifies code <= 0", at));
                    }
                    self.saw_code = true;
                    let v = match self.shared.ext.get(&code) {
                        Some(&id) => Value::Global(id),
                        None => {
                            self.shared.unsafe_seen = true;
                            self.shared.note(
                                "pickle.ext-code",
                                at,
                                format!("extension code {code} imports whatever the loading process registered under it (copyreg); the pickle does not say which global"),
                                Some(format!("EXT {code}")),
                            );
                            Value::Ext(code)
                        }
                    };
                    self.push(v, at)?;
                }
                0x8a => {
                    let n = self.byte()?;
                    let b = self.take(n as u64)?;
                    self.push(long_value(b), at)?;
                }
                0x8b => {
                    let n = self.u32le()? as i32;
                    if n < 0 {
                        return Err(PickleError::invalid(
                            "LONG pickle has negative byte count",
                            at,
                        ));
                    }
                    let b = self.take(n as u64)?;
                    self.push(long_value(b), at)?;
                }
                0x8f => self.push(Value::Set(self.empty_seq.clone()), at)?,
                0x90 => {
                    let items = self.pop_mark(at)?;
                    let len = self.stack.len();
                    if len == 0 || len - 1 < self.fence() {
                        return Err(PickleError::StackUnderflow(at));
                    }
                    Self::append(&mut self.stack[len - 1], items);
                    let t = self.stack[len - 1].clone();
                    self.mutation_of_global(&t, "ADDITEMS", at);
                    self.check_depth(len - 1, at)?;
                }
                0x91 => {
                    let items = self.pop_mark(at)?;
                    self.push(Value::FrozenSet(Rc::new(Self::seq(items))), at)?;
                }
                0x95 => {
                    // CPython's C unpickler reads the frame's bytes into its buffer, then
                    // rewinds and decodes opcodes from it; see `ReadMode` for reads that
                    // straddle the frame's end.
                    let n = self.u64le()?;
                    self.take(n)?;
                    self.pos -= n as usize;
                }
                0x97 => {
                    return Err(PickleError::invalid(
                        "NEXT_BUFFER: pickle stream refers to out-of-band data but no buffers were given",
                        at,
                    ));
                }
                0x98 => {
                    self.top_mut(at)?;
                }
                _ => return Err(PickleError::BadOpcode { op, at }),
            }
        }
    }

    fn check_depth(&self, idx: usize, at: usize) -> R<()> {
        if self.stack[idx].depth() > self.limits.max_nesting {
            return Err(PickleError::Limit {
                what: "nesting depth",
                limit: self.limits.max_nesting as u64,
                at,
            });
        }
        Ok(())
    }

    fn append(target: &mut Value, items: Vec<Value>) {
        match target {
            Value::List(s) | Value::Set(s) => {
                let s = Rc::make_mut(s);
                for v in items {
                    s.push(v);
                }
            }
            Value::Call(c) => {
                // `obj.append` / `obj.extend` of an arbitrary class: kept as state for display.
                let c = Rc::make_mut(c);
                let mut s = Seq::default();
                for v in items {
                    s.push(v);
                }
                c.depth = c.depth.max(s.depth.saturating_add(1));
            }
            _ => {}
        }
    }

    fn set_items(target: &mut Value, items: Vec<Value>) {
        if let Value::Dict(p) = target {
            let p = Rc::make_mut(p);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                p.push(k, v);
            }
        }
    }

    fn get(&mut self, idx: u64, at: usize) -> R<()> {
        let v = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or(PickleError::MemoMissing { index: idx, at })?;
        self.push(v, at)
    }

    fn put(&mut self, idx: u64, at: usize) -> R<()> {
        let v = self.top_mut(at)?.clone();
        if !self.memo.contains_key(&idx) && self.memo.len() >= self.limits.max_memo {
            return Err(PickleError::Limit {
                what: "memo entries",
                limit: self.limits.max_memo as u64,
                at,
            });
        }
        self.memo.insert(idx, v);
        Ok(())
    }

    // ---- joblib ---------------------------------------------------------------------------

    /// Whether `v` is an instance of joblib's `NumpyArrayWrapper`: joblib's BUILD checks
    /// `isinstance`, so a wrapper made through another constructor (`copyreg._reconstructor`,
    /// `copyreg.__newobj__`) counts as well as one called directly.
    fn is_joblib_wrapper(&self, v: &Value) -> bool {
        let Value::Call(c) = v else { return false };
        let wrapper = |v: &Value| {
            matches!(v, Value::Global(id) if self.shared.globals.get(*id as usize).is_some_and(|g| {
                g.name == "NumpyArrayWrapper" && g.module.ends_with("numpy_pickle")
            }))
        };
        // The class called, or the class a constructor global is handed first (an object
        // holding wrappers among its arguments, an sklearn tree, is not one).
        let first_arg = match &c.args {
            Value::Tuple(a) => a.items.first(),
            _ => None,
        };
        wrapper(&c.callee)
            || (matches!(c.callee, Value::Global(_)) && first_arg.is_some_and(wrapper))
    }

    /// joblib writes an array's raw bytes (or, for object arrays, a whole nested pickle) right
    /// after the BUILD of its `NumpyArrayWrapper`, inside the pickle stream. Skip the bytes,
    /// run the nested pickle.
    fn joblib_array(&mut self, state: &Value, at: usize) -> R<()> {
        let Value::Dict(d) = state else {
            return Err(PickleError::invalid(
                "NumpyArrayWrapper state is not a dict",
                at,
            ));
        };
        let mut count: u64 = 1;
        match d.get_str("shape") {
            Some(Value::Tuple(s)) => {
                if s.total as usize != s.items.len() {
                    return Err(PickleError::invalid("NumpyArrayWrapper shape too long", at));
                }
                for dim in &s.items {
                    let Value::Int(n) = dim else {
                        return Err(PickleError::invalid(
                            "NumpyArrayWrapper shape is not integers",
                            at,
                        ));
                    };
                    count = u64::try_from(*n)
                        .ok()
                        .and_then(|n| count.checked_mul(n))
                        .ok_or_else(|| {
                            PickleError::invalid("NumpyArrayWrapper shape overflows", at)
                        })?;
                }
            }
            _ => {
                return Err(PickleError::invalid(
                    "NumpyArrayWrapper without a shape",
                    at,
                ));
            }
        }
        // A dtype this reader does not know is taken for the object type: what follows is then
        // scanned as the nested pickle it may be, never skipped unread.
        let (object, itemsize) = dtype_itemsize(d.get_str("dtype")).unwrap_or((true, 8));
        if object {
            if self.nesting >= self.limits.max_pickle_nesting {
                return Err(PickleError::Limit {
                    what: "nested pickles",
                    limit: self.limits.max_pickle_nesting as u64,
                    at,
                });
            }
            let start = self.pos;
            let nested = Vm::with_mode(
                self.data,
                start,
                self.limits,
                self.shared,
                self.nesting + 1,
                self.mode,
            )
            .run();
            if let Some(e) = nested.error {
                return Err(e);
            }
            self.shared.note(
                "pickle.nested-pickle",
                start,
                "joblib object array: a nested pickle is loaded from inside the stream".into(),
                None,
            );
            self.pos = nested.end;
            self.buf_end = self.buf_end.max(self.pos);
        } else {
            // joblib reads a padding byte whenever the alignment is not None (it writes None
            // for streams it cannot seek).
            if !matches!(
                d.get_str("numpy_array_alignment_bytes"),
                None | Some(Value::None)
            ) {
                let pad = self.byte()? as u64;
                self.take(pad)?;
            }
            let bytes = count
                .checked_mul(itemsize)
                .ok_or_else(|| PickleError::invalid("NumpyArrayWrapper size overflows", at))?;
            self.take(bytes)?;
        }
        Ok(())
    }
}

/// Callables that unpickle their first argument.
const NESTED_LOADERS: &[&str] = &[
    "pickle.loads",
    "_pickle.loads",
    "pickle._loads",
    "dill.loads",
    "dill._dill.loads",
    "cloudpickle.loads",
    "numpy.core.numeric.loads",
    "numpy.loads",
];

/// `(is_object, itemsize)` of a pickled `numpy.dtype(...)` call.
fn dtype_itemsize(v: Option<&Value>) -> Option<(bool, u64)> {
    let Some(Value::Call(c)) = v else { return None };
    let Value::Tuple(args) = &c.args else {
        return None;
    };
    let code = args.items.first()?.as_str()?;
    let kind = code.trim_start_matches(['<', '>', '|', '=']);
    let letter = kind.chars().next()?;
    if letter == 'O' || kind == "object" {
        return Some((true, 8));
    }
    // A structured type (`V8` with fields in its state) with an object field anywhere: joblib
    // then pickles the array as a nested pickle.
    if let Some(state) = &c.state
        && has_object_dtype(state, &mut MAX_DTYPE_NODES.clone())
    {
        return Some((true, 8));
    }
    // numpy's names for the fixed-size types.
    let named = match kind {
        "bool" | "bool_" | "int8" | "uint8" | "byte" | "ubyte" => Some(1),
        "int16" | "uint16" | "float16" | "half" | "short" | "ushort" => Some(2),
        "int32" | "uint32" | "float32" | "single" | "intc" | "uintc" => Some(4),
        "int64" | "uint64" | "float64" | "double" | "complex64" | "int" | "float" | "long"
        | "ulong" | "longlong" | "ulonglong" | "intp" | "uintp" => Some(8),
        "complex128" | "complex" | "longdouble" | "float128" | "clongdouble" => Some(16),
        "complex256" => Some(32),
        _ => None,
    };
    // The one-letter type codes, without a size.
    let letter_only = match kind {
        "?" | "b" | "B" => Some(1),
        "h" | "H" | "e" => Some(2),
        "i" | "I" | "f" => Some(4),
        "l" | "L" | "q" | "Q" | "d" | "F" => Some(8),
        "g" | "D" => Some(16),
        "G" => Some(32),
        _ => None,
    };
    if let Some(n) = named.or(letter_only) {
        return Some((false, n));
    }
    // The state tuple carries the element size for flexible types (`U`, `S`, `V`).
    if let Some(Value::Tuple(state)) = &c.state
        && state.items.len() >= 8
        && let Value::Int(n) = &state.items[5]
        && *n > 0
    {
        return Some((false, *n as u64));
    }
    let digits: String = kind
        .chars()
        .skip(1)
        .take_while(char::is_ascii_digit)
        .collect();
    let n: u64 = digits.parse().ok()?;
    let n = if letter == 'U' { n.checked_mul(4)? } else { n };
    (n > 0).then_some((false, n))
}

/// Nodes of a dtype's pickled state looked at for an object field: a structured type with more
/// fields than this is taken for one that has it.
const MAX_DTYPE_NODES: usize = 4096;

/// Whether a `numpy.dtype('O...')` call (or `'object'`) sits anywhere in `v`, visiting at most
/// `budget` nodes; a state too large to look through counts as holding one.
fn has_object_dtype(v: &Value, budget: &mut usize) -> bool {
    if *budget == 0 {
        return true;
    }
    *budget -= 1;
    match v {
        Value::Call(c) => {
            let object = matches!(&c.args, Value::Tuple(a) if a.items.first().and_then(Value::as_str).is_some_and(|s| {
                let k = s.trim_start_matches(['<', '>', '|', '=']);
                k.starts_with('O') || k == "object"
            }));
            object
                || has_object_dtype(&c.args, budget)
                || c.state
                    .as_ref()
                    .is_some_and(|s| has_object_dtype(s, budget))
        }
        Value::List(s) | Value::Tuple(s) | Value::Set(s) | Value::FrozenSet(s) => {
            s.items.iter().any(|x| has_object_dtype(x, budget))
        }
        Value::Dict(p) => p
            .items
            .iter()
            .any(|(k, x)| has_object_dtype(k, budget) || has_object_dtype(x, budget)),
        _ => false,
    }
}

fn utf8_value(b: &[u8]) -> Value {
    let head = &b[..b.len().min(super::MAX_KEPT_TEXT * 4)];
    let s = String::from_utf8_lossy(head);
    let mut t = Text::from_text(&s);
    t.raw = value::keep_raw(b);
    t.len = b.len();
    if t.head.len() == b.len() {
        t.len = t.head.len();
    }
    Value::Str(Rc::new(t))
}

fn long_value(b: &[u8]) -> Value {
    if b.is_empty() {
        return Value::Int(0);
    }
    if b.len() <= 8 {
        let negative = b[b.len() - 1] & 0x80 != 0;
        let mut a = [if negative { 0xff } else { 0 }; 8];
        a[..b.len()].copy_from_slice(b);
        return Value::Int(i64::from_le_bytes(a));
    }
    let keep = &b[..b.len().min(64)];
    let mut v = keep.to_vec();
    if b.len() > 64 {
        v.resize(b.len().min(4096), 0);
    }
    Value::BigInt(Rc::new(v))
}

/// The text CPython's C parsers see of an argument line: up to its first NUL.
fn c_text(line: &[u8]) -> &[u8] {
    line.iter()
        .position(|&b| b == 0)
        .map_or(line, |n| &line[..n])
}

/// C's isspace in the "C" locale (Rust's ASCII whitespace lacks the vertical tab).
fn c_space(c: char) -> bool {
    c == ' ' || ('\t'..='\r').contains(&c)
}

/// C `strtol(s, &end, 0)` as CPython's INT tries it first: leading spaces, a sign, then 0x
/// (hex), a leading 0 (octal) or decimal digits, and nothing after them.
fn c_strtol(s: &str) -> Option<(bool, String, u32)> {
    let t = s.trim_start_matches(c_space);
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, body) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    (!body.is_empty() && body.chars().all(|c| c.is_digit(radix)))
        .then(|| (negative, body.to_string(), radix))
}

fn parse_int(line: &[u8], at: usize) -> Result<Value, PickleError> {
    let s = std::str::from_utf8(c_text(line))
        .map_err(|_| PickleError::invalid("INT is not ASCII", at))?;
    // CPython reads INT with C's strtol (octal 010 included), then `int(s, 0)` (prefixes,
    // underscores, surrounding spaces), and LONG with the latter only; LONG is read here as INT
    // is, more leniently than CPython (which only makes the scan see more).
    let (negative, digits, radix) = c_strtol(s)
        .or_else(|| py_int(s, true))
        .ok_or_else(|| PickleError::invalid("invalid literal for int()", at))?;
    match i64::from_str_radix(&digits, radix) {
        Ok(i) => Ok(Value::Int(if negative { -i } else { i })),
        Err(_) => {
            let sign = if negative { "-" } else { "" };
            Ok(Value::Str(Rc::new(Text::from_text(&format!(
                "{sign}{digits}"
            )))))
        }
    }
}

/// A Python int literal as `PyLong_FromString` accepts it (base 0 when `any_base`, else 10):
/// optional surrounding whitespace and sign, a 0x/0o/0b prefix (base 0), digits with single
/// underscores between them, no leading zeros in base-0 decimal. Returns the sign, the digits
/// without underscores and the radix.
fn py_int(s: &str, any_base: bool) -> Option<(bool, String, u32)> {
    let t = s.trim_matches(c_space);
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = t.get(..2).map(str::to_ascii_lowercase);
    let (radix, body, prefixed) = match lower.as_deref() {
        Some("0x") if any_base => (16, &t[2..], true),
        Some("0o") if any_base => (8, &t[2..], true),
        Some("0b") if any_base => (2, &t[2..], true),
        _ => (10, t, false),
    };
    // After a prefix one underscore may come first: 0x_ff.
    let body = if prefixed {
        body.strip_prefix('_').unwrap_or(body)
    } else {
        body
    };
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    let digits: String = body.chars().filter(|&c| c != '_').collect();
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if any_base
        && !prefixed
        && digits.len() > 1
        && digits.starts_with('0')
        && digits.bytes().any(|b| b != b'0')
    {
        return None;
    }
    Some((negative, digits, radix))
}

/// FLOAT's text, read at least as leniently as CPython reads it: surrounding whitespace and
/// single underscores between digits (`1_0.5`) are taken too, on top of what Rust parses (`inf`,
/// `nan` in any case). A reader more lenient than the loader only scans more.
fn py_float(s: &str) -> Option<f64> {
    let t = s.trim_matches(c_space);
    if !t.contains('_') {
        return t.parse().ok();
    }
    let b = t.as_bytes();
    let between_digits = b.iter().enumerate().all(|(i, &c)| {
        c != b'_'
            || (i > 0 && i + 1 < b.len() && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit())
    });
    if !between_digits {
        return None;
    }
    t.replace('_', "").parse().ok()
}

fn parse_index(line: &[u8], at: usize) -> Result<u64, PickleError> {
    let s = std::str::from_utf8(c_text(line))
        .map_err(|_| PickleError::invalid("memo index is not ASCII", at))?;
    // `int(s, 10)`: surrounding spaces and underscores between digits are accepted.
    let (negative, digits, _) =
        py_int(s, false).ok_or_else(|| PickleError::invalid("invalid memo index", at))?;
    if negative && digits.bytes().any(|b| b != b'0') {
        return Err(PickleError::invalid("negative memo index", at));
    }
    digits
        .parse::<u64>()
        .map_err(|_| PickleError::invalid("invalid memo index", at))
}

/// The STRING opcode: a quoted Python 2 `repr`, decoded with `escape_decode`.
fn decode_string_literal(line: &[u8], at: usize) -> Result<Value, PickleError> {
    let quoted =
        line.len() >= 2 && (line[0] == b'\'' || line[0] == b'"') && line[line.len() - 1] == line[0];
    if !quoted {
        return Err(PickleError::invalid(
            "the STRING opcode argument must be quoted",
            at,
        ));
    }
    let body = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(body.len().min(super::MAX_KEPT_TEXT * 2));
    let mut i = 0;
    let mut produced = 0usize;
    while i < body.len() {
        let c = body[i];
        let (b, used) = if c == b'\\' && i + 1 < body.len() {
            let e = body[i + 1];
            match e {
                b'n' => (Some(b'\n'), 2),
                b't' => (Some(b'\t'), 2),
                b'r' => (Some(b'\r'), 2),
                b'\\' => (Some(b'\\'), 2),
                b'\'' => (Some(b'\''), 2),
                b'"' => (Some(b'"'), 2),
                b'a' => (Some(7), 2),
                b'b' => (Some(8), 2),
                b'f' => (Some(12), 2),
                b'v' => (Some(11), 2),
                b'\n' => (None, 2),
                b'x' => {
                    let hex = body
                        .get(i + 2..i + 4)
                        .and_then(|h| std::str::from_utf8(h).ok());
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(v) => (Some(v), 4),
                        None => {
                            return Err(PickleError::invalid("invalid \\x escape in STRING", at));
                        }
                    }
                }
                b'0'..=b'7' => {
                    let mut v: u32 = 0;
                    let mut n = 0;
                    while n < 3
                        && i + 1 + n < body.len()
                        && (b'0'..=b'7').contains(&body[i + 1 + n])
                    {
                        v = v * 8 + (body[i + 1 + n] - b'0') as u32;
                        n += 1;
                    }
                    (Some((v & 0xff) as u8), 1 + n)
                }
                _ => (Some(b'\\'), 1),
            }
        } else {
            (Some(c), 1)
        };
        if let Some(b) = b {
            produced += 1;
            if out.len() < super::MAX_KEPT_TEXT {
                out.push(b);
            }
        }
        i += used;
    }
    let mut t = Text::from_bytes(&out);
    t.len = produced;
    Ok(Value::Str(Rc::new(t)))
}

/// The UNICODE opcode's `raw-unicode-escape`: only `\uXXXX` and `\UXXXXXXXX` are escapes.
fn raw_unicode_escape(line: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < line.len() && out.len() < super::MAX_KEPT_TEXT {
        let c = line[i];
        if c == b'\\' && i + 1 < line.len() && (line[i + 1] == b'u' || line[i + 1] == b'U') {
            let n = if line[i + 1] == b'u' { 4 } else { 8 };
            let hex = line
                .get(i + 2..i + 2 + n)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(ch) = hex
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
            {
                out.push(ch);
                i += 2 + n;
                continue;
            }
        }
        out.push(c as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_as_cpython_reads_them() {
        let int = |s: &str| py_int(s, true).map(|(n, d, r)| (n, i64::from_str_radix(&d, r).ok()));
        assert_eq!(int("0x10"), Some((false, Some(16))));
        assert_eq!(int(" -0o17 "), Some((true, Some(15))));
        assert_eq!(int("0b1"), Some((false, Some(1))));
        assert_eq!(int("0x_ff"), Some((false, Some(255))));
        assert_eq!(int("1_000"), Some((false, Some(1000))));
        assert_eq!(int("000"), Some((false, Some(0))));
        for bad in ["010", "1__0", "_1", "1_", "0x", "12a", ""] {
            assert_eq!(py_int(bad, true), None, "{bad:?}");
        }
        // Memo indices are base 10: leading zeros are fine, prefixes are not.
        assert_eq!(py_int("010", false).map(|t| t.1), Some("010".to_string()));
        assert_eq!(py_int("0x10", false), None);
        assert_eq!(py_float(" 1_0.5 "), Some(10.5));
        assert_eq!(py_float("INF"), Some(f64::INFINITY));
        assert_eq!(py_float("1__0.5"), None);
        assert_eq!(py_float("_1.0"), None);
        // What C's strtol takes first: octal, a vertical tab; text after a NUL is not seen.
        assert_eq!(c_strtol("010"), Some((false, "10".to_string(), 8)));
        assert_eq!(c_strtol("\x0b7"), Some((false, "7".to_string(), 10)));
        assert_eq!(c_text(b"1\0zz"), b"1");
    }
}
