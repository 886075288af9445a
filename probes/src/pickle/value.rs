//! Symbolic values on the VM's stack and memo. Nothing is ever constructed for real: a call is
//! kept as the callee and its arguments, so the report can show the call the unpickler would
//! make (`os.system('id')`). Containers keep only their first items and strings their first
//! characters, which bounds memory and makes every clone cheap (values are shared with `Rc`).

use std::fmt::Write;
use std::rc::Rc;

use super::{MAX_KEPT_ITEMS, MAX_KEPT_TEXT, MAX_NESTED_LITERAL};

pub(crate) fn keep_raw(b: &[u8]) -> Option<Rc<[u8]>> {
    (b.len() <= MAX_NESTED_LITERAL).then(|| Rc::from(b))
}

#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too wide for i64, rendered from its little-endian bytes.
    BigInt(Rc<Vec<u8>>),
    Float(f64),
    Str(Rc<Text>),
    Bytes(Rc<Text>),
    List(Rc<Seq>),
    Tuple(Rc<Seq>),
    Set(Rc<Seq>),
    FrozenSet(Rc<Seq>),
    Dict(Rc<Pairs>),
    /// A global, by index into the VM's table of distinct globals.
    Global(u32),
    Call(Rc<Call>),
    PersId(Rc<Value>),
    /// An extension code the registry did not resolve.
    Ext(u64),
    /// Something not modelled: a value past the nesting bound, a buffer.
    Opaque,
}

/// A string or bytes object: its first characters and its real length.
#[derive(Debug, Clone)]
pub struct Text {
    pub head: String,
    pub len: usize,
    /// The whole value when it is short enough to be a nested payload (see
    /// `MAX_NESTED_LITERAL`): bytes as read, strings as UTF-8.
    pub raw: Option<Rc<[u8]>>,
}

impl Text {
    pub fn from_text(s: &str) -> Text {
        let head = if s.len() <= MAX_KEPT_TEXT {
            s.to_string()
        } else {
            let mut end = MAX_KEPT_TEXT;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_string()
        };
        Text {
            head,
            len: s.len(),
            raw: None,
        }
    }

    /// Bytes are kept as latin-1 characters, the way `repr(bytes)` shows them.
    pub fn from_bytes(b: &[u8]) -> Text {
        let head = b.iter().take(MAX_KEPT_TEXT).map(|&c| c as char).collect();
        Text {
            head,
            len: b.len(),
            raw: keep_raw(b),
        }
    }

    pub fn complete(&self) -> bool {
        self.head.len() == self.len || self.head.chars().count() == self.len
    }
}

#[derive(Debug, Clone, Default)]
pub struct Seq {
    pub items: Vec<Value>,
    pub total: u64,
    pub depth: u16,
}

