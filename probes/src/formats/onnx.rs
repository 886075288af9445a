//! ONNX static inspection: a minimal protobuf wire-format reader (no schema compiler, no tract)
//! walks ModelProto -> GraphProto -> nodes, attributes, initializers and nested subgraphs, and
//! reports what a runtime would reach outside the model: external data paths that climb out of
//! the model directory, custom operator domains (native code), tensors that declare more bytes
//! than they carry, and graphs past sane limits.

use std::collections::HashSet;
use std::path::{Component, Path};

use super::Findings;
use crate::finding::{Category, Finding, Severity};

/// Deepest nesting of subgraphs (If/Loop/Scan bodies inside bodies). Real exporters nest a few
/// levels; the bound keeps the recursive walk from exhausting the stack on a crafted file.
pub const MAX_SUBGRAPH_DEPTH: usize = 32;
/// Nodes across all graphs of one model. Defends the walk (and a runtime) against node floods.
pub const MAX_NODES: u64 = 2_000_000;
/// Longest name, op type, domain or external path. Real names are well under a kilobyte; huge
/// ones exist to exhaust memory in the tools that copy them.
pub const MAX_NAME_BYTES: usize = 64 * 1024;
/// Largest tensor a declaration may imply. Beyond this a loader would try to allocate
/// terabytes: a memory bomb, never a real model.
pub const MAX_DECLARED_TENSOR_BYTES: u128 = 1 << 40;
/// Most dims a tensor may declare (ONNX tensors in the wild have at most 8 or so).
pub const MAX_DIMS: usize = 64;

/// Operator domains of the ONNX standard, implemented by every runtime without extra code.
const STANDARD_DOMAINS: &[&str] = &[
    "",
    "ai.onnx",
    "ai.onnx.ml",
    "ai.onnx.training",
    "ai.onnx.preview.training",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated protobuf at byte {0}")]
    Truncated(usize),
    #[error("varint longer than 10 bytes at byte {0}")]
    LongVarint(usize),
    #[error("unsupported wire type {wire} (field {field}) at byte {offset}")]
    WireType { wire: u8, field: u64, offset: usize },
    #[error("field number 0 at byte {0}")]
    FieldZero(usize),
}

/// One decoded protobuf field value.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Fixed32,
    Bytes(&'a [u8], usize),
}

/// Reads protobuf fields one at a time from a message's bytes. `base` is the message's offset
/// in the file, so errors and findings name absolute byte offsets.
struct Wire<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Wire<'a> {
    fn new(data: &'a [u8], base: usize) -> Self {
        Wire { data, pos: 0, base }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut out = 0u64;
        for i in 0..10 {
            let Some(&b) = self.data.get(self.pos) else {
                return Err(WireError::Truncated(self.base + self.pos));
            };
            self.pos += 1;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(WireError::LongVarint(self.base + start))
    }

    fn skip(&mut self, n: u64) -> Result<usize, WireError> {
        let start = self.pos;
        if n > (self.data.len() - self.pos) as u64 {
            return Err(WireError::Truncated(self.base + self.pos));
        }
        self.pos += n as usize;
        Ok(start)
    }

    fn next(&mut self) -> Result<Option<(u64, Value<'a>)>, WireError> {
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let at = self.base + self.pos;
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(WireError::FieldZero(at));
        }
        let value = match (key & 7) as u8 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.skip(8)?;
                Value::Fixed64
            }
            2 => {
                let len = self.varint()?;
                let start = self.skip(len)?;
                Value::Bytes(&self.data[start..self.pos], self.base + start)
            }
            5 => {
                self.skip(4)?;
                Value::Fixed32
            }
            wire => {
                return Err(WireError::WireType {
                    wire,
                    field,
                    offset: at,
                });
            }
        };
        Ok(Some((field, value)))
    }
}

/// Content sniffing: ModelProto serialisers write `ir_version` (field 1, varint) first, and it
/// is a small number; the field after it must be a ModelProto field with the right wire type.
pub fn sniff(data: &[u8]) -> bool {
    let mut w = Wire::new(data, 0);
    match w.next() {
        Ok(Some((1, Value::Varint(v)))) if (1..=64).contains(&v) => {}
        _ => return false,
    }
    matches!(
        w.next(),
        Ok(Some((2..=4 | 6..=8 | 14 | 20 | 25, Value::Bytes(..)))) | Ok(Some((5, Value::Varint(_))))
    )
}

