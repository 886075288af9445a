//! safetensors: an 8-byte little-endian header length, a JSON header mapping tensor names to
//! dtype, shape and a byte range of the data section, then the data. Only the header is read
//! (the data section is never walked), and every check the reference loader makes is reported
//! as a finding instead of an error: a file it refuses but another parser accepts is a
//! parser differential, the kind of structure that hides payloads.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Findings;
use crate::finding::{Category, Finding, Severity};

/// Largest header accepted. The same bound as the reference `safetensors` crate: the length is
/// attacker-chosen and the header is the only part of the file that gets parsed into memory.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Length of the little-endian header-length prefix.
const PREFIX_BYTES: usize = 8;

/// Element width in bits of every dtype the reference loader knows; `None` for anything else.
pub fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        _ => return None,
    })
}

/// Content sniffing: a plausible header length followed by the start of a JSON object. The
/// length may still point past the end of the file (that is a finding, not another format).
pub fn sniff(data: &[u8]) -> bool {
    if data.len() < PREFIX_BYTES + 2 {
        return false;
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&data[..PREFIX_BYTES]);
    let n = u64::from_le_bytes(len);
    n >= 2
        && data[PREFIX_BYTES] == b'{'
        && matches!(
            data[PREFIX_BYTES + 1],
            b'"' | b'}' | b' ' | b'\n' | b'\r' | b'\t'
        )
}

/// One tensor entry of the header, as the reference loader reads it.
#[derive(Debug, Deserialize)]
struct TensorInfo<'a> {
    #[serde(borrow)]
    dtype: Cow<'a, str>,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// A tensor entry as checked: the shape is a range of `Header::dims`, so parsing a header of
/// thousands of tensors makes no allocation per tensor.
#[derive(Debug)]
struct Tensor<'a> {
    dtype: Cow<'a, str>,
    shape: std::ops::Range<usize>,
    data_offsets: (u64, u64),
}

/// A header value: `__metadata__` or a tensor.
#[derive(Debug)]
enum Entry<'a> {
    Metadata { non_string: Vec<String> },
    Tensor(Tensor<'a>),
}

#[derive(Debug)]
struct Header<'a> {
    entries: Vec<(Cow<'a, str>, Entry<'a>)>,
    dims: Vec<u64>,
}

/// A JSON string borrowed from the header when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// `__metadata__`: must be an object of string to string (or null); records the keys whose
/// value is anything else.
struct MetadataCheck(Vec<String>);

impl<'de> Deserialize<'de> for MetadataCheck {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetadataCheck;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<MetadataCheck, E> {
                Ok(MetadataCheck(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetadataCheck, A::Error> {
                let mut bad = Vec::new();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    if !map.next_value::<IsString>()?.0 {
                        bad.push(key.0.into_owned());
                    }
                }
                Ok(MetadataCheck(bad))
            }
        }
        d.deserialize_any(V)
    }
}

/// Consumes any JSON value, remembering whether it was a string.
struct IsString(bool);

