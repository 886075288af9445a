//! Keras: the `config.json` of a `.keras` (v3) zip and the `model_config` JSON of a legacy
//! `.h5` file. Loading deserialises that JSON into Python objects: a `Lambda` layer carries
//! marshalled bytecode, and a `module` outside keras imports and calls arbitrary Python.
//! The zip itself is read by the archive reader, which hands each member to
//! [`scan_zip_member`]; `.h5` files are found by content and searched for the JSON bytes.

use serde::de::IgnoredAny;
use serde_json::Value;

use super::Findings;
use crate::finding::{Category, Finding, Severity};

/// HDF5 file signature. It sits at offset 0, or after a user block of 512, 1024, 2048... bytes.
pub const HDF5_SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
/// Largest config JSON parsed. Real configs are kilobytes to a few megabytes; a bigger one
/// exists to exhaust memory in the deserialiser.
pub const MAX_CONFIG_BYTES: usize = 64 << 20;
/// JSON objects parsed per `.h5` file while searching for model configs: bounds the work a
/// file full of `{"class_name"` fragments can cause.
pub const MAX_H5_CANDIDATES: usize = 4096;

/// Bytes spent on candidate JSON parses that fail, per `.h5` file: without it, thousands of
/// fragments nested in one long unterminated JSON text would each re-parse it.
pub const MAX_H5_FAILED_PARSE_BYTES: usize = 64 << 20;

/// Module roots whose objects Keras itself ships or officially extends.
const KERAS_MODULES: &[&str] = &["keras", "keras_hub", "keras_nlp", "keras_cv", "tf_keras"];
/// Module roots that reach code execution, the network or files when imported and called.
const DANGER_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "builtins",
    "__builtin__",
    "sys",
    "runpy",
    "importlib",
    "pickle",
    "marshal",
    "shutil",
    "socket",
    "ctypes",
    "code",
    "pty",
    "webbrowser",
    "urllib",
    "http",
    "requests",
    "io",
    "_io",
    "pathlib",
    "tempfile",
    "multiprocessing",
    "commands",
    "platform",
    "timeit",
    "pdb",
];
/// Keras functions that reach outside the model even though they live in keras.
const DANGER_KERAS_FUNCTIONS: &[&str] = &["get_file", "load_model", "load_weights", "save_model"];

/// Content sniffing for `.h5`: the HDF5 signature at 0 or after a user block.
pub fn sniff(data: &[u8]) -> bool {
    [0usize, 512, 1024, 2048, 4096]
        .iter()
        .any(|&o| data.get(o..o + 8) == Some(&HDF5_SIGNATURE[..]))
}

/// Scans a legacy `.h5` file (or a bare Keras config JSON); `location` names it in findings.
pub fn scan(data: &[u8], location: &str) -> Vec<Finding> {
    let mut out = Findings::default();
    if data.first() == Some(&b'{') {
        scan_config(data, location, &mut out);
    } else {
        scan_h5(data, location, &mut out);
    }
    out.finish()
}

/// Scans one member of a `.keras` zip: `config.json` is judged, `.h5` members are searched
/// like `.h5` files; other members (metadata, assets) carry no code and give no finding.
pub fn scan_zip_member(name: &str, data: &[u8], location: &str) -> Vec<Finding> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let mut out = Findings::default();
    if base == "config.json" {
        scan_config(data, location, &mut out);
    } else if base.ends_with(".h5") || sniff(data) {
        scan_h5(data, location, &mut out);
    }
    out.finish()
}

fn scan_config(data: &[u8], location: &str, out: &mut Findings) {
    if data.len() > MAX_CONFIG_BYTES {
        out.push(
            Finding::new(
                "keras.config-limit",
                Severity::High,
                Category::Integrity,
                format!(
                    "config of {} bytes exceeds the {MAX_CONFIG_BYTES}-byte limit",
                    data.len()
                ),
            )
            .at(location.to_string()),
        );
        return;
    }
    match serde_json::from_slice::<Value>(&python_json(data)) {
        Ok(v) => walk(&v, location, "", false, out),
        Err(e) => out.push(
            Finding::new(
                "keras.bad-config",
                Severity::High,
                Category::Integrity,
                "model config is not valid JSON",
            )
            .at(location.to_string())
            .with_evidence(e.to_string()),
        ),
    }
}

