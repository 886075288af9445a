//! Static readers for the model formats that are not pickles: safetensors, ONNX, GGUF and Keras
//! (`.keras` zip members and legacy `.h5`). Each reader sniffs its format by content, walks the
//! structure with every length checked against the bytes that remain, and turns what it finds
//! into findings; none of them runs, decompresses or allocates from an untrusted length.

pub mod gguf;
pub mod keras;
pub mod onnx;
pub mod safetensors;

use std::collections::HashMap;

use crate::finding::Finding;

/// A format one of these readers recognises by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Safetensors,
    Onnx,
    Gguf,
    /// Legacy Keras HDF5 (`.h5`); `.keras` zips are routed by the zip reader to
    /// [`keras::scan_zip_member`].
    KerasH5,
}

impl Format {
    /// The name used in scan reports (`format` field of SPEC's `modelvet.scan/1`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::Onnx => "onnx",
            Format::Gguf => "gguf",
            Format::KerasH5 => "keras",
        }
    }
}

/// Detects a format by content. Order matters: the formats with a magic number first, ONNX
/// (which has none, only a plausible protobuf prefix) last.
pub fn detect(data: &[u8]) -> Option<Format> {
    if gguf::sniff(data) {
        Some(Format::Gguf)
    } else if keras::sniff(data) {
        Some(Format::KerasH5)
    } else if safetensors::sniff(data) {
        Some(Format::Safetensors)
    } else if onnx::sniff(data) {
        Some(Format::Onnx)
    } else {
        None
    }
}

/// Scans `data` as `format`; `location` names the file (or archive member) in findings.
pub fn scan(format: Format, data: &[u8], location: &str) -> Vec<Finding> {
    match format {
        Format::Safetensors => safetensors::scan(data, location),
        Format::Onnx => onnx::scan(data, location),
        Format::Gguf => gguf::scan(data, location),
        Format::KerasH5 => keras::scan(data, location),
    }
}

/// Findings of one rule kept per file. A hostile file can make a rule fire for every tensor;
/// the report must stay readable and bounded, so past this many the rest are counted instead.
pub const MAX_FINDINGS_PER_RULE: usize = 32;

/// Collects findings with a per-rule cap (see [`MAX_FINDINGS_PER_RULE`]).
#[derive(Debug, Default)]
pub(crate) struct Findings {
    list: Vec<Finding>,
    per_rule: HashMap<String, usize>,
}

impl Findings {
    pub(crate) fn push(&mut self, finding: Finding) {
        let count = self.per_rule.entry(finding.rule.clone()).or_insert(0);
        *count += 1;
        if *count <= MAX_FINDINGS_PER_RULE {
            self.list.push(finding);
        }
    }

    pub(crate) fn finish(mut self) -> Vec<Finding> {
        let mut dropped: Vec<(String, usize)> = self
            .per_rule
            .iter()
            .filter(|(_, n)| **n > MAX_FINDINGS_PER_RULE)
            .map(|(r, n)| (r.clone(), n - MAX_FINDINGS_PER_RULE))
            .collect();
        dropped.sort();
        for (rule, n) in dropped {
            if let Some(last) = self.list.iter_mut().rev().find(|f| f.rule == rule) {
                last.message
                    .push_str(&format!(" ({n} more findings of this rule not listed)"));
            }
        }
        self.list
    }
}

/// A cursor over untrusted bytes: every read checks the remaining length first, so a corrupt
/// length can make a read fail but never make it allocate or index out of bounds.
#[derive(Debug, Clone)]
pub(crate) struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
    big_endian: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("truncated: needed {needed} bytes at offset {offset}, {remaining} remain")]
pub(crate) struct Truncated {
    pub(crate) offset: usize,
    pub(crate) needed: u64,
    pub(crate) remaining: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        ByteReader {
            data,
            pos: 0,
            big_endian: false,
        }
    }

    pub(crate) fn set_big_endian(&mut self, big: bool) {
        self.big_endian = big;
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: u64) -> Result<&'a [u8], Truncated> {
        if n > self.remaining() as u64 {
            return Err(Truncated {
                offset: self.pos,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let n = n as usize;
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        if self.big_endian {
            out.reverse();
        }
        Ok(out)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Truncated> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}