impl<'de> Deserialize<'de> for IsString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IsString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<IsString, E> {
                Ok(IsString(true))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<IsString, E> {
                Ok(IsString(false))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<IsString, E> {
                Ok(IsString(false))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<IsString, E> {
                Ok(IsString(false))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<IsString, E> {
                Ok(IsString(false))
            }
            fn visit_unit<E: de::Error>(self) -> Result<IsString, E> {
                Ok(IsString(false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IsString, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(IsString(false))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IsString, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(IsString(false))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Header<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Header<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header<'de>, A::Error> {
                let mut entries = Vec::new();
                let mut dims = Vec::new();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let entry = if key == "__metadata__" {
                        Entry::Metadata {
                            non_string: map.next_value::<MetadataCheck>()?.0,
                        }
                    } else {
                        let info = map.next_value::<TensorInfo<'de>>()?;
                        let start = dims.len();
                        dims.extend_from_slice(&info.shape);
                        Entry::Tensor(Tensor {
                            dtype: info.dtype,
                            shape: start..dims.len(),
                            data_offsets: info.data_offsets,
                        })
                    };
                    entries.push((key, entry));
                }
                Ok(Header { entries, dims })
            }
        }
        d.deserialize_map(V)
    }
}

/// A fast path for the common header shape: a strict subset of JSON (no escapes, unsigned
/// integers, the three tensor fields exactly once). Anything else returns `None` and the
/// header goes through serde_json, which accepts the rest of JSON and names the error; on
/// what both accept they agree, so the fast path only changes the speed.
struct FastParser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> FastParser<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        // Eight bytes at a time until one may be a quote, a backslash or a control byte.
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let x = u64::from_le_bytes(word);
            let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
            let special = zero(x ^ (ONES * u64::from(b'"')))
                | zero(x ^ (ONES * u64::from(b'\\')))
                | (x.wrapping_sub(ONES * 0x20) & !x & HIGHS);
            if special != 0 {
                break;
            }
            self.i += 8;
        }
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        self.i += 1;
        // Quotes are ASCII, so both ends are char boundaries of the validated UTF-8 text.
        self.s.get(start..self.i - 1)
    }

    fn uint(&mut self) -> Option<u64> {
        self.ws();
        let start = self.i;
        let mut v = 0u64;
        while let Some(&d) = self.b.get(self.i).filter(|d| d.is_ascii_digit()) {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.i += 1;
        }
        let len = self.i - start;
        if len == 0
            || (len > 1 && self.b[start] == b'0')
            || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        Some(v)
    }

    fn tensor(&mut self, dims: &mut Vec<u64>) -> Option<Tensor<'a>> {
        self.eat(b'{')?;
        let (mut dtype, mut shape, mut offsets) = (None, None, None);
        loop {
            match self.string()? {
                "dtype" if dtype.is_none() => {
                    self.eat(b':')?;
                    dtype = Some(self.string()?);
                }
                "shape" if shape.is_none() => {
                    self.eat(b':')?;
                    self.eat(b'[')?;
                    let first = dims.len();
                    if self.peek()? == b']' {
                        self.i += 1;
                    } else {
                        loop {
                            dims.push(self.uint()?);
                            match self.peek()? {
                                b',' => self.i += 1,
                                b']' => {
                                    self.i += 1;
                                    break;
                                }
                                _ => return None,
                            }
                        }
                    }
                    shape = Some(first..dims.len());
                }
                "data_offsets" if offsets.is_none() => {
                    self.eat(b':')?;
                    self.eat(b'[')?;
                    let start = self.uint()?;
                    self.eat(b',')?;
                    let end = self.uint()?;
                    self.eat(b']')?;
                    offsets = Some((start, end));
                }
                _ => return None,
            }
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        Some(Tensor {
            dtype: Cow::Borrowed(dtype?),
            shape: shape?,
            data_offsets: offsets?,
        })
    }

    fn metadata(&mut self) -> Option<Entry<'a>> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(Entry::Metadata {
                non_string: Vec::new(),
            });
        }
        loop {
            self.string()?;
            self.eat(b':')?;
            self.string()?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(Entry::Metadata {
                        non_string: Vec::new(),
                    });
                }
                _ => return None,
            }
        }
    }

    fn header(mut self) -> Option<Header<'a>> {
        self.eat(b'{')?;
        let mut entries = Vec::new();
        let mut dims = Vec::new();
        if self.peek()? == b'}' {
            self.i += 1;
        } else {
            loop {
                let key = self.string()?;
                self.eat(b':')?;
                let entry = if key == "__metadata__" {
                    self.metadata()?
                } else {
                    Entry::Tensor(self.tensor(&mut dims)?)
                };
                entries.push((Cow::Borrowed(key), entry));
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.ws();
        (self.i == self.b.len()).then_some(Header { entries, dims })
    }
}

/// Scans a safetensors file; `location` names it in findings.
pub fn scan(data: &[u8], location: &str) -> Vec<Finding> {
    let mut out = Findings::default();
    scan_into(data, location, &mut out);
    out.finish()
}

fn integrity(rule: &str, message: impl Into<String>, location: String) -> Finding {
    Finding::new(rule, Severity::High, Category::Integrity, message).at(location)
}

