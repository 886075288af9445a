//! The content router of `modelvet scan`: decides what a file is from its bytes (never its
//! name), opens containers the way their loaders do (zip as torch reads it, tar, gzip/zlib,
//! `.npy`), and hands every member to the reader for its content: the pickle VM, or the
//! safetensors, ONNX, GGUF and Keras readers of `crate::formats`.

mod npy;
mod tar;
mod zip;

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::finding::{Category, Finding, Severity};
use crate::formats;
use crate::pickle;

/// Archives inside archives (zip in tar in gzip...): defends against recursion bombs.
pub const MAX_ARCHIVE_DEPTH: u8 = 6;
/// Bytes inflated from compressed members and streams, per scanned file: defends against
/// decompression bombs exhausting memory.
pub const MAX_UNPACKED_BYTES: u64 = 4 << 30;
/// Bytes one compressed member or stream may inflate to.
pub const MAX_MEMBER_UNPACKED: u64 = 1 << 30;
/// Inflation ratio above which a member past `BOMB_MIN_BYTES` is reported as a bomb.
pub const BOMB_RATIO: u64 = 200;
pub const BOMB_MIN_BYTES: u64 = 64 << 20;
/// Entries read from one archive: defends against central directories of millions of entries.
pub const MAX_ARCHIVE_ENTRIES: usize = 200_000;

/// The scan of one file: SPEC's `files[]` entry without the derived `max_severity`.
#[derive(Debug, Clone)]
pub struct FileScan {
    pub path: String,
    /// One of SPEC's names: pickle, pytorch-zip, pytorch-tar, numpy, npz, joblib, zip, tar,
    /// safetensors, onnx, gguf, keras, unknown.
    pub format: &'static str,
    pub sha256: String,
    pub bytes: u64,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Error)]