/// `data` with the tokens Python's json accepts and JSON does not (`NaN`, `Infinity`,
/// `-Infinity`) spelt as a number of the same length: keras loads a config that holds them, so
/// the objects around them must parse here too.
fn python_json(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out: Option<Vec<u8>> = None;
    for token in [&b"NaN"[..], &b"Infinity"[..]] {
        let mut i = 0;
        while let Some(p) = data[i..].windows(token.len()).position(|w| w == token) {
            let at = i + p;
            let end = at + token.len();
            let alone = (at == 0 || !word(data[at - 1])) && data.get(end).is_none_or(|&b| !word(b));
            if alone {
                let o = out.get_or_insert_with(|| data.to_vec());
                o[at] = b'0';
                o[at + 1..end].fill(b' ');
            }
            i = end;
        }
    }
    match out {
        Some(v) => std::borrow::Cow::Owned(v),
        None => std::borrow::Cow::Borrowed(data),
    }
}

/// A Keras model config on its own (`config.json` of a model saved as a folder, which
/// `keras.models.load_model` loads too): a JSON object whose top level names a `class_name` and a
/// `config`. Its findings, or None when `data` is not one.
pub fn scan_standalone_config(data: &[u8], location: &str) -> Option<Vec<Finding>> {
    if data.len() > MAX_CONFIG_BYTES || data.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    let v: Value = serde_json::from_slice(&python_json(data)).ok()?;
    let top = v.as_object()?;
    if !(top.contains_key("class_name") && top.contains_key("config")) {
        return None;
    }
    let mut out = Findings::default();
    walk(&v, location, "", false, &mut out);
    Some(out.finish())
}

/// Longest first key looked for at a `{` (keras's keys are short words).
const MAX_KEY_BYTES: usize = 256;

/// Whether `head` starts like a JSON object's first member: a string of at most
/// `MAX_KEY_BYTES` bytes (escapes such as `\u0063lass_name` included), then `:`.
fn json_key_first(head: &[u8]) -> bool {
    let Some(rest) = head.strip_prefix(b"\"") else {
        return false;
    };
    let mut i = 0;
    while i < rest.len().min(MAX_KEY_BYTES) {
        match rest[i] {
            b'\\' => i += 2,
            b'"' => {
                return i > 0
                    && rest[i + 1..]
                        .iter()
                        .find(|b| !b.is_ascii_whitespace())
                        .is_some_and(|&b| b == b':');
            }
            b if b < 0x20 => return false,
            _ => i += 1,
        }
    }
    false
}