/// Scans an ONNX model; `location` names it in findings (`model.onnx@graph/initializer/w1`).
pub fn scan(data: &[u8], location: &str) -> Vec<Finding> {
    let mut walker = Walker::new(location);
    walker.model(data);
    walker.findings.finish()
}

/// Every external-data `location` the model names, so the caller can resolve them against the
/// model's directory on disk (symlinks, files outside it): see [`check_external_paths`].
pub fn external_paths(data: &[u8]) -> Vec<String> {
    let mut walker = Walker::new("");
    walker.model(data);
    walker.external
}

/// Resolves external-data paths against `base_dir` (the model's directory) on disk: a path that
/// is a symlink, or that resolves outside `base_dir`, is reported. Missing files are not (the
/// loader would fail, nothing would be read).
pub fn check_external_paths(paths: &[String], base_dir: &Path, location: &str) -> Vec<Finding> {
    let mut out = Findings::default();
    let Ok(base) = base_dir.canonicalize() else {
        return Vec::new();
    };
    for p in paths {
        let joined = base.join(p);
        let is_link = joined
            .symlink_metadata()
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        let escapes = joined
            .canonicalize()
            .map(|r| !r.starts_with(&base))
            .unwrap_or(false);
        if is_link || escapes {
            out.push(
                Finding::new(
                    "onnx.external-data-symlink",
                    Severity::High,
                    Category::Static,
                    "external data resolves through a symlink or outside the model directory",
                )
                .at(format!("{location}@external/{p}"))
                .with_evidence(p.clone()),
            );
        }
    }
    out.finish()
}

/// Element width in bits of an ONNX `TensorProto.DataType`; `None` for strings and unknowns.
fn elem_bits(data_type: u64) -> Option<u128> {
    Some(match data_type {
        2 | 3 | 9 | 17..=20 | 24 => 8,
        4 | 5 | 10 | 16 => 16,
        1 | 6 | 12 => 32,
        7 | 11 | 13 | 14 => 64,
        15 => 128,
        21..=23 => 4,
        _ => return None,
    })
}