pub enum ScanError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Reads and scans one file. The ONNX external-data paths are also resolved against the
/// file's directory (symlinks and escapes are only visible on disk).
pub fn scan_path(path: &Path) -> Result<FileScan, ScanError> {
    let data = std::fs::read(path).map_err(|source| ScanError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(scan_file_bytes(path, &data))
}

/// Scans the bytes of the file at `path` (read or mapped by the caller): findings are named
/// after the file, and the ONNX external-data paths are resolved against its directory.
pub fn scan_file_bytes(path: &Path, data: &[u8]) -> FileScan {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let mut scan = scan_bytes(&name, data);
    scan.path = path.display().to_string();
    if scan.format == "onnx" {
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let paths = formats::onnx::external_paths(data);
        scan.findings
            .extend(formats::onnx::check_external_paths(&paths, base, &name));
    }
    scan
}

/// Scans bytes; `name` is the file name used in findings' locations.
pub fn scan_bytes(name: &str, data: &[u8]) -> FileScan {
    let sha256 = hex(&Sha256::digest(data));
    let mut ctx = Ctx {
        findings: Vec::new(),
        unpacked: 0,
    };
    let format = ctx.route(data, name, 0);
    FileScan {
        path: name.to_string(),
        format,
        sha256,
        bytes: data.len() as u64,
        findings: ctx.findings,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// State of one file's scan: its findings and the inflation budget shared by every member.
pub(crate) struct Ctx {
    pub(crate) findings: Vec<Finding>,
    unpacked: u64,
}

impl Ctx {
    pub(crate) fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }

    /// Routes `data` by content and scans it; returns its format name. Bytes that open with a
    /// pickle opcode are also run through the pickle VM whatever else they are: `pickle.load`
    /// reads from the first byte and ignores the rest, so a tar, an HDF5 file with a user
    /// block or a zlib-looking stream may be a pickle too.
    pub(crate) fn route(&mut self, data: &[u8], loc: &str, depth: u8) -> &'static str {
        let format = self.route_content(data, loc, depth);
        if matches!(format, "pickle" | "joblib" | "pytorch-tar")
            || !data.first().is_some_and(|&b| pickle::is_opcode(b))
        {
            return format;
        }
        let scan = pickle::scan(data, loc);
        if !(scan.recognized && scan.names_code()) {
            return format;
        }
        if format != "unknown" {
            self.push(
                Finding::new(
                    "pickle.polyglot",
                    Severity::High,
                    Category::Static,
                    format!("the file is read as {format} by that format's loaders and is also a pickle that imports code: pickle.load (torch.load, joblib.load) runs it from the first byte"),
                )
                .at(loc.to_string()),
            );
        }
        self.findings.extend(scan.findings);
        if format == "unknown" {
            "pickle"
        } else {
            format
        }
    }

    fn route_content(&mut self, data: &[u8], loc: &str, depth: u8) -> &'static str {
        if depth > MAX_ARCHIVE_DEPTH {
            self.push(
                Finding::new(
                    "archive.depth-exceeded",
                    Severity::High,
                    Category::Resource,
                    format!("archives nested deeper than {MAX_ARCHIVE_DEPTH}: the inner content is not scanned"),
                )
                .at(loc.to_string()),
            );
            return "unknown";
        }
        if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
            return zip::scan(self, data, loc, depth, 0);
        }
        if data.starts_with(npy::MAGIC) {
            return npy::scan(self, data, loc);
        }
        if data.starts_with(&[0x1f, 0x8b]) {
            return self.inflate(data, loc, depth, Compression::Gzip);
        }
        if is_zlib(data) {
            // Two bytes are a weak magic (`(S` passes the header check): only a stream that
            // inflates to something is taken as zlib.
            let (probe, _) = read_bounded(flate2::read::ZlibDecoder::new(data), 1);
            if !probe.is_empty() {
                return self.inflate(data, loc, depth, Compression::Zlib);
            }
        }
        if let Some(kind) = other_compression(data) {
            // 0x5d is also a pickle opcode: `.lzma` must decode to something to be taken.
            let mut sink = BoundedSink {
                out: Vec::new(),
                budget: 1,
                over: false,
            };
            let lzma_ok = kind != Compression::Lzma || {
                // The first stream alone: lzma-rs fails on a second one after it.
                let first_end = stream_starts(kind, data)
                    .get(1)
                    .copied()
                    .unwrap_or(data.len());
                let _ = lzma_rs::lzma_decompress(&mut &data[..first_end], &mut sink);
                !sink.out.is_empty()
            };
            if lzma_ok {
                return self.inflate(data, loc, depth, kind);
            }
        }
        if let Some(zlib) = joblib_zfile(data) {
            // joblib's legacy zlib file: "ZF", the length in hex padded to 19 bytes, zlib.
            return self.inflate(zlib, loc, depth, Compression::Zlib);
        }
        if let Some(kind) = unscanned_compression(data) {
            self.push(
                Finding::new(
                    "archive.unscanned-compression",
                    Severity::Medium,
                    Category::Static,
                    format!("{kind}-compressed content is not decompressed by this scanner; a pickle inside would not be seen"),
                )
                .at(loc.to_string()),
            );
            return "unknown";
        }
        if tar::sniff(data) {
            return tar::scan(self, data, loc, depth);
        }
        if let Some(f) = formats::detect(data) {
            let found = formats::scan(f, data, loc);
            self.findings.extend(found);
            return f.as_str();
        }
        if let Some(found) = formats::keras::scan_standalone_config(data, loc) {
            self.findings.extend(found);
            return "keras";
        }
        let format = if pickle::sniff(data) {
            let scan = pickle::scan(data, loc);
            if scan.recognized {
                self.findings.extend(scan.findings);
                if scan.joblib { "joblib" } else { "pickle" }
            } else {
                "unknown"
            }
        } else {
            "unknown"
        };
        // A zip directory at the end of a file that starts as something else: zip readers
        // (Python's zipfile, numpy.load) open it from the end, so it is a polyglot.
        if let Some(eocd) = zip::find_eocd(data)
            && eocd > 0
        {
            {
                self.push(
                    Finding::new(
                        "zip.polyglot",
                        Severity::High,
                        Category::Static,
                        format!("the file is read as {format} from its start and as a zip from its end: two loaders see two different files"),
                    )
                    .at(format!("{loc}@{eocd}")),
                );
                zip::scan(self, data, loc, depth, 0);
            }
        }
        format
    }

    fn inflate(&mut self, data: &[u8], loc: &str, depth: u8, kind: Compression) -> &'static str {
        // Deflate reaches ~1000:1 on zeros (a joblib dump of a zero matrix), so the bomb ratio
        // binds it only inside another stream or archive (a gzip of a gzip of zeros).
        let ratio_applies = depth > 0 || !matches!(kind, Compression::Gzip | Compression::Zlib);
        let budget = if ratio_applies {
            self.budget(data.len())
        } else {
            self.budget(usize::MAX)
        };
        let (out, complete) = decode(kind, data, budget);
        self.unpacked += out.len() as u64;
        let name = match kind {
            Compression::Gzip => "gzip",
            Compression::Zlib => "zlib",
            Compression::Deflate => "deflate",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Lzma => "lzma",
            Compression::Lz4 => "lz4",
        };
        match complete {
            Inflated::Complete => {}
            Inflated::OverBudget => self.bomb(loc, data.len() as u64, out.len() as u64),
            Inflated::Corrupt => self.push(
                Finding::new(
                    "archive.corrupt-stream",
                    Severity::Medium,
                    Category::Integrity,
                    format!("the {name} stream is corrupt after {} inflated bytes; only those were scanned", out.len()),
                )
                .at(loc.to_string()),
            ),
        }
        if out.is_empty() {
            return "unknown";
        }
        self.route(&out, &format!("{loc}!{name}"), depth + 1)
    }

    /// Bytes a stream of `packed` bytes may inflate to: what is left of the file's budget, at
    /// most a member's, and at most the bomb ratio past `BOMB_MIN_BYTES` (a nested gzip of
    /// zeros stops there instead of filling memory).
    fn budget(&self, packed: usize) -> u64 {
        MAX_MEMBER_UNPACKED
            .min(MAX_UNPACKED_BYTES.saturating_sub(self.unpacked))
            .min(BOMB_MIN_BYTES.max((packed as u64).saturating_mul(BOMB_RATIO)))
    }

    pub(crate) fn bomb(&mut self, loc: &str, packed: u64, unpacked: u64) {
        self.push(
            Finding::new(
                "archive.bomb",
                Severity::High,
                Category::Resource,
                format!("inflating {packed} bytes passed the budget at {unpacked} bytes: a decompression bomb; the rest is not scanned"),
            )
            .at(loc.to_string()),
        );
    }

    /// Inflates a zip member (raw deflate, bzip2, or lzma given its .lzma header), within the
    /// per-file budget.
    pub(crate) fn inflate_member(
        &mut self,
        kind: Compression,
        packed: &[u8],
        declared: u64,
        loc: &str,
    ) -> Option<Vec<u8>> {
        let (out, state) = decode(kind, packed, self.budget(packed.len()));
        self.unpacked += out.len() as u64;
        let ratio_bomb = out.len() as u64 > BOMB_MIN_BYTES
            && out.len() as u64 / (packed.len() as u64).max(1) > BOMB_RATIO;
        match state {
            Inflated::OverBudget => self.bomb(loc, packed.len() as u64, out.len() as u64),
            Inflated::Corrupt => self.push(
                Finding::new(
                    "zip.corrupt-member",
                    Severity::Medium,
                    Category::Integrity,
                    format!(
                        "compressed data is corrupt after {} bytes; only those were scanned",
                        out.len()
                    ),
                )
                .at(loc.to_string()),
            ),
            Inflated::Complete if ratio_bomb => {
                self.bomb(loc, packed.len() as u64, out.len() as u64)
            }
            Inflated::Complete => {}
        }
        if declared != out.len() as u64 && state == Inflated::Complete {
            self.push(
                Finding::new(
                    "zip.size-mismatch",
                    Severity::Medium,
                    Category::Integrity,
                    format!(
                        "central directory declares {declared} bytes, the data inflates to {}",
                        out.len()
                    ),
                )
                .at(loc.to_string()),
            );
        }
        Some(out)
    }
}

