//! Writes the safetensors, ONNX, GGUF and Keras part of the scan corpus, byte by byte and
//! deterministically: hostile files (one per technique) into `tests/fixtures/scan/hostile/`
//! and benign files of real model shapes into `tests/fixtures/scan/benign/`.
//! Run: `cargo run --release -p modelvet --example gen_format_corpus [OUT_DIR]`

use std::path::{Path, PathBuf};

fn main() -> std::io::Result<()> {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/scan"));
    let mut corpus = Corpus { root, written: 0 };
    safetensors(&mut corpus)?;
    onnx(&mut corpus)?;
    gguf(&mut corpus)?;
    keras(&mut corpus)?;
    eprintln!(
        "wrote {} files under {}",
        corpus.written,
        corpus.root.display()
    );
    Ok(())
}

struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn put(&mut self, kind: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let dir = self.root.join(kind);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
        self.written += 1;
        Ok(())
    }
    fn hostile(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.put("hostile", name, bytes)
    }
    fn benign(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.put("benign", name, bytes)
    }
}

/// Deterministic pseudo-random bytes (a fixed-seed xorshift), for tensor contents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32s(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|_| (((self.next() % 2000) as f32 - 1000.0) / 4000.0).to_le_bytes())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// safetensors

fn st_file(header: &str, data: &[u8]) -> Vec<u8> {
    // Writers pad the header with spaces to a multiple of 8 bytes.
    let mut h = header.to_string();
    while !(8 + h.len()).is_multiple_of(8) {
        h.push(' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

fn safetensors(c: &mut Corpus) -> std::io::Result<()> {
    let mut rng = Rng(0x5afe_7e45);
    // Benign: a small MLP checkpoint with F32 weights, BF16 biases, an I64 step and metadata.
    let w1 = rng.f32s(16 * 8);
    let b1: Vec<u8> = (0..16).flat_map(|i| half_bf16(i as f32 / 16.0)).collect();
    let w2 = rng.f32s(4 * 16);
    let step = 1234i64.to_le_bytes();
    let mut data = Vec::new();
    let mut header = String::from(r#"{"__metadata__":{"format":"pt","framework":"modelvet-gen"}"#);
    for (name, dtype, shape, bytes) in [
        ("fc1.weight", "F32", "[16,8]", &w1[..]),
        ("fc1.bias", "BF16", "[16]", &b1[..]),
        ("fc2.weight", "F32", "[4,16]", &w2[..]),
        ("step", "I64", "[]", &step[..]),
    ] {
        let start = data.len();
        data.extend_from_slice(bytes);
        header.push_str(&format!(
            r#","{name}":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{start},{}]}}"#,
            data.len()
        ));
    }
    header.push('}');
    c.benign("st-mlp-f32-bf16-i64.safetensors", &st_file(&header, &data))?;
    c.benign("st-empty.safetensors", &st_file("{}", &[]))?;

    let one = |dtype: &str, shape: &str, start: u64, end: u64| {
        format!(r#"{{"w":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{start},{end}]}}}}"#)
    };
    // Header length far past any sane bound (allocation bomb for naive readers).
    let mut huge = (1u64 << 40).to_le_bytes().to_vec();
    huge.extend_from_slice(b"{\"w\":{}}");
    c.hostile("st-header-length-bomb.safetensors", &huge)?;
    // Header length pointing past the end of the file.
    let mut past = 4096u64.to_le_bytes().to_vec();
    past.extend_from_slice(br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#);
    c.hostile("st-header-past-end.safetensors", &past)?;
    c.hostile(
        "st-range-past-end.safetensors",
        &st_file(&one("F32", "[1024]", 0, 4096), &[0; 64]),
    )?;
    c.hostile(
        "st-shape-dtype-mismatch.safetensors",
        &st_file(&one("F32", "[4,4]", 0, 16), &[0; 16]),
    )?;
    c.hostile(
        "st-unknown-dtype.safetensors",
        &st_file(&one("PICKLE", "[16]", 0, 16), &[0; 16]),
    )?;
    c.hostile(
        "st-overlapping-ranges.safetensors",
        &st_file(
            r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#,
            &[0; 24],
        ),
    )?;
    // A gap between tensors that smuggles a pickle payload no tensor reader looks at.
    let payload = b"\x80\x02cposix\nsystem\nq\x00X\x06\x00\x00\x00id; ihq\x01\x85q\x02Rq\x03.";
    let mut gap_data = vec![0u8; 16];
    gap_data.extend_from_slice(payload);
    let end_b = gap_data.len() + 16;
    gap_data.resize(end_b, 0);
    c.hostile(
        "st-gap-smuggles-pickle.safetensors",
        &st_file(
            &format!(
                r#"{{"a":{{"dtype":"F32","shape":[4],"data_offsets":[0,16]}},"b":{{"dtype":"F32","shape":[4],"data_offsets":[{},{end_b}]}}}}"#,
                end_b - 16
            ),
            &gap_data,
        ),
    )?;
    c.hostile(
        "st-trailing-payload.safetensors",
        &st_file(
            &one("F32", "[4]", 0, 16),
            &[&[0u8; 16][..], &payload[..]].concat(),
        ),
    )?;
    c.hostile(
        "st-metadata-not-strings.safetensors",
        &st_file(
            r#"{"__metadata__":{"format":"pt","hook":{"module":"os","call":"system"}},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ),
    )?;
    c.hostile(
        "st-duplicate-key.safetensors",
        &st_file(
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            &[0; 8],
        ),
    )?;
    c.hostile(
        "st-shape-overflow.safetensors",
        &st_file(&one("F64", "[4294967296,4294967296,16]", 0, 8), &[0; 8]),
    )?;
    c.hostile(
        "st-header-not-json.safetensors",
        &st_file(
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},}"#,
            &[0; 4],
        ),
    )?;
    Ok(())
}

fn half_bf16(v: f32) -> [u8; 2] {
    let bits = (v.to_bits() >> 16) as u16;
    bits.to_le_bytes()
}

// ---------------------------------------------------------------------------------------------
// ONNX: a tiny protobuf writer.

#[derive(Default, Clone)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }
    fn int(mut self, field: u64, v: u64) -> Self {
        self.varint(field << 3);
        self.varint(v);
        self
    }
    fn bytes(mut self, field: u64, b: &[u8]) -> Self {
        self.varint(field << 3 | 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, field: u64, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }
    fn msg(self, field: u64, m: Msg) -> Self {
        self.bytes(field, &m.0)
    }
}

const FLOAT: u64 = 1;
const BOOL: u64 = 9;

/// TensorProto with raw float data.
fn tensor(name: &str, dims: &[u64], raw: &[u8]) -> Msg {
    let mut t = Msg::default();
    for &d in dims {
        t = t.int(1, d);
    }
    t.int(2, FLOAT).str(8, name).bytes(9, raw)
}

/// NodeProto.
fn node(op: &str, domain: &str, inputs: &[&str], outputs: &[&str], name: &str) -> Msg {
    let mut n = Msg::default();
    for i in inputs {
        n = n.str(1, i);
    }
    for o in outputs {
        n = n.str(2, o);
    }
    n = n.str(3, name).str(4, op);
    if !domain.is_empty() {
        n = n.str(7, domain);
    }
    n
}

/// ValueInfoProto of a float tensor; `None` dims are symbolic (`N`).
fn value_info(name: &str, dims: &[Option<u64>]) -> Msg {
    let mut shape = Msg::default();
    for d in dims {
        shape = shape.msg(
            1,
            match d {
                Some(v) => Msg::default().int(1, *v),
                None => Msg::default().str(2, "N"),
            },
        );
    }
    let tensor_type = Msg::default().int(1, FLOAT).msg(2, shape);
    Msg::default()
        .str(1, name)
        .msg(2, Msg::default().msg(1, tensor_type))
}

fn model(graph: Msg, extra_opsets: &[(&str, u64)]) -> Vec<u8> {
    let mut m = Msg::default()
        .int(1, 8)
        .str(2, "modelvet-gen")
        .str(3, "0.1")
        .msg(7, graph)
        .msg(8, Msg::default().str(1, "").int(2, 17));
    for (domain, version) in extra_opsets {
        m = m.msg(8, Msg::default().str(1, domain).int(2, *version));
    }
    m.0
}

fn mlp_graph(rng: &mut Rng) -> Msg {
    Msg::default()
        .msg(1, node("MatMul", "", &["x", "W1"], &["h0"], "fc1"))
        .msg(1, node("Add", "", &["h0", "b1"], &["h1"], "fc1_bias"))
        .msg(1, node("Relu", "", &["h1"], &["h2"], "relu"))
        .msg(1, node("MatMul", "", &["h2", "W2"], &["h3"], "fc2"))
        .msg(1, node("Add", "", &["h3", "b2"], &["logits"], "fc2_bias"))
        .str(2, "mlp")
        .msg(5, tensor("W1", &[4, 8], &rng.f32s(32)))
        .msg(5, tensor("b1", &[8], &rng.f32s(8)))
        .msg(5, tensor("W2", &[8, 3], &rng.f32s(24)))
        .msg(5, tensor("b2", &[3], &rng.f32s(3)))
        .msg(11, value_info("x", &[None, Some(4)]))
        .msg(12, value_info("logits", &[None, Some(3)]))
}

fn external_tensor(name: &str, location: &str) -> Msg {
    Msg::default()
        .int(1, 1024)
        .int(2, FLOAT)
        .str(8, name)
        .msg(13, Msg::default().str(1, "location").str(2, location))
        .msg(13, Msg::default().str(1, "offset").str(2, "0"))
        .msg(13, Msg::default().str(1, "length").str(2, "4096"))
        .int(14, 1)
}

/// A graph computing `y = Relu(x)` with one extra node and initializer.
fn one_node_graph(extra: Msg, init: Option<Msg>) -> Msg {
    let mut g = Msg::default().msg(1, extra).str(2, "g");
    if let Some(t) = init {
        g = g.msg(5, t);
    }
    g.msg(11, value_info("x", &[Some(1), Some(4)]))
        .msg(12, value_info("y", &[Some(1), Some(4)]))
}

fn if_node(name: &str, then: Msg, otherwise: Msg) -> Msg {
    // Subgraphs must be named.
    let then = then.str(2, "then");
    let otherwise = otherwise.str(2, "else");
    node("If", "", &["cond"], &["y"], name)
        .msg(
            5,
            Msg::default().str(1, "then_branch").int(20, 5).msg(6, then),
        )
        .msg(
            5,
            Msg::default()
                .str(1, "else_branch")
                .int(20, 5)
                .msg(6, otherwise),
        )
}

fn onnx(c: &mut Corpus) -> std::io::Result<()> {
    let mut rng = Rng(0x0099_1234);
    c.benign("onnx-mlp.onnx", &model(mlp_graph(&mut rng), &[]))?;
    // An If with two branches, and an ONNX Runtime contrib op (com.microsoft: low, not high).
    let then = Msg::default()
        .msg(1, node("Gelu", "com.microsoft", &["x"], &["t"], "gelu"))
        .msg(12, value_info("t", &[Some(1), Some(4)]));
    let otherwise = Msg::default()
        .msg(1, node("Relu", "", &["x"], &["e"], "relu"))
        .msg(12, value_info("e", &[Some(1), Some(4)]));
    let cond = Msg::default().str(1, "cond").msg(
        2,
        Msg::default().msg(1, Msg::default().int(1, BOOL).msg(2, Msg::default())),
    );
    let branch_graph = one_node_graph(if_node("branch", then, otherwise), None).msg(11, cond);
    c.benign(
        "onnx-if-contrib-op.onnx",
        &model(branch_graph, &[("com.microsoft", 1)]),
    )?;

    let relu = || node("Relu", "", &["x"], &["y"], "relu");
    c.hostile(
        "onnx-external-data-traversal.onnx",
        &model(
            one_node_graph(relu(), Some(external_tensor("W", "../../../../etc/passwd"))),
            &[],
        ),
    )?;
    c.hostile(
        "onnx-external-data-absolute.onnx",
        &model(
            one_node_graph(relu(), Some(external_tensor("W", "/root/.ssh/id_rsa"))),
            &[],
        ),
    )?;
    c.hostile(
        "onnx-custom-op-domain.onnx",
        &model(
            one_node_graph(
                node("RunShell", "org.attacker.ops", &["x"], &["y"], "payload"),
                None,
            ),
            &[("org.attacker.ops", 1)],
        ),
    )?;
    // The custom op is hidden two subgraphs down (If -> Loop body), where shallow scanners miss it.
    let body = Msg::default().msg(1, node("Exfiltrate", "evil.net", &["x"], &["z"], "hidden"));
    let loop_node = node("Loop", "", &["n", "cond"], &["y"], "loop")
        .msg(5, Msg::default().str(1, "body").int(20, 5).msg(6, body));
    c.hostile(
        "onnx-custom-op-in-subgraph.onnx",
        &model(
            one_node_graph(
                if_node(
                    "outer",
                    Msg::default().msg(1, loop_node),
                    Msg::default().msg(1, relu()),
                ),
                None,
            ),
            &[("evil.net", 1)],
        ),
    )?;
    c.hostile(
        "onnx-declared-size-without-data.onnx",
        &model(
            one_node_graph(
                relu(),
                Some(
                    Msg::default()
                        .int(1, 4096)
                        .int(1, 4096)
                        .int(2, FLOAT)
                        .str(8, "W"),
                ),
            ),
            &[],
        ),
    )?;
    c.hostile(
        "onnx-terabyte-dims.onnx",
        &model(
            one_node_graph(
                relu(),
                Some(tensor("W", &[1 << 20, 1 << 20, 1 << 10], &[0; 16])),
            ),
            &[],
        ),
    )?;
    let mut g = Msg::default().msg(1, relu());
    for _ in 0..40 {
        g = Msg::default().msg(1, if_node("nest", g.clone(), Msg::default()));
    }
    c.hostile("onnx-subgraph-nesting-bomb.onnx", &model(g, &[]))?;
    c.hostile(
        "onnx-huge-name.onnx",
        &model(
            one_node_graph(node("Relu", "", &["x"], &["y"], &"A".repeat(100_000)), None),
            &[],
        ),
    )?;
    let mut truncated = model(mlp_graph(&mut rng), &[]);
    truncated.truncate(truncated.len() * 2 / 3);
    c.hostile("onnx-truncated.onnx", &truncated)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// GGUF (version 3, little endian).

const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

struct Gguf {
    kv: Vec<u8>,
    nkv: u64,
    tensors: Vec<u8>,
    ntensors: u64,
    data: Vec<u8>,
}

fn gstr(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

impl Gguf {
    fn new() -> Self {
        Gguf {
            kv: Vec::new(),
            nkv: 0,
            tensors: Vec::new(),
            ntensors: 0,
            data: Vec::new(),
        }
    }
    fn kv(mut self, key: &str, vtype: u32, raw: &[u8]) -> Self {
        gstr(&mut self.kv, key);
        self.kv.extend_from_slice(&vtype.to_le_bytes());
        self.kv.extend_from_slice(raw);
        self.nkv += 1;
        self
    }
    fn kv_str(self, key: &str, value: &str) -> Self {
        let mut raw = Vec::new();
        gstr(&mut raw, value);
        self.kv(key, 8, &raw)
    }
    fn kv_u32(self, key: &str, v: u32) -> Self {
        self.kv(key, 4, &v.to_le_bytes())
    }
    fn kv_strings(self, key: &str, items: &[&str]) -> Self {
        let mut raw = 8u32.to_le_bytes().to_vec();
        raw.extend_from_slice(&(items.len() as u64).to_le_bytes());
        for s in items {
            gstr(&mut raw, s);
        }
        self.kv(key, 9, &raw)
    }
    /// Adds a tensor whose data is `bytes`, placed at the next 32-aligned offset.
    fn tensor(mut self, name: &str, dims: &[u64], ggml_type: u32, bytes: &[u8]) -> Self {
        while !self.data.len().is_multiple_of(32) {
            self.data.push(0);
        }
        let offset = self.data.len() as u64;
        self.data.extend_from_slice(bytes);
        self.tensor_info(name, dims, ggml_type, offset)
    }
    fn tensor_info(mut self, name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> Self {
        gstr(&mut self.tensors, name);
        self.tensors
            .extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend_from_slice(&d.to_le_bytes());
        }
        self.tensors.extend_from_slice(&ggml_type.to_le_bytes());
        self.tensors.extend_from_slice(&offset.to_le_bytes());
        self.ntensors += 1;
        self
    }
    fn build(self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&self.ntensors.to_le_bytes());
        out.extend_from_slice(&self.nkv.to_le_bytes());
        out.extend_from_slice(&self.kv);
        out.extend_from_slice(&self.tensors);
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        out.extend_from_slice(&self.data);
        out
    }
}

/// A tiny llama-shaped model: vocabulary, F32 norm, Q8_0 embedding, and `template`.
fn llama(template: &str, rng: &mut Rng) -> Gguf {
    let tokens = [
        "<unk>",
        "<s>",
        "</s>",
        "<|im_start|>",
        "<|im_end|>",
        "hello",
        "world",
        "\n",
    ];
    let q8_blocks: Vec<u8> = (0..8 * 2)
        .flat_map(|_| {
            let mut b = vec![0x00, 0x3c]; // f16 scale 1.0
            b.extend((0..32).map(|_| (rng.next() % 256) as u8));
            b
        })
        .collect();
    Gguf::new()
        .kv_str("general.architecture", "llama")
        .kv_str("general.name", "modelvet-gen tiny llama")
        .kv_u32("general.alignment", 32)
        .kv_u32("llama.context_length", 2048)
        .kv_u32("llama.embedding_length", 64)
        .kv_str("tokenizer.ggml.model", "llama")
        .kv_strings("tokenizer.ggml.tokens", &tokens)
        .kv_u32("tokenizer.ggml.bos_token_id", 1)
        .kv_str("tokenizer.chat_template", template)
        .tensor("token_embd.weight", &[64, 8], 8, &q8_blocks)
        .tensor("output_norm.weight", &[64], 0, &rng.f32s(64))
}

fn gguf(c: &mut Corpus) -> std::io::Result<()> {
    let mut rng = Rng(0x6675_6600);
    c.benign("gguf-chatml.gguf", &llama(CHATML, &mut rng).build())?;
    c.benign(
        "gguf-llama3-template.gguf",
        &llama(LLAMA3, &mut rng).build(),
    )?;

    for (name, template) in [
        (
            "gguf-template-subclasses.gguf",
            "{% for m in messages %}{{ m.content }}{% endfor %}{{ ''.__class__.__mro__[1].__subclasses__()[133].__init__.__globals__['popen']('id').read() }}",
        ),
        (
            "gguf-template-cycler-globals.gguf",
            "{{ cycler.__init__.__globals__.os.popen('touch /tmp/pwned').read() }}{% for m in messages %}{{ m.content }}{% endfor %}",
        ),
        (
            "gguf-template-attr-concat.gguf",
            "{% set c = '__cla' ~ 'ss__' %}{{ ()|attr(c)|attr('\\x5f\\x5fbase\\x5f\\x5f')|attr('__subcla' + 'sses__')() }}",
        ),
        (
            "gguf-template-joiner-namespace.gguf",
            "{% set ns = namespace(x=1) %}{{ joiner.__init__.__globals__.__builtins__.__import__('subprocess').check_output('id') }}",
        ),
        (
            "gguf-template-format-chars.gguf",
            "{{ lipsum|attr('%c%cglobals%c%c'|format(95,95,95,95))|attr('get')('os')|attr('system')('id') }}",
        ),
    ] {
        let mut t = CHATML.to_string();
        t.push_str(template);
        // The hostile template hides under the alternate template key as well.
        c.hostile(
            name,
            &llama(CHATML, &mut rng)
                .kv_str("tokenizer.chat_template.tool_use", &t)
                .build(),
        )?;
    }

    let mut bad_version = llama(CHATML, &mut rng).build();
    bad_version[4..8].copy_from_slice(&7u32.to_le_bytes());
    c.hostile("gguf-bad-version.gguf", &bad_version)?;
    let mut kv_bomb = llama(CHATML, &mut rng).build();
    kv_bomb[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    c.hostile("gguf-kv-count-bomb.gguf", &kv_bomb)?;
    let mut arr = 0u32.to_le_bytes().to_vec(); // array of uint8
    arr.extend_from_slice(&(1u64 << 62).to_le_bytes());
    c.hostile(
        "gguf-array-length-bomb.gguf",
        &llama(CHATML, &mut rng)
            .kv("tokenizer.ggml.scores", 9, &arr)
            .build(),
    )?;
    c.hostile(
        "gguf-tensor-past-end.gguf",
        &llama(CHATML, &mut rng)
            .tensor_info("output.weight", &[64, 4096], 0, 1 << 20)
            .build(),
    )?;
    c.hostile(
        "gguf-tensor-overlap.gguf",
        &llama(CHATML, &mut rng)
            .tensor_info("alias.weight", &[64], 0, 0)
            .build(),
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Keras: `.keras` zips (stored members) and legacy `.h5`.

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A zip with stored (uncompressed) members, as `zipfile` writes them with ZIP_STORED.
fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let mut local = Vec::new();
        local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        local.extend_from_slice(&20u16.to_le_bytes()); // version needed
        local.extend_from_slice(&0u16.to_le_bytes()); // flags
        local.extend_from_slice(&0u16.to_le_bytes()); // method: stored
        local.extend_from_slice(&0u16.to_le_bytes()); // time
        local.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
        local.extend_from_slice(&crc.to_le_bytes());
        local.extend_from_slice(&(data.len() as u32).to_le_bytes());
        local.extend_from_slice(&(data.len() as u32).to_le_bytes());
        local.extend_from_slice(&(name.len() as u16).to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes());
        local.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&local);
        out.extend_from_slice(data);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        central.extend_from_slice(&local[4..28]); // version needed .. name length
        central.extend_from_slice(&0u16.to_le_bytes()); // extra
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attrs
        central.extend_from_slice(&0u32.to_le_bytes()); // external attrs
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// An HDF5-signed file carrying `model_config` as an attribute string. Not a complete HDF5
/// object tree: the scanner reads the signature and the attribute's JSON bytes only.
fn h5(model_config: &str, rng: &mut Rng) -> Vec<u8> {
    let mut f = b"\x89HDF\r\n\x1a\n".to_vec();
    // Superblock v0 prefix: versions, sizes of offsets and lengths, group K values.
    f.extend_from_slice(&[0, 0, 0, 0, 0, 8, 8, 0, 4, 0, 16, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&rng.f32s(64));
    f.extend_from_slice(b"model_config\0\0\0\0");
    f.extend_from_slice(model_config.as_bytes());
    f.push(0);
    f.extend_from_slice(b"keras_version\0\0\0");
    f.extend_from_slice(b"2.15.0\0\0");
    f.extend_from_slice(&rng.f32s(256));
    f
}

fn dense_layer(name: &str, units: u32, activation: &str) -> String {
    format!(
        r#"{{"module": "keras.layers", "class_name": "Dense", "config": {{"name": "{name}", "trainable": true, "dtype": {{"module": "keras", "class_name": "DTypePolicy", "config": {{"name": "float32"}}, "registered_name": null}}, "units": {units}, "activation": "{activation}", "use_bias": true, "kernel_initializer": {{"module": "keras.initializers", "class_name": "GlorotUniform", "config": {{"seed": null}}, "registered_name": null}}, "bias_initializer": {{"module": "keras.initializers", "class_name": "Zeros", "config": {{}}, "registered_name": null}}}}, "registered_name": null, "build_config": {{"input_shape": [null, 8]}}}}"#
    )
}

fn sequential(layers: &[String]) -> String {
    format!(
        r#"{{"module": "keras", "class_name": "Sequential", "config": {{"name": "sequential", "trainable": true, "dtype": {{"module": "keras", "class_name": "DTypePolicy", "config": {{"name": "float32"}}, "registered_name": null}}, "layers": [{{"module": "keras.layers", "class_name": "InputLayer", "config": {{"batch_shape": [null, 8], "dtype": "float32", "sparse": false, "name": "input_layer"}}, "registered_name": null}}, {}]}}, "registered_name": null, "build_config": {{"input_shape": [null, 8]}}, "compile_config": {{"optimizer": {{"module": "keras.optimizers", "class_name": "Adam", "config": {{"name": "adam", "learning_rate": 0.001}}, "registered_name": null}}, "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}}}}"#,
        layers.join(", ")
    )
}

fn keras_zip(config: &str, rng: &mut Rng) -> Vec<u8> {
    let metadata = br#"{"keras_version": "3.5.0", "date_saved": "2026-01-01@00:00:00"}"#;
    let weights = h5("", rng);
    zip(&[
        ("metadata.json", metadata),
        ("config.json", config.as_bytes()),
        ("model.weights.h5", &weights),
    ])
}

fn keras(c: &mut Corpus) -> std::io::Result<()> {
    let mut rng = Rng(0x4b45_5241);
    let benign = sequential(&[
        dense_layer("dense", 16, "relu"),
        dense_layer("dense_1", 10, "softmax"),
    ]);
    c.benign("keras-dense.keras", &keras_zip(&benign, &mut rng))?;
    let legacy = r#"{"class_name": "Sequential", "config": {"name": "sequential", "layers": [{"class_name": "Dense", "config": {"name": "dense", "units": 16, "activation": "relu", "batch_input_shape": [null, 8]}}, {"class_name": "Dense", "config": {"name": "dense_1", "units": 10, "activation": "softmax"}}]}, "keras_version": "2.15.0", "backend": "tensorflow"}"#;
    c.benign("keras-legacy-dense.h5", &h5(legacy, &mut rng))?;

    // Keras 3 Lambda: marshalled bytecode of `lambda x: __import__('os').system('id') or x`.
    let lambda3 = r#"{"module": "keras.layers", "class_name": "Lambda", "config": {"name": "lambda", "trainable": true, "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAAAAAAAAEAAAAEAAAAAwAAAPMgAAAAdABkAYMBoAFkAqEBcAx8AFMAKQNO2gJvc9oCaWQ=", "defaults": null, "closure": null}}, "arguments": {}}, "registered_name": null}"#;
    c.hostile(
        "keras-lambda-layer.keras",
        &keras_zip(
            &sequential(&[dense_layer("dense", 16, "relu"), lambda3.to_string()]),
            &mut rng,
        ),
    )?;
    let os_module = r#"{"module": "os", "class_name": "function", "config": "system", "registered_name": "system"}"#;
    c.hostile(
        "keras-module-os-system.keras",
        &keras_zip(
            &sequential(&[dense_layer("dense", 16, "relu"), os_module.to_string()]),
            &mut rng,
        ),
    )?;
    let outside = r#"{"module": "helpers.layers", "class_name": "Backdoor", "config": {"name": "backdoor"}, "registered_name": "helpers>Backdoor"}"#;
    c.hostile(
        "keras-module-outside-keras.keras",
        &keras_zip(
            &sequential(&[dense_layer("dense", 16, "relu"), outside.to_string()]),
            &mut rng,
        ),
    )?;
    let get_file = r#"{"module": "keras.utils", "class_name": "function", "config": "get_file", "registered_name": null}"#;
    c.hostile(
        "keras-get-file.keras",
        &keras_zip(
            &sequential(&[dense_layer("dense", 16, "relu"), get_file.to_string()]),
            &mut rng,
        ),
    )?;
    let legacy_lambda = r#"{"class_name": "Sequential", "config": {"name": "sequential", "layers": [{"class_name": "Dense", "config": {"name": "dense", "units": 16}}, {"class_name": "Lambda", "config": {"name": "lambda", "function": ["4wEAAAAAAAAAAAAAAAEAAAAEAAAAQwAAAHMWAAAAdABkAYMBoAFkAqEBAQB8AFMAKQNO2gJvc9oCaWQp", null, null], "function_type": "lambda", "module": "__main__", "output_shape": null, "arguments": {}}}]}, "keras_version": "2.15.0", "backend": "tensorflow"}"#;
    c.hostile("keras-legacy-lambda.h5", &h5(legacy_lambda, &mut rng))?;
    Ok(())
}