struct Walker<'l> {
    location: &'l str,
    findings: Findings,
    external: Vec<String>,
    nodes: u64,
    /// (domain, name) of the model-local functions: nodes calling them run ONNX, not native code.
    functions: HashSet<(String, String)>,
    /// (domain, op_type) already reported, so a custom op used 10,000 times is one finding.
    reported_ops: HashSet<(String, String)>,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl<'l> Walker<'l> {
    fn new(location: &'l str) -> Self {
        Walker {
            location,
            findings: Findings::default(),
            external: Vec::new(),
            nodes: 0,
            functions: HashSet::new(),
            reported_ops: HashSet::new(),
        }
    }

    fn at(&self, path: &str) -> String {
        format!("{}@{}", self.location, path)
    }

    fn malformed(&mut self, path: &str, err: WireError) {
        self.findings.push(
            Finding::new(
                "onnx.malformed",
                Severity::High,
                Category::Integrity,
                "protobuf structure is malformed; runtimes and scanners may read it differently",
            )
            .at(self.at(path))
            .with_evidence(err.to_string()),
        );
    }

    fn limit(&mut self, path: &str, message: String, evidence: String) {
        self.findings.push(
            Finding::new(
                "onnx.graph-limit",
                Severity::High,
                Category::Integrity,
                message,
            )
            .at(self.at(path))
            .with_evidence(evidence),
        );
    }

    /// Reads a bounded string field; an oversized one is a finding and is returned truncated.
    fn name(&mut self, bytes: &[u8], path: &str, what: &str) -> String {
        if bytes.len() > MAX_NAME_BYTES {
            self.limit(
                path,
                format!(
                    "{what} of {} bytes exceeds the {MAX_NAME_BYTES}-byte limit",
                    bytes.len()
                ),
                format!("{what} length {}", bytes.len()),
            );
            return text(&bytes[..MAX_NAME_BYTES]);
        }
        text(bytes)
    }

    fn model(&mut self, data: &[u8]) {
        // First pass: the model-local functions, which may be serialised after the graph.
        let mut w = Wire::new(data, 0);
        loop {
            match w.next() {
                Ok(Some((25, Value::Bytes(f, _)))) => {
                    let (mut domain, mut name) = (String::new(), String::new());
                    let mut fw = Wire::new(f, 0);
                    while let Ok(Some((field, value))) = fw.next() {
                        match (field, value) {
                            (1, Value::Bytes(b, _)) => {
                                name = text(&b[..b.len().min(MAX_NAME_BYTES)])
                            }
                            (10, Value::Bytes(b, _)) => {
                                domain = text(&b[..b.len().min(MAX_NAME_BYTES)])
                            }
                            _ => {}
                        }
                    }
                    self.functions.insert((domain, name));
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let mut w = Wire::new(data, 0);
        loop {
            match w.next() {
                Ok(Some((7, Value::Bytes(g, base)))) => self.graph(g, base, "graph", 0),
                Ok(Some((20, Value::Bytes(t, base)))) => self.training_info(t, base),
                Ok(Some((25, Value::Bytes(f, base)))) => self.function(f, base),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    self.malformed("model", e);
                    break;
                }
            }
        }
    }

    fn training_info(&mut self, data: &[u8], base: usize) {
        let mut w = Wire::new(data, base);
        loop {
            match w.next() {
                Ok(Some((1 | 2, Value::Bytes(g, b)))) => self.graph(g, b, "training", 1),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    self.malformed("training", e);
                    break;
                }
            }
        }
    }

    fn function(&mut self, data: &[u8], base: usize) {
        let mut w = Wire::new(data, base);
        let mut path = String::from("function");
        loop {
            match w.next() {
                Ok(Some((1, Value::Bytes(b, _)))) => {
                    path = format!("function/{}", self.name(b, "function", "function name"))
                }
                Ok(Some((7, Value::Bytes(n, b)))) => {
                    let p = path.clone();
                    self.node(n, b, &p, 1);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    self.malformed(&path, e);
                    break;
                }
            }
        }
    }

    fn graph(&mut self, data: &[u8], base: usize, path: &str, depth: usize) {
        if depth > MAX_SUBGRAPH_DEPTH {
            self.limit(
                path,
                format!("subgraphs nested deeper than {MAX_SUBGRAPH_DEPTH} levels"),
                format!("depth {depth}"),
            );
            return;
        }
        let mut w = Wire::new(data, base);
        loop {
            match w.next() {
                Ok(Some((1, Value::Bytes(n, b)))) => {
                    if self.nodes >= MAX_NODES {
                        if self.nodes == MAX_NODES {
                            self.limit(
                                path,
                                format!("more than {MAX_NODES} nodes"),
                                format!("{MAX_NODES}+ nodes"),
                            );
                            self.nodes += 1;
                        }
                        continue;
                    }
                    self.nodes += 1;
                    self.node(n, b, path, depth);
                }
                Ok(Some((5, Value::Bytes(t, b)))) => {
                    self.tensor(t, b, &format!("{path}/initializer"), true)
                }
                Ok(Some((15, Value::Bytes(s, b)))) => {
                    self.sparse_tensor(s, b, &format!("{path}/sparse_initializer"))
                }
                Ok(Some((2, Value::Bytes(b, _)))) => {
                    self.name(b, path, "graph name");
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    self.malformed(path, e);
                    break;
                }
            }
        }
    }

    fn node(&mut self, data: &[u8], base: usize, graph_path: &str, depth: usize) {
        let mut name = String::new();
        let mut op_type = String::new();
        let mut domain = String::new();
        let mut attributes: Vec<(&[u8], usize)> = Vec::new();
        let mut w = Wire::new(data, base);
        loop {
            match w.next() {
                Ok(Some((3, Value::Bytes(b, _)))) => name = self.name(b, graph_path, "node name"),
                Ok(Some((4, Value::Bytes(b, _)))) => op_type = self.name(b, graph_path, "op type"),
                Ok(Some((7, Value::Bytes(b, _)))) => domain = self.name(b, graph_path, "op domain"),
                Ok(Some((5, Value::Bytes(b, off)))) => attributes.push((b, off)),
                Ok(Some((1 | 2, Value::Bytes(b, _)))) => {
                    self.name(b, graph_path, "node input/output name");
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    self.malformed(&format!("{graph_path}/node/{name}"), e);
                    break;
                }
            }
        }
        let label = if name.is_empty() {
            op_type.clone()
        } else {
            name.clone()
        };
        let path = format!("{graph_path}/node/{label}");
        self.check_domain(&domain, &op_type, &path);
        for (attr, off) in attributes {
            self.attribute(attr, off, &path, depth);
        }
    }

    fn check_domain(&mut self, domain: &str, op_type: &str, path: &str) {
        if STANDARD_DOMAINS.contains(&domain) {
            return;
        }
        if self
            .functions
            .contains(&(domain.to_string(), op_type.to_string()))
        {
            return;
        }
        if !self
            .reported_ops
            .insert((domain.to_string(), op_type.to_string()))
        {
            return;
        }
        let (rule, severity, message) = if domain == "com.microsoft" {
            (
                "onnx.vendor-op-domain",
                Severity::Low,
                "ONNX Runtime contrib operator (com.microsoft)",
            )
        } else if domain.starts_with("com.microsoft.") || domain.starts_with("com.ms.internal.") {
            (
                "onnx.vendor-op-domain",
                Severity::Medium,
                "ONNX Runtime internal operator domain; needs a matching runtime build",
            )
        } else {
            (
                "onnx.custom-op-domain",
                Severity::High,
                "operator from a custom domain: running the model needs a native custom-op library",
            )
        };
        self.findings.push(
            Finding::new(rule, severity, Category::Static, message)
                .at(self.at(path))
                .with_evidence(format!("{domain}::{op_type}")),
        );
    }

    fn attribute(&mut self, data: &[u8], base: usize, node_path: &str, depth: usize) {
        let mut name = String::new();
        let mut graphs: Vec<(&[u8], usize)> = Vec::new();
        let mut tensors: Vec<(&[u8], usize)> = Vec::new();
        let mut sparse: Vec<(&[u8], usize)> = Vec::new();
        let mut w = Wire::new(data, base);
        loop {
            match w.next() {
                Ok(Some((1, Value::Bytes(b, _)))) => {
                    name = self.name(b, node_path, "attribute name")
                }
                Ok(Some((6 | 11, Value::Bytes(b, off)))) => graphs.push((b, off)),
                Ok(Some((5 | 10, Value::Bytes(b, off)))) => tensors.push((b, off)),
                Ok(Some((22 | 23, Value::Bytes(b, off)))) => sparse.push((b, off)),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    self.malformed(&format!("{node_path}/attribute/{name}"), e);
                    break;
                }
            }
        }
        let path = format!("{node_path}/{name}");
        for (t, off) in tensors {
            self.tensor(t, off, &path, false);
        }
        for (s, off) in sparse {
            self.sparse_tensor(s, off, &path);
        }
        for (g, off) in graphs {
            self.graph(g, off, &path, depth + 1);
        }
    }

    fn sparse_tensor(&mut self, data: &[u8], base: usize, path: &str) {
        let mut w = Wire::new(data, base);
        loop {
            match w.next() {
                // values and indices; a sparse tensor's dims bound its dense size, not its data.
                Ok(Some((1 | 2, Value::Bytes(t, b)))) => self.tensor(t, b, path, false),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    self.malformed(path, e);
                    break;
                }
            }
        }
    }

    /// A TensorProto: external data paths, declared size against carried data.
    fn tensor(&mut self, data: &[u8], base: usize, parent: &str, initializer: bool) {
        let mut name = String::new();
        let mut dims: Vec<i64> = Vec::new();
        let mut too_many_dims = false;
        let mut data_type = 0u64;
        let mut raw_len: Option<usize> = None;
        let mut typed_count = 0u64;
        let mut external = false;
        let mut entries: Vec<(String, String)> = Vec::new();
        let mut w = Wire::new(data, base);
        let mut push_dim = |dims: &mut Vec<i64>, v: u64| {
            if dims.len() < MAX_DIMS {
                dims.push(v as i64);
            } else {
                too_many_dims = true;
            }
        };
        loop {
            match w.next() {
                Ok(Some((1, Value::Varint(v)))) => push_dim(&mut dims, v),
                Ok(Some((1, Value::Bytes(packed, off)))) => {
                    let mut pw = Wire::new(packed, off);
                    while pw.pos < packed.len() {
                        match pw.varint() {
                            Ok(v) => push_dim(&mut dims, v),
                            Err(e) => {
                                self.malformed(&format!("{parent}/{name}"), e);
                                return;
                            }
                        }
                    }
                }
                Ok(Some((2, Value::Varint(v)))) => data_type = v,
                Ok(Some((8, Value::Bytes(b, _)))) => name = self.name(b, parent, "tensor name"),
                Ok(Some((9, Value::Bytes(b, _)))) => raw_len = Some(raw_len.unwrap_or(0) + b.len()),
                // float_data, double_data: packed fixed-width.
                Ok(Some((4, Value::Bytes(b, _)))) => typed_count += b.len() as u64 / 4,
                Ok(Some((10, Value::Bytes(b, _)))) => typed_count += b.len() as u64 / 8,
                // int32_data, int64_data, uint64_data: packed varints (one terminal byte each).
                Ok(Some((5 | 7 | 11, Value::Bytes(b, _)))) => {
                    typed_count += b.iter().filter(|&&x| x & 0x80 == 0).count() as u64
                }
                Ok(Some((6, Value::Bytes(..)))) => typed_count += 1,
                Ok(Some((4 | 5 | 7 | 10 | 11, _))) => typed_count += 1,
                Ok(Some((13, Value::Bytes(b, _)))) => {
                    external = true;
                    entries.push(self.string_entry(b));
                }
                Ok(Some((14, Value::Varint(1)))) => external = true,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    self.malformed(&format!("{parent}/{name}"), e);
                    return;
                }
            }
        }
        let path = format!(
            "{parent}/{}",
            if name.is_empty() { "<unnamed>" } else { &name }
        );
        if too_many_dims {
            self.limit(
                &path,
                format!("tensor declares more than {MAX_DIMS} dims"),
                format!("{MAX_DIMS}+ dims"),
            );
            return;
        }
        for (key, value) in &entries {
            if key == "location" {
                self.external.push(value.clone());
                self.check_external_location(value, &path);
            }
        }
        if dims.iter().any(|&d| d < 0) {
            self.findings.push(
                Finding::new(
                    "onnx.bad-dims",
                    Severity::High,
                    Category::Integrity,
                    "tensor declares a negative dimension",
                )
                .at(self.at(&path))
                .with_evidence(format!("dims={dims:?}")),
            );
            return;
        }
        let numel = dims
            .iter()
            .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128));
        let bits = elem_bits(data_type).unwrap_or(8);
        let bytes = numel
            .and_then(|n| n.checked_mul(bits))
            .map(|b| b.div_ceil(8));
        match bytes {
            Some(b) if b <= MAX_DECLARED_TENSOR_BYTES => {}
            _ => {
                self.findings.push(
                    Finding::new(
                        "onnx.tensor-size-limit",
                        Severity::High,
                        Category::Integrity,
                        "tensor dims imply terabytes; a loader allocating it is a memory bomb",
                    )
                    .at(self.at(&path))
                    .with_evidence(format!("dims={dims:?} data_type={data_type}")),
                );
                return;
            }
        }
        let numel = numel.unwrap_or(0);
        if external || numel == 0 {
            return;
        }
        match raw_len {
            None if typed_count == 0 => self.findings.push(
                Finding::new(
                    "onnx.declared-size-without-data",
                    Severity::High,
                    Category::Integrity,
                    if initializer {
                        "initializer declares a size but carries no data"
                    } else {
                        "tensor declares a size but carries no data"
                    },
                )
                .at(self.at(&path))
                .with_evidence(format!("dims={dims:?} data_type={data_type}")),
            ),
            Some(len) => {
                if let (Some(bits), Some(bytes)) = (elem_bits(data_type), bytes)
                    && bytes != len as u128
                    && !(bits < 8 && len as u128 == bytes)
                {
                    self.findings.push(
                        Finding::new(
                            "onnx.tensor-data-mismatch",
                            Severity::High,
                            Category::Integrity,
                            "raw_data length does not match dims x data type",
                        )
                        .at(self.at(&path))
                        .with_evidence(format!("dims={dims:?} data_type={data_type} needs {bytes} bytes, raw_data has {len}")),
                    );
                }
            }
            None => {}
        }
    }

    fn string_entry(&mut self, data: &[u8]) -> (String, String) {
        let (mut key, mut value) = (String::new(), String::new());
        let mut w = Wire::new(data, 0);
        while let Ok(Some((field, v))) = w.next() {
            match (field, v) {
                (1, Value::Bytes(b, _)) => key = self.name(b, "external_data", "external data key"),
                (2, Value::Bytes(b, _)) => {
                    value = self.name(b, "external_data", "external data value")
                }
                _ => {}
            }
        }
        (key, value)
    }

    fn check_external_location(&mut self, location: &str, path: &str) {
        let normalized = location.replace('\\', "/");
        let absolute = normalized.starts_with('/')
            || (normalized.len() >= 2
                && normalized.as_bytes()[1] == b':'
                && normalized.as_bytes()[0].is_ascii_alphabetic())
            || Path::new(location).is_absolute();
        let traversal = normalized.split('/').any(|c| c == "..")
            || Path::new(location)
                .components()
                .any(|c| c == Component::ParentDir);
        if absolute {
            self.findings.push(
                Finding::new(
                    "onnx.external-data-absolute",
                    Severity::High,
                    Category::Static,
                    "external data names an absolute path: loading reads a file outside the model",
                )
                .at(self.at(path))
                .with_evidence(location.to_string()),
            );
        }
        if traversal {
            self.findings.push(
                Finding::new(
                    "onnx.external-data-traversal",
                    Severity::High,
                    Category::Static,
                    "external data path climbs out of the model directory with '..'",
                )
                .at(self.at(path))
                .with_evidence(location.to_string()),
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny protobuf writer for building test models.
    #[derive(Default)]
    pub(crate) struct Msg(pub(crate) Vec<u8>);

    impl Msg {
        fn varint(&mut self, mut v: u64) {
            loop {
                let b = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    self.0.push(b);
                    break;
                }
                self.0.push(b | 0x80);
            }
        }
        pub(crate) fn int(mut self, field: u64, v: u64) -> Self {
            self.varint(field << 3);
            self.varint(v);
            self
        }
        pub(crate) fn bytes(mut self, field: u64, b: &[u8]) -> Self {
            self.varint(field << 3 | 2);
            self.varint(b.len() as u64);
            self.0.extend_from_slice(b);
            self
        }
        pub(crate) fn str(self, field: u64, s: &str) -> Self {
            self.bytes(field, s.as_bytes())
        }
        pub(crate) fn msg(self, field: u64, m: Msg) -> Self {
            self.bytes(field, &m.0)
        }
    }

    fn tensor(name: &str, dims: &[u64], raw: &[u8]) -> Msg {
        let mut t = Msg::default();
        for &d in dims {
            t = t.int(1, d);
        }
        t.int(2, 1).str(8, name).bytes(9, raw)
    }

    fn node(op: &str, domain: &str) -> Msg {
        Msg::default()
            .str(1, "x")
            .str(2, "y")
            .str(3, &format!("{op}_0"))
            .str(4, op)
            .str(7, domain)
    }

    fn model(graph: Msg) -> Vec<u8> {
        Msg::default()
            .int(1, 8)
            .str(2, "test")
            .msg(7, graph)
            .msg(8, Msg::default().str(1, "").int(2, 17))
            .0
    }

    fn rules(data: &[u8]) -> Vec<String> {
        let mut r: Vec<String> = scan(data, "m.onnx").into_iter().map(|f| f.rule).collect();
        r.dedup();
        r
    }

    fn benign_graph() -> Msg {
        Msg::default()
            .msg(1, node("MatMul", ""))
            .msg(1, node("Relu", "ai.onnx"))
            .str(2, "mlp")
            .msg(5, tensor("w1", &[2, 3], &[0u8; 24]))
            .msg(
                5,
                Msg::default()
                    .int(1, 3)
                    .int(2, 1)
                    .str(8, "b1")
                    .bytes(4, &[0u8; 12]),
            )
    }

    #[test]
    fn benign_model_is_clean_and_sniffed() {
        let m = model(benign_graph());
        assert!(sniff(&m));
        assert!(!sniff(b"\x08\x07garbage"));
        assert!(!sniff(b"PK\x03\x04"));
        assert_eq!(rules(&m), Vec::<String>::new());
        assert!(external_paths(&m).is_empty());
    }

    fn external(loc: &str) -> Msg {
        Msg::default()
            .int(1, 1000)
            .int(2, 1)
            .str(8, "w")
            .msg(13, Msg::default().str(1, "location").str(2, loc))
            .int(14, 1)
    }

    #[test]
    fn every_rule_fires_on_a_minimal_input() {
        let g = |t: Msg| model(Msg::default().msg(5, t));
        assert_eq!(
            rules(&g(external("../../etc/passwd"))),
            ["onnx.external-data-traversal"]
        );
        assert_eq!(
            rules(&g(external("/etc/shadow"))),
            ["onnx.external-data-absolute"]
        );
        assert_eq!(rules(&g(external("weights.bin"))), Vec::<String>::new());
        assert_eq!(external_paths(&g(external("a/../../b"))), ["a/../../b"]);
        assert_eq!(
            rules(&g(Msg::default().int(1, 1000).int(2, 1).str(8, "w"))),
            ["onnx.declared-size-without-data"]
        );
        assert_eq!(
            rules(&g(tensor("w", &[3], &[0u8; 8]))),
            ["onnx.tensor-data-mismatch"]
        );
        assert_eq!(
            rules(&g(tensor("w", &[1 << 20, 1 << 20, 1 << 10], &[]))),
            ["onnx.tensor-size-limit"]
        );
        assert_eq!(rules(&g(tensor("w", &[u64::MAX], &[]))), ["onnx.bad-dims"]);
        assert_eq!(
            rules(&model(Msg::default().msg(1, node("Evil", "com.attacker")))),
            ["onnx.custom-op-domain"]
        );
        let ms = scan(
            &model(Msg::default().msg(1, node("FusedGemm", "com.microsoft"))),
            "m",
        );
        assert_eq!(
            (ms[0].rule.as_str(), ms[0].severity),
            ("onnx.vendor-op-domain", Severity::Low)
        );
        let mut truncated = model(benign_graph());
        truncated.truncate(truncated.len() - 5);
        assert!(rules(&truncated).contains(&"onnx.malformed".to_string()));
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(
            rules(&model(Msg::default().msg(1, node(&long, "")))),
            ["onnx.graph-limit"]
        );
    }

    #[test]
    fn custom_ops_hidden_in_nested_subgraphs_are_found_and_depth_is_bounded() {
        // If node whose then_branch holds a Loop whose body holds a custom op.
        let inner = Msg::default().msg(1, node("Backdoor", "evil.ops"));
        let loop_node = node("Loop", "").msg(5, Msg::default().str(1, "body").msg(6, inner));
        let if_node = node("If", "").msg(
            5,
            Msg::default()
                .str(1, "then_branch")
                .msg(6, Msg::default().msg(1, loop_node)),
        );
        let f = scan(&model(Msg::default().msg(1, if_node)), "m.onnx");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "onnx.custom-op-domain");
        assert_eq!(
            f[0].location.as_deref(),
            Some("m.onnx@graph/node/If_0/then_branch/node/Loop_0/body/node/Backdoor_0")
        );

        let mut g = Msg::default().msg(1, node("Relu", ""));
        for _ in 0..MAX_SUBGRAPH_DEPTH + 5 {
            g = Msg::default().msg(
                1,
                node("If", "").msg(5, Msg::default().str(1, "then_branch").msg(6, g)),
            );
        }
        assert_eq!(rules(&model(g)), ["onnx.graph-limit"]);
    }

    #[test]
    fn model_local_functions_are_not_custom_ops() {
        let func = Msg::default()
            .str(1, "MyBlock")
            .str(10, "my.funcs")
            .msg(7, node("Relu", ""));
        let m = Msg::default()
            .int(1, 8)
            .msg(7, Msg::default().msg(1, node("MyBlock", "my.funcs")))
            .msg(25, func)
            .0;
        assert_eq!(rules(&m), Vec::<String>::new());
    }

    #[test]
    fn symlinked_external_data_is_reported() {
        let dir = std::env::temp_dir().join(format!("modelvet-onnx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("weights.bin"), b"x").unwrap();
        let link = dir.join("link.bin");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        let paths = vec![
            "weights.bin".to_string(),
            "link.bin".to_string(),
            "missing.bin".to_string(),
        ];
        let f = check_external_paths(&paths, &dir, "m.onnx");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "onnx.external-data-symlink");
        assert_eq!(f[0].evidence.as_deref(), Some("link.bin"));
    }
}