/// The largest lzma window held in memory (xz's largest preset uses 64 MiB).
const LZMA_WINDOW_LIMIT: usize = 64 << 20;

/// Streams decoded from one buffer: joblib's bz2, lzma, xz and lz4 readers read on into a
/// stream that follows the first, so a pickle split across two is one pickle to them.
const MAX_STREAMS: usize = 64;

/// Decodes `data` as `kind`, every stream of it one after another, keeping at most `budget`
/// bytes.
fn decode(kind: Compression, data: &[u8], budget: u64) -> (Vec<u8>, Inflated) {
    let starts = stream_starts(kind, data);
    if starts.len() <= 1 {
        return decode_one(kind, data, budget);
    }
    let mut out = Vec::new();
    let mut state = Inflated::Complete;
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(data.len());
        let (part, s) = decode_one(kind, &data[start..end], budget - out.len() as u64);
        out.extend_from_slice(&part);
        match s {
            Inflated::OverBudget => return (out, Inflated::OverBudget),
            Inflated::Corrupt => state = Inflated::Corrupt,
            Inflated::Complete => {}
        }
    }
    (out, state)
}

/// Where the streams of `data` start: its first byte, and every later place where the stream
/// header of `kind` stands in full (gzip and zlib are read across streams by their decoders).
fn stream_starts(kind: Compression, data: &[u8]) -> Vec<usize> {
    let is_start = |d: &[u8]| match kind {
        Compression::Bzip2 => {
            d.len() > 10
                && d.starts_with(b"BZh")
                && (b'1'..=b'9').contains(&d[3])
                && d[4..10] == [0x31, 0x41, 0x59, 0x26, 0x53, 0x59]
        }
        Compression::Lz4 => d.starts_with(b"\x04\x22\x4d\x18"),
        Compression::Xz => d.starts_with(b"\xfd7zXZ\x00"),
        // joblib's .lzma streams: properties 0x5d, a dictionary size, an unknown length.
        Compression::Lzma => {
            d.len() >= 13 && d[0] == 0x5d && d[1] == 0 && d[2] == 0 && d[5..13] == [0xff; 8]
        }
        Compression::Gzip | Compression::Zlib | Compression::Deflate => false,
    };
    let first = match kind {
        Compression::Bzip2 => b'B',
        Compression::Lz4 => 0x04,
        Compression::Xz => 0xfd,
        Compression::Lzma => 0x5d,
        _ => return vec![0],
    };
    let mut starts = vec![0];
    for i in 1..data.len() {
        if starts.len() >= MAX_STREAMS {
            break;
        }
        if data[i] == first && is_start(&data[i..]) {
            starts.push(i);
        }
    }
    starts
}