fn scan_into(data: &[u8], location: &str, out: &mut Findings) {
    if data.len() < PREFIX_BYTES {
        out.push(integrity(
            "safetensors.truncated",
            format!(
                "file of {} bytes is shorter than the 8-byte header length",
                data.len()
            ),
            format!("{location}@0"),
        ));
        return;
    }
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&data[..PREFIX_BYTES]);
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_BYTES {
        out.push(
            integrity(
                "safetensors.header-too-large",
                format!("header length {header_len} exceeds the {MAX_HEADER_BYTES}-byte limit loaders enforce"),
                format!("{location}@0"),
            )
            .with_evidence(format!("header_len={header_len}")),
        );
        return;
    }
    let body = (data.len() - PREFIX_BYTES) as u64;
    if header_len > body {
        out.push(
            integrity(
                "safetensors.header-past-end",
                format!(
                    "header length {header_len} runs past the end of the file ({body} bytes follow)"
                ),
                format!("{location}@0"),
            )
            .with_evidence(format!("header_len={header_len}")),
        );
        return;
    }
    let header_end = PREFIX_BYTES + header_len as usize;
    let header = &data[PREFIX_BYTES..header_end];
    let data_len = (data.len() - header_end) as u64;
    check_header(header, data_len, location, out);
}

/// Checks a header (the JSON bytes) against a data section of `data_len` bytes. Exposed so
/// a reader that has only the first bytes of a large file can check it without the body.
pub fn scan_header(header: &[u8], data_len: u64, location: &str) -> Vec<Finding> {
    let mut out = Findings::default();
    check_header(header, data_len, location, &mut out);
    out.finish()
}