/// Searches an HDF5 file for JSON model configs: attribute strings are stored as contiguous
/// bytes, so the `model_config` JSON can be found and parsed without an HDF5 reader.
fn scan_h5(data: &[u8], location: &str, out: &mut Findings) {
    let data = &python_json(data)[..];
    let mut i = 0;
    let mut candidates = 0;
    let mut failed_work = 0usize;
    while let Some(p) = data[i..].iter().position(|&b| b == b'{') {
        let start = i + p;
        let rest = &data[start..];
        let prefix = rest[1..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map_or(rest.len(), |q| q + 1);
        let head = &rest[prefix.min(rest.len())..];
        // A JSON object whose first key is a name: keras writes `class_name` first, but any key
        // order loads the same (`{"config": {...}, "class_name": "Lambda"}`).
        if !json_key_first(head) {
            i = start + 1;
            continue;
        }
        candidates += 1;
        if candidates > MAX_H5_CANDIDATES {
            out.push(
                Finding::new(
                    "keras.config-limit",
                    Severity::High,
                    Category::Integrity,
                    format!("more than {MAX_H5_CANDIDATES} JSON config fragments in one file"),
                )
                .at(format!("{location}@{start}")),
            );
            return;
        }
        let window = &rest[..rest.len().min(MAX_CONFIG_BYTES)];
        // Validate without building anything first: most candidates in binary data fail,
        // and a failing parse into `Value` would allocate for everything before the error.
        let mut stream = serde_json::Deserializer::from_slice(window).into_iter::<IgnoredAny>();
        match stream.next() {
            Some(Ok(_)) => {
                let end = stream.byte_offset().max(1);
                if let Ok(v) = serde_json::from_slice::<Value>(&window[..end]) {
                    walk(&v, &format!("{location}@{start}"), "", false, out);
                }
                i = start + end;
            }
            Some(Err(e)) => {
                // Fragments nested in one long broken JSON text each re-parse it: bound the
                // bytes spent on parses that fail.
                failed_work += error_offset(window, e.line(), e.column());
                if failed_work > MAX_H5_FAILED_PARSE_BYTES {
                    out.push(
                        Finding::new(
                            "keras.config-limit",
                            Severity::High,
                            Category::Integrity,
                            format!(
                                "broken JSON config fragments cost more than {MAX_H5_FAILED_PARSE_BYTES} bytes of parsing"
                            ),
                        )
                        .at(format!("{location}@{start}")),
                    );
                    return;
                }
                i = start + 1;
            }
            None => i = start + 1,
        }
    }
}

/// Byte offset of a serde_json error position (1-based line and byte column) in `text`.
fn error_offset(text: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for _ in 1..line {
        match text[offset..].iter().position(|&b| b == b'\n') {
            Some(p) => offset += p + 1,
            None => return text.len(),
        }
    }
    (offset + column).min(text.len())
}

fn module_root(module: &str) -> &str {
    module.split('.').next().unwrap_or(module)
}

/// Walks a config value; `path` is the layer path (names of enclosing layers).
fn walk(v: &Value, location: &str, path: &str, in_lambda: bool, out: &mut Findings) {
    match v {
        Value::Array(items) => {
            for item in items {
                walk(item, location, path, in_lambda, out);
            }
        }
        Value::Object(map) => {
            let class = map.get("class_name").and_then(Value::as_str).unwrap_or("");
            let layer_name = map
                .get("config")
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str)
                .or_else(|| map.get("name").and_then(Value::as_str));
            let here = match layer_name {
                Some(n) if !class.is_empty() => format!("{path}/{n}"),
                _ => path.to_string(),
            };
            let at = || {
                format!(
                    "{location}/config{}",
                    if here.is_empty() { "/" } else { &here }
                )
            };
            let lambda = class == "Lambda" || (class == "__lambda__" && !in_lambda);
            if lambda {
                let code = map
                    .get("config")
                    .and_then(|c| c.get("function").or_else(|| c.get("code")))
                    .map(|f| f.to_string())
                    .unwrap_or_default();
                out.push(
                    Finding::new(
                        "keras.lambda-layer",
                        Severity::Critical,
                        Category::Static,
                        "Lambda layer: loading deserialises and runs marshalled Python bytecode",
                    )
                    .at(at())
                    .with_evidence(code.chars().take(200).collect::<String>()),
                );
            }
            let mut module_flagged = false;
            if let Some(module) = map.get("module").and_then(Value::as_str) {
                let root = module_root(module);
                let function = map.get("config").and_then(Value::as_str).unwrap_or(class);
                if DANGER_MODULES.contains(&root) {
                    module_flagged = true;
                    out.push(
                        Finding::new(
                            "keras.dangerous-module",
                            Severity::Critical,
                            Category::Static,
                            "config imports a module that runs code, reaches the network or files",
                        )
                        .at(at())
                        .with_evidence(format!("{module}.{function}")),
                    );
                } else if !KERAS_MODULES.contains(&root) {
                    module_flagged = true;
                    out.push(
                        Finding::new(
                            "keras.module-outside-keras",
                            Severity::High,
                            Category::Static,
                            "config imports an object from a module outside keras",
                        )
                        .at(at())
                        .with_evidence(format!("{module}.{function}")),
                    );
                } else if DANGER_KERAS_FUNCTIONS.contains(&function) {
                    module_flagged = true;
                    out.push(
                        Finding::new(
                            "keras.dangerous-module",
                            Severity::High,
                            Category::Static,
                            "config calls a keras function that reaches files or the network",
                        )
                        .at(at())
                        .with_evidence(format!("{module}.{function}")),
                    );
                }
            }
            if let Some(reg) = map.get("registered_name").and_then(Value::as_str)
                && reg.contains('>')
                && !module_flagged
            {
                out.push(
                    Finding::new(
                        "keras.custom-object",
                        Severity::Medium,
                        Category::Static,
                        "custom registered object: loading needs (and runs) user code registered under this name",
                    )
                    .at(at())
                    .with_evidence(reg.to_string()),
                );
            }
            for (k, value) in map {
                if k == "class_name" || k == "module" || k == "registered_name" {
                    continue;
                }
                walk(value, location, &here, in_lambda || lambda, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DENSE: &str = r#"{"module": "keras", "class_name": "Sequential", "config": {"name": "sequential", "trainable": true, "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null}, "layers": [{"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [null, 4], "dtype": "float32", "name": "input_layer"}, "registered_name": null}, {"module": "keras.layers", "class_name": "Dense", "config": {"name": "dense", "units": 8, "activation": "relu", "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null}, "registered_name": null}}, "registered_name": null, "build_config": {"input_shape": [null, 4]}}]}, "registered_name": null, "compile_config": {"optimizer": {"module": "keras.optimizers", "class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.001}, "registered_name": null}, "loss": {"module": "keras.losses", "class_name": "function", "config": "mean_squared_error", "registered_name": "mean_squared_error"}}}"#;

    fn rules(f: &[Finding]) -> Vec<&str> {
        let mut r: Vec<&str> = f.iter().map(|f| f.rule.as_str()).collect();
        r.dedup();
        r
    }

    fn h5(json: &str) -> Vec<u8> {
        let mut f = HDF5_SIGNATURE.to_vec();
        f.extend_from_slice(&[0u8, 0, 0, 0, 8, 8, 0, 4, 0, 16, 0, 0]);
        f.extend_from_slice(&[0xaa; 300]);
        f.extend_from_slice(b"model_config\0\0\0\0");
        f.extend_from_slice(json.as_bytes());
        f.extend_from_slice(&[0u8; 64]);
        f.extend_from_slice(b"{\"not\": \"a config\"}");
        f
    }

    #[test]
    fn benign_configs_are_clean() {
        assert!(scan_zip_member("config.json", DENSE.as_bytes(), "m.keras!config.json").is_empty());
        assert!(
            scan_zip_member("metadata.json", b"{\"keras_version\": \"3.5.0\"}", "m").is_empty()
        );
        let f = h5(DENSE);
        assert!(sniff(&f));
        assert!(scan(&f, "m.h5").is_empty());
    }

    #[test]
    fn every_rule_fires_on_a_minimal_input() {
        let lambda = r#"{"class_name": "Sequential", "config": {"name": "s", "layers": [{"class_name": "Lambda", "config": {"name": "evil", "function": ["4wEAAAAAAAAA", null, null], "function_type": "lambda"}}]}}"#;
        let f = scan(&h5(lambda), "m.h5");
        assert_eq!(rules(&f), ["keras.lambda-layer"]);
        assert!(
            f[0].location
                .as_deref()
                .unwrap()
                .ends_with("/config/s/evil"),
            "{f:?}"
        );
        assert_eq!(f[0].severity, Severity::Critical);
        let v3_lambda = r#"{"module": "keras.layers", "class_name": "Lambda", "config": {"name": "l", "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAA"}}}}"#;
        assert_eq!(
            rules(&scan_zip_member("config.json", v3_lambda.as_bytes(), "m")),
            ["keras.lambda-layer"]
        );
        let os = r#"{"module": "os", "class_name": "function", "config": "system", "registered_name": "system"}"#;
        let f = scan_zip_member("config.json", os.as_bytes(), "m");
        assert_eq!(rules(&f), ["keras.dangerous-module"]);
        assert_eq!(f[0].evidence.as_deref(), Some("os.system"));
        let outside = r#"{"module": "evil_pkg.layers", "class_name": "Backdoor", "config": {"name": "b"}, "registered_name": "evil_pkg>Backdoor"}"#;
        assert_eq!(
            rules(&scan_zip_member("config.json", outside.as_bytes(), "m")),
            ["keras.module-outside-keras"]
        );
        let custom = r#"{"module": "keras.layers", "class_name": "MyLayer", "config": {"name": "b"}, "registered_name": "MyPackage>MyLayer"}"#;
        assert_eq!(
            rules(&scan_zip_member("config.json", custom.as_bytes(), "m")),
            ["keras.custom-object"]
        );
        let get_file =
            r#"{"module": "keras.utils", "class_name": "function", "config": "get_file"}"#;
        assert_eq!(
            rules(&scan_zip_member("config.json", get_file.as_bytes(), "m")),
            ["keras.dangerous-module"]
        );
        assert_eq!(
            rules(&scan_zip_member("config.json", b"{\"a\": ", "m")),
            ["keras.bad-config"]
        );
        let mut flood = HDF5_SIGNATURE.to_vec();
        for _ in 0..=MAX_H5_CANDIDATES {
            flood.extend_from_slice(b"{\"class_name\": 1}");
        }
        assert_eq!(rules(&scan(&flood, "m.h5")), ["keras.config-limit"]);
        let mut broken = HDF5_SIGNATURE.to_vec();
        for _ in 0..200 {
            broken.extend_from_slice(b"{\"class_name\": [");
        }
        broken.extend_from_slice(&b"1,".repeat(4 << 20));
        let start = std::time::Instant::now();
        assert_eq!(rules(&scan(&broken, "m.h5")), ["keras.config-limit"]);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        let deep = "[".repeat(100_000);
        assert_eq!(
            rules(&scan_zip_member("config.json", deep.as_bytes(), "m")),
            ["keras.bad-config"]
        );
    }
}