/// Decodes one stream of `data` as `kind`, keeping at most `budget` bytes.
fn decode_one(kind: Compression, data: &[u8], budget: u64) -> (Vec<u8>, Inflated) {
    match kind {
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(data), budget),
        Compression::Zlib => read_bounded(flate2::read::ZlibDecoder::new(data), budget),
        Compression::Deflate => read_bounded(flate2::read::DeflateDecoder::new(data), budget),
        Compression::Bzip2 => read_bounded(bzip2_rs::DecoderReader::new(data), budget),
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), budget),
        Compression::Xz | Compression::Lzma => {
            let mut sink = BoundedSink {
                out: Vec::new(),
                budget,
                over: false,
            };
            let mut input = data;
            let r = if kind == Compression::Xz {
                lzma_rs::xz_decompress(&mut input, &mut sink)
            } else {
                // A header may claim a 4 GiB dictionary: lzma-rs holds its window in memory.
                let options = lzma_rs::decompress::Options {
                    memlimit: Some(LZMA_WINDOW_LIMIT),
                    ..Default::default()
                };
                lzma_rs::lzma_decompress_with_options(&mut input, &mut sink, &options)
            };
            let state = match (r, sink.over) {
                (_, true) => Inflated::OverBudget,
                (Ok(()), false) => Inflated::Complete,
                (Err(_), false) => Inflated::Corrupt,
            };
            (sink.out, state)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    Gzip,
    Zlib,
    Deflate,
    Bzip2,
    Xz,
    /// The legacy `.lzma` ("alone") format joblib writes for `compress='lzma'`.
    Lzma,
    /// The LZ4 frame format joblib writes for `compress='lz4'`.
    Lz4,
}

/// A writer that keeps at most `budget` bytes and then fails, so a decoder that writes (xz,
/// lzma) stops at the inflation budget instead of exhausting memory.
struct BoundedSink {
    out: Vec<u8>,
    budget: u64,
    over: bool,
}