impl Seq {
    pub fn push(&mut self, v: Value) {
        self.depth = self.depth.max(v.depth().saturating_add(1));
        self.total += 1;
        if self.items.len() < MAX_KEPT_ITEMS {
            self.items.push(v);
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Pairs {
    pub items: Vec<(Value, Value)>,
    pub total: u64,
    pub depth: u16,
}

impl Pairs {
    pub fn push(&mut self, k: Value, v: Value) {
        self.depth = self.depth.max(k.depth().max(v.depth()).saturating_add(1));
        self.total += 1;
        if self.items.len() < MAX_KEPT_ITEMS {
            self.items.push((k, v));
        }
    }

    pub fn get_str(&self, key: &str) -> Option<&Value> {
        self.items
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(t) if t.head == key))
            .map(|(_, v)| v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// REDUCE, INST, OBJ: `callee(*args)`.
    Call,
    /// NEWOBJ: `cls.__new__(cls, *args)`.
    New,
    /// NEWOBJ_EX: `cls.__new__(cls, *args, **kwargs)`.
    NewEx,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub kind: CallKind,
    pub callee: Value,
    pub args: Value,
    pub kwargs: Option<Value>,
    /// Set by BUILD: the state handed to `__setstate__` (or merged into `__dict__`).
    pub state: Option<Value>,
    pub offset: usize,
    pub depth: u16,
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Rc::new(Text::from_text(s)))
    }

    pub fn depth(&self) -> u16 {
        match self {
            Value::List(s) | Value::Tuple(s) | Value::Set(s) | Value::FrozenSet(s) => s.depth,
            Value::Dict(p) => p.depth,
            Value::Call(c) => c.depth,
            Value::PersId(v) => v.depth().saturating_add(1),
            _ => 0,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(t) => Some(&t.head),
            _ => None,
        }
    }

    pub fn tuple(items: Vec<Value>) -> Value {
        let mut s = Seq::default();
        for v in items {
            s.push(v);
        }
        Value::Tuple(Rc::new(s))
    }
}

/// Renders `v` as Python source would show it, into at most `budget` characters.
pub fn render(v: &Value, names: &dyn Fn(u32) -> String, out: &mut String, budget: usize) {
    if out.len() >= budget {
        return;
    }
    match v {
        Value::None => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::BigInt(bytes) => render_bigint(bytes, out),
        Value::Float(f) => {
            if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
                let _ = write!(out, "{f:.1}");
            } else {
                let _ = write!(out, "{f}");
            }
        }
        Value::Str(t) => render_text(t, "", out),
        Value::Bytes(t) => render_text(t, "b", out),
        Value::List(s) => render_seq(s, "[", "]", names, out, budget),
        Value::Tuple(s) => {
            if s.total == 1 {
                out.push('(');
                render(&s.items[0], names, out, budget);
                out.push_str(",)");
            } else {
                render_seq(s, "(", ")", names, out, budget)
            }
        }
        Value::Set(s) => render_seq(s, "{", "}", names, out, budget),
        Value::FrozenSet(s) => render_seq(s, "frozenset({", "})", names, out, budget),
        Value::Dict(p) => {
            out.push('{');
            for (i, (k, v)) in p.items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(k, names, out, budget);
                out.push_str(": ");
                render(v, names, out, budget);
                if out.len() >= budget {
                    break;
                }
            }
            if p.total > p.items.len() as u64 {
                let _ = write!(out, ", ...{} more", p.total - p.items.len() as u64);
            }
            out.push('}');
        }
        Value::Global(i) => out.push_str(&names(*i)),
        Value::Call(c) => render_call(c, names, out, budget),
        Value::PersId(v) => {
            out.push_str("persistent_load(");
            render(v, names, out, budget);
            out.push(')');
        }
        Value::Ext(code) => {
            let _ = write!(out, "<extension {code}>");
        }
        Value::Opaque => out.push_str("..."),
    }
}

pub fn render_call(c: &Call, names: &dyn Fn(u32) -> String, out: &mut String, budget: usize) {
    render(&c.callee, names, out, budget);
    if c.kind != CallKind::Call {
        out.push_str(".__new__");
    }
    out.push('(');
    let mut first = true;
    if c.kind != CallKind::Call {
        render(&c.callee, names, out, budget);
        first = false;
    }
    match &c.args {
        Value::Tuple(s) => {
            for v in &s.items {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                render(v, names, out, budget);
                if out.len() >= budget {
                    break;
                }
            }
            if s.total > s.items.len() as u64 {
                out.push_str(", ...");
            }
        }
        other => {
            if !first {
                out.push_str(", ");
            }
            first = false;
            out.push('*');
            render(other, names, out, budget);
        }
    }
    if let Some(Value::Dict(kw)) = &c.kwargs {
        for (k, v) in &kw.items {
            if !first {
                out.push_str(", ");
            }
            first = false;
            match k {
                Value::Str(t) => out.push_str(&t.head),
                other => render(other, names, out, budget),
            }
            out.push('=');
            render(v, names, out, budget);
        }
    }
    out.push(')');
    if let Some(state) = &c.state {
        out.push_str(".__setstate__(");
        render(state, names, out, budget);
        out.push(')');
    }
}

fn render_seq(
    s: &Seq,
    open: &str,
    close: &str,
    names: &dyn Fn(u32) -> String,
    out: &mut String,
    budget: usize,
) {
    out.push_str(open);
    for (i, v) in s.items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        render(v, names, out, budget);
        if out.len() >= budget {
            break;
        }
    }
    if s.total > s.items.len() as u64 {
        let _ = write!(out, ", ...{} more", s.total - s.items.len() as u64);
    }
    out.push_str(close);
}

fn render_text(t: &Text, prefix: &str, out: &mut String) {
    out.push_str(prefix);
    out.push('\'');
    for c in t.head.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20
                || (c as u32) == 0x7f
                || (prefix == "b" && (c as u32) > 0x7e) =>
            {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    if !t.complete() {
        let _ = write!(out, "...({} bytes)", t.len);
    }
}

fn render_bigint(bytes: &[u8], out: &mut String) {
    if bytes.len() <= 16 {
        let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
        let mut buf = [if negative { 0xffu8 } else { 0 }; 16];
        buf[..bytes.len()].copy_from_slice(bytes);
        let _ = write!(out, "{}", i128::from_le_bytes(buf));
    } else {
        let _ = write!(out, "<int of {} bytes>", bytes.len());
    }
}