fn check_header(header: &[u8], data_len: u64, location: &str, out: &mut Findings) {
    let at_header = format!("{location}@8");
    if header.first() != Some(&b'{') {
        out.push(integrity(
            "safetensors.bad-header",
            "header does not start with '{' (the reference loader refuses it)",
            at_header,
        ));
        return;
    }
    let fast = std::str::from_utf8(header).ok().and_then(|text| {
        FastParser {
            s: text,
            b: header,
            i: 0,
        }
        .header()
    });
    let parsed: Header = match fast.map_or_else(|| serde_json::from_slice(header), Ok) {
        Ok(h) => h,
        Err(e) => {
            out.push(
                integrity(
                    "safetensors.bad-header",
                    "header is not a valid safetensors JSON header",
                    at_header,
                )
                .with_evidence(e.to_string()),
            );
            return;
        }
    };

    // Duplicate keys: JSON parsers disagree on which one wins (first, last, error).
    let mut seen: HashSet<&str> = HashSet::with_capacity(parsed.entries.len());
    for (name, _) in &parsed.entries {
        if !seen.insert(name.as_ref()) {
            out.push(
                integrity(
                    "safetensors.duplicate-key",
                    "header names the same key twice; parsers disagree on which entry wins",
                    format!("{location}@tensor/{name}"),
                )
                .with_evidence(name.to_string()),
            );
        }
    }

    let mut ranges: Vec<(u64, u64, &str)> = Vec::with_capacity(parsed.entries.len());
    for (name, entry) in &parsed.entries {
        let at = || format!("{location}@tensor/{name}");
        let info = match entry {
            Entry::Metadata { non_string } => {
                for key in non_string {
                    out.push(
                        integrity(
                            "safetensors.bad-metadata",
                            "__metadata__ must map strings to strings; this value is not a string",
                            format!("{location}@__metadata__/{key}"),
                        )
                        .with_evidence(key.clone()),
                    );
                }
                continue;
            }
            Entry::Tensor(info) => info,
        };
        let shape = &parsed.dims[info.shape.clone()];
        let (start, end) = info.data_offsets;
        if start > end {
            out.push(
                integrity(
                    "safetensors.bad-range",
                    "tensor byte range ends before it starts",
                    at(),
                )
                .with_evidence(format!("data_offsets=[{start}, {end}]")),
            );
            continue;
        }
        if end > data_len {
            out.push(
                integrity(
                    "safetensors.range-past-end",
                    format!("tensor byte range ends past the data section ({data_len} bytes)"),
                    at(),
                )
                .with_evidence(format!("data_offsets=[{start}, {end}]")),
            );
        }
        ranges.push((start, end, name.as_ref()));
        let Some(bits) = dtype_bits(&info.dtype) else {
            out.push(
                integrity(
                    "safetensors.unknown-dtype",
                    "dtype unknown to the reference loader",
                    at(),
                )
                .with_evidence(info.dtype.to_string()),
            );
            continue;
        };
        let numel = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let nbits = numel.and_then(|n| n.checked_mul(bits));
        let Some(nbits) = nbits else {
            out.push(
                integrity(
                    "safetensors.shape-overflow",
                    "shape x dtype overflows 64 bits",
                    at(),
                )
                .with_evidence(format!("shape={shape:?} dtype={}", info.dtype)),
            );
            continue;
        };
        if nbits % 8 != 0 || nbits / 8 != end - start {
            out.push(
                integrity(
                    "safetensors.size-mismatch",
                    "shape x dtype does not match the tensor's byte range",
                    at(),
                )
                .with_evidence(format!(
                    "shape={:?} dtype={} needs {} bits, range holds {} bytes",
                    shape,
                    info.dtype,
                    nbits,
                    end - start
                )),
            );
        }
    }

    // Overlaps and gaps: the reference loader wants the ranges to tile the data section.
    ranges.sort_unstable();
    let mut covered = 0u64;
    let mut last_name = "";
    for &(start, end, name) in &ranges {
        if start < covered {
            out.push(
                integrity(
                    "safetensors.range-overlap",
                    format!("tensor bytes overlap those of '{last_name}'"),
                    format!("{location}@tensor/{name}"),
                )
                .with_evidence(format!(
                    "starts at {start}, previous data ends at {covered}"
                )),
            );
        } else if start > covered {
            out.push(
                integrity(
                    "safetensors.data-gap",
                    "bytes between tensors belong to no tensor (a place to smuggle data)",
                    format!("{location}@tensor/{name}"),
                )
                .with_evidence(format!("gap [{covered}, {start})")),
            );
        }
        if end >= covered {
            covered = end;
            last_name = name;
        }
    }
    if covered < data_len {
        out.push(
            integrity(
                "safetensors.trailing-data",
                "bytes after the last tensor belong to no tensor (a place to smuggle data)",
                format!("{location}@{}", covered),
            )
            .with_evidence(format!("{} unaccounted bytes", data_len - covered)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.resize(out.len() + data_len, 0);
        out
    }

    fn rules(data: &[u8]) -> Vec<String> {
        scan(data, "m.safetensors")
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }

    const BENIGN: &str = r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[24,30]},"step":{"dtype":"I64","shape":[],"data_offsets":[30,38]}}"#;

    #[test]
    fn benign_file_is_clean_and_sniffed() {
        let f = file(BENIGN, 38);
        assert!(sniff(&f));
        assert_eq!(rules(&f), Vec::<String>::new());
        // Header padded with spaces, as writers align it to 8 bytes.
        let padded = format!("{BENIGN}     ");
        assert_eq!(rules(&file(&padded, 38)), Vec::<String>::new());
        assert_eq!(rules(&file("{}", 0)), Vec::<String>::new());
    }

    #[test]
    fn every_rule_fires_on_a_minimal_input() {
        let mut huge = (MAX_HEADER_BYTES + 1).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert_eq!(rules(&huge), ["safetensors.header-too-large"]);
        let mut past = 1000u64.to_le_bytes().to_vec();
        past.extend_from_slice(b"{}");
        assert_eq!(rules(&past), ["safetensors.header-past-end"]);
        assert_eq!(rules(&[1, 2, 3]), ["safetensors.truncated"]);
        assert_eq!(rules(&file("[1]", 0)), ["safetensors.bad-header"]);
        assert_eq!(rules(&file("{\"a\":", 0)), ["safetensors.bad-header"]);
        let one = |dtype: &str, shape: &str, range: &str, len| {
            rules(&file(
                &format!(r#"{{"t":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{range}}}}}"#),
                len,
            ))
        };
        assert_eq!(
            one("F32", "[2]", "[0,8]", 4),
            ["safetensors.range-past-end"]
        );
        assert_eq!(one("F32", "[3]", "[0,8]", 8), ["safetensors.size-mismatch"]);
        assert_eq!(one("Q4", "[2]", "[0,8]", 8), ["safetensors.unknown-dtype"]);
        assert_eq!(
            one("F32", "[4294967296,4294967296]", "[0,8]", 8),
            ["safetensors.shape-overflow"]
        );
        assert_eq!(one("F32", "[2]", "[8,0]", 0), ["safetensors.bad-range"]);
        assert_eq!(
            one("F32", "[2]", "[0,8]", 12),
            ["safetensors.trailing-data"]
        );
        assert_eq!(one("F32", "[2]", "[4,12]", 12), ["safetensors.data-gap"]);
        let overlap = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
        assert_eq!(rules(&file(overlap, 12)), ["safetensors.range-overlap"]);
        let dup = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        assert_eq!(rules(&file(dup, 8)), ["safetensors.duplicate-key"]);
        let meta = r#"{"__metadata__":{"ok":"x","code":{"nested":1}}}"#;
        let findings = scan(&file(meta, 0), "m");
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].rule, "safetensors.bad-metadata");
        assert_eq!(findings[0].location.as_deref(), Some("m@__metadata__/code"));
    }

    #[test]
    fn escaped_names_and_sub_byte_dtypes_are_understood() {
        let h = r#"{"a\u002eb":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}"#;
        assert_eq!(rules(&file(h, 2)), Vec::<String>::new());
        let odd = r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#;
        assert_eq!(rules(&file(odd, 2)), ["safetensors.size-mismatch"]);
    }

    #[test]
    fn findings_per_rule_are_capped() {
        let mut h = String::from("{");
        for i in 0..500 {
            h.push_str(&format!(
                r#""t{i}":{{"dtype":"F32","shape":[1],"data_offsets":[0,4000]}},"#
            ));
        }
        h.pop();
        h.push('}');
        let f = scan(&file(&h, 4), "m");
        assert!(f.len() <= 3 * super::super::MAX_FINDINGS_PER_RULE);
        assert!(
            f.iter()
                .any(|x| x.message.contains("more findings of this rule"))
        );
    }

    type Canon = Vec<(String, Option<(String, Vec<u64>, (u64, u64))>)>;

    fn canon(h: &Header) -> Canon {
        h.entries
            .iter()
            .map(|(k, e)| {
                let t = match e {
                    Entry::Metadata { non_string } => {
                        assert!(non_string.is_empty());
                        None
                    }
                    Entry::Tensor(t) => Some((
                        t.dtype.to_string(),
                        h.dims[t.shape.clone()].to_vec(),
                        t.data_offsets,
                    )),
                };
                (k.to_string(), t)
            })
            .collect()
    }

    /// The fast path may decline a header but never disagree with serde_json on one it accepts.
    #[test]
    fn fast_path_agrees_with_serde_on_mutated_headers() {
        use rand::{Rng, SeedableRng};
        let base = format!("{BENIGN}  ").into_bytes();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let alphabet = b"{}[],:\" 0123456789.eE-+\\u_aFBI";
        let (mut accepted, mut declined) = (0, 0);
        for _ in 0..20_000 {
            let mut h = base.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..h.len());
                match rng.gen_range(0..3) {
                    0 => h[i] = alphabet[rng.gen_range(0..alphabet.len())],
                    1 => {
                        h.remove(i);
                    }
                    _ => h.insert(i, alphabet[rng.gen_range(0..alphabet.len())]),
                }
            }
            let Ok(text) = std::str::from_utf8(&h) else {
                continue;
            };
            let fast = FastParser {
                s: text,
                b: &h,
                i: 0,
            }
            .header();
            let slow: Result<Header, _> = serde_json::from_slice(&h);
            match fast {
                Some(f) => {
                    accepted += 1;
                    let slow = slow
                        .unwrap_or_else(|e| panic!("fast accepted, serde refused ({e}): {text}"));
                    assert_eq!(canon(&f), canon(&slow), "{text}");
                }
                None => declined += 1,
            }
        }
        assert!(
            accepted > 100 && declined > 100,
            "{accepted} accepted, {declined} declined"
        );
    }

    /// Header parsing speed on a realistic header (a 7B-style model with ~3000 tensors).
    #[test]
    fn header_parsing_is_fast() {
        let mut h = String::from(r#"{"__metadata__":{"format":"pt"},"#);
        let mut off = 0u64;
        for i in 0..3000 {
            let n = 4096u64 * 4096;
            h.push_str(&format!(
                r#""model.layers.{i}.self_attn.q_proj.weight":{{"dtype":"BF16","shape":[4096,4096],"data_offsets":[{off},{}]}},"#,
                off + 2 * n
            ));
            off += 2 * n;
        }
        h.pop();
        h.push('}');
        // Best of several batches: the machine is shared, the best batch is the one core's speed.
        let rounds = 10;
        let mut best = f64::MAX;
        for _ in 0..7 {
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                let f = scan_header(h.as_bytes(), off, "m");
                assert!(f.is_empty(), "{f:?}");
            }
            best = best.min(start.elapsed().as_secs_f64());
        }
        let mbps = (h.len() * rounds) as f64 / best / 1e6;
        eprintln!("safetensors header parsing: {mbps:.0} MB/s of header JSON");
        // A loose floor so a loaded CI machine does not flake; `make bench` measures for real.
        assert!(mbps > 20.0, "{mbps} MB/s");
    }
}