impl std::io::Write for BoundedSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.budget.saturating_sub(self.out.len() as u64) as usize;
        if buf.len() > room {
            self.out.extend_from_slice(&buf[..room]);
            self.over = true;
            return Err(std::io::Error::other("inflation budget exhausted"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn other_compression(data: &[u8]) -> Option<Compression> {
    if data.starts_with(b"BZh")
        && data.len() > 10
        && data[3].is_ascii_digit()
        && data[4..10] == [0x31, 0x41, 0x59, 0x26, 0x53, 0x59]
    {
        Some(Compression::Bzip2)
    } else if data.starts_with(b"\xfd7zXZ\x00") {
        Some(Compression::Xz)
    } else if data.starts_with(b"\x04\x22\x4d\x18") {
        Some(Compression::Lz4)
    } else if data.len() >= 13
        && data[0] == 0x5d
        // joblib takes any stream that starts `]\0\0` for lzma.
        && data[1] == 0
        && data[2] == 0
        && (data[5..13] == [0xff; 8] || data[11..13] == [0, 0])
    {
        // .lzma: properties byte 0x5d (lc=3, lp=0, pb=2).
        Some(Compression::Lzma)
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inflated {
    Complete,
    OverBudget,
    Corrupt,
}

/// Reads at most `budget` bytes; never allocates more than what was actually produced.
fn read_bounded(mut r: impl Read, budget: u64) -> (Vec<u8>, Inflated) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (out, Inflated::Complete),
            Ok(n) => {
                if out.len() as u64 + n as u64 > budget {
                    let keep = (budget - out.len() as u64) as usize;
                    out.extend_from_slice(&buf[..keep]);
                    return (out, Inflated::OverBudget);
                }
                out.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return (out, Inflated::Corrupt),
        }
    }
}

fn is_zlib(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8
                && (cmf >> 4) <= 7
                && ((*cmf as u16) << 8 | *flg as u16).is_multiple_of(31)
                && flg & 0x20 == 0
        }
        _ => false,
    }
}

/// The zlib stream of joblib's legacy compressed file (`numpy_pickle_compat.read_zfile`):
/// after "ZF" and a 19-byte length field, and one space if there is one.
fn joblib_zfile(data: &[u8]) -> Option<&[u8]> {
    const HEADER: usize = 2 + 19;
    if !data.starts_with(b"ZF") {
        return None;
    }
    // joblib parses the length with int(x, 16) and only passes it to zlib as a size hint: its
    // spelling does not matter, the zlib stream after it does.
    data.get(..HEADER)?;
    let start = if data.get(HEADER) == Some(&b' ') {
        HEADER + 1
    } else {
        HEADER
    };
    data.get(start..).filter(|z| is_zlib(z))
}

fn unscanned_compression(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"\x28\xb5\x2f\xfd") {
        Some("zstd")
    } else if data.starts_with(b"ZF0x") {
        Some("joblib-zlib (legacy, unreadable)")
    } else {
        None
    }
}

/// Location of a member inside its container: the file itself is named by the member path
/// alone (`archive/data.pkl`); deeper levels are joined with `/`.
pub(crate) fn member_loc(parent: &str, depth: u8, member: &str) -> String {
    if depth == 0 {
        member.to_string()
    } else {
        format!("{parent}/{member}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_content_not_name() {
        let s = scan_bytes("weights.txt", b"cos\nsystem\n(S'id'\ntR.");
        assert_eq!(s.format, "pickle");
        assert_eq!(s.findings[0].severity, Severity::Critical);
        let t = scan_bytes("model.pkl", b"just some text\n");
        assert_eq!(t.format, "unknown");
        assert!(t.findings.is_empty());
        assert_eq!(t.sha256.len(), 64);
    }

    /// Issue 5 regression: `(S'` (MARK, STRING) passes the zlib header check, so a
    /// protocol-0 INST pickle was routed to zlib, failed to inflate and went unscanned.
    #[test]
    fn issue5_inst_pickle_is_not_taken_for_zlib() {
        let s = scan_bytes("m.pkl", b"(S'id'\nios\nsystem\n.");
        assert_eq!(s.format, "pickle");
        assert!(s.findings.iter().any(|f| f.severity == Severity::Critical));
    }

    #[test]
    fn bzip2_is_opened() {
        // `bz2.compress(b"cos\nsystem\n(S'id'\ntR.")`, a fixed test vector.
        let bz = hex_bytes(BZ2_PAYLOAD);
        let s = scan_bytes("m.bz2", &bz);
        assert_eq!(s.format, "pickle", "{:?}", s.findings);
        assert!(s.findings.iter().any(|f| f.severity == Severity::Critical));
    }

    const BZ2_PAYLOAD: &str = "425a68393141592653591f2f22a5000004d380001000c118000e228c2020002221a1b44f298a600028bc8e0424b8257e99358bb9229c28480f97915280";

    fn hex_bytes(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok())
            .collect()
    }

    #[test]
    fn gzip_is_opened() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"cos\nsystem\n(S'id'\ntR.").unwrap_or_default();
        let gz = e.finish().unwrap_or_default();
        let s = scan_bytes("m.gz", &gz);
        assert_eq!(s.format, "pickle");
        assert!(s.findings.iter().any(|f| f.severity == Severity::Critical));
    }
}
